"""TensorFlow adapter: Keras ``Dense`` layers, ``tf.GradientTape``, Keras losses and optimizers.

This is the adapter op by op (``tensorflow:eager``); ``tensorflow``
(backends/tensorflow/compiled.py) runs the same step inside ``tf.function``, as Keras' own
``fit`` does, and is the one compared by default.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model, host_array
from backends.tensorflow import ops
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.cases.step_key import step_key
from harness.run import determinism


class TensorflowEagerBackend(Backend):
    """The TensorFlow adapter op by op, outside ``tf.function``."""

    name = "tensorflow:eager"
    mode = "eager"
    opt_in = True
    requires: ClassVar[tuple[str, ...]] = ("tensorflow",)
    distribution = "tensorflow-cpu"
    extra = "tensorflow"
    startup_seconds = 6.0
    rank = 3

    def __init__(self) -> None:
        determinism.apply_environment()  # TensorFlow reads its log switches at import
        import tensorflow as tf

        determinism.configure_tensorflow(tf)
        self.tf = tf
        self.slots: dict[Hashable, KerasSlot] = {}

    @classmethod
    def version(cls) -> str:
        version = super().version()
        if version == "unknown":  # the full "tensorflow" distribution instead of tensorflow-cpu
            import importlib.metadata

            try:
                return importlib.metadata.version("tensorflow")
            except importlib.metadata.PackageNotFoundError:
                return "unknown"
        return version

    def unsupported_reason(self, case: Case) -> str | None:
        if case.optimizer.name == "sgd" and case.optimizer.args["dampening"]:
            return "tf.keras.optimizers.SGD has no dampening argument"
        return super().unsupported_reason(case)

    def build(self, case: Case, inputs: Inputs) -> Model:
        key = step_key(case, int(inputs.x.shape[0]))
        if key not in self.slots:
            self.slots[key] = KerasSlot(self.tf, case)
        return TensorflowModel(self.tf, self.slots[key], case, inputs)


class KerasSlot:
    """One step key's ``Dense`` layers, Keras loss and built Keras optimizer, reused by every
    case of the key: making and building them costs more than a small case's math.

    ``reset`` gives a case its initial weights and the optimizer's freshly built state
    (slots, iteration count) in the same variables, so no state passes between cases.
    """

    def __init__(self, tf: Any, case: Case) -> None:
        keras = tf.keras
        self.tf, self.keras, self.dtype = tf, keras, case.dtype
        ops.use_floatx(keras, case.dtype)
        self.layers = []
        for fan_in, fan_out in itertools.pairwise(case.network.sizes):
            dense = keras.layers.Dense(fan_out, dtype=case.dtype)
            dense.build((None, fan_in))
            self.layers.append(dense)
        self.variables = [v for dense in self.layers for v in (dense.kernel, dense.bias)]
        self.hidden = ops.activation(tf.nn, case.network.activation)
        self.last = ops.activation(tf.nn, case.network.output_activation)
        self.loss_fn = ops.loss(tf, case.loss.name, case.loss.args, case.dtype)
        self.optimizer = ops.optimizer(keras.optimizers, case.optimizer.name, case.optimizer.args)
        self.optimizer.build(self.variables)
        self.fresh_state = [v.numpy() for v in self.optimizer.variables]

    def outputs(self, x: Any) -> list[Any]:
        """Every layer's output after its activation; the last is the network's."""
        a, found = x, []
        for i, dense in enumerate(self.layers):
            a = (self.last if i == len(self.layers) - 1 else self.hidden)(dense(a))
            found.append(a)
        return found

    def reset(self, inputs: Inputs) -> None:
        """The case's initial weights and a freshly built optimizer, in the same variables."""
        ops.use_floatx(self.keras, self.dtype)
        for layer, dense in enumerate(self.layers):
            dense.kernel.assign(inputs.params[f"layers.{layer}.weight"].T)  # Keras: (in, out)
            dense.bias.assign(inputs.params[f"layers.{layer}.bias"])
        for variable, value in zip(self.optimizer.variables, self.fresh_state, strict=True):
            variable.assign(value)


class TensorflowModel:
    """One case, run eagerly in its step key's slot; only one case uses a slot at a time."""

    def __init__(self, tf: Any, slot: KerasSlot, case: Case, inputs: Inputs) -> None:
        self.tf, self.slot = tf, slot
        slot.reset(inputs)
        self.x = tf.constant(inputs.x, dtype=case.dtype)
        self.y = tf.constant(inputs.y, dtype=case.dtype)
        self._forward: tuple[Any, list[Any]] | None = None

    def _forward_pass(self) -> tuple[Any, list[Any]]:
        """A gradient tape and every layer's output at the current parameters, recorded on it.

        One forward pass per parameter values serves the output, the hidden layers' outputs
        and the step's loss (as a training loop uses the output it logged): the step
        re-enters the same tape to add the loss. The update invalidates it.
        """
        if self._forward is None:
            tape = self.tf.GradientTape()
            with tape:
                outputs = self.slot.outputs(self.x)
            self._forward = tape, outputs
        return self._forward

    def forward(self) -> np.ndarray:
        return to_host(self._forward_pass()[1][-1])

    def layer_outputs(self) -> list[np.ndarray]:
        return [to_host(a) for a in self._forward_pass()[1][:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        tape, outputs = self._forward_pass()
        with tape:
            loss = self.slot.loss_fn(self.y, outputs[-1])
        grads = tape.gradient(loss, self.slot.variables)
        recorded = self._by_name(grads)
        self.slot.optimizer.apply_gradients(zip(grads, self.slot.variables, strict=True))
        self._forward = None
        return to_host(loss), recorded

    def parameters(self) -> dict[str, np.ndarray]:
        return self._by_name(self.slot.variables)

    def _by_name(self, tensors: list[Any]) -> dict[str, np.ndarray]:
        """Kernel/bias pairs as ``state_dict`` entries, kernels transposed back to (out, in)."""
        named = {}
        for layer in range(len(self.slot.layers)):
            kernel, bias = tensors[2 * layer], tensors[2 * layer + 1]
            named[f"layers.{layer}.weight"] = to_host(kernel).T.copy()
            named[f"layers.{layer}.bias"] = to_host(bias)
        return named


def to_host(tensor: Any) -> np.ndarray:
    """``host_array`` of a tensor or variable, through its own ``.numpy()`` when it has one."""
    return host_array(tensor.numpy() if hasattr(tensor, "numpy") else tensor)
