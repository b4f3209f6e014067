"""Bare, idiomatic per-case loops of the seed network, one per framework and mode.

Each loop is what a user would write without crossgrad: build the 1-1-1 sigmoid network
with the case's weights, record the output, take one SGD step on MSELoss, record the loss,
gradients, updated parameters and output, as NumPy values (a differential test needs
them on the host). The benchmark's ratios compare the harness with these loops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LR = 0.1


@dataclass(frozen=True)
class SeedValues:
    """One seed-network case: float32 weights and data, PyTorch layout."""

    w1: np.ndarray  # (1, 1)
    b1: np.ndarray  # (1,)
    w2: np.ndarray  # (1, 1)
    b2: np.ndarray  # (1,)
    x: np.ndarray  # (1, 1)
    y: np.ndarray  # (1, 1)


BareLoop = Callable[[Sequence[SeedValues]], list[Any]]


def numpy_loop(cases: Sequence[SeedValues]) -> list[Any]:
    """Hand-written forward and backprop in NumPy arrays."""
    records = []
    for c in cases:
        w1, b1, w2, b2 = c.w1.copy(), c.b1.copy(), c.w2.copy(), c.b2.copy()
        a1 = 1 / (1 + np.exp(-(c.x @ w1.T + b1)))
        a2 = 1 / (1 + np.exp(-(a1 @ w2.T + b2)))
        loss = np.mean((a2 - c.y) ** 2)
        d2 = 2 * (a2 - c.y) / a2.size * a2 * (1 - a2)
        d1 = (d2 @ w2) * a1 * (1 - a1)
        grads = (d1.T @ c.x, d1.sum(0), d2.T @ a1, d2.sum(0))
        w1, b1, w2, b2 = (p - LR * g for p, g in zip((w1, b1, w2, b2), grads, strict=True))
        after = 1 / (1 + np.exp(-((1 / (1 + np.exp(-(c.x @ w1.T + b1)))) @ w2.T + b2)))
        records.append((a2, loss, grads, (w1, b1, w2, b2), after))
    return records


def torch_loop(compile_model: bool = False) -> BareLoop:
    """``nn.Sequential`` + ``MSELoss`` + ``optim.SGD``, optionally under ``torch.compile``."""
    import torch

    model = torch.nn.Sequential(
        torch.nn.Linear(1, 1), torch.nn.Sigmoid(), torch.nn.Linear(1, 1), torch.nn.Sigmoid()
    )
    forward = torch.compile(model) if compile_model else model
    loss_fn = torch.nn.MSELoss()
    params = list(model.parameters())

    def loop(cases: Sequence[SeedValues]) -> list[Any]:
        records = []
        for c in cases:
            with torch.no_grad():
                for p, v in zip(params, (c.w1, c.b1, c.w2, c.b2), strict=True):
                    p.copy_(torch.from_numpy(v))
            optimizer = torch.optim.SGD(params, lr=LR)
            x, y = torch.from_numpy(c.x), torch.from_numpy(c.y)
            optimizer.zero_grad()
            out = forward(x)
            loss = loss_fn(out, y)
            loss.backward()
            grads = [p.grad.numpy().copy() for p in params]
            optimizer.step()
            with torch.no_grad():
                after = forward(x).numpy()
            records.append((out.detach().numpy(), loss.item(), grads, after))
        return records

    return loop


def jax_loop(jit: bool = True) -> BareLoop:
    """``jax.value_and_grad`` + ``optax.sgd``, the step under ``jax.jit`` or op by op."""
    import jax
    import jax.numpy as jnp
    import optax

    optimizer = optax.sgd(LR)

    def output(p: dict[str, Any], x: Any) -> Any:
        a1 = jax.nn.sigmoid(x @ p["w1"].T + p["b1"])
        return jax.nn.sigmoid(a1 @ p["w2"].T + p["b2"])

    def loss_fn(p: dict[str, Any], x: Any, y: Any) -> Any:
        return jnp.mean((output(p, x) - y) ** 2)

    def step(p: dict[str, Any], state: Any, x: Any, y: Any) -> tuple[Any, ...]:
        out = output(p, x)
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, state = optimizer.update(grads, state, p)
        p = optax.apply_updates(p, updates)
        return out, loss, grads, p, output(p, x)

    run_step = jax.jit(step) if jit else step
    init = jax.jit(optimizer.init) if jit else optimizer.init

    def loop(cases: Sequence[SeedValues]) -> list[Any]:
        records = []
        for c in cases:
            p = {"w1": c.w1, "b1": c.b1, "w2": c.w2, "b2": c.b2}
            result = run_step(p, init(p), c.x, c.y)
            records.append(jax.device_get(result))
        return records

    return loop


def tensorflow_loop(function: bool = True) -> BareLoop:
    """Keras ``Sequential`` + ``MeanSquaredError`` + ``SGD``, the step in ``tf.function`` or eager."""
    import tensorflow as tf

    keras = tf.keras
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, "sigmoid"), keras.layers.Dense(1, "sigmoid")]
    )
    loss_fn = keras.losses.MeanSquaredError()
    optimizer = keras.optimizers.SGD(LR)
    variables = model.trainable_variables
    optimizer.build(variables)

    def step(x: Any, y: Any) -> tuple[Any, ...]:
        with tf.GradientTape() as tape:
            out = model(x)
            loss = loss_fn(y, out)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return out, loss, grads, model(x)

    run_step = tf.function(step) if function else step

    def loop(cases: Sequence[SeedValues]) -> list[Any]:
        records = []
        for c in cases:
            for v, value in zip(variables, (c.w1.T, c.b1, c.w2.T, c.b2), strict=True):
                v.assign(value)
            out, loss, grads, after = run_step(tf.constant(c.x), tf.constant(c.y))
            records.append(
                (
                    out.numpy(),
                    loss.numpy(),
                    [g.numpy() for g in grads],
                    [v.numpy() for v in variables],
                    after.numpy(),
                )
            )
        return records

    return loop


def bare_loop(backend: str) -> BareLoop:
    """The bare loop matching a crossgrad backend name (framework and mode)."""
    factories: dict[str, Callable[[], BareLoop]] = {
        "numpy": lambda: numpy_loop,
        "torch": lambda: torch_loop(compile_model=False),
        "torch:compile": lambda: torch_loop(compile_model=True),
        "jax": lambda: jax_loop(jit=True),
        "jax:eager": lambda: jax_loop(jit=False),
        "tensorflow": lambda: tensorflow_loop(function=True),
        "tensorflow:eager": lambda: tensorflow_loop(function=False),
    }
    return factories[backend]()
