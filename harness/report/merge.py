"""``crossgrad report``: merge the results of separate runs into the table one run would give.

Each per-backend run (one nox session, one CI job) holds the reference's rows and its own
backend's. The merge keeps every pair once, checks that the reference agrees bit for bit
across inputs (otherwise the runs are not comparable), and orders rows exactly as an
all-backend run does: cases in load order, the reference first, then the registry's
backend order, each pair's rows in its own computation order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backends import registry
from harness.errors import ResultsError
from harness.report.results_io import Results

PAIR = ["case", "backend"]


def merge(inputs: list[Results]) -> pd.DataFrame:
    if not inputs:
        raise ResultsError("no results to merge")
    references = {str(r.table["backend"].iloc[0]) for r in inputs if len(r.table)}
    if len(references) > 1:
        raise ResultsError(
            f"the inputs were compared with different reference backends: {', '.join(sorted(references))}"
        )
    reference = references.pop() if references else ""
    kept: list[pd.DataFrame] = []
    seen: dict[tuple[str, str], pd.DataFrame] = {}
    origin: dict[tuple[str, str], str] = {}
    for result in inputs:
        for (case, backend), rows in result.table.groupby(PAIR, sort=False):
            key = (str(case), str(backend))
            if key in seen:
                _check_same(seen[key], rows, key, origin[key], str(result.path))
                continue
            seen[key], origin[key] = rows, str(result.path)
            kept.append(rows)
    table = pd.concat(kept, ignore_index=True)
    return _in_run_order(table, reference)


def _check_same(
    first: pd.DataFrame, again: pd.DataFrame, key: tuple[str, str], a: str, b: str
) -> None:
    """A pair present in two inputs (the reference, always) must hold identical values."""
    same = len(first) == len(again) and np.array_equal(
        first["value"].to_numpy(dtype=np.float64),
        again["value"].to_numpy(dtype=np.float64),
        equal_nan=True,
    )
    if not same:
        raise ResultsError(
            f"case {key[0]!r} on {key[1]!r} differs between {a} and {b}: "
            "the runs used different code, cases or versions and cannot be merged"
        )


def _in_run_order(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    cases = {name: i for i, name in enumerate(dict.fromkeys(table["case"]))}
    known = [reference, *registry.entries()]
    order = {name: i for i, name in enumerate(dict.fromkeys([*known, *table["backend"]]))}
    ordered = table.assign(
        _case=table["case"].map(cases),
        _backend=table["backend"].map(order),
        _row=np.arange(len(table)),
    ).sort_values(["_case", "_backend", "_row"], kind="stable")
    return ordered.drop(columns=["_case", "_backend", "_row"]).reset_index(drop=True)
