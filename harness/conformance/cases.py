"""The cases the conformance checks train: small seeded networks built directly, no YAML.

The default network has no square weight and no two layers share a shape, so a transposed
weight is a shape error; one more network has square hidden weights whose gradients are far
from symmetric, so a transpose the shapes cannot reveal changes the values. Optimizers run
several steps so their state must carry, and every optimizer argument of the vocabulary is
set away from its default in some check. The defaults (activation, loss, optimizer, dtype)
are chosen from what the adapter declares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.cases.model import LOSSES, OPTIMIZERS, Case, InitSpec, Loss, Network, Optimizer

if TYPE_CHECKING:
    from backends.base import Backend

# Every weight is non-square and no two layers share a shape, so an (in, out) kernel read
# back without its transpose is a shape error, never a silent match.
MLP_SIZES = (3, 5, 4, 2)
# Two square hidden weights (4, 4). Their initial values and gradients are far from
# symmetric (tests/test_conformance.py measures it), so an adapter that transposes a square
# weight on the way in or out, or a square gradient, computes or reports other numbers.
SQUARE_SIZES = (3, 4, 4, 4, 2)
BATCH = 6
# Small enough that the finite-difference check costs two runs per parameter, ~34 runs.
FD_SIZES = (2, 3, 2)
STEPS = 3  # optimizer state (momentum, moments, accumulators) must carry across steps
# Learning rates large enough that each update moves the parameters visibly, and powers of
# two, exact in every dtype: a framework that keeps the rate in float32 (Keras does) is a
# framework difference for cases/ to report, not a wiring mistake for this kit to flag.
OPTIMIZER_ARGS: Mapping[str, Mapping[str, Any]] = {
    "sgd": {"lr": 2.0**-3, "momentum": 0.9},
    "adam": {"lr": 2.0**-6},
    "adamw": {"lr": 2.0**-6},
    "rmsprop": {"lr": 2.0**-7},
    "adagrad": {"lr": 2.0**-3},
}
# The optimizer[X+ARGS] checks: each mapping sets arguments away from OPTIMIZER_ARGS and the
# vocabulary's defaults, so that together with OPTIMIZER_ARGS every argument of OPTIMIZERS
# is set in some check (a test holds the kit to that as the vocabulary grows). The values
# are powers of two (or 0.9, as the base check) and large enough that an argument dropped,
# reset to the framework's default or mapped to the wrong formula moves the parameters far
# beyond the tolerance: weight decay (λ·θ ≈ 4e-3) is a few times the gradients (≈ 1e-3),
# and ε (≈ 1e-3) is comparable to the root of the second moments. Arguments that would hide
# one another are in separate checks: a large ε or initial accumulator swamps the rest.
OPTIMIZER_VARIANTS: Mapping[str, tuple[Mapping[str, Any], ...]] = {
    "sgd": (
        # momentum 0.9 comes from OPTIMIZER_ARGS; τ applies from the second step on
        {"dampening": 0.5},
        # nesterov needs dampening 0 (docs/spec.md §2.3); λ enters the buffer, not the step
        {"nesterov": True, "weight_decay": 2.0**-6},
    ),
    # Adam's weight_decay is the L2 penalty added to the gradient, not AdamW's decay
    "adam": ({"weight_decay": 2.0**-6}, {"betas": (0.5, 0.75), "eps": 2.0**-10}),
    "adamw": ({"weight_decay": 2.0**-2}, {"betas": (0.5, 0.75), "eps": 2.0**-10}),
    "rmsprop": (
        {"alpha": 0.75, "centered": True, "momentum": 0.5, "weight_decay": 2.0**-6},
        {"eps": 2.0**-10},
    ),
    "adagrad": (
        {"initial_accumulator_value": 2.0**-14, "weight_decay": 2.0**-6},
        {"eps": 2.0**-10},
    ),
}


def variant_name(optimizer: str, args: Mapping[str, Any]) -> str:
    """``optimizer[adam+weight_decay]``: the optimizer and the arguments the check sets."""
    return f"optimizer[{'+'.join([optimizer, *args])}]"


def preferred(options: Iterable[str], *wanted: str) -> str:
    """The first of ``wanted`` the adapter declares, else its first declared option."""
    options = tuple(options)
    return next((w for w in wanted if w in options), options[0])


def _output_activation(loss: str, wanted: str) -> str:
    """The output activation ``loss`` requires (docs/spec.md §4), else ``wanted``."""
    return {"bce": "sigmoid", "bce_logits": "identity", "cross_entropy": "identity"}.get(
        loss, wanted
    )


def _data(sizes: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in [-1, 1] and targets that are probability rows, valid for every loss."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (BATCH, sizes[0]))
    y = rng.uniform(0.1, 1.0, (BATCH, sizes[-1]))
    return x, y / y.sum(axis=1, keepdims=True)


def make_case(
    name: str,
    *,
    sizes: tuple[int, ...] = MLP_SIZES,
    activation: str = "tanh",
    output_activation: str = "sigmoid",
    loss: str = "mse",
    optimizer: str = "sgd",
    steps: int = STEPS,
    dtype: str = "float32",
    seed: int = 0,
    optimizer_args: Mapping[str, Any] | None = None,
) -> Case:
    """A conformance case, built directly (no YAML) with seeded parameters and data."""
    x, y = _data(sizes, seed)
    args = {**OPTIMIZERS[optimizer], **OPTIMIZER_ARGS[optimizer], **(optimizer_args or {})}
    return Case(
        name=f"conformance.{name}",
        network=Network(
            sizes=sizes,
            activation=activation,
            output_activation=_output_activation(loss, output_activation),
            # Non-zero biases: a bias left at the framework's own zero init would show.
            init=InitSpec(seed=seed, scheme="uniform", args={"low": -0.5, "high": 0.5}),
        ),
        x=x,
        y=y,
        loss=Loss(loss, dict(LOSSES[loss])),
        optimizer=Optimizer(optimizer, args),
        steps=steps,
        dtype=dtype,
        source="harness/conformance/cases.py",
    )


def base_case(cls: type[Backend], name: str, **overrides: Any) -> Case:
    """The battery's default network, built from what ``cls`` declares."""
    loss = overrides.pop("loss", preferred(cls.losses, "mse", "sse", "half_sse"))
    hidden = overrides.pop("activation", preferred(cls.activations, "tanh", "sigmoid"))
    output = overrides.pop("output_activation", preferred(cls.activations, "sigmoid", hidden))
    return make_case(
        name,
        activation=hidden,
        output_activation=_output_activation(loss, output),
        loss=loss,
        optimizer=overrides.pop("optimizer", preferred(cls.optimizers, "sgd")),
        dtype=overrides.pop("dtype", preferred(cls.dtypes, "float32", "float64")),
        **overrides,
    )
