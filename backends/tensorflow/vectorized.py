"""TensorFlow, vectorized: batched variables (a leading variant axis), the adapter's own Keras
loss per variant through ``tf.vectorized_map``, and its Keras optimizer on the batched
variables (Keras' algorithms are elementwise), all in one ``tf.function``.

A Keras ``Dense`` layer holds one kernel, so the batched layer is its computation spelled
with batched matmuls (``x @ kernel + bias`` with a kernel per variant). As in the
``tf.function`` adapter (compiled.py), the variables, optimizer and traced functions of a
step key and batch size persist for the run, so a sweep traces once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from backends.tensorflow import ops
from backends.tensorflow.eager import to_host
from harness.cases.model import Case, param_names
from harness.cases.step_key import step_key
from harness.run.batch_trace import BatchInputs, BatchTrace

_SLOTS: dict[Hashable, BatchSlot] = {}


class BatchSlot:
    """Batched variables, a built optimizer and traced step/forward for one key and size."""

    def __init__(self, tf: Any, case: Case, inputs: BatchInputs) -> None:
        keras = tf.keras
        dtype = case.dtype
        # As in the per-case adapter: Keras makes the learning-rate variable in floatx.
        ops.use_floatx(keras, dtype)
        n_layers = case.network.n_layers
        self.names = param_names(case.network.sizes)
        self.variables = [
            tf.Variable(tf.zeros(_keras_layout(inputs.params[name]).shape, dtype=dtype))
            for name in self.names
        ]
        hidden = ops.activation(tf.nn, case.network.activation)
        last = ops.activation(tf.nn, case.network.output_activation)
        loss_fn = ops.loss(tf, case.loss.name, case.loss.args, dtype)
        self.optimizer = ops.optimizer(keras.optimizers, case.optimizer.name, case.optimizer.args)
        self.optimizer.build(self.variables)
        self.fresh_state = [v.numpy() for v in self.optimizer.variables]
        kernels, biases = self.variables[0::2], self.variables[1::2]

        def outputs(x: Any) -> list[Any]:
            a, found = x, []
            for i in range(n_layers):
                a = (last if i == n_layers - 1 else hidden)(
                    tf.matmul(a, kernels[i]) + biases[i][:, None, :]
                )
                found.append(a)
            return found

        def step(x: Any, y: Any) -> tuple[Any, list[Any]]:
            with tf.GradientTape() as tape:
                output = outputs(x)[-1]
                per_variant = tf.vectorized_map(lambda pair: loss_fn(pair[1], pair[0]), (output, y))
                # Variants are independent: d(sum)/d(theta_v) is d(L_v)/d(theta_v).
                total = tf.reduce_sum(per_variant)
            grads = tape.gradient(total, self.variables)
            self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
            return per_variant, grads

        self.outputs = tf.function(outputs)
        self.step = tf.function(step)

    def reset(self, inputs: BatchInputs) -> None:
        for name, variable in zip(self.names, self.variables, strict=True):
            variable.assign(_keras_layout(inputs.params[name]))
        for variable, value in zip(self.optimizer.variables, self.fresh_state, strict=True):
            variable.assign(value)


def run_batch(backend: Any, case: Case, inputs: BatchInputs) -> BatchTrace:
    """Every case of ``case``'s step key at once; ``backend`` is a TensorflowFunctionBackend."""
    tf = backend.tf
    key = (step_key(case, int(inputs.x.shape[1])), int(inputs.x.shape[0]))
    if key not in _SLOTS:
        _SLOTS[key] = BatchSlot(tf, case, inputs)
    slot = _SLOTS[key]
    slot.reset(inputs)
    x, y = tf.constant(inputs.x, dtype=case.dtype), tf.constant(inputs.y, dtype=case.dtype)
    trace = BatchTrace(output=to_host(slot.outputs(x)[-1]))
    for _ in range(case.steps):
        trace.activations.append([to_host(a) for a in slot.outputs(x)[:-1]])
        losses, grads = slot.step(x, y)
        trace.losses.append(to_host(losses))
        trace.grads.append(_by_name(grads, slot.names))
        trace.params.append(_by_name(slot.variables, slot.names))
    trace.output_after = to_host(slot.outputs(x)[-1])
    return trace


def _keras_layout(value: Any) -> Any:
    """Weights (variants, out, in) as Keras kernels (variants, in, out); biases unchanged."""
    return value.transpose(0, 2, 1) if value.ndim == 3 else value


def _by_name(tensors: Sequence[Any], names: list[str]) -> dict[str, Any]:
    """Batched kernels and biases as ``state_dict`` entries, kernels back to (out, in)."""
    return {
        name: _keras_layout(to_host(tensor)).copy()
        for name, tensor in zip(names, tensors, strict=True)
    }
