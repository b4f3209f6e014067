"""JAX adapter: a parameter pytree, ``jax.value_and_grad``, optax losses and optimizers.

``jax`` runs the step jitted (backends/jax/compiled.py), as JAX code is normally run;
``jax:eager`` runs the same math op by op.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.run import determinism
from harness.run.trace import Trace


class JaxBackend(Backend):
    name = "jax"
    mode = "jit"
    requires: ClassVar[tuple[str, ...]] = ("jax", "optax")
    distribution = "jax"
    extra = "jax"
    startup_seconds = 1.5

    def __init__(self) -> None:
        import jax
        import optax

        from backends.jax.compiled import JitCache

        determinism.configure_jax(jax)
        self.jax, self.optax = jax, optax
        self.jit_cache = JitCache(jax, optax)

    def unsupported_reason(self, case: Case) -> str | None:
        if case.optimizer.name == "sgd" and case.optimizer.args["dampening"]:
            return "optax.sgd has no dampening argument"
        return super().unsupported_reason(case)

    def build(self, case: Case, inputs: Inputs) -> Model:
        from backends.jax.compiled import JaxJitModel

        return JaxJitModel(self.jit_cache, case, inputs)

    def run(self, case: Case, inputs: Inputs) -> Trace:
        """The whole case in one jitted call and one transfer (``WholeCase``, jax_jit.py)."""
        dtype = np.dtype(getattr(self.jax.numpy, case.dtype))
        whole_case = self.jit_cache.get(case, int(inputs.x.shape[0])).case
        params = {name: value.astype(dtype) for name, value in inputs.params.items()}
        return whole_case.trace(params, inputs.x.astype(dtype), inputs.y.astype(dtype), case.steps)


class JaxEagerBackend(JaxBackend):
    """The same adapter op by op, without ``jax.jit``."""

    name = "jax:eager"
    mode = "eager"

    def build(self, case: Case, inputs: Inputs) -> Model:
        return JaxModel(self.jax, self.optax, case, inputs)

    def run(self, case: Case, inputs: Inputs) -> Trace:
        """Op by op through the ``Model`` protocol, not the jitted whole case."""
        return Backend.run(self, case, inputs)


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
        self.hidden = _activation(jax.nn, case.network.activation)
        self.last = _activation(jax.nn, case.network.output_activation)
        self.loss_of_output = _loss(jnp, optax, case.loss.name, case.loss.args)
        self.optimizer = _optimizer(optax, case.optimizer.name, case.optimizer.args)
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
        return _numpy(self._output(self.params))

    def layer_outputs(self) -> list[np.ndarray]:
        outputs, a = [], self.x
        for layer in range(self.n_layers - 1):
            a = self.hidden(
                a @ self.params[f"layers.{layer}.weight"].T + self.params[f"layers.{layer}.bias"]
            )
            outputs.append(_numpy(a))
        return outputs

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        loss, grads = self.value_and_grad(self.params)
        updates, self.opt_state = self.optimizer.update(grads, self.opt_state, self.params)
        self.params = self.optax.apply_updates(self.params, updates)
        return _numpy(loss), {name: _numpy(grads[name]) for name in self.params}

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: _numpy(value) for name, value in self.params.items()}


def _host(array: np.ndarray) -> np.ndarray:
    """A fetched array as the harness takes it: bfloat16 widened (exactly) to float32."""
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else array


def _numpy(array: Any) -> np.ndarray:
    result = np.asarray(array)
    # ml_dtypes' bfloat16 widens exactly to float32; the harness only handles NumPy floats.
    return result.astype(np.float32) if result.dtype.name == "bfloat16" else result.copy()


def _activation(nn: Any, name: str) -> Any:
    table = {
        "identity": lambda z: z,
        "sigmoid": nn.sigmoid,
        "tanh": nn.tanh,
        "relu": nn.relu,
        "leaky_relu": lambda z: nn.leaky_relu(z, negative_slope=0.01),
        "elu": lambda z: nn.elu(z, alpha=1.0),
        "gelu": lambda z: nn.gelu(z, approximate=False),
        "gelu_tanh": lambda z: nn.gelu(z, approximate=True),
        "softplus": nn.softplus,
        "silu": nn.silu,
    }
    return table[name]


def _loss(jnp: Any, optax: Any, name: str, args: Mapping[str, float]) -> Any:
    losses = optax.losses
    table = {
        "mse": lambda o, y: losses.squared_error(o, y).mean(),
        "sse": lambda o, y: losses.squared_error(o, y).sum(),
        "half_sse": lambda o, y: losses.l2_loss(o, y).sum(),  # optax's l2_loss is ½·e²
        # optax has no absolute-error loss; composed from jnp
        "mae": lambda o, y: jnp.abs(o - y).mean(),
        "huber": lambda o, y: losses.huber_loss(o, y, delta=args.get("delta", 1.0)).mean(),
        # optax's binary cross-entropy takes logits only; the probability form is composed
        "bce": lambda o, y: -(y * jnp.log(o) + (1 - y) * jnp.log1p(-o)).mean(),
        "bce_logits": lambda o, y: losses.sigmoid_binary_cross_entropy(o, y).mean(),
        "cross_entropy": lambda o, y: losses.softmax_cross_entropy(o, y).mean(),
    }
    return table[name]


def _optimizer(optax: Any, name: str, args: Mapping[str, Any]) -> Any:
    """The optax optimizer nearest to torch.optim's ``name`` with ``args``."""
    decay = args.get("weight_decay", 0.0)
    if name == "sgd":
        core = optax.sgd(args["lr"], momentum=args["momentum"] or None, nesterov=args["nesterov"])
    elif name == "adam":
        core = optax.adam(args["lr"], b1=args["betas"][0], b2=args["betas"][1], eps=args["eps"])
    elif name == "adamw":
        b1, b2 = args["betas"]
        return optax.adamw(args["lr"], b1=b1, b2=b2, eps=args["eps"], weight_decay=decay)
    elif name == "rmsprop":
        core = optax.rmsprop(
            args["lr"],
            decay=args["alpha"],
            eps=args["eps"],
            eps_in_sqrt=False,  # torch: eps outside
            centered=args["centered"],
            momentum=args["momentum"] or None,
        )
    elif name == "adagrad":
        core = optax.adagrad(
            args["lr"], initial_accumulator_value=args["initial_accumulator_value"], eps=args["eps"]
        )
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    # torch's weight_decay (all but AdamW) adds decay·p to the gradient before the update
    return optax.chain(optax.add_decayed_weights(decay), core) if decay else core
