"""What one backend records for one case: the values crossing the adapter boundary.

Only NumPy arrays travel here. ``Trace.rows`` flattens them into the columns of the
long results table (SPEC §4) in computation order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
        pieces: list[tuple[int, str, str, np.ndarray]] = []
        for step, (loss, grads, params) in enumerate(
            zip(self.losses, self.grads, self.params, strict=True)
        ):
            hidden = self.activations[step] if step < len(self.activations) else []
            pieces += [(step, "activation", f"layers.{k}", a) for k, a in enumerate(hidden)]
            if step == 0:
                pieces.append((0, "output", "", self.output))
            pieces.append((step, "loss", "", loss))
            pieces += [(step, "grad", name, value) for name, value in grads.items()]
            pieces += [(step, "param", name, value) for name, value in params.items()]
        if not self.losses:
            pieces.append((0, "output", "", self.output))
        if self.output_after is not None:
            pieces.append((max(len(self.losses) - 1, 0), "output_after", "", self.output_after))
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


def _as_float64(array: np.ndarray) -> np.ndarray:
    """Exact widening: every float16/bfloat16/float32 value is a float64 value."""
    return np.asarray(array).astype(np.float64)
