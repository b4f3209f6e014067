"""``tensorflow``: the TensorFlow adapter inside ``tf.function``, persistent Keras layers and
optimizer per step key.

A ``tf.function`` retraces when it meets new variables, so each step key keeps one set of
``Dense`` layers and one built Keras optimizer for the whole run (the eager adapter's
``KerasSlot``); a case assigns its initial weights to them and restores the optimizer's
freshly built state (slots, iteration count). The traced step is the eager adapter's code
(``GradientTape``, Keras loss, ``apply_gradients``). ``TensorflowFunctionBackend.run`` runs
a whole case as one traced call (``WholeCase``); the per-step functions serve ``build``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np

from backends.base import Model, host_array
from backends.tensorflow import ops
from backends.tensorflow.eager import KerasSlot, TensorflowEagerBackend, to_host
from harness.cases.inputs import Inputs
from harness.cases.model import Case, param_names
from harness.cases.step_key import step_key
from harness.run.trace import Trace, trace_from_flat


class TensorflowFunctionBackend(TensorflowEagerBackend):
    """The TensorFlow adapter with its step in ``tf.function``: the ``tensorflow`` backend,
    compared by default."""

    name = "tensorflow"
    mode = "function"
    opt_in = False
    vectorized = "backends.tensorflow.vectorized:run_batch"

    def __init__(self) -> None:
        super().__init__()
        self.function_cache = FunctionCache(self.tf)

    def build(self, case: Case, inputs: Inputs) -> Model:
        return TensorflowFunctionModel(self.function_cache, case, inputs)

    def run(self, case: Case, inputs: Inputs) -> Trace:
        """The whole case in one ``tf.function`` call (``WholeCase``)."""
        slot = self.function_cache.get(case, int(inputs.x.shape[0]))
        return slot.whole_case.trace(inputs, case.steps)


class FunctionSlot(KerasSlot):
    """One step key's layers, optimizer and traced functions, reused by every case of the key."""

    def __init__(self, tf: Any, case: Case) -> None:
        super().__init__(tf, case)
        self.traced_outputs = tf.function(self.outputs)
        self.step = tf.function(self.train_step)
        self.whole_case = WholeCase(tf, self, case)

    def train_step(self, x: Any, y: Any) -> tuple[Any, list[Any]]:
        """Loss and gradients at the current weights, then the optimizer's update."""
        with self.tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.outputs(x)[-1])
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return loss, grads


