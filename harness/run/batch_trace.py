"""A batch of cases for a vectorized backend, in and out: every array with a leading variant axis.

``BatchTrace.rows`` lays each variant's values out exactly as ``Trace.rows`` does for one
case, so a vectorized sweep and the per-case
loop produce the same results table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.cases.inputs import Inputs
from harness.run.trace import computation_pieces, row_layout


@dataclass(frozen=True)
class BatchInputs:
    """The float64 inputs of a batch's cases, stacked once for every backend."""

    params: dict[str, np.ndarray]  # (variants, *shape)
    x: np.ndarray  # (variants, batch, inputs)
    y: np.ndarray  # (variants, batch, outputs)

    @classmethod
    def stack(cls, inputs: list[Inputs]) -> BatchInputs:
        names = list(inputs[0].params)
        return cls(
            params={name: np.stack([i.params[name] for i in inputs]) for name in names},
            x=np.stack([i.x for i in inputs]),
            y=np.stack([i.y for i in inputs]),
        )


@dataclass
class BatchTrace:
    output: np.ndarray  # (variants, batch, outputs), before any update
    losses: list[np.ndarray] = field(default_factory=list)  # per step, (variants,)
    grads: list[dict[str, np.ndarray]] = field(default_factory=list)  # per step, (variants, *shape)
    params: list[dict[str, np.ndarray]] = field(default_factory=list)  # after each step's update
    output_after: np.ndarray | None = None
    # Per step, the hidden layers' outputs before that step's update, (variants, batch, width)
    activations: list[list[np.ndarray]] = field(default_factory=list)

    @property
    def variants(self) -> int:
        return int(self.output.shape[0])

    def rows(self) -> dict[str, np.ndarray]:
        """Columns ``variant, step, quantity, param, index, value``, variant by variant."""
        pieces = computation_pieces(self)
        n = self.variants
        # Exact widening to float64, one (variants, values) block per piece, side by side.
        blocks = [np.asarray(a).astype(np.float64).reshape(n, -1) for _, _, _, a in pieces]
        shapes = zip(pieces, blocks, strict=True)
        layout = row_layout(
            tuple((step, q, param, b.shape[1]) for (step, q, param, _), b in shapes)
        )
        columns = {key: np.tile(column, n) for key, column in layout.items()}
        columns["variant"] = np.repeat(np.arange(n), len(layout["step"]))
        columns["value"] = np.concatenate(blocks, axis=1).ravel()
        return columns
