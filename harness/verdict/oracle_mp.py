"""The first training step in 50-digit arithmetic (mpmath): forward, loss and backprop.

Written from the same textbook formulas as backends/numpy/ops.py, but on mpmath
numbers, so the float64 oracle can be replaced by values correct to every float64 bit
where the case is small enough for scalar arithmetic. Derivatives at kinks follow
PyTorch (relu'(0) = 0, leaky_relu'(0) = 0.01, sign(0) = 0), as the reference does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import mpmath
import numpy as np

from harness.cases.inputs import Inputs
from harness.cases.model import Case, param_names

DIGITS = 50
# Multiply-adds of one forward pass (batch × weights) up to which the 50-digit step is
# computed: about 0.1 s per case at this size, so a large case library stays quick.
MAX_WORK = 5_000

Mpf: TypeAlias = Any  # mpmath ships no type information
Row = tuple[int, str, str, int, float]
Vector = list[Mpf]
Matrix = list[list[Mpf]]


def _sigmoid(z: Mpf) -> Mpf:
    return 1 / (1 + mpmath.exp(-z))


def _sigmoid_pair(z: Mpf) -> tuple[Mpf, Mpf]:
    s = _sigmoid(z)
    return s, s * (1 - s)


def _gelu(z: Mpf) -> tuple[Mpf, Mpf]:
    cdf = (1 + mpmath.erf(z / mpmath.sqrt(2))) / 2
    pdf = mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)
    return z * cdf, cdf + z * pdf


def _gelu_tanh(z: Mpf) -> tuple[Mpf, Mpf]:
    c, k = mpmath.sqrt(2 / mpmath.pi), mpmath.mpf(0.044715)
    t = mpmath.tanh(c * (z + k * z**3))
    return z * (1 + t) / 2, (1 + t) / 2 + z * (1 - t * t) * c * (1 + 3 * k * z * z) / 2


def _silu(z: Mpf) -> tuple[Mpf, Mpf]:
    s = _sigmoid(z)
    return z * s, s * (1 + z * (1 - s))


_SLOPE = mpmath.mpf(0.01)  # the float64 number 0.01, as every framework receives it
ACTIVATIONS: Mapping[str, Callable[[Mpf], tuple[Mpf, Mpf]]] = {
    "identity": lambda z: (z, mpmath.mpf(1)),
    "sigmoid": _sigmoid_pair,
    "tanh": lambda z: (mpmath.tanh(z), 1 - mpmath.tanh(z) ** 2),
    "relu": lambda z: (z if z > 0 else mpmath.mpf(0), mpmath.mpf(1) if z > 0 else mpmath.mpf(0)),
    "leaky_relu": lambda z: (z if z > 0 else _SLOPE * z, mpmath.mpf(1) if z > 0 else _SLOPE),
    "elu": lambda z: (z if z > 0 else mpmath.expm1(z), mpmath.mpf(1) if z > 0 else mpmath.exp(z)),
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "softplus": lambda z: (mpmath.log1p(mpmath.exp(z)), _sigmoid(z)),
    "silu": _silu,
}


def _loss(name: str, delta: float, out: Matrix, y: Matrix) -> tuple[Mpf, Matrix]:
    """Loss value and dloss/dout for the loss ``name`` (docs/spec.md §4)."""
    rows, cols = len(out), len(out[0])
    n = rows * cols
    cells = [(i, j) for i in range(rows) for j in range(cols)]
    grad = [[mpmath.mpf(0)] * cols for _ in range(rows)]
    total = mpmath.mpf(0)
    if name == "cross_entropy":
        for i in range(rows):
            top = max(out[i])
            log_norm = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in out[i]))
            y_sum = mpmath.fsum(y[i])
            for j in range(cols):
                total -= y[i][j] * (out[i][j] - log_norm)
                grad[i][j] = (mpmath.exp(out[i][j] - log_norm) * y_sum - y[i][j]) / rows
        return total / rows, grad
    for i, j in cells:
        o, t = out[i][j], y[i][j]
        e = o - t
        if name in ("mse", "sse", "half_sse"):
            value, slope = e * e, 2 * e
        elif name == "mae":
            value, slope = abs(e), mpmath.sign(e)
        elif name == "huber":
            d = mpmath.mpf(delta)
            value = e * e / 2 if abs(e) < d else d * (abs(e) - d / 2)
            slope = max(-d, min(d, e))
        elif name == "bce":
            value = -(t * mpmath.log(o) + (1 - t) * mpmath.log(1 - o))
            slope = (o - t) / (o * (1 - o))
        elif name == "bce_logits":
            value = mpmath.log1p(mpmath.exp(o)) - o * t
            slope = _sigmoid(o) - t
        else:
            raise ValueError(f"unknown loss {name!r}")
        total += value
        grad[i][j] = slope
    if name == "half_sse":
        return total / 2, [[g / 2 for g in row] for row in grad]
    if name == "sse":
        return total, grad
    return total / n, [[g / n for g in row] for row in grad]


def feasible(case: Case, batch: int) -> bool:
    sizes = case.network.sizes
    work = batch * sum(a * b for a, b in itertools.pairwise(sizes))
    return work <= MAX_WORK


def first_step(case: Case, inputs: Inputs) -> list[Row] | None:
    """Rows ``(step, quantity, param, index, value)`` of step 0's activations, output, loss and
    gradients, or None when the case is too large for scalar arithmetic or has no exact first step."""
    if not feasible(case, inputs.x.shape[0]):
        return None
    with mpmath.workdps(DIGITS):
        try:
            return _first_step(case, inputs)
        except ZeroDivisionError:
            # bce's slope (o - t) / (o (1 - o)) where a saturated sigmoid output is 0 or 1
            # even at DIGITS digits: no exact step exists; the float64 control stands.
            return None


def _mp(array: np.ndarray) -> Matrix:
    return [[mpmath.mpf(float(v)) for v in row] for row in np.atleast_2d(array)]


def _first_step(case: Case, inputs: Inputs) -> list[Row]:
    n_layers = case.network.n_layers
    weights = [_mp(inputs.params[f"layers.{k}.weight"]) for k in range(n_layers)]
    biases = [
        [mpmath.mpf(float(v)) for v in inputs.params[f"layers.{k}.bias"]] for k in range(n_layers)
    ]
    activations, slopes = [_mp(inputs.x)], []
    for k in range(n_layers):
        act = ACTIVATIONS[
            case.network.output_activation if k == n_layers - 1 else case.network.activation
        ]
        pairs = [
            [act(mpmath.fdot(a, w) + b) for w, b in zip(weights[k], biases[k], strict=True)]
            for a in activations[-1]
        ]
        activations.append([[p[0] for p in row] for row in pairs])
        slopes.append([[p[1] for p in row] for row in pairs])
    loss, dout = _loss(
        case.loss.name, case.loss.args.get("delta", 1.0), activations[-1], _mp(inputs.y)
    )
    rows: list[Row] = []
    for k in range(1, n_layers):
        rows += _flat(0, "activation", f"layers.{k - 1}", activations[k])
    rows += _flat(0, "output", "", activations[-1])
    rows.append((0, "loss", "", -1, float(loss)))
    grads: dict[str, Matrix] = {}
    delta = [
        [d * s for d, s in zip(dr, sr, strict=True)]
        for dr, sr in zip(dout, slopes[-1], strict=True)
    ]
    for k in reversed(range(n_layers)):
        inputs_k = activations[k]
        grads[f"layers.{k}.weight"] = [
            [
                mpmath.fsum(delta[b][j] * inputs_k[b][i] for b in range(len(delta)))
                for i in range(len(inputs_k[0]))
            ]
            for j in range(len(delta[0]))
        ]
        grads[f"layers.{k}.bias"] = [
            [mpmath.fsum(row[j] for row in delta) for j in range(len(delta[0]))]
        ]
        if k:
            w = weights[k]
            delta = [
                [
                    mpmath.fsum(delta[b][j] * w[j][i] for j in range(len(w))) * slopes[k - 1][b][i]
                    for i in range(len(w[0]))
                ]
                for b in range(len(delta))
            ]
    for name in param_names(case.network.sizes):
        rows += _flat(0, "grad", name, grads[name])
    return rows


def _flat(step: int, quantity: str, param: str, matrix: Matrix) -> list[Row]:
    values = [float(v) for row in matrix for v in row]
    return [(step, quantity, param, index, value) for index, value in enumerate(values)]
