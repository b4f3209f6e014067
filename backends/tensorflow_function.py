"""The ``tf.function`` TensorFlow model: persistent Keras layers and optimizer per step key.

A ``tf.function`` retraces when it meets new variables, so each step key keeps one set of
``Dense`` layers and one built Keras optimizer for the whole run; a case assigns its initial
weights to them and restores the optimizer's freshly built state (slots, iteration count).
The traced step is the eager adapter's code (``GradientTape``, Keras loss, ``apply_gradients``).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Any

import numpy as np

from backends.tensorflow_backend import _activation, _loss, _numpy, _optimizer
from harness.cases import Case
from harness.inputs import Inputs
from harness.step_key import step_key


class FunctionSlot:
    """One step key's layers, optimizer and traced functions, reused by every case of the key."""

    def __init__(self, tf: Any, case: Case) -> None:
        keras = tf.keras
        # As in the eager adapter: Keras makes the learning-rate variable in floatx.
        keras.config.set_floatx("float64" if case.dtype == "float64" else "float32")
        self.layers = []
        for fan_in, fan_out in itertools.pairwise(case.network.sizes):
            dense = keras.layers.Dense(fan_out, dtype=case.dtype)
            dense.build((None, fan_in))
            self.layers.append(dense)
        self.variables = [v for dense in self.layers for v in (dense.kernel, dense.bias)]
        hidden = _activation(tf.nn, case.network.activation)
        last = _activation(tf.nn, case.network.output_activation)
        loss_fn = _loss(tf, case.loss.name, case.loss.args, case.dtype)
        self.optimizer = _optimizer(keras.optimizers, case.optimizer.name, case.optimizer.args)
        self.optimizer.build(self.variables)
        self.fresh_state = [v.numpy() for v in self.optimizer.variables]

        def outputs(x: Any) -> list[Any]:
            """Every layer's output after its activation; the last is the network's."""
            a, found = x, []
            for i, dense in enumerate(self.layers):
                a = (last if i == len(self.layers) - 1 else hidden)(dense(a))
                found.append(a)
            return found

        def step(x: Any, y: Any) -> tuple[Any, list[Any]]:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, outputs(x)[-1])
            grads = tape.gradient(loss, self.variables)
            self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
            return loss, grads

        self.outputs = tf.function(outputs)
        self.step = tf.function(step)

    def reset(self, inputs: Inputs) -> None:
        """The case's initial weights and a freshly built optimizer, in the same variables."""
        for layer, dense in enumerate(self.layers):
            dense.kernel.assign(inputs.params[f"layers.{layer}.weight"].T)  # Keras: (in, out)
            dense.bias.assign(inputs.params[f"layers.{layer}.bias"])
        for variable, value in zip(self.optimizer.variables, self.fresh_state, strict=True):
            variable.assign(value)


class FunctionCache:
    """Slots by step key: a matrix over values traces each function once."""

    def __init__(self, tf: Any) -> None:
        self.tf = tf
        self.slots: dict[Hashable, FunctionSlot] = {}

    def get(self, case: Case, batch: int) -> FunctionSlot:
        key = step_key(case, batch)
        if key not in self.slots:
            self.slots[key] = FunctionSlot(self.tf, case)
        return self.slots[key]


class TensorflowFunctionModel:
    """One case, run in its step key's slot; only one case uses a slot at a time."""

    def __init__(self, cache: FunctionCache, case: Case, inputs: Inputs) -> None:
        tf = cache.tf
        self.slot = cache.get(case, int(inputs.x.shape[0]))
        self.slot.reset(inputs)
        self.x = tf.constant(inputs.x, dtype=case.dtype)
        self.y = tf.constant(inputs.y, dtype=case.dtype)

    def forward(self) -> np.ndarray:
        return _numpy(self.slot.outputs(self.x)[-1])

    def layer_outputs(self) -> list[np.ndarray]:
        return [_numpy(a) for a in self.slot.outputs(self.x)[:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        loss, grads = self.slot.step(self.x, self.y)
        return _numpy(loss), self._by_name(grads)

    def parameters(self) -> dict[str, np.ndarray]:
        return self._by_name(self.slot.variables)

    def _by_name(self, tensors: list[Any]) -> dict[str, np.ndarray]:
        """Kernel/bias pairs as ``state_dict`` entries, kernels transposed back to (out, in)."""
        named = {}
        for layer in range(len(self.slot.layers)):
            named[f"layers.{layer}.weight"] = _numpy(tensors[2 * layer]).T.copy()
            named[f"layers.{layer}.bias"] = _numpy(tensors[2 * layer + 1])
        return named
