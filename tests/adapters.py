"""Deliberately broken adapters, registered by the tests to check what the harness reports."""

from __future__ import annotations

import dataclasses
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


class HalfPrecisionBackend(NumpyBackend):
    """The reference, except that float32 cases silently compute in float16.

    Its float64 control run is exact, so its divergences are of the ``precision`` kind.
    """

    name = "half_precision"

    def build(self, case: Case, inputs: Inputs) -> Model:
        if case.dtype == "float32":
            case = dataclasses.replace(case, dtype="float16")
        return NumpyModel(case, inputs)


WRONG_LAYER_FACTOR = 1.001


class WrongHiddenActivationBackend(NumpyBackend):
    """The reference, except that every hidden layer's output is 0.1% too large."""

    name = "wrong_hidden"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        hidden = model.hidden

        def too_large(z: Any) -> Any:
            value, slope = hidden(z)
            return value * WRONG_LAYER_FACTOR, slope

        model.hidden = too_large
        return model
