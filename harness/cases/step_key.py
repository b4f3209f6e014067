"""The key under which compiled adapters cache a step and sweeps batch cases: all but values.

A compiled step (``jax.jit``, ``tf.function``, ``torch.compile``) closes over the network's
topology, activations, loss and optimizer; shapes and dtypes are the framework's own cache
key. Cases that differ only in values (weights, data) share one entry, so a matrix over
initial values compiles once.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from harness.cases.model import Case


def step_key(case: Case, batch: int) -> tuple[Hashable, ...]:
    """Everything but the case's values: topology, dtype, batch, loss and optimizer settings."""
    network = case.network
    return (
        network.sizes,
        network.activation,
        network.output_activation,
        case.dtype,
        batch,
        case.loss.name,
        _frozen(case.loss.args),
        case.optimizer.name,
        _frozen(case.optimizer.args),
    )


def _frozen(args: Mapping[str, Any]) -> tuple[tuple[str, Hashable], ...]:
    return tuple(
        (key, tuple(value) if isinstance(value, list | tuple) else value)
        for key, value in sorted(args.items())
    )
