"""Cases × backends -> one long results table (before comparison).

Each backend runs in a worker process of its own (``harness.run.workers``, scheduled by
``harness.run.scheduler``), importing its framework once; a crash, an exception or a hang
there becomes a ``crashed`` row for that case and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from backends import registry
from harness.cases.inputs import Inputs, make_inputs
from harness.cases.model import Case
from harness.run import determinism
from harness.run.outcome import Outcome, Progress
from harness.run.scheduler import Scheduler, default_jobs
from harness.run.workers import DEFAULT_TIMEOUT
from harness.text import storable

RAW_COLUMNS = [
    "case",
    "backend",
    "mode",
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


def run(
    cases: list[Case],
    backends: list[str],
    progress: Progress | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    jobs: int | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    inputs: dict[str, Inputs] | None = None,
    refused: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Raw results of every case on every backend, not yet compared.

    Each backend runs in its own worker process, up to ``jobs`` of them at once;
    ``on_outcome`` sees every outcome as soon as it is known (to stream it to disk, or to
    stop the run by raising). Rows come back in backend order, then case order, however
    the workers interleaved. ``inputs`` (by case name) replaces the values the cases
    would make, as when a float64 control starts from a float32 run's numbers. ``refused``
    (by case name) are cases the run's budget refused (``harness.run.budget.refusals``):
    each is one ``skipped`` row per backend with the reason, and never reaches a worker.
    """
    determinism.apply_environment()
    refused = refused or {}
    if inputs is None:
        inputs = {case.name: make_inputs(case) for case in cases if case.name not in refused}
    scheduler = Scheduler(cases, inputs, progress, timeout, on_outcome, refused)
    outcomes = scheduler.run(backends, jobs or default_jobs(len(backends)))
    frames = [outcomes_frame(outcomes[name]) for name in backends]
    raw = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    raw.attrs["determinism"] = scheduler.settings
    return raw


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
            ("mode", registry.mode_of(outcome.backend)),
            ("version", storable(outcome.version)),
            ("dtype", outcome.case.dtype),
            ("status", outcome.status),
            ("detail", storable(outcome.detail)),  # an adapter's message, as it came
        ):
            columns[key].append(np.full(n, value, dtype=object))
    if not columns["value"]:
        return empty_frame()
    frame = pd.DataFrame({key: np.concatenate(parts) for key, parts in columns.items()})
    return normalize(frame)


# Text columns of a raw (not yet compared) results table; empty cells read back as "".
RAW_TEXT_COLUMNS = (
    "case",
    "backend",
    "mode",
    "version",
    "dtype",
    "quantity",
    "param",
    "status",
    "detail",
)


def empty_frame() -> pd.DataFrame:
    return normalize(pd.DataFrame({c: [] for c in RAW_COLUMNS}))


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Column dtypes of the results table: nullable ints where a cell may be empty."""
    frame = frame.copy()
    for column in ("step", "index"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        frame[column] = numbers.where(numbers >= 0).astype("Int64")  # -1 marks "not applicable"
    frame["value"] = frame["value"].astype(np.float64)
    for column in RAW_TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    return frame
