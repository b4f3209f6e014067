"""JAX adapter: a parameter pytree, ``jax.value_and_grad``, optax losses and optimizers.

This is the adapter op by op (``jax:eager``); ``jax`` (backends/jax/compiled.py) runs the
same math under ``jax.jit``, as JAX code is normally run, and is the one compared by default.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model, host_array
from backends.jax import ops
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.run import determinism


class JaxEagerBackend(Backend):
    """The JAX adapter op by op, without ``jax.jit``."""

    name = "jax:eager"
    mode = "eager"
    opt_in = True
    # jaxlib is jax's compiled half (XLA): jax cannot import without it, and the report
    # records its version with the others (harness/run/fingerprint.py).
    requires: ClassVar[tuple[str, ...]] = ("jax", "jaxlib", "optax")
    distribution = "jax"
    extra = "jax"
    startup_seconds = 1.5
    rank = 2

    def __init__(self) -> None:
        import jax
        import optax

        determinism.configure_jax(jax)
        self.jax, self.optax = jax, optax

    def unsupported_reason(self, case: Case) -> str | None:
        if case.optimizer.name == "sgd" and case.optimizer.args["dampening"]:
            return "optax.sgd has no dampening argument"
        return super().unsupported_reason(case)

    def build(self, case: Case, inputs: Inputs) -> Model:
        return JaxModel(self.jax, self.optax, case, inputs)


class JaxModel:
    def __init__(self, jax: Any, optax: Any, case: Case, inputs: Inputs) -> None:
        jnp = jax.numpy
        self.jax, self.optax = jax, optax
        dtype = getattr(jnp, case.dtype)
        self.params = {
            name: jnp.asarray(value, dtype=dtype) for name, value in inputs.params.items()
        }
        self.x = jnp.asarray(inputs.x, dtype=dtype)
        self.y = jnp.asarray(inputs.y, dtype=dtype)
        self.n_layers = case.network.n_layers
        self.hidden = ops.activation(jax.nn, case.network.activation)
        self.last = ops.activation(jax.nn, case.network.output_activation)
        self.loss_of_output = ops.loss(jnp, optax, case.loss.name, case.loss.args)
        self.optimizer = ops.optimizer(optax, case.optimizer.name, case.optimizer.args)
        self.opt_state = self.optimizer.init(self.params)
        self.value_and_grad = jax.value_and_grad(self._loss)

    def _output(self, params: dict[str, Any]) -> Any:
        a = self.x
        for layer in range(self.n_layers):
            z = a @ params[f"layers.{layer}.weight"].T + params[f"layers.{layer}.bias"]
            a = (self.last if layer == self.n_layers - 1 else self.hidden)(z)
        return a

    def _loss(self, params: dict[str, Any]) -> Any:
        return self.loss_of_output(self._output(params), self.y)

    def forward(self) -> np.ndarray:
        return host_array(self._output(self.params))

    def layer_outputs(self) -> list[np.ndarray]:
        outputs, a = [], self.x
        for layer in range(self.n_layers - 1):
            a = self.hidden(
                a @ self.params[f"layers.{layer}.weight"].T + self.params[f"layers.{layer}.bias"]
            )
            outputs.append(host_array(a))
        return outputs

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        loss, grads = self.value_and_grad(self.params)
        updates, self.opt_state = self.optimizer.update(grads, self.opt_state, self.params)
        self.params = self.optax.apply_updates(self.params, updates)
        return host_array(loss), {name: host_array(grads[name]) for name in self.params}

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: host_array(value) for name, value in self.params.items()}
