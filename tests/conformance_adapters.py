"""Deliberately wrong adapters the conformance kit must catch, each with a classic mistake.

Each is the reference (or the torch adapter) with one bug planted, so exactly one check
should fail: tests/test_conformance.py holds the kit to naming it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from backends.base import Model
from backends.numpy.eager import NumpyBackend, NumpyModel
from backends.numpy.ops import Activation
from backends.torch.eager import TorchBackend, TorchModel
from harness.cases.inputs import Inputs
from harness.cases.model import Case


class TransposedGradientBackend(NumpyBackend):
    """Reports weight gradients as (in, out), as an adapter that forgets to transpose a kernel."""

    name = "transposed_grad"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        train_step = model.train_step

        def transposed() -> tuple[np.ndarray, dict[str, np.ndarray]]:
            loss, grads = train_step()
            return loss, {k: v.T.copy() if k.endswith("weight") else v for k, v in grads.items()}

        model.train_step = transposed  # type: ignore[method-assign]
        return model


class SigmoidSlopeBackend(NumpyBackend):
    """Back-propagates through sigmoid with s instead of s·(1−s)."""

    name = "sigmoid_slope"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        names = [case.network.activation] * (len(model.nonlinearities) - 1)
        names.append(case.network.output_activation)
        model.nonlinearities = [
            Activation(right.value, lambda z, s: s) if name == "sigmoid" else right
            for name, right in zip(names, model.nonlinearities, strict=True)
        ]
        return model


class ForgetfulMomentumBackend(NumpyBackend):
    """Builds a fresh optimizer every step, so momentum never carries over."""

    name = "forgetful"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        step = model.optimizer.step

        def forgetting(params: dict[str, Any], grads: dict[str, Any]) -> None:
            model.optimizer.state.clear()
            step(params, grads)

        model.optimizer.step = forgetting  # type: ignore[method-assign]
        return model


class OverridingCapabilitiesBackend(NumpyBackend):
    """Declares float32 only, but its own unsupported_reason forgets to ask the base class."""

    name = "overriding"
    dtypes = ("float32",)

    def unsupported_reason(self, case: Case) -> str | None:
        return None


class CoarseFloat64Backend(NumpyBackend):
    """Reports float64 losses rounded to float32, as a framework that reduces in float32."""

    name = "coarse64"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        train_step = model.train_step

        def coarse() -> tuple[np.ndarray, dict[str, np.ndarray]]:
            loss, grads = train_step()
            return np.asarray(loss.astype(np.float32).astype(loss.dtype)), grads

        model.train_step = coarse  # type: ignore[method-assign]
        return model


def _is_square(array: np.ndarray) -> bool:
    return array.ndim == 2 and array.shape[0] == array.shape[1]


class TransposedSquareGradientBackend(NumpyBackend):
    """Transposes the gradients of square weights only: the shapes cannot give it away."""

    name = "transposed_square_grad"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        train_step = model.train_step

        def transposed() -> tuple[np.ndarray, dict[str, np.ndarray]]:
            loss, grads = train_step()
            return loss, {k: v.T.copy() if _is_square(v) else v for k, v in grads.items()}

        model.train_step = transposed  # type: ignore[method-assign]
        return model


class TransposedSquareWeightBackend(NumpyBackend):
    """Loads a square weight as an (in, out) kernel without its transpose, and reads it back
    the same way: parameters look right, the network computes with the transposed weight."""

    name = "transposed_square_weight"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        flip = {k: v.T.copy() if _is_square(v) else v for k, v in model.params.items()}
        model.load_parameters(flip)
        train_step, parameters = model.train_step, model.parameters

        def step() -> tuple[np.ndarray, dict[str, np.ndarray]]:
            loss, grads = train_step()
            return loss, {k: v.T.copy() if _is_square(v) else v for k, v in grads.items()}

        def read_back() -> dict[str, np.ndarray]:
            return {k: v.T.copy() if _is_square(v) else v for k, v in parameters().items()}

        model.train_step = step  # type: ignore[method-assign]
        model.parameters = read_back  # type: ignore[method-assign]
        return model


class _WrongOptimizerArgs(NumpyBackend):
    """The reference with some optimizer arguments replaced before the optimizer sees them."""

    def wrong(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        return args

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        model.optimizer.args = self.wrong(case.optimizer.name, dict(case.optimizer.args))
        return model


class UndampedBackend(_WrongOptimizerArgs):
    """Drops SGD's dampening, as an adapter that forgets to pass it on."""

    name = "undamped"

    def wrong(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**args, "dampening": 0.0}


class NoNesterovBackend(_WrongOptimizerArgs):
    """Drops SGD's nesterov flag."""

    name = "no_nesterov"

    def wrong(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**args, "nesterov": False}


class UncenteredBackend(_WrongOptimizerArgs):
    """Drops RMSprop's centered flag."""

    name = "uncentered"

    def wrong(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**args, "centered": False}


class ZeroAccumulatorBackend(_WrongOptimizerArgs):
    """Starts Adagrad's accumulator at the framework's 0, whatever the case says."""

    name = "zero_accumulator"

    def wrong(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**args, "initial_accumulator_value": 0.0}


class DecoupledAdamBackend(NumpyBackend):
    """Applies Adam's weight_decay decoupled (AdamW's rule), as Keras does for every optimizer."""

    name = "decoupled_adam"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        if case.optimizer.name == "adam":
            optimizer = model.optimizer
            optimizer._update = functools.partial(optimizer._adam, decoupled=True)
        return model


class TorchAdamWForAdamBackend(TorchBackend):
    """The torch adapter, mapping Adam with weight decay to torch.optim.AdamW: the classic
    mix-up of L2 regularization and decoupled weight decay."""

    name = "torch_adamw_for_adam"

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = super().build(case, inputs)
        assert isinstance(model, TorchModel)
        if case.optimizer.name == "adam" and case.optimizer.args["weight_decay"]:
            model.optimizer = self.torch.optim.AdamW(
                model.network.parameters,
                lr=case.optimizer.args["lr"],
                betas=tuple(case.optimizer.args["betas"]),
                eps=case.optimizer.args["eps"],
                weight_decay=case.optimizer.args["weight_decay"],
            )
        return model


class NoRequiresBackend(NumpyBackend):
    """Declares no framework in ``requires``: the lazy-import check has nothing to look for."""

    name = "no_requires"
    requires: ClassVar[tuple[str, ...]] = ()


class NoDampeningBackend(NumpyBackend):
    """Declines SGD's dampening, as the optax and Keras adapters must."""

    name = "no_dampening"

    def unsupported_reason(self, case: Case) -> str | None:
        if case.optimizer.name == "sgd" and case.optimizer.args["dampening"]:
            return "this framework's SGD has no dampening argument"
        return super().unsupported_reason(case)


class Float32BetaPowersBackend(NumpyBackend):
    """A correct float32 framework that, like Keras, casts Adam's betas to float32 and
    computes the bias correction 1 - beta^t in float32 (1.3e-5 off for beta_2 = 0.999):
    rounding, not a wiring mistake, so the kit must pass it without a known entry."""

    name = "float32_beta_powers"
    dtypes: ClassVar[tuple[str, ...]] = ("float32",)

    def __init__(self) -> None:
        from backends.numpy.semantics import Semantics

        super().__init__(Semantics(float32_constants=True))
