"""The case model: what one differential test trains, in plain Python and NumPy values.

Every case is immutable once loaded and carries everything a backend needs, so it can be
pickled to a worker process unchanged. The vocabularies (activations, losses, optimizers,
dtypes) live here so that the loader, the adapters and the docs read one list.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

ACTIVATIONS: tuple[str, ...] = (
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "gelu_tanh",
    "softplus",
    "silu",
)

LOSSES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "mse": {},
        "sse": {},
        "half_sse": {},
        "mae": {},
        "huber": {"delta": 1.0},
        "bce": {},
        "bce_logits": {},
        "cross_entropy": {},
    }
)

# PyTorch's documented argument names and defaults are the reference (docs/spec.md §5).
OPTIMIZERS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "sgd": {
            "lr": None,  # required: a case states its rate (docs/spec.md §5.1)
            "momentum": 0.0,
            "dampening": 0.0,
            "nesterov": False,
            "weight_decay": 0.0,
        },
        "adam": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
        "adamw": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01},
        "rmsprop": {
            "lr": 0.01,
            "alpha": 0.99,
            "eps": 1e-8,
            "momentum": 0.0,
            "centered": False,
            "weight_decay": 0.0,
        },
        "adagrad": {
            "lr": 0.01,
            "eps": 1e-10,
            "initial_accumulator_value": 0.0,
            "weight_decay": 0.0,
        },
    }
)

DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")

INIT_SCHEMES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "uniform": {"low": -1.0, "high": 1.0},
        "normal": {"mean": 0.0, "std": 1.0},
        "xavier_uniform": {},
        "he_normal": {},
    }
)

# In computation order; "activation" rows hold each hidden layer's output, for localization.
QUANTITIES: tuple[str, ...] = ("activation", "output", "loss", "grad", "param", "output_after")


def param_names(sizes: tuple[int, ...]) -> list[str]:
    """PyTorch ``state_dict`` names of a stack of ``nn.Linear``, in layer order."""
    names = []
    for layer in range(len(sizes) - 1):
        names += [f"layers.{layer}.weight", f"layers.{layer}.bias"]
    return names


def param_shapes(sizes: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Shape of every parameter: weight ``(out, in)``, bias ``(out,)``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        shapes[f"layers.{layer}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{layer}.bias"] = (fan_out,)
    return shapes


@dataclass(frozen=True)
class InitSpec:
    """Seeded initial parameters, generated once by the harness for every backend."""

    seed: int
    scheme: str
    args: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RandomArraySpec:
    """Seeded uniform data of ``batch`` rows, generated once by the harness."""

    seed: int
    batch: int
    low: float = -1.0
    high: float = 1.0


ArraySource = np.ndarray | RandomArraySpec


@dataclass(frozen=True)
class Network:
    sizes: tuple[int, ...]
    activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    params: Mapping[str, np.ndarray] | None = None
    init: InitSpec | None = None

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1


@dataclass(frozen=True)
class Loss:
    name: str
    args: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Optimizer:
    """An optimizer with every argument present (defaults filled in from OPTIMIZERS)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


@dataclass(frozen=True)
class Expect:
    """Published values every backend must reproduce to ``decimals`` places."""

    decimals: int
    output: np.ndarray | None = None
    loss: float | None = None
    params_after: Mapping[str, np.ndarray] = field(default_factory=dict)
    output_after: np.ndarray | None = None


@dataclass(frozen=True)
class BackendFilter:
    skip: tuple[str, ...] = ()
    only: tuple[str, ...] = ()

    def excludes(self, backend: str) -> str | None:
        """Why this case does not run on ``backend``, or None when it does."""
        base = backend.split(":", 1)[0]
        if backend in self.skip or base in self.skip:
            return f"case skips backend {backend!r} (backends.skip)"
        if self.only and backend not in self.only and base not in self.only:
            return f"case runs only on {', '.join(self.only)} (backends.only)"
        return None


@dataclass(frozen=True)
class Case:
    name: str
    network: Network
    x: ArraySource
    y: ArraySource
    loss: Loss
    optimizer: Optimizer
    steps: int = 1
    dtype: str = "float32"
    description: str = ""
    tolerance: Tolerance | None = None
    expect: Expect | None = None
    backends: BackendFilter = BackendFilter()
    source: str = ""  # "file:line" of the case, for messages and repro commands
    variant: Mapping[str, Any] = field(default_factory=dict)  # matrix values applied
