"""Rounding magnitudes: beside every value the reference records, the size of what it was made of.

Two correct implementations of the same step differ by their rounding errors, and a
computed value's rounding error is not proportional to the value but to the terms it was
made of: a batch gradient of 0.0072 summed from per-row terms near 0.1 carries the
rounding of the 0.1s. So each recorded value v gets a *magnitude* M(v): the same forward
pass, backward pass and update computed on absolute values, as the condition-number
analysis of a sum does (Higham, Accuracy and Stability of Numerical Algorithms, §3.3 and
§4.2). docs/tolerances.md turns it into the tolerance ``atol + rtol · M(v)``. For a value
made without cancellation M(v) is |v| or close to it, so a well-conditioned value keeps
the tight tolerance it always had; where terms cancel, M(v) is the size of what cancelled.

The rules (elementwise absolute values; M(x) = |x| for the inputs and starting parameters):

* a sum or matrix product: the sum of the terms' magnitudes, M(a @ W.T + b) = M(a) @ M(W).T
  + M(b), M(δ.T @ a) = M(δ).T @ M(a);
* an elementwise function f (an activation, its derivative, a loss gradient): the larger
  of |f(z)| and how far f moves when z moves within its tolerance,
  ``|f(z+e) − f(z−e)| / (2·rtol)`` with ``e = rtol · M(z)`` (about |f'(z)|·M(z)). Near a
  kink that is the jump, as it should be: a pre-activation within its tolerance of the
  kink may fall on either side, in any framework;
* the loss: the larger of the size of the terms it adds and Σ |dloss/do| · M(o);
* the update: the reference's own optimizer run three times, on the gradients and on the
  gradients moved up and down by their tolerance (each run keeping its own momentum and
  moments, so m and v move together as they do in a real run), and once more with Adam's
  bias correction 1 − βᵗ computed in the case's dtype (two terms near 1 that cancel);
  M(p') = M(p) plus the largest of the update's size and how far each run moved it, in
  units of rtol. A rule per operation would treat Adam's m and √v as independent and
  overstate the error of m/√v, which at the first step is sign(g) whatever g's error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from backends.numpy.eager import layer_names, numpy_dtype
from backends.numpy.ops import LOSSES, Activation, Optimizer, activation
from backends.numpy.semantics import PYTORCH, Semantics
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.run.trace import Trace

Array = np.ndarray


def _spread(f: Callable[[Array], Array], z: Array, magnitude: Array, rtol: float) -> Array:
    """How far f(z) moves, in units of rtol, when z moves by its tolerance ``rtol · M(z)``."""
    e = rtol * magnitude
    with np.errstate(all="ignore"):
        moved = np.abs(f(z + e) - f(z - e)) / (2 * rtol)
    return np.nan_to_num(moved, nan=np.inf)


def _through(f: Callable[[Array], Array], z: Array, magnitude: Array, rtol: float) -> Array:
    """M(f(z)): the larger of |f(z)| and f's spread over z's tolerance."""
    return np.maximum(np.abs(f(z)), _spread(f, z, magnitude, rtol))


# The terms an activation's own formula adds, where they cancel: GELU is 0.5·z·(1 + erf(z/√2))
# (or tanh), and in its negative tail 1 + erf is a small number made of terms near 1, so
# every framework's rounding there is relative to 0.5·|z|·2, not to the tiny value.
VALUE_TERMS: Mapping[str, Callable[[Array], Array]] = {
    "gelu": lambda z: np.abs(z),
    "gelu_tanh": lambda z: np.abs(z),
}

# Derivatives made of terms that cancel move with the rounding of those terms, which
# `_spread` (a move of z) does not see. tanh' = 1 - t·t and sigmoid' = s·(1 - s) are computed
# from the activation's value: where the unit saturates, a framework's tanh one ulp away
# from the reference's moves 1 - t·t by 2·t² ulps of 1 (|d slope / d value| · |value|: 2·t²,
# and |1 - 2s|·s for sigmoid), many times the small slope. GELU's derivative
# 0.5·(1 + erf(z/√2)) + z·φ(z) adds terms near 1 in its negative tail, as its value does
# (VALUE_TERMS). Each maps (z, value) to those terms.
SLOPE_TERMS: Mapping[str, Callable[[Array, Array], Array]] = {
    "tanh": lambda z, t: 2 * t * t,
    "sigmoid": lambda z, s: np.abs(1 - 2 * s) * np.abs(s),
    "gelu": lambda z, a: 1 + np.abs(z) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi),
}
# Binary cross-entropy divides by the same s·(1 - s) its sigmoid output layer multiplies
# by: both come from one rounded s, and their roundings cancel in the product, so there the
# sigmoid's slope keeps the rule of `_spread` alone (edge-bce-near-0-and-1).
CANCELLED_BY_LOSS = {("sigmoid", "bce")}


def _loss_magnitudes(
    name: str, args: Mapping[str, Any], o: Array, o_mag: Array, y: Array, rtol: float
) -> tuple[Array, Array, Array]:
    """M(loss), dloss/do and M(dloss/do)."""
    value, grad = LOSSES[name](o, y, args)
    if name == "cross_entropy":
        grad_mag = _cross_entropy_gradient_magnitude(o, o_mag, y)
    else:  # elementwise in o: moving every element at once moves each gradient on its own

        def gradient(moved: Array) -> Array:
            if name == "bce":  # keep a moved probability inside (0, 1)
                moved = np.clip(moved, o / 2, (1 + o) / 2)
            return LOSSES[name](moved, y, args)[1]

        grad_mag = _through(gradient, o, o_mag, rtol)
    loss_mag = max(_loss_terms(name, value, o, y), float(np.sum(np.abs(grad) * o_mag)))
    return np.asarray(loss_mag), grad, grad_mag


def _loss_terms(name: str, value: Array, o: Array, y: Array) -> float:
    """The size of the terms the loss (of ``value``) adds up, as the loss reduces them."""
    if name == "bce_logits":  # max(z, 0) - z·y + log(1 + e^-|z|) cancels for large |z|
        terms = np.maximum(o, 0) + np.abs(o * y) + np.log1p(np.exp(-np.abs(o)))
        return float(terms.mean())
    if name == "cross_entropy":
        shifted = o - o.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float((np.abs(y) * (np.abs(shifted) + log_sum)).sum() / o.shape[0])
    return abs(float(value))  # every other loss adds terms >= 0


def _cross_entropy_gradient_magnitude(z: Array, z_mag: Array, y: Array) -> Array:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    p = shifted / shifted.sum(axis=1, keepdims=True)
    # ∂p_j/∂z_k = p_j (δ_jk − p_k): |dp_j| <= p_j (M(z_j) + Σ_k p_k M(z_k))
    p_mag = np.maximum(p, p * (z_mag + (p * z_mag).sum(axis=1, keepdims=True)))
    total = y.sum(axis=1, keepdims=True)
    grad = (p * total - y) / z.shape[0]
    return np.maximum(np.abs(grad), (p_mag * np.abs(total) + np.abs(y)) / z.shape[0])


def _finite(spread: Array) -> Array:
    """A spread, except where the working dtype cannot form the bias correction at all
    (bfloat16 rounds 0.999 to 1.0, so 1 - beta^t is 0): that is no rounding to allow for."""
    return np.where(np.isfinite(spread), spread, 0.0)


def magnitudes(case: Case, inputs: Inputs, rtol: float, semantics: Semantics = PYTORCH) -> Trace:
    """The reference's recorded values of ``case``, each replaced by its magnitude.

    The trace has the reference's layout (``NumpyBackend.run``), so ``Trace.rows`` labels
    each magnitude as the value it belongs to. ``rtol`` is the case's relative tolerance:
    how far a value may move, for judging how far a function of it may. ``semantics``
    computes the step as a framework's documented variant does (a known divergence is
    judged with the sensitivity of its own formula: √(v + ε) is not √v + ε near v = 0).
    """
    # A case whose training blows up (a learning rate of 100, bce on a saturated sigmoid)
    # overflows float64 magnitudes too: inf is then the honest bound, and numpy's warning
    # about it is noise.
    with np.errstate(all="ignore"):
        return _magnitudes(case, inputs, rtol, semantics)


def _magnitudes(case: Case, inputs: Inputs, rtol: float, semantics: Semantics) -> Trace:
    names = layer_names(case.network.sizes)
    params = {n: inputs.params[n].astype(np.float64) for layer in names for n in layer}
    param_mag = {n: np.abs(p) for n, p in params.items()}
    x, y = inputs.x.astype(np.float64), inputs.y.astype(np.float64)
    activation_names = [case.network.activation] * (len(names) - 1)
    activation_names.append(case.network.output_activation)
    nonlinearities = [activation(name, semantics) for name in activation_names]
    central, raised, lowered = (
        Optimizer(case.optimizer.name, case.optimizer.args, semantics) for _ in range(3)
    )
    # A fourth run computes Adam's bias correction 1 - beta^t in the case's dtype: a value
    # made of two terms near 1, whose rounding any framework working in that dtype has.
    working = Optimizer(
        case.optimizer.name, case.optimizer.args, semantics, numpy_dtype(case.dtype)
    )

    def output_loss(weight: str) -> str | None:
        """The loss, for the output layer (named by its weight); None for a hidden one."""
        return case.loss.name if weight == names[-1][0] else None

    def forward() -> list[tuple[Array, Array, Array, Array, Array, Array]]:
        """Per layer: a, M(a), f'(z), M(f'(z)), and the layer's input with its magnitude."""
        a, a_mag = x, np.abs(x)
        layers = []
        for name, nonlinearity, (weight, bias) in zip(
            activation_names, nonlinearities, names, strict=True
        ):
            z = a @ params[weight].T + params[bias]
            z_mag = a_mag @ param_mag[weight].T + param_mag[bias]

            def slope_of(moved: Array, f: Activation = nonlinearity) -> Array:
                return f.derivative(moved, f.value(moved))

            out, slope = nonlinearity(z)
            out_mag = _through(nonlinearity.value, z, z_mag, rtol)
            if name in VALUE_TERMS:
                out_mag = np.maximum(out_mag, VALUE_TERMS[name](z))
            slope_mag = _through(slope_of, z, z_mag, rtol)
            if name in SLOPE_TERMS and (name, output_loss(weight)) not in CANCELLED_BY_LOSS:
                slope_mag = np.maximum(slope_mag, SLOPE_TERMS[name](z, out))
            layers.append((out, out_mag, slope, slope_mag, a, a_mag))
            a, a_mag = out, out_mag
        return layers

    layers = forward()
    trace = Trace(output=layers[-1][1])
    for _ in range(case.steps):
        trace.activations.append([layer[1] for layer in layers[:-1]])
        out, out_mag = layers[-1][0], layers[-1][1]
        loss_mag, grad, grad_mag = _loss_magnitudes(
            case.loss.name, case.loss.args, out, out_mag, y, rtol
        )
        grads: dict[str, Array] = {}
        grad_mags: dict[str, Array] = {}
        delta, delta_mag = grad * layers[-1][2], grad_mag * layers[-1][3]
        for index in reversed(range(len(names))):
            weight, bias = names[index]
            a, a_mag = layers[index][4], layers[index][5]
            grads[weight], grad_mags[weight] = delta.T @ a, delta_mag.T @ a_mag
            grads[bias], grad_mags[bias] = delta.sum(axis=0), delta_mag.sum(axis=0)
            if index:
                slope, slope_mag = layers[index - 1][2], layers[index - 1][3]
                delta = (delta @ params[weight]) * slope
                delta_mag = (delta_mag @ param_mag[weight]) * slope_mag
        ordered = {name: grads[name] for name in params}
        moved = {}
        for optimizer, sign in ((central, 0.0), (raised, 1.0), (lowered, -1.0)):
            updated = dict(params)
            optimizer.step(updated, {n: g + sign * rtol * grad_mags[n] for n, g in ordered.items()})
            moved[sign] = updated
        new = moved[0.0]
        rounded = dict(params)
        with np.errstate(all="ignore"):  # bfloat16's 1 - beta^t may be 0 (see _finite)
            working.step(rounded, ordered)
        param_mag = {
            name: param_mag[name]
            + np.maximum.reduce(
                [
                    np.abs(new[name] - params[name]),
                    np.abs(moved[1.0][name] - new[name]) / rtol,
                    np.abs(moved[-1.0][name] - new[name]) / rtol,
                    _finite(np.abs(rounded[name] - new[name]) / rtol),
                ]
            )
            for name in params
        }
        params = new
        trace.losses.append(loss_mag)
        trace.grads.append({name: grad_mags[name] for name in params})
        trace.params.append(dict(param_mag))
        layers = forward()
    trace.output_after = layers[-1][1]
    return trace
