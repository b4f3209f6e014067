"""Cases × backends -> one long results table (before comparison).

A backend is created once per run (its framework imported once), then runs every case in
turn; an exception inside it becomes a ``crashed`` row for that case and the run goes on.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness import determinism, registry
from harness.cases import Case
from harness.errors import BackendUnavailable
from harness.inputs import Inputs, make_inputs
from harness.trace import Trace

if TYPE_CHECKING:
    from backends.base import Backend

KEY_COLUMNS = ["case", "backend", "step", "quantity", "param", "index"]
RAW_COLUMNS = [
    "case",
    "backend",
    "version",
    "dtype",
    "step",
    "quantity",
    "param",
    "index",
    "value",
    "status",
    "detail",
]

Progress = Callable[[str, int, int, str], None]  # backend, done, total, case name


@dataclass
class Outcome:
    """What one backend did with one case: a trace, or why there is none."""

    case: Case
    backend: str
    version: str
    trace: Trace | None = None
    status: str = "ok"  # ok (ran), crashed, skipped
    detail: str = ""


def run_backend(
    name: str, cases: list[Case], inputs: dict[str, Inputs], progress: Progress | None = None
) -> Iterable[Outcome]:
    """Every case on one backend, in order; unavailable means every case is skipped."""
    try:
        backend = registry.create(name)
    except BackendUnavailable as exc:
        for case in cases:
            yield Outcome(
                case, name, "", status="skipped", detail=f"backend unavailable: {exc.reason}"
            )
        return
    version = backend.version()
    for done, case in enumerate(cases, start=1):
        reason = case.backends.excludes(name) or backend.unsupported_reason(case)
        if reason:
            yield Outcome(case, name, version, status="skipped", detail=reason)
        else:
            yield _run_one(backend, case, inputs[case.name], version)
        if progress:
            progress(name, done, len(cases), case.name)


def _run_one(backend: Backend, case: Case, inputs: Inputs, version: str) -> Outcome:
    try:
        trace = backend.run(case, inputs)
    except Exception as exc:  # any failure inside an adapter is a result, not the end of the run
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
        return Outcome(
            case,
            backend.name,
            version,
            status="crashed",
            detail=f"{type(exc).__name__}: {exc}{where}",
        )
    return Outcome(case, backend.name, version, trace=trace)


def run(cases: list[Case], backends: list[str], progress: Progress | None = None) -> pd.DataFrame:
    """Raw results of every case on every backend, not yet compared."""
    determinism.apply_environment()
    inputs = {case.name: make_inputs(case) for case in cases}
    frames = [outcomes_frame(run_backend(name, cases, inputs, progress)) for name in backends]
    return pd.concat(frames, ignore_index=True) if frames else empty_frame()


def outcomes_frame(outcomes: Iterable[Outcome]) -> pd.DataFrame:
    """The long table rows of a stream of outcomes (one row per recorded number)."""
    columns: dict[str, list[np.ndarray]] = {c: [] for c in RAW_COLUMNS}
    for outcome in outcomes:
        if outcome.trace is not None:
            rows = outcome.trace.rows()
            n = len(rows["value"])
        else:
            rows = {
                "step": np.array([-1]),
                "quantity": np.array([""], dtype=object),
                "param": np.array([""], dtype=object),
                "index": np.array([-1]),
                "value": np.array([np.nan]),
            }
            n = 1
        for key in ("step", "quantity", "param", "index", "value"):
            columns[key].append(rows[key])
        for key, value in (
            ("case", outcome.case.name),
            ("backend", outcome.backend),
            ("version", outcome.version),
            ("dtype", outcome.case.dtype),
            ("status", outcome.status),
            ("detail", outcome.detail),
        ):
            columns[key].append(np.full(n, value, dtype=object))
    if not columns["value"]:
        return empty_frame()
    frame = pd.DataFrame({key: np.concatenate(parts) for key, parts in columns.items()})
    return normalize(frame)


def empty_frame() -> pd.DataFrame:
    return normalize(pd.DataFrame({c: [] for c in RAW_COLUMNS}))


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Column dtypes of the results table: nullable ints where a cell may be empty."""
    frame = frame.copy()
    for column in ("step", "index"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        frame[column] = numbers.where(numbers >= 0).astype("Int64")  # -1 marks "not applicable"
    frame["value"] = frame["value"].astype(np.float64)
    for column in ("case", "backend", "version", "dtype", "quantity", "param", "status", "detail"):
        frame[column] = frame[column].fillna("").astype(str)
    return frame
