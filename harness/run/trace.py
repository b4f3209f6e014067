"""What one backend records for one case: the values crossing the adapter boundary.

Only NumPy arrays travel here. ``Trace.rows`` flattens them into the columns of the
long results table (docs/spec.md §7) in computation order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
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
        recorded = _recorded(self)
        arrays = [a if type(a) is np.ndarray else np.asarray(a) for a in recorded]
        structure = (
            tuple(map(len, self.activations)),
            tuple(map(tuple, self.grads)),
            tuple(map(tuple, self.params)),
            self.output_after is None,
            tuple(a.size for a in arrays),
        )
        layout = _LAYOUTS.get(structure)
        if layout is None:
            layout = _layout_of(self, recorded, arrays)
            if len(_LAYOUTS) < _MAX_LAYOUTS:
                _LAYOUTS[structure] = layout
        return {**layout, "value": _values_float64(arrays)}


# Layouts by a trace's structure. A per-case loop meets few structures, and finding the
# layout by one is cheaper than labelling the pieces again (rows() of the seed case: 17 µs
# against 25 µs), which matters once per case.
_LAYOUTS: dict[tuple[object, ...], dict[str, np.ndarray]] = {}
_MAX_LAYOUTS = 1024


def _recorded(trace: Trace) -> list[np.ndarray]:
    """The recorded arrays (a loss may be a Python float) in the order of ``computation_pieces``,
    without their labels; ``_layout_of`` checks that the two orders agree."""
    arrays: list[np.ndarray] = []
    for step, (loss, grads, params) in enumerate(
        zip(trace.losses, trace.grads, trace.params, strict=True)
    ):
        if step < len(trace.activations):
            arrays += trace.activations[step]
        if step == 0:
            arrays.append(trace.output)
        arrays.append(loss)
        arrays += grads.values()
        arrays += params.values()
    if not trace.losses:
        arrays.append(trace.output)
    if trace.output_after is not None:
        arrays.append(trace.output_after)
    return arrays


def _layout_of(
    trace: Trace, recorded: list[np.ndarray], arrays: list[np.ndarray]
) -> dict[str, np.ndarray]:
    pieces = computation_pieces(trace)
    if [id(a) for *_, a in pieces] != [id(a) for a in recorded]:
        raise AssertionError("_recorded and computation_pieces disagree on the order")
    shapes = zip(pieces, arrays, strict=True)
    return row_layout(tuple((step, q, param, a.size) for (step, q, param, _), a in shapes))


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


def trace_from_flat(
    values: np.ndarray,
    shapes: list[tuple[int, ...]],
    names: list[str],
    steps: int,
    layout: Callable[[str, np.ndarray], np.ndarray] = lambda name, stacked: stacked,
) -> Trace:
    """The trace of a case run as one compiled call that returned every recorded array as
    one flat vector (one transfer), cut back into views.

    ``shapes`` are, in order: each layer's outputs per step ``(steps, batch, width)``, the
    losses ``(steps,)``, the gradients then the updated parameters of ``names`` per step,
    and the output after the last update. ``layout(name, stacked)`` turns a framework's
    per-step parameter arrays into the case's ``(out, in)`` layout.
    """
    arrays, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        arrays.append(values[start : start + size].reshape(shape))
        start += size
    n_layers = len(shapes) - 2 * len(names) - 2
    layers, losses = arrays[:n_layers], arrays[n_layers]
    stacked = arrays[n_layers + 1 : -1]
    n = len(names)
    grads = {name: layout(name, g) for name, g in zip(names, stacked[:n], strict=True)}
    updated = {name: layout(name, p) for name, p in zip(names, stacked[n:], strict=True)}
    return Trace(
        output=layers[-1][0],
        losses=[losses[i, ...] for i in range(steps)],
        grads=[{name: g[i] for name, g in grads.items()} for i in range(steps)],
        params=[{name: p[i] for name, p in updated.items()} for i in range(steps)],
        output_after=arrays[-1],
        activations=[[a[i] for a in layers[:-1]] for i in range(steps)],
    )


PieceShape = tuple[int, str, str, int]  # step, quantity, param, number of values


@functools.lru_cache(maxsize=1024)
def row_layout(shapes: tuple[PieceShape, ...]) -> dict[str, np.ndarray]:
    """Columns ``step, quantity, param, index`` of one case's rows, given its pieces' shapes.

    They depend only on the layout, which every case of a step key shares, so they are built
    once and handed out read-only: a per-case loop then only gathers the values.
    """
    sizes = [size for _, _, _, size in shapes]
    columns = {
        "step": np.repeat(np.array([s[0] for s in shapes], dtype=np.int64), sizes),
        "quantity": np.repeat(np.array([s[1] for s in shapes], dtype=object), sizes),
        "param": np.repeat(np.array([s[2] for s in shapes], dtype=object), sizes),
        "index": np.concatenate(
            [np.full(size, -1) if q == "loss" else np.arange(size) for _, q, _, size in shapes]
            or [np.empty(0)]
        ).astype(np.int64),
    }
    for column in columns.values():
        column.flags.writeable = False
    return columns


def _values_float64(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays' values in order, widened exactly (float16/bfloat16/float32 -> float64)."""
    if not arrays:
        return np.empty(0)
    return np.concatenate([a.ravel() for a in arrays], dtype=np.float64, casting="unsafe")
