"""``jax``: the JAX adapter under ``jax.jit``, one jitted train step and forward pass per step key.

The step is the eager adapter's math (backends/jax/ops.py: optax loss and optimizer,
``jax.value_and_grad``) traced once; XLA may fuse and reorder it, which is exactly what
comparing ``jax`` with ``jax:eager`` tests. ``JaxJitBackend.run`` runs a whole case as one
jitted call (``JittedStep.case``: the steps in a ``lax.scan``) and fetches everything it
recorded in one ``device_get``, as a jitted training loop is written; the separate
functions serve ``build`` (the ``Model`` protocol) and the vectorized sweep.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.base import Model, host_array
from backends.jax import ops
from backends.jax.eager import JaxEagerBackend
from harness.cases.inputs import Inputs
from harness.cases.model import Case, param_names
from harness.cases.step_key import step_key
from harness.run.trace import Trace, trace_from_flat


class JaxJitBackend(JaxEagerBackend):
    """The JAX adapter with its step under ``jax.jit``: the ``jax`` backend, compared by default."""

    name = "jax"
    mode = "jit"
    opt_in = False
    vectorized = "backends.jax.vectorized:run_batch"

    def __init__(self) -> None:
        super().__init__()
        self.jit_cache = JitCache(self.jax, self.optax)

    def build(self, case: Case, inputs: Inputs) -> Model:
        return JaxJitModel(self.jit_cache, case, inputs)

    def run(self, case: Case, inputs: Inputs) -> Trace:
        """The whole case in one jitted call and one transfer (``WholeCase``)."""
        dtype = np.dtype(getattr(self.jax.numpy, case.dtype))
        whole_case = self.jit_cache.get(case, int(inputs.x.shape[0])).case
        params = {name: value.astype(dtype) for name, value in inputs.params.items()}
        return whole_case.trace(params, inputs.x.astype(dtype), inputs.y.astype(dtype), case.steps)


@dataclass(frozen=True)
class JittedStep:
    """Compiled functions of one step key: optimizer init, forward pass, train step, and the
    whole case (every recorded array of any number of steps)."""

    init: Any
    outputs: Any  # every layer's output
    step: Any
    case: WholeCase


class WholeCase:
    """A whole case as one jitted call returning one flat array, fetched in one transfer.

    Per-array fetches cost more than the small case's math, so the recorded arrays are
    concatenated on the device and cut back into the trace's arrays (views) on the host.
    """

    def __init__(self, jax: Any, recorded: Any, names: list[str]) -> None:
        self.jax, self.recorded, self.names = jax, recorded, names
        jnp = jax.numpy

        def flat(params: dict[str, Any], x: Any, y: Any, steps: int) -> Any:
            return jnp.concatenate([jnp.ravel(a) for a in recorded(params, x, y, steps)])

        self.flat = jax.jit(flat, static_argnames="steps")
        self.shapes: dict[int, list[tuple[int, ...]]] = {}  # by steps

    def trace(
        self, params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, steps: int
    ) -> Trace:
        values = host_array(self.jax.device_get(self.flat(params, x, y, steps=steps)))
        return trace_from_flat(values, self._shapes(params, x, y, steps), self.names, steps)

    def _shapes(
        self, params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, steps: int
    ) -> list[tuple[int, ...]]:
        """The recorded arrays' shapes; a step key fixes all but the number of steps."""
        if steps not in self.shapes:
            found = self.jax.eval_shape(lambda p, x, y: self.recorded(p, x, y, steps), params, x, y)
            self.shapes[steps] = [tuple(a.shape) for a in found]
        return self.shapes[steps]


class JitCache:
    """Jitted functions by step key; jax.jit adds its own cache on shapes and dtypes."""

    def __init__(self, jax: Any, optax: Any) -> None:
        self.jax, self.optax = jax, optax
        self.entries: dict[Hashable, JittedStep] = {}

    def get(self, case: Case, batch: int) -> JittedStep:
        key = step_key(case, batch)
        if key not in self.entries:
            self.entries[key] = self._compile(case)
        return self.entries[key]

    def _compile(self, case: Case) -> JittedStep:
        jax, optax = self.jax, self.optax
        n_layers = case.network.n_layers
        hidden = ops.activation(jax.nn, case.network.activation)
        last = ops.activation(jax.nn, case.network.output_activation)
        loss_of_output = ops.loss(jax.numpy, optax, case.loss.name, case.loss.args)
        optimizer = ops.optimizer(optax, case.optimizer.name, case.optimizer.args)

        def outputs(params: dict[str, Any], x: Any) -> list[Any]:
            """Every layer's output after its activation; the last is the network's."""
            a, found = x, []
            for layer in range(n_layers):
                z = a @ params[f"layers.{layer}.weight"].T + params[f"layers.{layer}.bias"]
                a = (last if layer == n_layers - 1 else hidden)(z)
                found.append(a)
            return found

        def loss(params: dict[str, Any], x: Any, y: Any) -> Any:
            return loss_of_output(outputs(params, x)[-1], y)

        value_and_grad = jax.value_and_grad(loss)

        def step(params: dict[str, Any], opt_state: Any, x: Any, y: Any) -> tuple[Any, ...]:
            value, grads = value_and_grad(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return value, grads, optax.apply_updates(params, updates), opt_state

        names = param_names(case.network.sizes)

        def recorded(params: dict[str, Any], x: Any, y: Any, steps: int) -> list[Any]:
            """Every array the case records, stacked over steps, in ``WholeCase`` order."""

            def one_step(carry: tuple[Any, Any], _: None) -> tuple[tuple[Any, Any], Any]:
                params, opt_state = carry
                found = outputs(params, x)
                value, grads, params, opt_state = step(params, opt_state, x, y)
                return (params, opt_state), (found, value, grads, params)

            carry = (params, optimizer.init(params))
            (params, _), (found, losses, grads, updated) = jax.lax.scan(
                one_step, carry, length=steps
            )
            return [
                *found,  # every layer's output before each step's update
                losses,
                *(grads[name] for name in names),
                *(updated[name] for name in names),
                outputs(params, x)[-1],  # after the last update
            ]

        return JittedStep(
            jax.jit(optimizer.init),
            jax.jit(outputs),
            jax.jit(step),
            WholeCase(jax, recorded, names),
        )


class JaxJitModel:
    """One case's state, driven through the cached jitted functions of its step key."""

    def __init__(self, cache: JitCache, case: Case, inputs: Inputs) -> None:
        jnp = cache.jax.numpy
        dtype = getattr(jnp, case.dtype)
        self.params = {
            name: jnp.asarray(value, dtype=dtype) for name, value in inputs.params.items()
        }
        self.x = jnp.asarray(inputs.x, dtype=dtype)
        self.y = jnp.asarray(inputs.y, dtype=dtype)
        self.jitted = cache.get(case, int(inputs.x.shape[0]))
        self.opt_state = self.jitted.init(self.params)

    def forward(self) -> np.ndarray:
        return host_array(self.jitted.outputs(self.params, self.x)[-1])

    def layer_outputs(self) -> list[np.ndarray]:
        return [host_array(a) for a in self.jitted.outputs(self.params, self.x)[:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        loss, grads, self.params, self.opt_state = self.jitted.step(
            self.params, self.opt_state, self.x, self.y
        )
        return host_array(loss), {name: host_array(grads[name]) for name in self.params}

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: host_array(value) for name, value in self.params.items()}
