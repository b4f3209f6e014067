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

Array = np.ndarray

_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


@functools.lru_cache(maxsize=4096)
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


def _erf_of(z: Array) -> Array:
    return np.asarray(_erf(z.astype(np.float64)), dtype=np.float64).astype(z.dtype)


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


def _bce(o: Array, y: Array) -> tuple[Array, Array]:
    value = -(y * np.log(o) + (1 - y) * np.log1p(-o))
    return _mean(value), (o - y) / (o * (1 - o)) / o.size


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


# Each maps (output o, target y, args) to (loss, dloss/do); e = o - y.
LOSSES: Mapping[str, Callable[[Array, Array, Mapping[str, float]], tuple[Array, Array]]] = {
    "mse": lambda o, y, a: _mse(o - y),
    "sse": lambda o, y, a: (((o - y) ** 2).sum(), 2 * (o - y)),
    "half_sse": lambda o, y, a: (0.5 * ((o - y) ** 2).sum(), o - y),
    "mae": lambda o, y, a: (_mean(np.abs(o - y)), np.sign(o - y) / o.size),
    "huber": lambda o, y, a: _huber(o - y, a["delta"]),
    "bce": lambda o, y, a: _bce(o, y),
    "bce_logits": lambda o, y, a: _bce_logits(o, y),
    "cross_entropy": lambda o, y, a: _cross_entropy(o, y),
}


class Optimizer:
    """PyTorch's documented update rules (torch.optim), one parameter dict at a time."""

    def __init__(self, name: str, args: Mapping[str, Any]) -> None:
        self.name = name
        self.args = args
        self.state: dict[str, dict[str, Any]] = {}
        self.t = 0
        self._update: Callable[[Array, Array, dict[str, Any]], Array] = getattr(self, f"_{name}")

    def step(self, params: dict[str, Array], grads: Mapping[str, Array]) -> None:
        self.t += 1
        for name, p in params.items():
            params[name] = self._update(p, grads[name], self.state.setdefault(name, {}))

    def _sgd(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        # The most common optimizer: its hyper-parameters are converted to p's dtype once
        # (``constants``), the same bits as NumPy's conversion of a Python operand per call.
        a = self.args
        if a["weight_decay"]:
            (weight_decay,) = constants(p.dtype, a["weight_decay"])
            g = g + weight_decay * p
        if a["momentum"]:
            momentum, undamped = constants(p.dtype, a["momentum"], 1 - a["dampening"])
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
        if decoupled:
            p = p * (1 - a["lr"] * a["weight_decay"])
        elif a["weight_decay"]:
            g = g + a["weight_decay"] * p
        state["m"] = beta1 * state.get("m", 0) + (1 - beta1) * g
        state["v"] = beta2 * state.get("v", 0) + (1 - beta2) * g * g
        m_hat = state["m"] / (1 - beta1**self.t)
        v_hat = state["v"] / (1 - beta2**self.t)
        return p - a["lr"] * m_hat / (np.sqrt(v_hat) + a["eps"])

    def _adamw(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        return self._adam(p, g, state, decoupled=True)

    def _rmsprop(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        a = self.args
        g = g + a["weight_decay"] * p if a["weight_decay"] else g
        state["v"] = a["alpha"] * state.get("v", 0) + (1 - a["alpha"]) * g * g
        v = state["v"]
        if a["centered"]:
            state["g_avg"] = a["alpha"] * state.get("g_avg", 0) + (1 - a["alpha"]) * g
            v = v - state["g_avg"] ** 2
        step = g / (np.sqrt(v) + a["eps"])  # eps outside the square root, as torch.optim.RMSprop
        if a["momentum"]:
            state["buf"] = a["momentum"] * state.get("buf", 0) + step
            step = state["buf"]
        return p - a["lr"] * step

    def _adagrad(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        a = self.args
        g = g + a["weight_decay"] * p if a["weight_decay"] else g
        if "sum" not in state:
            state["sum"] = np.full_like(p, a["initial_accumulator_value"])
        state["sum"] = state["sum"] + g * g
        return p - a["lr"] * g / (np.sqrt(state["sum"]) + a["eps"])
