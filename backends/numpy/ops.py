"""The reference mathematics in plain NumPy: activations, losses and optimizers, by hand.

Everything is written from the textbook formulas and PyTorch's documented algorithms, in
the spirit of the seed article's plain-Python backprop. It is the yardstick the framework
adapters are compared with, so it uses no framework and no automatic differentiation.
Every function computes in the dtype of its inputs (bfloat16 aside: docs/tolerances.md).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.numpy.semantics import PYTORCH, Semantics

Array = np.ndarray

_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


# typed: 1 and 1.0 are equal keys otherwise, and a bfloat16 array meets them differently
# (bfloat16 with 1, float32 with 1.0): whichever came first would answer for both.
@functools.lru_cache(maxsize=4096, typed=True)
def constants(dtype: np.dtype, *values: float) -> tuple[Array, ...]:
    """``values`` as read-only 0-d arrays, converted as NumPy converts a Python number operand
    of an array of ``dtype``.

    NumPy converts such an operand on every call, which costs about as long as the operation
    itself on a case's small arrays (1 µs); converted once here, the operation gives the same
    bits. The conversion is to ``dtype`` itself (NEP 50), except that ml_dtypes computes a
    bfloat16 array with a Python float in float32, so the probe asks NumPy which.
    """
    converted = tuple(np.array(value, (np.zeros((), dtype) * value).dtype) for value in values)
    for array in converted:
        array.flags.writeable = False
    return converted


def _sigmoid(z: Array) -> Array:
    # 1 / (1 + e^-z) for z >= 0 and e^z / (1 + e^z) below, so exp never overflows; both at
    # once as e^min(z, 0) / (1 + e^-|z|), without a branch (np.where costs more than an exp).
    zero, one, minus_one = constants(z.dtype, 0, 1, -1)
    return np.exp(np.minimum(z, zero)) / (one + np.exp(np.copysign(z, minus_one)))


def _mean(x: Array) -> Any:  # a NumPy scalar, as ndarray.mean returns
    """``x.mean()``, bit for bit, without its Python-level bookkeeping (a third of a small
    case's loss). NumPy sums float16 in float32 and divides by the count in float64; a
    float64 quotient rounded to float32 or narrower equals the directly rounded one (double
    rounding is exact for division at 53 >= 2 * 24 + 2 bits), so only float16 needs the wider sum.
    """
    if x.dtype == np.float16:
        return np.float16(x.sum(dtype=np.float32) / x.size)
    return x.sum() / x.size  # a NumPy scalar with a Python int: scalar math, no conversion cost


def _in_float64(function: np.ufunc, z: Array) -> Array:
    """A math-module function of each element, correctly rounded in float64, in z's dtype."""
    return np.asarray(function(z.astype(np.float64)), dtype=np.float64).astype(z.dtype)


def _erf_of(z: Array) -> Array:
    return _in_float64(_erf, z)


def _gelu_cdf(z: Array) -> Array:
    return 0.5 * (1 + _erf_of(z / np.sqrt(z.dtype.type(2))))


def _gelu_derivative(z: Array, _: Array) -> Array:
    pdf = np.exp(-0.5 * z * z) / z.dtype.type(math.sqrt(2 * math.pi))
    return _gelu_cdf(z) + z * pdf


def _gelu_tanh_of(z: Array) -> Array:
    inner = z.dtype.type(_SQRT_2_OVER_PI) * (z + z.dtype.type(_GELU_TANH_CUBIC) * z**3)
    return np.tanh(inner)


def _gelu_tanh_derivative(z: Array, _: Array) -> Array:
    t = _gelu_tanh_of(z)
    d_inner = z.dtype.type(_SQRT_2_OVER_PI) * (1 + z.dtype.type(3 * _GELU_TANH_CUBIC) * z * z)
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * d_inner


def _sigmoid_derivative(_: Array, s: Array) -> Array:
    (one,) = constants(s.dtype, 1)
    return s * (one - s)


def _silu_derivative(z: Array, _: Array) -> Array:
    s = _sigmoid(z)
    return s * (1 + z * (1 - s))


def _elu(z: Array) -> Array:
    negative = np.minimum(z, 0)  # keeps expm1 finite on the branch np.where discards
    return np.where(z > 0, z, np.expm1(negative))


def _elu_derivative(z: Array, _: Array) -> Array:
    return np.where(z > 0, 1, np.exp(np.minimum(z, 0))).astype(z.dtype)


def _elu_derivative_from_output(_: Array, e: Array) -> Array:
    (one,) = constants(e.dtype, 1)
    return np.where(e < 0, e + one, one).astype(e.dtype)


@dataclass(frozen=True)
class Activation:
    """An activation's value and its derivative, computed apart: only a backward pass needs
    the derivative, and some derivatives are cheapest from the value (sigmoid, tanh)."""

    value: Callable[[Array], Array]  # z -> f(z)
    derivative: Callable[[Array, Array], Array]  # (z, f(z)) -> f'(z)

    def __call__(self, z: Array) -> tuple[Array, Array]:
        a = self.value(z)
        return a, self.derivative(z, a)


# Each maps pre-activation z to its value and derivative, both in z's dtype.
# At kinks the derivative is PyTorch's: relu'(0) = 0, leaky_relu'(0) = 0.01.
ACTIVATIONS: Mapping[str, Activation] = {
    "identity": Activation(lambda z: z, lambda z, _: np.ones_like(z)),
    "sigmoid": Activation(_sigmoid, _sigmoid_derivative),
    "tanh": Activation(np.tanh, lambda _, t: 1 - t * t),
    "relu": Activation(lambda z: np.maximum(z, 0), lambda z, _: (z > 0).astype(z.dtype)),
    "leaky_relu": Activation(
        lambda z: np.where(z > 0, z, 0.01 * z),
        lambda z, _: np.where(z > 0, 1, 0.01).astype(z.dtype),
    ),
    "elu": Activation(_elu, _elu_derivative),
    "gelu": Activation(lambda z: z * _gelu_cdf(z), _gelu_derivative),
    "gelu_tanh": Activation(lambda z: 0.5 * z * (1 + _gelu_tanh_of(z)), _gelu_tanh_derivative),
    "softplus": Activation(lambda z: np.logaddexp(z.dtype.type(0), z), lambda z, _: _sigmoid(z)),
    "silu": Activation(lambda z: z * _sigmoid(z), _silu_derivative),
}


def _leaky_relu(slope: float, slope_at_zero: float) -> Activation:
    return Activation(
        lambda z: np.where(z > 0, z, slope * z),
        lambda z, _: np.where(z > 0, 1, np.where(z == 0, slope_at_zero, slope)).astype(z.dtype),
    )


def _gelu_with_erfc(inverse_root_two: float) -> Activation:
    """0.5 z erfc(-z c), c = 1/√2 as a framework rounds it (TensorFlow's tf.nn.gelu form)."""

    def erfc_of(x: Array) -> Array:
        return _in_float64(_erfc, x)

    def derivative(z: Array, _: Array) -> Array:
        c = z.dtype.type(inverse_root_two)
        scaled = z * c
        pdf = np.exp(-scaled * scaled) * c / z.dtype.type(math.sqrt(math.pi))
        return 0.5 * erfc_of(-scaled) + z * pdf

    return Activation(lambda z: 0.5 * z * erfc_of(-z * z.dtype.type(inverse_root_two)), derivative)


def _gelu_tanh_with(cubic: float) -> Activation:
    def inner_tanh(z: Array) -> Array:
        return np.tanh(z.dtype.type(_SQRT_2_OVER_PI) * (z + z.dtype.type(cubic) * z**3))

    def derivative(z: Array, _: Array) -> Array:
        t = inner_tanh(z)
        d_inner = z.dtype.type(_SQRT_2_OVER_PI) * (1 + z.dtype.type(3 * cubic) * z * z)
        return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * d_inner

    return Activation(lambda z: 0.5 * z * (1 + inner_tanh(z)), derivative)


def _softplus_above(threshold: float) -> Activation:
    return Activation(
        lambda z: np.where(z > threshold, z, np.logaddexp(z.dtype.type(0), z)),
        lambda z, _: np.where(z > threshold, 1, _sigmoid(z)).astype(z.dtype),
    )


def _float32(value: float) -> float:
    """``value`` rounded to float32, as a framework's float32 constant cast to float64 is."""
    return float(np.float32(value))


@functools.lru_cache(maxsize=64)
def activation(name: str, semantics: Semantics = PYTORCH) -> Activation:
    """The activation ``name`` as the reference computes it under ``semantics``."""
    rounded = _float32 if semantics.float32_constants else float
    at_zero = semantics.leaky_relu_slope_at_zero
    if name == "leaky_relu" and (semantics.float32_constants or at_zero is not None):
        slope = rounded(0.01)
        return _leaky_relu(slope, slope if at_zero is None else at_zero)
    if name == "gelu" and semantics.float32_constants:
        return _gelu_with_erfc(_float32(0.7071067811865476))
    if name == "gelu_tanh" and semantics.float32_constants:
        return _gelu_tanh_with(_float32(_GELU_TANH_CUBIC))
    if name == "elu" and semantics.elu_derivative_from_output:
        return Activation(_elu, _elu_derivative_from_output)
    if name == "softplus" and semantics.softplus_threshold is not None:
        return _softplus_above(semantics.softplus_threshold)
    return ACTIVATIONS[name]


def _softmax(z: Array) -> Array:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _mse(e: Array) -> tuple[Array, Array]:
    two, size = constants(e.dtype, 2, e.size)
    return _mean(e**2), two * e / size


def _huber(e: Array, delta: float) -> tuple[Array, Array]:
    small = np.abs(e) < delta
    value = np.where(small, 0.5 * e * e, delta * (np.abs(e) - 0.5 * delta))
    return _mean(value), np.clip(e, -delta, delta) / e.size


def _huber_through_min(e: Array, delta: float) -> tuple[Array, Array]:
    """optax.huber_loss and its reverse-mode gradient, in e's dtype: the cotangent 1/n of the
    mean reaches |e| twice, through delta·(|e| - q) and through 0.5·q², q = min(|e|, delta)."""
    value, _ = _huber(e, delta)
    c, d, half, two = constants(e.dtype, 1 / e.size, delta, 0.5, 2)
    q = np.minimum(np.abs(e), d)
    linear = c * d
    quadratic = (c * half) * (two * q) - linear
    through_abs = np.where(np.abs(e) < d, quadratic + linear, linear)
    return value, through_abs * np.sign(e)


def _bce(o: Array, y: Array) -> tuple[Array, Array]:
    value = -(y * np.log(o) + (1 - y) * np.log1p(-o))
    return _mean(value), (o - y) / (o * (1 - o)) / o.size


def _clipped_bce(o: Array, y: Array, clip: float) -> tuple[Array, Array]:
    # As Keras writes it: log(1 - o), not log1p(-o), after the clip; no gradient where clipped.
    low, high = o.dtype.type(clip), o.dtype.type(1 - clip)
    c = np.clip(o, low, high)
    value = -(y * np.log(c) + (1 - y) * np.log(1 - c))
    inside = (o >= low) & (o <= high)
    return _mean(value), np.where(inside, (c - y) / (c * (1 - c)), 0).astype(o.dtype) / o.size


def _bce_logits(z: Array, y: Array) -> tuple[Array, Array]:
    # max(z, 0) - z·y + log(1 + e^-|z|): the stable form of the sigmoid cross-entropy
    value = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return _mean(value), (_sigmoid(z) - y) / z.size


def _cross_entropy(z: Array, y: Array) -> tuple[Array, Array]:
    shifted = z - z.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = z.shape[0]
    value = -(y * log_softmax).sum() / rows
    grad = (_softmax(z) * y.sum(axis=1, keepdims=True) - y) / rows
    return value, grad


def _mae_with_slope_at_zero(e: Array, slope: float) -> tuple[Array, Array]:
    sign = np.where(e == 0, e.dtype.type(slope), np.sign(e))
    return _mean(np.abs(e)), sign / e.size


# Each maps (output o, target y, args) to (loss, dloss/do); e = o - y.
LossFunction = Callable[[Array, Array, Mapping[str, float]], tuple[Array, Array]]
LOSSES: Mapping[str, LossFunction] = {
    "mse": lambda o, y, a: _mse(o - y),
    "sse": lambda o, y, a: (((o - y) ** 2).sum(), 2 * (o - y)),
    "half_sse": lambda o, y, a: (0.5 * ((o - y) ** 2).sum(), o - y),
    "mae": lambda o, y, a: (_mean(np.abs(o - y)), np.sign(o - y) / o.size),
    "huber": lambda o, y, a: _huber(o - y, a["delta"]),
    "bce": lambda o, y, a: _bce(o, y),
    "bce_logits": lambda o, y, a: _bce_logits(o, y),
    "cross_entropy": lambda o, y, a: _cross_entropy(o, y),
}


def loss(name: str, semantics: Semantics = PYTORCH) -> LossFunction:
    """The loss ``name`` as the reference computes it under ``semantics`` (the logits form of
    ``bce_from_logits`` is the model's business: it needs the pre-activation)."""
    if name == "bce" and semantics.bce_clip:
        return lambda o, y, a: _clipped_bce(o, y, semantics.bce_clip)
    if name == "huber" and semantics.huber_through_min:
        return lambda o, y, a: _huber_through_min(o - y, a["delta"])
    slope_at_zero = semantics.abs_slope_at_zero
    if name == "mae" and slope_at_zero is not None:
        return lambda o, y, a: _mae_with_slope_at_zero(o - y, slope_at_zero)
    return LOSSES[name]


def _in_float32(x: Array) -> Array:
    """An operand as torch's half-precision kernels read it: widened to float32 (opmath)."""
    return np.asarray(x, np.float32)


class Optimizer:
    """PyTorch's documented update rules (torch.optim), one parameter dict at a time, or a
    framework's documented variant of them (``semantics``)."""

    def __init__(
        self,
        name: str,
        args: Mapping[str, Any],
        semantics: Semantics = PYTORCH,
        bias_correction_dtype: np.dtype | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.semantics = semantics
        # Adam's 1 - beta^t computed in this dtype's arithmetic, as a framework working in
        # it does: the rounding allowance of backends/numpy/rounding.py, never a run's.
        self.bias_correction_dtype = bias_correction_dtype
        self.dtype: np.dtype | None = None
        self.state: dict[str, dict[str, Any]] = {}
        self.t = 0
        self._update: Callable[[Array, Array, dict[str, Any]], Array] = getattr(self, f"_{name}")
        # AdamW's decay is decoupled in PyTorch too; for the others it is a switch.
        self._decoupled = semantics.decoupled_weight_decay and name != "adamw"

    def step(self, params: dict[str, Array], grads: Mapping[str, Array]) -> None:
        if self.dtype is None:  # the case's dtype (bfloat16 arithmetic widens to float32)
            self.dtype = next(iter(params.values())).dtype
        self.t += 1
        for name, p in params.items():
            params[name] = self._update(p, grads[name], self.state.setdefault(name, {}))

    def _k(self, value: float) -> float:
        """A hyper-parameter as the framework casts it: exact (PyTorch), or rounded to
        float32 (``float32_constants``: Keras' ``ops.cast(self.momentum, variable.dtype)``
        makes a float32 tensor of the Python float first). Only the casts Keras writes:
        SGD's momentum, every weight decay, Adam's betas in the bias-correction powers; a
        Python float Keras multiplies a tensor with (``1 - beta_1``, RMSprop's rho, eps)
        takes the tensor's dtype exactly, as measured against Keras 3.15 in float64."""
        if not self.semantics.float32_constants:
            return value
        return float(np.asarray(np.float32(value)).astype(self.dtype))

    def _weight_decay(self, p: Array, g: Array) -> tuple[Array, Array]:
        """(p, g) after weight decay: added to the gradient (PyTorch), or taken off the
        parameter before the update (decoupled, as Keras writes it: p - p * wd * lr)."""
        decay = self._k(self.args["weight_decay"])
        if not decay:
            return p, g
        if self._decoupled:
            return p - p * decay * self.args["lr"], g
        return p, g + decay * p

    def _sgd(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        # The most common optimizer: its hyper-parameters are converted to p's dtype once
        # (``constants``), the same bits as NumPy's conversion of a Python operand per call.
        a = self.args
        if a["weight_decay"]:
            (weight_decay,) = constants(p.dtype, self._k(a["weight_decay"]))
            if self._decoupled:
                (lr,) = constants(p.dtype, a["lr"])
                p = p - p * weight_decay * lr
            else:
                g = g + weight_decay * p
        if a["momentum"]:
            momentum, undamped = constants(p.dtype, self._k(a["momentum"]), 1 - a["dampening"])
            if "buf" not in state:
                state["buf"] = g.copy()
            else:
                state["buf"] = momentum * state["buf"] + undamped * g
            g = g + momentum * state["buf"] if a["nesterov"] else state["buf"]
        (lr,) = constants(p.dtype, a["lr"])
        return p - lr * g

    def _adam(self, p: Array, g: Array, state: dict[str, Any], decoupled: bool = False) -> Array:
        a = self.args
        beta1, beta2 = a["betas"]
        if self._torch_float16_kernels(p):
            return self._adam_float16(p, g, state, decoupled)
        if decoupled:
            p = p * (1 - a["lr"] * self._k(a["weight_decay"]))
        else:
            p, g = self._weight_decay(p, g)
        if self.semantics.moments_by_difference:
            m, v = state.get("m", 0), state.get("v", 0)
            state["m"] = m + (g - m) * (1 - beta1)
            state["v"] = v + (g * g - v) * (1 - beta2)
        elif self.semantics.second_moment_in_float32 and p.dtype.itemsize < 4:
            state["m"] = beta1 * state.get("m", 0) + (1 - beta1) * g
            v = beta2 * state.get("v", 0) + (1 - beta2) * g.astype(np.float32) * g
            state["v"] = np.asarray(v).astype(p.dtype)
        else:
            state["m"] = beta1 * state.get("m", 0) + (1 - beta1) * g
            state["v"] = beta2 * state.get("v", 0) + (1 - beta2) * g * g
        if self.semantics.float32_constants:
            # As Keras computes them: tensors of the variable's dtype, ops.power of the cast
            # beta, so 1 - beta_2^t cancels in that dtype's arithmetic.
            step = np.asarray(self.t, self.dtype)
            beta1_power = np.asarray(self._k(beta1), self.dtype) ** step
            beta2_power = np.asarray(self._k(beta2), self.dtype) ** step
        elif self.bias_correction_dtype is not None:
            step = np.asarray(self.t, self.bias_correction_dtype)
            beta1_power = np.asarray(beta1, self.bias_correction_dtype) ** step
            beta2_power = np.asarray(beta2, self.bias_correction_dtype) ** step
        else:
            beta1_power, beta2_power = beta1**self.t, beta2**self.t
        if self.semantics.epsilon_hat:
            step_size = a["lr"] * np.sqrt(1 - beta2_power) / (1 - beta1_power)
            return p - state["m"] * step_size / (np.sqrt(state["v"]) + a["eps"])
        v_hat = state["v"] / (1 - beta2_power)
        if self.semantics.adam_divisions_merged:
            merged = (1 - beta1_power) * (np.sqrt(v_hat) + a["eps"])
            return p - a["lr"] * (state["m"] / merged)
        m_hat = state["m"] / (1 - beta1_power)
        return p - a["lr"] * m_hat / (np.sqrt(v_hat) + a["eps"])

    def _torch_float16_kernels(self, p: Array) -> bool:
        """float16 under PyTorch's semantics: computed as torch's kernels do (``_adam_float16``);
        a switch computes the documented formula in the case's dtype instead."""
        return p.dtype == np.float16 and self.semantics == PYTORCH

    def _adam_float16(self, p: Array, g: Array, state: dict[str, Any], decoupled: bool) -> Array:
        """torch.optim.Adam's single-tensor loop as its float16 kernels compute it: each
        in-place op (lerp_, addcmul_, addcdiv_, add_, mul_) works in float32 with its Python
        scalar as a float32 and rounds to float16 once. The order matters there: the step is
        (lr / (1 - b1^t)) * (m / denom), so m / denom does not pass through subnormals the
        way lr * m_hat does."""
        a = self.args
        beta1, beta2 = a["betas"]
        half, f32, wide = p.dtype, np.float32, _in_float32
        if decoupled:
            p = (wide(p) * f32(1 - a["lr"] * a["weight_decay"])).astype(half)
        elif a["weight_decay"]:
            g = (wide(g) + f32(a["weight_decay"]) * wide(p)).astype(half)
        m = wide(state.get("m", np.zeros_like(p)))
        weight = f32(1 - beta1)
        if weight < 0.5:  # lerp_, as ATen writes it for the two halves of the weight
            m = m + weight * (wide(g) - m)
        else:
            m = wide(g) - (wide(g) - m) * (f32(1) - weight)
        state["m"] = m.astype(half)
        v = (wide(state.get("v", np.zeros_like(p))) * f32(beta2)).astype(half)
        state["v"] = (wide(v) + f32(1 - beta2) * wide(g) * wide(g)).astype(half)
        step_size = a["lr"] / (1 - beta1**self.t)
        root = np.sqrt(state["v"])
        denom = (wide(root) / f32((1 - beta2**self.t) ** 0.5)).astype(half)
        denom = (wide(denom) + f32(a["eps"])).astype(half)
        return (wide(p) + f32(-step_size) * (wide(state["m"]) / wide(denom))).astype(half)

    def _adamw(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        return self._adam(p, g, state, decoupled=True)

    def _root(self, v: Array) -> Array:
        """The denominator of RMSprop and Adagrad: sqrt(v) + eps (PyTorch) or sqrt(v + eps)."""
        eps = self.args["eps"]
        return np.sqrt(v + eps) if self.semantics.eps_inside_sqrt else np.sqrt(v) + eps

    def _rmsprop(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        a = self.args
        p, g = self._weight_decay(p, g)
        state["v"] = a["alpha"] * state.get("v", 0) + (1 - a["alpha"]) * g * g
        v = state["v"]
        if a["centered"]:
            state["g_avg"] = a["alpha"] * state.get("g_avg", 0) + (1 - a["alpha"]) * g
            v = v - state["g_avg"] ** 2
        step = g / self._root(v)
        if a["momentum"]:
            state["buf"] = a["momentum"] * state.get("buf", 0) + step
            step = state["buf"]
        return p - a["lr"] * step

    def _adagrad(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        a = self.args
        if self._torch_float16_kernels(p):
            return self._adagrad_float16(p, g, state)
        p, g = self._weight_decay(p, g)
        if "sum" not in state:
            state["sum"] = np.full_like(p, self._k(a["initial_accumulator_value"]))
        state["sum"] = state["sum"] + g * g
        return p - a["lr"] * g / self._root(state["sum"])

    def _adagrad_float16(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        """torch.optim.Adagrad's single-tensor loop as its float16 kernels compute it (see
        ``_adam_float16``): sum.addcmul_(g, g), std = sum.sqrt().add_(eps),
        p.addcdiv_(g, std, value=-lr)."""
        a = self.args
        half, f32, wide = p.dtype, np.float32, _in_float32
        if a["weight_decay"]:
            g = (wide(g) + f32(a["weight_decay"]) * wide(p)).astype(half)
        if "sum" not in state:
            state["sum"] = np.full_like(p, a["initial_accumulator_value"])
        state["sum"] = (wide(state["sum"]) + wide(g) * wide(g)).astype(half)
        std = (wide(np.sqrt(state["sum"])) + f32(a["eps"])).astype(half)
        return (wide(p) + f32(-a["lr"]) * (wide(g) / wide(std))).astype(half)
