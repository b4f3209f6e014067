"""TensorFlow adapter: Keras ``Dense`` layers, ``tf.GradientTape``, Keras losses and optimizers.

``tensorflow`` runs the step inside ``tf.function`` (backends/tensorflow/compiled.py), as
Keras' own ``fit`` does; ``tensorflow:eager`` runs it op by op.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.cases.step_key import step_key
from harness.run import determinism
from harness.run.trace import Trace


class TensorflowBackend(Backend):
    name = "tensorflow"
    mode = "function"
    requires: ClassVar[tuple[str, ...]] = ("tensorflow",)
    distribution = "tensorflow-cpu"
    extra = "tensorflow"
    startup_seconds = 6.0

    def __init__(self) -> None:
        determinism.apply_environment()  # TensorFlow reads its log switches at import
        import tensorflow as tf

        from backends.tensorflow.compiled import FunctionCache

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
        from backends.tensorflow.compiled import TensorflowFunctionModel

        return TensorflowFunctionModel(self.function_cache, case, inputs)

    def run(self, case: Case, inputs: Inputs) -> Trace:
        """The whole case in one ``tf.function`` call (``WholeCase``, tensorflow_function.py)."""
        slot = self.function_cache.get(case, int(inputs.x.shape[0]))
        return slot.whole_case.trace(inputs, case.steps)


class TensorflowEagerBackend(TensorflowBackend):
    """The same adapter op by op, outside ``tf.function``."""

    name = "tensorflow:eager"
    mode = "eager"

    def __init__(self) -> None:
        super().__init__()
        self.slots: dict[Hashable, KerasSlot] = {}

    def build(self, case: Case, inputs: Inputs) -> Model:
        key = step_key(case, int(inputs.x.shape[0]))
        if key not in self.slots:
            self.slots[key] = KerasSlot(self.tf, case)
        return TensorflowModel(self.tf, self.slots[key], case, inputs)

    def run(self, case: Case, inputs: Inputs) -> Trace:
        """Op by op through the ``Model`` protocol, not the whole-case function."""
        return Backend.run(self, case, inputs)


def use_floatx(keras: Any, dtype: str) -> None:
    """Keras makes its optimizer variables (learning rate ...) and casts some constants in
    floatx: float64 cases need float64 there, lower precisions keep float32
    hyper-parameters as torch does."""
    keras.config.set_floatx("float64" if dtype == "float64" else "float32")


class KerasSlot:
    """One step key's ``Dense`` layers, Keras loss and built Keras optimizer, reused by every
    case of the key: making and building them costs more than a small case's math.

    ``reset`` gives a case its initial weights and the optimizer's freshly built state
    (slots, iteration count) in the same variables, so no state passes between cases.
    """

    def __init__(self, tf: Any, case: Case) -> None:
        keras = tf.keras
        self.tf, self.keras, self.dtype = tf, keras, case.dtype
        use_floatx(keras, case.dtype)
        self.layers = []
        for fan_in, fan_out in itertools.pairwise(case.network.sizes):
            dense = keras.layers.Dense(fan_out, dtype=case.dtype)
            dense.build((None, fan_in))
            self.layers.append(dense)
        self.variables = [v for dense in self.layers for v in (dense.kernel, dense.bias)]
        self.hidden = _activation(tf.nn, case.network.activation)
        self.last = _activation(tf.nn, case.network.output_activation)
        self.loss_fn = _loss(tf, case.loss.name, case.loss.args, case.dtype)
        self.optimizer = _optimizer(keras.optimizers, case.optimizer.name, case.optimizer.args)
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
        use_floatx(self.keras, self.dtype)
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
        return _numpy(self._forward_pass()[1][-1])

    def layer_outputs(self) -> list[np.ndarray]:
        return [_numpy(a) for a in self._forward_pass()[1][:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        tape, outputs = self._forward_pass()
        with tape:
            loss = self.slot.loss_fn(self.y, outputs[-1])
        grads = tape.gradient(loss, self.slot.variables)
        recorded = self._by_name(grads)
        self.slot.optimizer.apply_gradients(zip(grads, self.slot.variables, strict=True))
        self._forward = None
        return _numpy(loss), recorded

    def parameters(self) -> dict[str, np.ndarray]:
        return self._by_name(self.slot.variables)

    def _by_name(self, tensors: list[Any]) -> dict[str, np.ndarray]:
        """Kernel/bias pairs as ``state_dict`` entries, kernels transposed back to (out, in)."""
        named = {}
        for layer in range(len(self.slot.layers)):
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
