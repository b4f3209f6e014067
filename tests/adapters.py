"""Deliberately broken adapters, registered by the tests to check what the harness reports."""

from __future__ import annotations

from typing import Any

from backends.base import Model
from backends.numpy_manual import NumpyBackend, NumpyModel
from harness.cases import Case
from harness.inputs import Inputs

WRONG_PARAM = "layers.1.bias"
WRONG_FACTOR = 1.001  # one bias gradient off by 0.1%


class WrongBiasGradientBackend(NumpyBackend):
    """The reference, except that one bias gradient is 0.1% too large (recorded and applied)."""

    name = "wrong_bias"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        step = model.optimizer.step

        def wrong_step(params: dict[str, Any], grads: dict[str, Any]) -> None:
            grads[WRONG_PARAM] *= WRONG_FACTOR
            step(params, grads)

        model.optimizer.step = wrong_step  # type: ignore[method-assign]
        return model


class CrashingBackend(NumpyBackend):
    """Raises inside the training step, as a framework bug would."""

    name = "crashing"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)

        def crash() -> Any:
            raise RuntimeError("simulated framework failure in backward()")

        model.train_step = crash  # type: ignore[method-assign]
        return model
