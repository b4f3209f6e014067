"""Central finite differences of the reference's float64 loss, for test_oracle.py.

The library never needs them: the oracle is the float64 / 50-digit recomputation
(harness/verdict/oracle.py); this checks the reference's backprop against its own loss.
"""

from __future__ import annotations

import itertools

import numpy as np

from backends.numpy.eager import NumpyModel
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.verdict.oracle import control_case


def finite_difference_error(case: Case, inputs: Inputs, step: float = 1e-6) -> float:
    """Largest gap between the reference's float64 backprop gradients and central differences.

    Measured relative to the largest gradient of the same parameter, so a gradient that is
    zero by symmetry does not turn rounding noise into a large relative error.
    """
    control = control_case(case)
    model = NumpyModel(control, inputs)
    start = model.parameters()
    _, grads = NumpyModel(control, inputs).train_step()
    worst = 0.0
    for name, value in start.items():
        numeric = np.empty_like(value)
        for index in itertools.product(*map(range, value.shape)):
            h = step * max(1.0, abs(float(value[index])))
            numeric[index] = (
                _loss_with(model, start, name, index, h) - _loss_with(model, start, name, index, -h)
            ) / (2 * h)
        scale = max(float(np.max(np.abs(grads[name]))), 1e-8)
        worst = max(worst, float(np.max(np.abs(numeric - grads[name]))) / scale)
    return worst


def _loss_with(
    model: NumpyModel, start: dict[str, np.ndarray], name: str, index: tuple[int, ...], h: float
) -> float:
    params = {key: value.copy() for key, value in start.items()}
    params[name][index] += h
    model.load_parameters(params)
    output = model.forward()
    loss, _ = model.loss(output, model.y, model.loss_args)
    return float(loss)
