"""A trace's rows: the cached layout must be the one its pieces spell out, case after case."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.cases.model import param_shapes
from harness.run.trace import Trace, computation_pieces


def _rows_from_pieces(trace: Trace) -> pd.DataFrame:
    """The rows laid out directly from ``computation_pieces``, with no cache."""
    rows = []
    for step, quantity, param, values in computation_pieces(trace):
        flat = np.asarray(values, dtype=np.float64).ravel()
        for index, value in enumerate(flat):
            rows.append((step, quantity, param, -1 if quantity == "loss" else index, value))
    return pd.DataFrame(rows, columns=["step", "quantity", "param", "index", "value"])


def _trace(rng: np.random.Generator, sizes: tuple[int, ...], steps: int, **options) -> Trace:
    def array(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    names = param_shapes(sizes)
    trace = Trace(output=array(2, sizes[-1]))
    for _ in range(steps):
        if options.get("activations", True):
            trace.activations.append([array(2, width) for width in sizes[1:-1]])
        loss = array()
        trace.losses.append(float(loss) if options.get("float_loss") else loss)
        trace.grads.append({name: array(*shape) for name, shape in names.items()})
        trace.params.append({name: array(*shape) for name, shape in names.items()})
    if options.get("output_after", True):
        trace.output_after = array(2, sizes[-1])
    return trace


def test_rows_match_the_pieces_for_every_structure_in_any_order():
    rng = np.random.default_rng(3)
    structures = [
        ((1, 1, 1), 1, {}),
        ((1, 1, 1), 3, {}),
        ((2, 3, 1), 1, {}),
        ((2, 4, 1), 1, {}),  # same names as above, other sizes
        ((2, 3, 3, 1), 2, {"activations": False}),
        ((1, 1, 1), 2, {"float_loss": True}),
        ((1, 2), 0, {}),
        ((1, 2), 1, {"output_after": False}),
    ]
    for sizes, steps, options in structures * 2:  # the second round reads cached layouts
        trace = _trace(rng, sizes, steps, **options)
        got = pd.DataFrame(trace.rows())
        pd.testing.assert_frame_equal(got, _rows_from_pieces(trace), check_dtype=False)
