"""Switches that make the reference compute as a framework documents it, instead of as PyTorch does.

The reference is PyTorch's documented algorithms (docs/spec.md). Some frameworks document
another algorithm on purpose: Keras puts RMSprop's epsilon inside the square root, optax's
Adagrad too, Keras' weight decay is decoupled everywhere. A known divergence
(cases/known_divergences.yaml) names such behaviours as switches; the reference recomputed
with them is what the framework must then match, under the normal tolerance
(docs/verdicts.md). A switch is a behaviour, never a fudge factor: each one below is a line
of some framework's source, cited by the entries that use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Semantics:
    # RMSprop and Adagrad divide by sqrt(v + eps) instead of sqrt(v) + eps (Keras, optax).
    eps_inside_sqrt: bool = False
    # Adam adds eps to sqrt(v) before the bias correction, "epsilon hat" of Kingma & Ba: the
    # step is lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps) (Keras).
    epsilon_hat: bool = False
    # Adam's two divisions merged into one, m / ((1 - b1^t) * (sqrt(v_hat) + eps)), as XLA's
    # algebraic simplifier rewrites (A / B) / C into A / (B * C) in a compiled optax Adam; in
    # half precision the product can underflow to 0 (a zero gradient then steps by NaN).
    adam_divisions_merged: bool = False
    # Adam's moments move by their difference to the gradient, m + (g - m)(1 - b1) and
    # v + (g^2 - v)(1 - b2), as Keras writes them; in half precision g^2 can overflow where
    # PyTorch's b2*v + (1 - b2)*g*g does not.
    moments_by_difference: bool = False
    # Weight decay shrinks the parameter before the update (p <- p - p*wd*lr) instead of
    # adding wd*p to the gradient, for every optimizer (Keras).
    decoupled_weight_decay: bool = False
    # Binary cross-entropy clips probabilities to [c, 1 - c] before the logarithms, so a
    # clipped output gets no gradient (Keras: c = backend.epsilon() = 1e-7); 0 is no clip.
    bce_clip: float = 0.0
    # Binary cross-entropy after a sigmoid is computed from the sigmoid's input, as
    # sigmoid_cross_entropy_with_logits (Keras inside tf.function).
    bce_from_logits: bool = False
    # leaky_relu's derivative at exactly 0 (PyTorch: the negative slope; jax: 1).
    leaky_relu_slope_at_zero: float | None = None
    # mae's derivative where the residual is exactly 0 (PyTorch: sign(0) = 0; jax: 1, as
    # jax.lax.abs's JVP is select(x >= 0, g, -g)).
    abs_slope_at_zero: float | None = None
    # huber's gradient as reverse-mode autodiff of optax.huber_loss computes it: the loss is
    # 0.5·q² + delta·(|e| - q) with q = min(|e|, delta), so for |e| < delta the gradient is
    # (c·q - c·delta) + c·delta (c = 1/n), which cancels to about one ulp of c·delta.
    huber_through_min: bool = False
    # elu's derivative below 0 taken from its output, f(z) + 1, instead of e^z (TensorFlow's
    # EluGrad); it cancels where f(z) is close to -1.
    elu_derivative_from_output: bool = False
    # softplus is the identity above this input (torch.nn.functional.softplus: 20).
    softplus_threshold: float | None = None
    # Hyper-parameters (all but the learning rate) and activation constants are rounded to
    # float32 before use, as a float32 tensor cast to the computing dtype (TensorFlow, Keras).
    float32_constants: bool = False
    # Adam's second moment b2*v + (1-b2)*g*g is computed in float32 and rounded once, as
    # torch's addcmul_ and XLA do for half precision; the reference rounds every product.
    second_moment_in_float32: bool = False
    # The whole case computed in this dtype whatever the case says (Keras on PyTorch computes
    # float64 layers in float32); the comparison then uses this dtype's tolerance.
    compute_dtype: str | None = None

    def combined(self, other: Semantics) -> Semantics:
        """Every switch either sets (``other`` wins where both set a value)."""
        default = Semantics()
        changes = {
            f.name: getattr(other, f.name)
            for f in dataclasses.fields(self)
            if getattr(other, f.name) != getattr(default, f.name)
        }
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """The switches set, as an entry writes them: ``eps_inside_sqrt, bce_clip=1e-07``."""
        default = Semantics()
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                parts.append(f.name if value is True else f"{f.name}={value}")
        return ", ".join(parts) or "none"


PYTORCH = Semantics()

# The switches an entry may set, each with the type of its value, for reading YAML.
SWITCH_TYPES: Mapping[str, type] = {
    "eps_inside_sqrt": bool,
    "epsilon_hat": bool,
    "adam_divisions_merged": bool,
    "decoupled_weight_decay": bool,
    "moments_by_difference": bool,
    "bce_clip": float,
    "bce_from_logits": bool,
    "leaky_relu_slope_at_zero": float,
    "abs_slope_at_zero": float,
    "elu_derivative_from_output": bool,
    "huber_through_min": bool,
    "softplus_threshold": float,
    "float32_constants": bool,
    "second_moment_in_float32": bool,
    "compute_dtype": str,  # a dtype name
}
assert set(SWITCH_TYPES) == {f.name for f in dataclasses.fields(Semantics)}
