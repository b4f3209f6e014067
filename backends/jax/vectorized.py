"""JAX, vectorized: ``jax.vmap`` of the adapter's own jitted step over a leading variant axis."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from backends.base import host_array
from harness.cases.model import Case, param_names
from harness.cases.step_key import step_key
from harness.run.batch_trace import BatchInputs, BatchTrace

_BATCHED: dict[Hashable, tuple[Any, Any, Any]] = {}  # step key -> jit(vmap(init, outputs, step))


def run_batch(backend: Any, case: Case, inputs: BatchInputs) -> BatchTrace:
    """Every case of ``case``'s step key at once; ``backend`` is a JaxJitBackend (its jit cache)."""
    jax = backend.jax
    batch = int(inputs.x.shape[1])
    key = step_key(case, batch)
    if key not in _BATCHED:
        jitted = backend.jit_cache.get(case, batch)
        _BATCHED[key] = tuple(
            jax.jit(jax.vmap(f)) for f in (jitted.init, jitted.outputs, jitted.step)
        )
    init, outputs, step = _BATCHED[key]
    dtype = getattr(jax.numpy, case.dtype)

    def device(array: np.ndarray) -> Any:
        return jax.numpy.asarray(array, dtype=dtype)

    names = param_names(case.network.sizes)
    params = {name: device(inputs.params[name]) for name in names}
    x, y = device(inputs.x), device(inputs.y)
    state = init(params)
    trace = BatchTrace(output=host_array(outputs(params, x)[-1]))
    for _ in range(case.steps):
        trace.activations.append([host_array(a) for a in outputs(params, x)[:-1]])
        loss, grads, params, state = step(params, state, x, y)
        trace.losses.append(host_array(loss))
        trace.grads.append({name: host_array(grads[name]) for name in names})
        trace.params.append({name: host_array(params[name]) for name in names})
    trace.output_after = host_array(outputs(params, x)[-1])
    return trace
