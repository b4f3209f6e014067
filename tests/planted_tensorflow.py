"""TensorFlow adapters with one planted optimizer bug each, under the broad Keras entries.

Each is the real TensorFlow adapter (Keras' own optimizers) given one wrong
hyper-parameter, the kind of wiring mistake an adapter author makes. Their names start
with ``tensorflow`` so that the built-in entries for ``tensorflow*`` (eps inside the
square root, epsilon-hat Adam, decoupled weight decay) cover them, as they would cover a
real bug in the TensorFlow adapter. Imported only in a worker (the tests register them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from backends.base import Model
from backends.tensorflow.eager import TensorflowEagerBackend
from harness.cases.inputs import Inputs
from harness.cases.model import Case


class PlantedTensorflowBackend(TensorflowEagerBackend):
    planted: ClassVar[dict[str, Any]] = {}  # optimizer name -> {argument: change}

    def build(self, case: Case, inputs: Inputs) -> Model:
        changes = self.planted.get(case.optimizer.name, {})
        args = {key: change(case.optimizer.args[key]) for key, change in changes.items()}
        optimizer = dataclasses.replace(case.optimizer, args={**case.optimizer.args, **args})
        return super().build(dataclasses.replace(case, optimizer=optimizer), inputs)


class RmspropAlphaOff(PlantedTensorflowBackend):
    name = "tensorflow_rmsprop_alpha_off"
    planted: ClassVar[dict[str, Any]] = {"rmsprop": {"alpha": lambda alpha: alpha - 0.04}}


class AdamBeta2Off(PlantedTensorflowBackend):
    """beta2 0.009 low: 0.99 where the case says 0.999."""

    name = "tensorflow_adam_beta2_off"
    planted: ClassVar[dict[str, Any]] = {
        "adam": {"betas": lambda betas: (betas[0], betas[1] - 0.009)},
        "adamw": {"betas": lambda betas: (betas[0], betas[1] - 0.009)},
    }


class AdagradLrOff(PlantedTensorflowBackend):
    name = "tensorflow_adagrad_lr_off"
    planted: ClassVar[dict[str, Any]] = {"adagrad": {"lr": lambda lr: lr * 1.02}}
