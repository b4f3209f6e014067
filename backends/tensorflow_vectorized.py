"""TensorFlow, vectorized: batched variables (a leading variant axis), the adapter's own Keras
loss per variant through ``tf.vectorized_map``, and its Keras optimizer on the batched
variables (Keras' algorithms are elementwise), all in one ``tf.function``.

A Keras ``Dense`` layer holds one kernel, so the batched layer is its computation spelled
with batched matmuls (``x @ kernel + bias`` with a kernel per variant).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backends.tensorflow_backend import _activation, _loss, _numpy, _optimizer
from harness.batch_trace import BatchInputs, BatchTrace
from harness.cases import Case, param_names


def run_batch(backend: Any, case: Case, inputs: BatchInputs) -> BatchTrace:
    """Every case of ``case``'s step key at once; ``backend`` is a TensorflowBackend."""
    tf = backend.tf
    keras = tf.keras
    dtype = case.dtype
    # As in the per-case adapter: Keras makes the learning-rate variable in floatx.
    keras.config.set_floatx("float64" if dtype == "float64" else "float32")
    n_layers = case.network.n_layers
    names = param_names(case.network.sizes)
    kernels = [
        tf.Variable(inputs.params[f"layers.{i}.weight"].transpose(0, 2, 1), dtype=dtype)
        for i in range(n_layers)
    ]  # Keras kernels are (in, out)
    biases = [tf.Variable(inputs.params[f"layers.{i}.bias"], dtype=dtype) for i in range(n_layers)]
    variables = [v for pair in zip(kernels, biases, strict=True) for v in pair]
    hidden = _activation(tf.nn, case.network.activation)
    last = _activation(tf.nn, case.network.output_activation)
    loss_fn = _loss(tf, case.loss.name, case.loss.args, dtype)
    optimizer = _optimizer(keras.optimizers, case.optimizer.name, case.optimizer.args)
    optimizer.build(variables)
    x, y = tf.constant(inputs.x, dtype=dtype), tf.constant(inputs.y, dtype=dtype)

    def outputs() -> list[Any]:
        a, found = x, []
        for i in range(n_layers):
            a = (last if i == n_layers - 1 else hidden)(
                tf.matmul(a, kernels[i]) + biases[i][:, None, :]
            )
            found.append(a)
        return found

    @tf.function
    def step() -> tuple[Any, list[Any]]:
        with tf.GradientTape() as tape:
            output = outputs()[-1]
            per_variant = tf.vectorized_map(lambda pair: loss_fn(pair[1], pair[0]), (output, y))
            total = tf.reduce_sum(
                per_variant
            )  # variants are independent: d total / d θ_v = d L_v / d θ_v
        grads = tape.gradient(total, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return per_variant, grads

    forward = tf.function(outputs)
    trace = BatchTrace(output=_numpy(forward()[-1]))
    for _ in range(case.steps):
        trace.activations.append([_numpy(a) for a in forward()[:-1]])
        losses, grads = step()
        trace.losses.append(_numpy(losses))
        trace.grads.append(_by_name(grads, names))
        trace.params.append(_by_name(variables, names))
    trace.output_after = _numpy(forward()[-1])
    return trace


def _by_name(tensors: Sequence[Any], names: list[str]) -> dict[str, Any]:
    """Kernel/bias pairs as ``state_dict`` entries, kernels transposed back to (out, in)."""
    named = {}
    for name, tensor in zip(names, tensors, strict=True):
        value = _numpy(tensor)
        named[name] = value.transpose(0, 2, 1).copy() if value.ndim == 3 else value
    return named
