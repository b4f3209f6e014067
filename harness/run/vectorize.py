"""Vectorized sweeps (``crossgrad run --vectorize``): cases that differ only in values run as
one batched computation per backend.

Cases group by their step key (topology, activations, loss, optimizer with all its
arguments, dtype, data rows) plus steps and backend filter; a group of two or more goes to
the backend's batched implementation (its adapter class's ``vectorized``), in this
process. Everything else — single cases, backends without one, a batch whose run raised —
takes the per-case path, so a vectorized run reports what the loop would, only faster.
"""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from backends import registry
from harness.cases.inputs import Inputs, batch_rows, make_inputs
from harness.cases.model import Case
from harness.cases.step_key import step_key
from harness.errors import BackendUnavailable
from harness.run import determinism, fingerprint
from harness.run.batch_trace import BatchInputs, BatchTrace
from harness.run.outcome import Progress
from harness.run.runner import RAW_COLUMNS, empty_frame, normalize
from harness.run.runner import run as run_per_case

# An adapter's batched implementation (``Backend.vectorized``, "module:function"):
# (adapter, first case, BatchInputs) -> BatchTrace.
BatchRunner = Callable[[Any, Case, BatchInputs], BatchTrace]


def group_key(case: Case, rows: int) -> tuple[Hashable, ...]:
    """Cases with equal keys can share one batched computation."""
    return (step_key(case, rows), case.steps, case.backends)


def group_sizes(cases: Sequence[Case]) -> Counter[Hashable]:
    """Cases per group key over a whole run, without making any inputs.

    A run taken in chunks passes these to ``run``, so that a group cut by a chunk
    boundary is still batched on both sides, as it would be in one piece.
    """
    return Counter(group_key(case, batch_rows(case)) for case in cases)


def groups(cases: Sequence[Case], inputs: dict[str, Inputs]) -> list[list[Case]]:
    """Cases by group key, in first-seen order; each group keeps the cases' order."""
    found: dict[Hashable, list[Case]] = {}
    for case in cases:
        key = group_key(case, int(inputs[case.name].x.shape[0]))
        found.setdefault(key, []).append(case)
    return list(found.values())


def run(
    cases: list[Case],
    backends: list[str],
    progress: Progress | None = None,
    *,
    sizes: Mapping[Hashable, int] | None = None,
    on_rows: Callable[[pd.DataFrame], None] | None = None,
    **loop_options: Any,
) -> pd.DataFrame:
    """Raw results of every case on every backend, batched where a backend can batch.

    Backends without a batched implementation run the per-case loop together (in their
    worker processes, concurrently); ``loop_options`` go to that loop (``on_outcome``,
    ``timeout``, ``jobs``). ``on_rows`` sees each batch's rows as soon as they are made.
    ``sizes`` (``group_sizes`` of the whole run) batches a group of one here whose other
    cases are in another chunk of the run.
    """
    determinism.apply_environment()
    refused = loop_options.get("refused") or {}  # the per-case path reports them as skipped
    runnable = [case for case in cases if case.name not in refused]
    inputs = {case.name: make_inputs(case) for case in runnable}
    batches = [
        (group, BatchInputs.stack([inputs[case.name] for case in group]))
        for group in groups(runnable, inputs)
        if len(group) > 1
        or (sizes is not None and sizes.get(group_key(group[0], batch_rows(group[0])), 0) > 1)
    ]
    looped = [name for name in backends if _batch_runner(name) is None or not batches]
    frames = [run_per_case(cases, looped, progress, **loop_options)] if looped else []
    batched: dict[str, dict[str, Any]] = {}  # what this process has in force, per backend
    for name in backends:
        if name in looped:
            continue
        done, batch_frames, in_force = _run_batches(name, batches, progress, len(cases), on_rows)
        frames += batch_frames
        if in_force is not None:
            batched[name] = in_force
        rest = [case for case in cases if case.name not in done]
        if rest:
            frames.append(run_per_case(rest, [name], progress, **loop_options))
    settings = {k: v for frame in frames for k, v in frame.attrs.get("determinism", {}).items()}
    for name, in_force in batched.items():
        settings.setdefault(name, in_force)  # a worker's own record, where one ran, is kept
    raw = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    raw = _in_case_order(raw, cases, backends)
    raw.attrs["determinism"] = settings
    return raw


def _run_batches(
    name: str,
    batches: list[tuple[list[Case], BatchInputs]],
    progress: Progress | None,
    total: int,
    on_rows: Callable[[pd.DataFrame], None] | None = None,
) -> tuple[set[str], list[pd.DataFrame], dict[str, Any] | None]:
    """The batches this backend can run in one computation each: their case names and
    frames, and the settings in force here (``fingerprint.backend_settings``), as a
    worker reports them; None when the adapter was not built."""
    runner = _batch_runner(name)
    if runner is None or not batches:
        return set(), [], None
    try:
        adapter = registry.create(name)
    except BackendUnavailable:
        return set(), [], None  # the per-case path reports every case as skipped, with the reason
    version = adapter.version()
    in_force = fingerprint.backend_settings(adapter)
    done: set[str] = set()
    frames = []
    for batch, batch_inputs in batches:
        if any(case.backends.excludes(name) or adapter.unsupported_reason(case) for case in batch):
            continue
        try:
            trace = runner(adapter, batch[0], batch_inputs)
        except Exception as exc:  # the per-case path runs these cases again, reports each crash
            print(
                f"crossgrad: {name}: a batch of {len(batch)} cases failed as a whole "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "they run one by one",
                file=sys.stderr,
            )
            continue
        frames.append(batch_frame(trace, batch, name, version))
        if on_rows:
            on_rows(frames[-1])
        done.update(case.name for case in batch)
        if progress:
            progress(name, len(done), total, batch[-1].name)
    return done, frames, in_force


def _batch_runner(name: str) -> BatchRunner | None:
    target = registry.vectorized(name)
    if not target:
        return None
    module_name, _, function = target.partition(":")
    runner: BatchRunner = getattr(importlib.import_module(module_name), function)
    return runner


def batch_frame(
    trace: BatchTrace, cases: Sequence[Case], backend: str, version: str
) -> pd.DataFrame:
    """The raw results rows of a batch, identical in layout to the per-case rows."""
    rows = trace.rows()
    n = len(rows["value"])
    names = np.array([case.name for case in cases], dtype=object)
    columns = {
        "case": names[rows["variant"]],
        "backend": np.full(n, backend, dtype=object),
        "mode": np.full(n, registry.mode_of(backend), dtype=object),
        "version": np.full(n, version, dtype=object),
        "dtype": np.full(n, cases[0].dtype, dtype=object),
        "status": np.full(n, "ok", dtype=object),
        "detail": np.full(n, "", dtype=object),
        **{key: rows[key] for key in ("step", "quantity", "param", "index", "value")},
    }
    return normalize(pd.DataFrame({key: columns[key] for key in RAW_COLUMNS}))


def _in_case_order(raw: pd.DataFrame, cases: list[Case], backends: list[str]) -> pd.DataFrame:
    """Backend order, then the cases' order, as the per-case runner returns them."""
    case_rank = {case.name: i for i, case in enumerate(cases)}
    backend_rank = {name: i for i, name in enumerate(backends)}
    order = np.lexsort(
        (
            raw["case"].map(case_rank).to_numpy(),
            raw["backend"].map(backend_rank).to_numpy(),
        )
    )
    # lexsort is stable: each case keeps its rows in computation order.
    return raw.iloc[order].reset_index(drop=True)
