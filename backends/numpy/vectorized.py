"""The reference, vectorized: the hand-written backprop on arrays with a leading variant axis.

Activations and optimizers are the per-case reference's own (elementwise, so a variant
axis passes through); only the layers and losses need the axis spelled out, reducing over
each variant's ``(batch, outputs)`` block where the per-case loss reduces over the array.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from backends.numpy.eager import numpy_dtype
from backends.numpy.ops import ACTIVATIONS, Optimizer
from harness.cases.model import Case, param_names
from harness.run.batch_trace import BatchInputs, BatchTrace

Array = np.ndarray
_BLOCK = (-2, -1)  # one variant's (batch, outputs)
_sigmoid = ACTIVATIONS["sigmoid"].value  # the reference's own sigmoid


def _mean(v: Array) -> Array:
    return v.mean(axis=_BLOCK)


def _size(o: Array) -> int:
    return o.shape[-2] * o.shape[-1]


def _huber(o: Array, y: Array, delta: float) -> tuple[Array, Array]:
    e = o - y
    value = np.where(np.abs(e) < delta, 0.5 * e * e, delta * (np.abs(e) - 0.5 * delta))
    return _mean(value), np.clip(e, -delta, delta) / _size(o)


def _bce(o: Array, y: Array) -> tuple[Array, Array]:
    value = -(y * np.log(o) + (1 - y) * np.log1p(-o))
    return _mean(value), (o - y) / (o * (1 - o)) / _size(o)


def _bce_logits(z: Array, y: Array) -> tuple[Array, Array]:
    value = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return _mean(value), (_sigmoid(z) - y) / _size(z)


def _cross_entropy(z: Array, y: Array) -> tuple[Array, Array]:
    shifted = z - z.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    rows = z.shape[-2]
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    grad = (softmax * y.sum(axis=-1, keepdims=True) - y) / rows
    return -(y * log_softmax).sum(axis=_BLOCK) / rows, grad


# Each maps (output o, target y, args) to (loss per variant, dloss/do), as reference_math.LOSSES.
BATCHED_LOSSES: Mapping[str, Callable[[Array, Array, Mapping[str, float]], tuple[Array, Array]]] = {
    "mse": lambda o, y, a: (_mean((o - y) ** 2), 2 * (o - y) / _size(o)),
    "sse": lambda o, y, a: (((o - y) ** 2).sum(axis=_BLOCK), 2 * (o - y)),
    "half_sse": lambda o, y, a: (0.5 * ((o - y) ** 2).sum(axis=_BLOCK), o - y),
    "mae": lambda o, y, a: (_mean(np.abs(o - y)), np.sign(o - y) / _size(o)),
    "huber": lambda o, y, a: _huber(o, y, a["delta"]),
    "bce": lambda o, y, a: _bce(o, y),
    "bce_logits": lambda o, y, a: _bce_logits(o, y),
    "cross_entropy": lambda o, y, a: _cross_entropy(o, y),
}


def run_batch(backend: Any, case: Case, inputs: BatchInputs) -> BatchTrace:
    """Every case of ``case``'s step key at once; ``backend`` is the per-case NumpyBackend (unused)."""
    with np.errstate(all="ignore"):  # overflow is a result, as in NumpyBackend.run
        return _run_batch(case, inputs)


def _run_batch(case: Case, inputs: BatchInputs) -> BatchTrace:
    dtype = numpy_dtype(case.dtype)
    names = param_names(case.network.sizes)
    params = {name: inputs.params[name].astype(dtype) for name in names}
    x, y = inputs.x.astype(dtype), inputs.y.astype(dtype)
    n_layers = case.network.n_layers
    hidden = ACTIVATIONS[case.network.activation]
    last = ACTIVATIONS[case.network.output_activation]
    loss_of = BATCHED_LOSSES[case.loss.name]
    optimizer = Optimizer(case.optimizer.name, case.optimizer.args)

    def layers() -> tuple[list[Array], list[Array]]:
        activations, slopes = [x], []
        for layer in range(n_layers):
            w, b = params[f"layers.{layer}.weight"], params[f"layers.{layer}.bias"]
            z = activations[-1] @ w.transpose(0, 2, 1) + b[:, None, :]
            a, slope = (last if layer == n_layers - 1 else hidden)(z)
            activations.append(a)
            slopes.append(slope)
        return activations, slopes

    trace = BatchTrace(output=layers()[0][-1])
    for _ in range(case.steps):
        activations, slopes = layers()
        trace.activations.append([a.copy() for a in activations[1:-1]])
        loss, dloss_dout = loss_of(activations[-1], y, case.loss.args)
        grads: dict[str, Array] = {}
        delta = dloss_dout * slopes[-1]
        for layer in reversed(range(n_layers)):
            grads[f"layers.{layer}.weight"] = delta.transpose(0, 2, 1) @ activations[layer]
            grads[f"layers.{layer}.bias"] = delta.sum(axis=1)
            if layer:
                delta = (delta @ params[f"layers.{layer}.weight"]) * slopes[layer - 1]
        grads = {name: grads[name] for name in names}
        optimizer.step(params, grads)
        trace.losses.append(np.asarray(loss))
        trace.grads.append(grads)
        trace.params.append({name: value.copy() for name, value in params.items()})
    trace.output_after = layers()[0][-1]
    return trace
