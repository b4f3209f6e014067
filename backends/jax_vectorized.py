"""JAX, vectorized: ``jax.vmap`` of the adapter's own jitted step over a leading variant axis."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from backends.jax_backend import _numpy
from harness.batch_trace import BatchTrace
from harness.cases import Case, param_names
from harness.inputs import Inputs
from harness.step_key import step_key

_BATCHED: dict[Hashable, tuple[Any, Any, Any]] = {}  # step key -> jit(vmap(init, outputs, step))


def run_batch(backend: Any, cases: Sequence[Case], inputs: Sequence[Inputs]) -> BatchTrace:
    """Every case of one step key at once; ``backend`` is a JaxBackend (its jit cache)."""
    jax = backend.jax
    case = cases[0]
    batch = int(inputs[0].x.shape[0])
    key = step_key(case, batch)
    if key not in _BATCHED:
        jitted = backend.jit_cache.get(case, batch)
        _BATCHED[key] = tuple(
            jax.jit(jax.vmap(f)) for f in (jitted.init, jitted.outputs, jitted.step)
        )
    init, outputs, step = _BATCHED[key]
    dtype = getattr(jax.numpy, case.dtype)

    def stacked(arrays: list[np.ndarray]) -> Any:
        return jax.numpy.asarray(np.stack(arrays), dtype=dtype)

    names = param_names(case.network.sizes)
    params = {name: stacked([i.params[name] for i in inputs]) for name in names}
    x, y = stacked([i.x for i in inputs]), stacked([i.y for i in inputs])
    state = init(params)
    trace = BatchTrace(output=_numpy(outputs(params, x)[-1]))
    for _ in range(case.steps):
        loss, grads, params, state = step(params, state, x, y)
        trace.losses.append(_numpy(loss))
        trace.grads.append({name: _numpy(grads[name]) for name in names})
        trace.params.append({name: _numpy(params[name]) for name in names})
    trace.output_after = _numpy(outputs(params, x)[-1])
    return trace
