"""TensorFlow's activations, losses and optimizers for each case name: ``tf.nn``, Keras loss
objects (composed from TensorFlow ops where Keras has none) and Keras optimizers, and the
Keras float setting they are made under."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def use_floatx(keras: Any, dtype: str) -> None:
    """Keras makes its optimizer variables (learning rate ...) and casts some constants in
    floatx: float64 cases need float64 there, lower precisions keep float32
    hyper-parameters as torch does."""
    keras.config.set_floatx("float64" if dtype == "float64" else "float32")


def activation(nn: Any, name: str) -> Any:
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


def keras_loss(losses: Any, name: str, args: Mapping[str, float], dtype: str) -> Any | None:
    """The Keras loss object for ``name`` from the ``keras.losses`` module given, or None where
    Keras has none. Keras loss objects take (y_true, y_pred); ``dtype`` keeps them from
    casting to float32."""
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
    return None


def loss(tf: Any, name: str, args: Mapping[str, float], dtype: str) -> Any:
    """Keras' loss object, or the loss composed from TensorFlow ops where Keras has none."""
    found = keras_loss(tf.keras.losses, name, args, dtype)
    if found is not None:
        return found
    # Keras has no summed squared-error loss (its reduction="sum" sums per-row means).
    if name == "sse":
        return lambda y, o: tf.reduce_sum(tf.square(o - y))
    if name == "half_sse":
        return lambda y, o: 0.5 * tf.reduce_sum(tf.square(o - y))
    raise ValueError(f"unknown loss {name!r}")


def optimizer(optimizers: Any, name: str, args: Mapping[str, Any]) -> Any:
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
