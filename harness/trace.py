"""What one backend records for one case: the values crossing the adapter boundary.

Only NumPy arrays travel here. ``Trace.rows`` flattens them into the columns of the
long results table (SPEC §4) in computation order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class BatchTraceLike(Protocol):
    output: np.ndarray
    losses: list[np.ndarray]
    grads: list[dict[str, np.ndarray]]
    params: list[dict[str, np.ndarray]]
    output_after: np.ndarray | None
    activations: list[list[np.ndarray]]


@dataclass
class Trace:
    output: np.ndarray  # forward pass before any update, (batch, outputs)
    losses: list[np.ndarray] = field(default_factory=list)  # one scalar per step
    grads: list[dict[str, np.ndarray]] = field(default_factory=list)  # per step, per param
    params: list[dict[str, np.ndarray]] = field(default_factory=list)  # after each step's update
    output_after: np.ndarray | None = None  # forward pass after the last update
    # Per step, the hidden layers' outputs before that step's update (optional: an adapter
    # without ``Model.layer_outputs`` records none); used to localize a divergence by layer.
    activations: list[list[np.ndarray]] = field(default_factory=list)

    def rows(self) -> dict[str, np.ndarray]:
        """Columns ``step, quantity, param, index, value`` (value as exact float64)."""
        pieces = computation_pieces(self)
        values = [_as_float64(array) for _, _, _, array in pieces]
        sizes = [v.size for v in values]
        scalar = [quantity == "loss" for _, quantity, _, _ in pieces]
        return {
            "step": np.repeat([p[0] for p in pieces], sizes).astype(np.int64),
            "quantity": np.repeat(np.array([p[1] for p in pieces], dtype=object), sizes),
            "param": np.repeat(np.array([p[2] for p in pieces], dtype=object), sizes),
            "index": np.concatenate(
                [
                    np.full(n, -1) if is_scalar else np.arange(n)
                    for n, is_scalar in zip(sizes, scalar, strict=True)
                ]
            ).astype(np.int64),
            "value": np.concatenate([v.ravel() for v in values]) if values else np.empty(0),
        }


Piece = tuple[int, str, str, np.ndarray]  # step, quantity, param, values


def computation_pieces(trace: Trace | BatchTraceLike) -> list[Piece]:
    """Every recorded array in computation order: per step the hidden activations, the
    output (step 0), the loss, the gradients and the updated parameters; then output_after.

    Shared by ``Trace`` and the vectorized ``BatchTrace`` so both lay out rows alike.
    """
    pieces: list[Piece] = []
    for step, (loss, grads, params) in enumerate(
        zip(trace.losses, trace.grads, trace.params, strict=True)
    ):
        hidden = trace.activations[step] if step < len(trace.activations) else []
        pieces += [(step, "activation", f"layers.{k}", a) for k, a in enumerate(hidden)]
        if step == 0:
            pieces.append((0, "output", "", trace.output))
        pieces.append((step, "loss", "", loss))
        pieces += [(step, "grad", name, value) for name, value in grads.items()]
        pieces += [(step, "param", name, value) for name, value in params.items()]
    if not trace.losses:
        pieces.append((0, "output", "", trace.output))
    if trace.output_after is not None:
        pieces.append((max(len(trace.losses) - 1, 0), "output_after", "", trace.output_after))
    return pieces


def _as_float64(array: np.ndarray) -> np.ndarray:
    """Exact widening: every float16/bfloat16/float32 value is a float64 value."""
    return np.asarray(array).astype(np.float64)