class WholeCase:
    """A whole case as one ``tf.function`` call taking one array and returning one tensor.

    Each eager call, assignment and conversion costs more than the small case's math, so
    the case's initial values go in as one float64 vector, the weights and the optimizer's
    fresh state are assigned inside the function, the steps run in a ``tf.range`` loop (as
    Keras' own ``steps_per_execution`` loop does), and every recorded tensor comes back
    concatenated, for one ``.numpy()``; the host cuts it into the trace's arrays (views).
    """

    def __init__(self, tf: Any, slot: FunctionSlot, case: Case) -> None:
        self.tf, self.slot = tf, slot
        sizes = case.network.sizes
        self.names = param_names(sizes)
        self.n_layers = len(sizes) - 1
        dtype = tf.as_dtype(case.dtype)
        shapes = [tuple(v.shape) for v in slot.variables]

        def run_case(initial: Any, batch: int, steps: int) -> Any:
            values = tf.cast(initial, dtype)  # float64 already rounded to dtype: exact
            parts = tf.split(values, [math.prod(s) for s in shapes] + [batch * sizes[0], -1])
            for variable, part, shape in zip(slot.variables, parts, shapes, strict=False):
                variable.assign(tf.reshape(part, shape))
            for variable, fresh in zip(slot.optimizer.variables, slot.fresh_state, strict=True):
                variable.assign(fresh)
            x = tf.reshape(parts[-2], (batch, sizes[0]))
            y = tf.reshape(parts[-1], (batch, sizes[-1]))

            # Recorded in float64 (every float16/bfloat16/float32 value is one): one dtype
            # to concatenate, whatever dtype Keras gives a loss.
            def stacks(count: int) -> list[Any]:
                return [tf.TensorArray(tf.float64, size=steps) for _ in range(count)]

            def wide(tensor: Any) -> Any:
                return tf.cast(tensor, tf.float64)

            layers, (losses,), grads, updated = (
                stacks(self.n_layers),
                stacks(1),
                stacks(len(shapes)),
                stacks(len(shapes)),
            )
            for i in tf.range(steps):
                layers = [
                    ta.write(i, wide(a)) for ta, a in zip(layers, slot.outputs(x), strict=True)
                ]
                loss, step_grads = slot.train_step(x, y)
                losses = losses.write(i, wide(loss))
                grads = [ta.write(i, wide(g)) for ta, g in zip(grads, step_grads, strict=True)]
                updated = [
                    ta.write(i, wide(v)) for ta, v in zip(updated, slot.variables, strict=True)
                ]
            recorded = [ta.stack() for ta in (*layers, losses, *grads, *updated)]
            recorded.append(wide(slot.outputs(x)[-1]))  # after the last update
            return tf.concat([tf.reshape(t, [-1]) for t in recorded], axis=0)

        self.function = tf.function(run_case)
        self.batch_shapes: dict[tuple[int, int], list[tuple[int, ...]]] = {}

    def trace(self, inputs: Inputs, steps: int) -> Trace:
        initial = np.concatenate(
            [
                *(_keras_layout(name, inputs).ravel() for name in self.names),
                inputs.x.ravel(),
                inputs.y.ravel(),
            ]
        )
        batch = int(inputs.x.shape[0])
        ops.use_floatx(self.slot.keras, self.slot.dtype)  # a new number of steps traces again
        values = host_array(self.function(initial, batch, steps).numpy())
        shapes = self._shapes(batch, steps, int(inputs.y.shape[1]))
        # Keras kernels are (in, out): transposed views give the case's (out, in) layout.
        return trace_from_flat(values, shapes, self.names, steps, _state_dict_layout)

    def _shapes(self, batch: int, steps: int, outputs: int) -> list[tuple[int, ...]]:
        """Shapes of the recorded tensors, in the order ``run_case`` concatenates them."""
        widths = [int(dense.units) for dense in self.slot.layers]
        variables = [tuple(v.shape) for v in self.slot.variables]
        return [
            *((steps, batch, w) for w in widths),
            (steps,),
            *((steps, *s) for s in variables),
            *((steps, *s) for s in variables),
            (batch, outputs),
        ]


def _keras_layout(name: str, inputs: Inputs) -> np.ndarray:
    value = inputs.params[name]
    return value.T if name.endswith(".weight") else value  # Keras kernels are (in, out)


def _state_dict_layout(name: str, stacked: np.ndarray) -> np.ndarray:
    """Per-step kernels ``(steps, in, out)`` as ``(steps, out, in)`` weights; biases as they are."""
    return stacked.transpose(0, 2, 1) if name.endswith(".weight") else stacked


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
        return to_host(self.slot.traced_outputs(self.x)[-1])

    def layer_outputs(self) -> list[np.ndarray]:
        return [to_host(a) for a in self.slot.traced_outputs(self.x)[:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        loss, grads = self.slot.step(self.x, self.y)
        return to_host(loss), self._by_name(grads)

    def parameters(self) -> dict[str, np.ndarray]:
        return self._by_name(self.slot.variables)

    def _by_name(self, tensors: list[Any]) -> dict[str, np.ndarray]:
        """Kernel/bias pairs as ``state_dict`` entries, kernels transposed back to (out, in)."""
        named = {}
        for layer in range(len(self.slot.layers)):
            named[f"layers.{layer}.weight"] = to_host(tensors[2 * layer]).T.copy()
            named[f"layers.{layer}.bias"] = to_host(tensors[2 * layer + 1])
        return named
