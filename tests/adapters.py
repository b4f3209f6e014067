"""Deliberately broken adapters, registered by the tests to check what the harness reports."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from backends.base import Model
from backends.numpy.eager import NumpyBackend, NumpyModel
from backends.numpy.ops import Activation
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.run.trace import Trace

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


# The process-killing adapters misbehave only on relu cases, so a test also sees the
# restarted worker run the lane's remaining cases normally.
MISBEHAVES_ON = "relu"


class SegfaultingBackend(NumpyBackend):
    """Dies of SIGSEGV on relu cases, as a framework's C code might."""

    name = "segfaulting"

    def build(self, case: Case, inputs: Inputs) -> Model:
        if case.network.activation == MISBEHAVES_ON:
            import ctypes

            ctypes.string_at(0)  # reads address 0: the process gets SIGSEGV
        return super().build(case, inputs)


class HangingBackend(NumpyBackend):
    """Never returns on relu cases, as a deadlocked framework would."""

    name = "hanging"

    def build(self, case: Case, inputs: Inputs) -> Model:
        while case.network.activation == MISBEHAVES_ON:
            time.sleep(3600)
        return super().build(case, inputs)


class MarkedHangingBackend(NumpyBackend):
    """Hangs in every case, after creating the file ``$CROSSGRAD_TEST_HANG_MARKER`` (so a
    test knows the worker is inside a case) named by its process id."""

    name = "marked_hanging"

    def build(self, case: Case, inputs: Inputs) -> Model:
        marker = os.environ["CROSSGRAD_TEST_HANG_MARKER"]
        with open(f"{marker}.{os.getpid()}", "w", encoding="utf-8"):
            pass
        while True:
            time.sleep(3600)


class GreedyBackend(NumpyBackend):
    """Allocates (and touches) ``GREEDY_BYTES`` on relu cases, far beyond any estimate, as a
    framework with a runaway buffer would; the other cases run normally."""

    name = "greedy"

    def build(self, case: Case, inputs: Inputs) -> Model:
        if case.network.activation == MISBEHAVES_ON:
            import numpy as np

            buffer = np.ones(GREEDY_BYTES // 8)
            del buffer
        return super().build(case, inputs)


GREEDY_BYTES = 768 * 2**20


class AbortingBackend(NumpyBackend):
    """Aborts (SIGABRT) on relu cases, as C++ code does when an allocation fails."""

    name = "aborting"

    def build(self, case: Case, inputs: Inputs) -> Model:
        if case.network.activation == MISBEHAVES_ON:
            os.abort()
        return super().build(case, inputs)


class ExitingBackend(NumpyBackend):
    """Ends its process with ``os._exit(3)`` on relu cases, bypassing every handler."""

    name = "exiting"

    def build(self, case: Case, inputs: Inputs) -> Model:
        if case.network.activation == MISBEHAVES_ON:
            os._exit(3)
        return super().build(case, inputs)


class SlowBackend(NumpyBackend):
    """The reference, a quarter second per case: a run long enough to interrupt."""

    name = "slow"

    def build(self, case: Case, inputs: Inputs) -> Model:
        time.sleep(0.25)
        return super().build(case, inputs)


class UnbuildableBackend(NumpyBackend):
    """Fails in its constructor, as an adapter whose framework is broken would."""

    name = "unbuildable"

    def __init__(self) -> None:
        raise ImportError("simulated broken framework install")


class UnpicklableTraceBackend(NumpyBackend):
    """Returns a trace holding a function, as an adapter leaking a framework object would."""

    name = "unpicklable"

    def run(self, case: Case, inputs: Inputs) -> Trace:
        trace = super().run(case, inputs)
        trace.output = lambda: None  # type: ignore[assignment]
        return trace


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
        *hidden, last = model.nonlinearities
        model.nonlinearities = [*map(_too_large, hidden), last]
        return model


def _too_large(right: Activation) -> Activation:
    """``right`` with values 0.1% too large and the right slopes."""
    return Activation(
        lambda z: right.value(z) * WRONG_LAYER_FACTOR,
        lambda z, _: right.derivative(z, right.value(z)),
    )


# Every character that is not safe to write as it is somewhere: each C0 control, DEL, C1
# controls (CSI among them), a lone surrogate, a bidi override, and markup for Markdown,
# HTML and XML, including a newline that would add a row to summary.md's table.
HOSTILE_TEXT = (
    "".join(map(chr, range(0x20)))
    + "\x7f\x85\x9b[31m\ud800\u202e"
    + "]]><script>alert(1)</script><img src=x onerror=alert(1)>&amp;`x` ![i](http://x)"
    + "\n| fake | row | ok |\x1b[2K\x1b[1F"
)


class HostileMessageBackend(NumpyBackend):
    """Crashes with an exception message made of ``HOSTILE_TEXT``, as an adapter might."""

    name = "hostile"

    def build(self, case: Case, inputs: Inputs) -> Model:
        raise RuntimeError(HOSTILE_TEXT)


class OneGradientElementOffBackend(NumpyBackend):
    """The reference, except that one gradient element is 1e-4 too large (recorded and
    applied): the smallest error the float32 tolerance promises to see on a value whose
    terms do not cancel (tests/test_cancellation.py)."""

    name = "one_element_off"
    param = "layers.0.weight"
    factor = 1 + 1e-4

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        step = model.optimizer.step

        def wrong_step(params: dict[str, Any], grads: dict[str, Any]) -> None:
            wrong = grads[self.param].copy()
            wrong.flat[0] *= wrong.dtype.type(self.factor)
            grads[self.param] = wrong
            step(params, grads)

        model.optimizer.step = wrong_step  # type: ignore[method-assign]
        return model


class ShippedKnownBackend(NumpyBackend):
    """A plugin that ships its own known divergences with its package, as a real one would
    (``known_divergences`` is relative to this module): the WrongBias adapter's difference,
    triaged by the plugin's author."""

    name = "ships_known"
    known_divergences = "data/shipped_known_divergences.yaml"

    def build(self, case: Case, inputs: Inputs) -> Model:
        return WrongBiasGradientBackend().build(case, inputs)


class TanhGradientOffBackend(NumpyBackend):
    """The reference, except that the slope of tanh in hidden layers is a relative 1e-4
    too large: a bug only cases with a tanh hidden layer reach (tests/test_fuzz.py)."""

    name = "tanh_gradient_off"
    factor = 1 + 1e-4

    def build(self, case: Case, inputs: Inputs) -> Model:
        model = NumpyModel(case, inputs)
        if case.network.activation == "tanh":
            *hidden, last = model.nonlinearities
            model.nonlinearities = [*(self._steeper(a) for a in hidden), last]
        return model

    def _steeper(self, right: Activation) -> Activation:
        return Activation(
            right.value, lambda z, a: right.derivative(z, a) * z.dtype.type(self.factor)
        )
