"""TensorFlow adapter: Keras ``Dense`` layers, ``tf.GradientTape``, Keras losses and optimizers.

``tensorflow`` runs the step inside ``tf.function`` (backends/tensorflow_function.py), as
Keras' own ``fit`` does; ``tensorflow:eager`` runs it op by op.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model
from harness import determinism
from harness.cases import Case
from harness.inputs import Inputs


class TensorflowBackend(Backend):
    name = "tensorflow"
    mode = "function"
    requires: ClassVar[tuple[str, ...]] = ("tensorflow",)
    distribution = "tensorflow-cpu"
    extra = "tensorflow"

    def __init__(self) -> None:
        determinism.apply_environment()  # TensorFlow reads its log switches at import
        import tensorflow as tf

        from backends.tensorflow_function import FunctionCache

        determinism.configure_tensorflow(tf)
        self.tf = tf
        self.function_cache = FunctionCache(tf)

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
        from backends.tensorflow_function import TensorflowFunctionModel

        return TensorflowFunctionModel(self.function_cache, case, inputs)


class TensorflowEagerBackend(TensorflowBackend):
    """The same adapter op by op, outside ``tf.function``."""

    name = "tensorflow:eager"
    mode = "eager"

    def build(self, case: Case, inputs: Inputs) -> Model:
        return TensorflowModel(self.tf, case, inputs)


class TensorflowModel:
    def __init__(self, tf: Any, case: Case, inputs: Inputs) -> None:
        self.tf = tf
        keras = tf.keras
        dtype = case.dtype
        # Keras creates its optimizer variables (learning rate ...) in floatx: float64 cases
        # need float64 there, lower precisions keep float32 hyper-parameters as torch does.
        keras.config.set_floatx("float64" if dtype == "float64" else "float32")
        sizes = case.network.sizes
        self.layers = []
        for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            dense = keras.layers.Dense(fan_out, dtype=dtype)
            dense.build((None, fan_in))
            dense.kernel.assign(
                inputs.params[f"layers.{layer}.weight"].T
            )  # Keras kernels are (in, out)
            dense.bias.assign(inputs.params[f"layers.{layer}.bias"])
            self.layers.append(dense)
        self.x = tf.constant(inputs.x, dtype=dtype)
        self.y = tf.constant(inputs.y, dtype=dtype)
        self.hidden = _activation(tf.nn, case.network.activation)
        self.last = _activation(tf.nn, case.network.output_activation)
        self.loss_fn = _loss(tf, case.loss.name, case.loss.args, dtype)
        self.optimizer = _optimizer(keras.optimizers, case.optimizer.name, case.optimizer.args)
        self.variables = [v for dense in self.layers for v in (dense.kernel, dense.bias)]
        self.optimizer.build(self.variables)

    def _output(self) -> Any:
        a = self.x
        for i, dense in enumerate(self.layers):
            a = (self.last if i == len(self.layers) - 1 else self.hidden)(dense(a))
        return a

    def forward(self) -> np.ndarray:
        return _numpy(self._output())

    def layer_outputs(self) -> list[np.ndarray]:
        outputs, a = [], self.x
        for dense in self.layers[:-1]:
            a = self.hidden(dense(a))
            outputs.append(_numpy(a))
        return outputs

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with self.tf.GradientTape() as tape:
            loss = self.loss_fn(self.y, self._output())
        grads = tape.gradient(loss, self.variables)
        recorded = self._by_name(grads)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return _numpy(loss), recorded

    def parameters(self) -> dict[str, np.ndarray]:
        return self._by_name(self.variables)

    def _by_name(self, tensors: list[Any]) -> dict[str, np.ndarray]:
        """Kernel/bias pairs as ``state_dict`` entries, kernels transposed back to (out, in)."""
        named = {}
        for layer in range(len(self.layers)):
            kernel, bias = tensors[2 * layer], tensors[2 * layer + 1]
            named[f"layers.{layer}.weight"] = _numpy(kernel).T.copy()
            named[f"layers.{layer}.bias"] = _numpy(bias)
        return named


def _numpy(tensor: Any) -> np.ndarray:
    array = np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)
    # bfloat16 widens exactly to float32; the harness only handles NumPy floats.
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else array.copy()


def _activation(nn: Any, name: str) -> Any:
    table = {
        "identity": lambda z: z,
        "sigmoid": nn.sigmoid,
        "tanh": nn.tanh,
        "relu": nn.relu,
        "leaky_relu": lambda z: nn.leaky_relu(z, alpha=0.01),
        "elu": nn.elu,
        "gelu": lambda z: nn.gelu(z, approximate=False),
        "gelu_tanh": lambda z: nn.gelu(z, approximate=True),
        "softplus": nn.softplus,
        "silu": nn.silu,
    }
    return table[name]


def _loss(tf: Any, name: str, args: Mapping[str, float], dtype: str) -> Any:
    """Keras loss objects take (y_true, y_pred); ``dtype`` keeps them from casting to float32."""
    losses = tf.keras.losses
    if name == "mse":
        return losses.MeanSquaredError(dtype=dtype)
    if name == "mae":
        return losses.MeanAbsoluteError(dtype=dtype)
    if name == "huber":
        return losses.Huber(delta=args["delta"], dtype=dtype)
    if name == "bce":
        return losses.BinaryCrossentropy(from_logits=False, dtype=dtype)
    if name == "bce_logits":
        return losses.BinaryCrossentropy(from_logits=True, dtype=dtype)
    if name == "cross_entropy":
        return losses.CategoricalCrossentropy(from_logits=True, dtype=dtype)
    # Keras has no summed squared-error loss (its reduction="sum" sums per-row means):
    # composed from TensorFlow ops.
    if name == "sse":
        return lambda y, o: tf.reduce_sum(tf.square(o - y))
    if name == "half_sse":
        return lambda y, o: 0.5 * tf.reduce_sum(tf.square(o - y))
    raise ValueError(f"unknown loss {name!r}")


def _optimizer(optimizers: Any, name: str, args: Mapping[str, Any]) -> Any:
    """The Keras optimizer nearest to torch.optim's ``name``; Keras' weight decay is decoupled."""
    decay = args.get("weight_decay") or None
    if name == "sgd":
        return optimizers.SGD(
            args["lr"], momentum=args["momentum"], nesterov=args["nesterov"], weight_decay=decay
        )
    if name in ("adam", "adamw"):
        b1, b2 = args["betas"]
        cls = optimizers.AdamW if name == "adamw" else optimizers.Adam
        return cls(args["lr"], beta_1=b1, beta_2=b2, epsilon=args["eps"], weight_decay=decay)
    if name == "rmsprop":
        return optimizers.RMSprop(
            args["lr"],
            rho=args["alpha"],
            momentum=args["momentum"],
            epsilon=args["eps"],
            centered=args["centered"],
            weight_decay=decay,
        )
    if name == "adagrad":
        return optimizers.Adagrad(
            args["lr"],
            initial_accumulator_value=args["initial_accumulator_value"],
            epsilon=args["eps"],
            weight_decay=decay,
        )
    raise ValueError(f"unknown optimizer {name!r}")
