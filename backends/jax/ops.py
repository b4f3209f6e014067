"""JAX's activations, losses and optimizers for each case name: ``jax.nn``, optax losses
(composed from ``jax.numpy`` where optax has none) and optax optimizers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def activation(nn: Any, name: str) -> Any:
    table = {
        "identity": lambda z: z,
        "sigmoid": nn.sigmoid,
        "tanh": nn.tanh,
        "relu": nn.relu,
        "leaky_relu": lambda z: nn.leaky_relu(z, negative_slope=0.01),
        "elu": lambda z: nn.elu(z, alpha=1.0),
        "gelu": lambda z: nn.gelu(z, approximate=False),
        "gelu_tanh": lambda z: nn.gelu(z, approximate=True),
        "softplus": nn.softplus,
        "silu": nn.silu,
    }
    return table[name]


def loss(jnp: Any, optax: Any, name: str, args: Mapping[str, float]) -> Any:
    losses = optax.losses
    table = {
        "mse": lambda o, y: losses.squared_error(o, y).mean(),
        "sse": lambda o, y: losses.squared_error(o, y).sum(),
        "half_sse": lambda o, y: losses.l2_loss(o, y).sum(),  # optax's l2_loss is ½·e²
        # optax has no absolute-error loss; composed from jnp
        "mae": lambda o, y: jnp.abs(o - y).mean(),
        "huber": lambda o, y: losses.huber_loss(o, y, delta=args.get("delta", 1.0)).mean(),
        # optax's binary cross-entropy takes logits only; the probability form is composed
        "bce": lambda o, y: -(y * jnp.log(o) + (1 - y) * jnp.log1p(-o)).mean(),
        "bce_logits": lambda o, y: losses.sigmoid_binary_cross_entropy(o, y).mean(),
        "cross_entropy": lambda o, y: losses.softmax_cross_entropy(o, y).mean(),
    }
    return table[name]


def optimizer(optax: Any, name: str, args: Mapping[str, Any]) -> Any:
    """The optax optimizer nearest to torch.optim's ``name`` with ``args``."""
    decay = args.get("weight_decay", 0.0)
    if name == "sgd":
        core = optax.sgd(args["lr"], momentum=args["momentum"] or None, nesterov=args["nesterov"])
    elif name == "adam":
        core = optax.adam(args["lr"], b1=args["betas"][0], b2=args["betas"][1], eps=args["eps"])
    elif name == "adamw":
        b1, b2 = args["betas"]
        return optax.adamw(args["lr"], b1=b1, b2=b2, eps=args["eps"], weight_decay=decay)
    elif name == "rmsprop":
        core = optax.rmsprop(
            args["lr"],
            decay=args["alpha"],
            eps=args["eps"],
            eps_in_sqrt=False,  # torch: eps outside
            centered=args["centered"],
            momentum=args["momentum"] or None,
        )
    elif name == "adagrad":
        core = optax.adagrad(
            args["lr"], initial_accumulator_value=args["initial_accumulator_value"], eps=args["eps"]
        )
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    # torch's weight_decay (all but AdamW) adds decay·p to the gradient before the update
    return optax.chain(optax.add_decayed_weights(decay), core) if decay else core
