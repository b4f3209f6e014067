"""PyTorch's activations, losses and optimizers for each case name: ``torch.nn.functional``,
``torch.nn`` loss modules and ``torch.optim``, configured as the reference's formulas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def activation(functional: Any, name: str) -> Any:
    table = {
        "identity": lambda z: z,
        "sigmoid": functional.sigmoid,
        "tanh": functional.tanh,
        "relu": functional.relu,
        "leaky_relu": lambda z: functional.leaky_relu(z, 0.01),
        "elu": lambda z: functional.elu(z, alpha=1.0),
        "gelu": lambda z: functional.gelu(z, approximate="none"),
        "gelu_tanh": lambda z: functional.gelu(z, approximate="tanh"),
        "softplus": lambda z: functional.softplus(z, beta=1.0),
        "silu": functional.silu,
    }
    return table[name]


def loss(nn: Any, name: str, args: Mapping[str, float]) -> Any:
    if name == "mse":
        return nn.MSELoss()
    if name == "sse":
        return nn.MSELoss(reduction="sum")
    if name == "half_sse":
        # torch has no ½·Σe² loss object; compose it from MSELoss(reduction="sum")
        sse = nn.MSELoss(reduction="sum")
        return lambda output, target: 0.5 * sse(output, target)
    if name == "mae":
        return nn.L1Loss()
    if name == "huber":
        return nn.HuberLoss(delta=args["delta"])
    if name == "bce":
        return nn.BCELoss()
    if name == "bce_logits":
        return nn.BCEWithLogitsLoss()
    if name == "cross_entropy":
        return nn.CrossEntropyLoss()  # probability targets: y has the logits' shape
    raise ValueError(f"unknown loss {name!r}")


def optimizer(optim: Any, params: Any, name: str, args: Mapping[str, Any]) -> Any:
    classes = {
        "sgd": optim.SGD,
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "rmsprop": optim.RMSprop,
        "adagrad": optim.Adagrad,
    }
    kwargs = dict(args)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    # foreach=False: the single-tensor loop is the documented algorithm, operation by operation.
    return classes[name](params, foreach=False, **kwargs)
