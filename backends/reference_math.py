"""The reference mathematics in plain NumPy: activations, losses and optimizers, by hand.

Everything is written from the textbook formulas and PyTorch's documented algorithms, in
the spirit of the seed article's plain-Python backprop. It is the yardstick the framework
adapters are compared with, so it uses no framework and no automatic differentiation.
Every function computes in the dtype of its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Array = np.ndarray

_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


def _sigmoid(z: Array) -> Array:
    # 1 / (1 + e^-z) for z >= 0 and e^z / (1 + e^z) below, so exp never overflows; both at
    # once as e^min(z, 0) / (1 + e^-|z|), without a branch (np.where costs more than an exp).
    return (np.exp(np.minimum(z, 0)) / (1 + np.exp(-np.abs(z)))).astype(z.dtype, copy=False)


def _mean(x: Array) -> Any:  # a NumPy scalar, as ndarray.mean returns
    """``x.mean()``, bit for bit, without its Python-level bookkeeping (a third of a small
    case's loss). NumPy sums float16 in float32 and divides by the count in float64; a
    float64 quotient rounded to float32 or narrower equals the directly rounded one (double
    rounding is exact for division at 53 >= 2 * 24 + 2 bits), so only float16 needs the wider sum.
    """
    if x.dtype == np.float16:
        return np.float16(x.sum(dtype=np.float32) / x.size)
    return x.sum() / x.size


def _erf_of(z: Array) -> Array:
    return np.asarray(_erf(z.astype(np.float64)), dtype=np.float64).astype(z.dtype)


def _gelu(z: Array) -> tuple[Array, Array]:
    cdf = 0.5 * (1 + _erf_of(z / np.sqrt(z.dtype.type(2))))
    pdf = np.exp(-0.5 * z * z) / z.dtype.type(math.sqrt(2 * math.pi))
    return z * cdf, cdf + z * pdf


def _gelu_tanh(z: Array) -> tuple[Array, Array]:
    inner = z.dtype.type(_SQRT_2_OVER_PI) * (z + z.dtype.type(_GELU_TANH_CUBIC) * z**3)
    t = np.tanh(inner)
    d_inner = z.dtype.type(_SQRT_2_OVER_PI) * (1 + z.dtype.type(3 * _GELU_TANH_CUBIC) * z * z)
    return 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * d_inner


def _sigmoid_pair(z: Array) -> tuple[Array, Array]:
    s = _sigmoid(z)
    return s, s * (1 - s)


def _silu(z: Array) -> tuple[Array, Array]:
    s = _sigmoid(z)
    return z * s, s * (1 + z * (1 - s))


def _tanh(z: Array) -> tuple[Array, Array]:
    t = np.tanh(z)
    return t, 1 - t * t


def _elu(z: Array) -> tuple[Array, Array]:
    negative = np.minimum(z, 0)  # keeps expm1 finite on the branch np.where discards
    return np.where(z > 0, z, np.expm1(negative)), np.where(z > 0, 1, np.exp(negative)).astype(
        z.dtype
    )


# Each maps pre-activation z to (value, derivative dvalue/dz), both in z's dtype.
# At kinks the derivative is PyTorch's: relu'(0) = 0, leaky_relu'(0) = 0.01.
ACTIVATIONS: Mapping[str, Callable[[Array], tuple[Array, Array]]] = {
    "identity": lambda z: (z, np.ones_like(z)),
    "sigmoid": _sigmoid_pair,
    "tanh": _tanh,
    "relu": lambda z: (np.maximum(z, 0), (z > 0).astype(z.dtype)),
    "leaky_relu": lambda z: (
        np.where(z > 0, z, 0.01 * z),
        np.where(z > 0, 1, 0.01).astype(z.dtype),
    ),
    "elu": _elu,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "softplus": lambda z: (np.logaddexp(z.dtype.type(0), z), _sigmoid(z)),
    "silu": _silu,
}


def _softmax(z: Array) -> Array:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


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
    "mse": lambda o, y, a: (_mean((o - y) ** 2), 2 * (o - y) / o.size),
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

    def step(self, params: dict[str, Array], grads: Mapping[str, Array]) -> None:
        self.t += 1
        update = getattr(self, f"_{self.name}")
        for name, p in params.items():
            params[name] = update(p, grads[name], self.state.setdefault(name, {}))

    def _sgd(self, p: Array, g: Array, state: dict[str, Any]) -> Array:
        a = self.args
        g = g + a["weight_decay"] * p if a["weight_decay"] else g
        if a["momentum"]:
            if "buf" not in state:
                state["buf"] = g.copy()
            else:
                state["buf"] = a["momentum"] * state["buf"] + (1 - a["dampening"]) * g
            g = g + a["momentum"] * state["buf"] if a["nesterov"] else state["buf"]
        return p - a["lr"] * g

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
