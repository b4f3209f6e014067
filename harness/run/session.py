"""One ``crossgrad run`` as it happens: results streamed to disk, stopped early, marked.

The cases run in chunks of ``CHUNK_CASES`` (harness/run/pipeline.py compares and writes each
before the next starts). Every outcome, and every vectorized batch's rows, is appended to
``results.partial.csv`` in the folder the run writes (the fresh folder beside ``--out``,
harness/report/folder.py) the moment it is known, so even a run killed outright (SIGKILL,
power cut of the parent) leaves its raw results there. ``run.json`` says whether the
report is complete: it is written with ``"complete": false`` when the run starts and
rewritten at the end. A run stopped by a signal or by ``--fail-fast`` still writes the full
report of what finished, with one ``skipped`` row ("not run: ...") for every case × backend
pair it did not reach.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import pandas as pd

from backends import registry
from harness.cases.model import Case
from harness.errors import BackendUnavailable
from harness.report.folder import MARK, RUN_FILE, now
from harness.report.writer import atomic_write_text
from harness.run import budget as budgets
from harness.run import determinism
from harness.run.interrupts import Interrupted, SignalGuard
from harness.run.outcome import Outcome
from harness.run.runner import Progress, outcomes_frame, run
from harness.run.vectorize import group_sizes
from harness.run.vectorize import run as vectorized_run
from harness.verdict.compare import compare
from harness.verdict.status import FAILING, Status

# Cases run, compared and written at a time: memory stays bounded by this, not by the run.
CHUNK_CASES = 2_000
FAIL_FAST = "stopped by --fail-fast at the first failure"
PARTIAL_FILE = "results.partial.csv"
NOT_RUN = "not run"


class StopRun(Exception):
    """Raised from the outcome hook to end a run early (``--fail-fast``)."""


class RunSession:
    """Runs the cases chunk by chunk, streaming each outcome, and knows whether the run completed."""

    def __init__(
        self,
        out: Path,
        cases: list[Case],
        backends: list[str],
        reference: str,
        *,
        fail_fast: bool = False,
        chunk_cases: int = CHUNK_CASES,
        budget: budgets.Budget | None = None,
    ) -> None:
        self.out = out
        self.cases = cases
        self.backends = backends
        self.reference = reference
        self.fail_fast = fail_fast
        self.chunk_cases = chunk_cases
        self.budget = budget or budgets.from_environment()
        # Cases that do not fit the budget, with why: skipped rows, never run.
        self.refused = budgets.refusals(cases, len(backends), self.budget)
        self.finished = 0  # case × backend pairs with a result
        self.stopped: str | None = None  # why the run ended early
        self.status: int | None = None  # exit status forced by the stop
        self.settings: dict[str, Any] = {}
        self.rows: int | None = None  # results rows written, once the report is
        self.options: dict[str, Any] = {}
        # Outcomes of the chunk running now, by case name then backend: all a stop needs.
        self._outcomes: dict[str, dict[str, Outcome]] = {}
        self._judged: set[tuple[str, str]] = set()
        self._versions: dict[str, str] = {}
        self._stream: TextIO | None = None
        self._guard = SignalGuard()
        self._started = now()

    def __enter__(self) -> RunSession:
        self._guard.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._close_stream()
        self._guard.__exit__(kind, error, trace)

    @property
    def incomplete(self) -> str | None:
        """Why the report is incomplete, or None when every pair ran."""
        if self.stopped is None:
            return None
        return f"{self.stopped}; {self.finished} of {self.total} case × backend pairs finished"

    @property
    def total(self) -> int:
        return len(self.cases) * len(self.backends)

    def chunks(
        self, progress: Progress | None = None, *, vectorize: bool = False, **options: Any
    ) -> Iterator[tuple[list[Case], pd.DataFrame]]:
        """Each chunk's cases and raw results table, in case order, as each chunk finishes.

        After a stop, the rest of the chunk and every later chunk come back as ``not run``
        rows. While the caller handles a chunk (compares it, writes it), a signal is held
        and stops the run before the next chunk starts. ``vectorize`` batches cases that
        differ only in values (harness/run/vectorize.py).
        """
        self.options = options
        # Held throughout, but while a chunk runs: a stop lands between two chunks.
        with self._guard.holding():
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                self._write_run_file("running")
                self._stream = _create(self.out / PARTIAL_FILE)
                sizes = group_sizes(self.cases) if vectorize else None
                bounds = budgets.chunk_bounds(
                    self.cases, len(self.backends), self.chunk_cases, self.budget, self.refused
                )
                for start, end in bounds:
                    chunk = self.cases[start:end]
                    raw = None
                    if self.stopped is None:
                        raw = self._run_chunk(chunk, start, progress, sizes, **options)
                    if raw is None:
                        self._guard.exit_at_once()  # stopped: a signal now ends the process
                        raw = self._partial_frame(chunk)
                    yield chunk, raw
                    if self.stopped is None:
                        self._write_run_file("running")  # pairs_finished so far
                    self._outcomes.clear()
                    self._judged.clear()
                try:
                    self._guard.raise_pending()  # came while the last chunk was written
                except Interrupted as exc:
                    self.stop(f"interrupted by {exc.signal_name}", exc.status)
            finally:
                self._guard.exit_at_once()
                self._close_stream()

    def stop(self, reason: str, status: int = 1) -> None:
        """End the run after the chunk at hand: later chunks are reported as not run."""
        if self.stopped is None:
            self.stopped, self.status = reason, status

    def _run_chunk(
        self,
        chunk: list[Case],
        start: int,
        progress: Progress | None,
        sizes: Mapping[Hashable, int] | None,
        **options: Any,
    ) -> pd.DataFrame | None:
        """The chunk's raw results, or None when the run stopped during it."""
        reporter = _ChunkProgress(progress, start, len(self.cases)) if progress else None
        try:
            with self._guard.releasing():
                raw = self._run_cases(chunk, reporter, sizes, **options)
        except Interrupted as exc:
            self.stop(f"interrupted by {exc.signal_name}", exc.status)
        except StopRun as exc:
            self.stop(str(exc))
        if self.stopped is not None:
            self.finished += sum(len(mine) for mine in self._outcomes.values())
            return None
        self.settings.update(raw.attrs.get("determinism", {}))
        self.finished += len(chunk) * len(self.backends)
        if reporter:
            reporter.chunk_done(self.backends, start + len(chunk), chunk[-1].name)
        return raw

    def _run_cases(
        self,
        chunk: list[Case],
        reporter: Progress | None,
        sizes: Mapping[Hashable, int] | None,
        **options: Any,
    ) -> pd.DataFrame:
        refused = {c.name: self.refused[c.name] for c in chunk if c.name in self.refused}
        if sizes is not None:
            return vectorized_run(
                chunk,
                self.backends,
                reporter,
                sizes=sizes,
                on_outcome=self.record,
                on_rows=self._stream_rows,
                refused=refused,
                **options,
            )
        return run(
            chunk, self.backends, reporter, on_outcome=self.record, refused=refused, **options
        )

    def record(self, outcome: Outcome) -> None:
        """Stream one outcome to disk; under ``--fail-fast``, stop at the first failure."""
        self._outcomes.setdefault(outcome.case.name, {})[outcome.backend] = outcome
        if self._stream is not None:
            self._stream_rows(outcomes_frame([outcome]))
        if self.fail_fast:
            failure = self._first_failure(outcome.case)
            if failure:
                raise StopRun(f"{FAIL_FAST}: {failure}")

    def _stream_rows(self, rows: pd.DataFrame) -> None:
        if self._stream is not None:
            header = self._stream.tell() == 0
            rows.to_csv(self._stream, index=False, header=header, float_format="%.17g")
            self._stream.flush()

    def finish(self, rows: int | None = None) -> None:
        """Mark the report complete (or say why not); the streamed copy is then redundant.

        ``rows`` is the number of rows the results tables hold: a reader checks it (a table
        cut short at a row boundary reads as a whole one otherwise).
        """
        state = "complete" if self.stopped is None else "stopped"
        self.rows = rows
        self._write_run_file(state)
        (self.out / PARTIAL_FILE).unlink(missing_ok=True)

    def exit_status(self, status: int) -> int:
        """An interrupted run exits 128 + signal; a fail-fast stop exits 1."""
        return self.status if self.status is not None else status

    def _first_failure(self, case: Case) -> str | None:
        """The first failing pair of ``case`` once its reference is in, or None."""
        mine = self._outcomes.get(case.name, {})
        ref = mine.get(self.reference)
        for outcome in mine.values():
            if outcome.status == Status.CRASHED:
                return f"{case.name} on {outcome.backend} crashed: {outcome.detail}"
        if ref is None or ref.trace is None:
            return None
        fresh = [o for o in mine.values() if (case.name, o.backend) not in self._judged]
        if not fresh:
            return None
        self._judged.update((case.name, o.backend) for o in fresh)
        others = [o for o in mine.values() if o is not ref]
        table = compare(outcomes_frame([ref, *others]), [case], self.reference)
        failing = table[table["status"].isin(FAILING)]
        if failing.empty:
            return None
        row = failing.iloc[0]
        return f"{case.name} on {row['backend']} is {row['status']}"

    def _partial_frame(self, chunk: list[Case]) -> pd.DataFrame:
        """Finished outcomes in backend then case order, and a ``not run`` row for the rest."""
        rows = []
        for backend in self.backends:
            if backend not in self._versions:
                self._versions[backend] = _version(backend)
            for case in chunk:
                outcome = self._outcomes.get(case.name, {}).get(backend)
                rows.append(
                    outcome
                    or Outcome(
                        case,
                        backend,
                        self._versions[backend],
                        status=Status.SKIPPED,
                        detail=f"{NOT_RUN}: {self.stopped}",
                    )
                )
        return outcomes_frame(rows)

    def _write_run_file(self, state: str) -> None:
        record = {
            **MARK,
            "command": "run",
            "complete": state == "complete",
            "state": state,
            "reason": self.stopped or "",
            "started": self._started,
            "finished": now() if state != "running" else None,
            "cases": len(self.cases),
            "backends": self.backends,
            "reference": self.reference,
            "pairs_total": self.total,
            "pairs_finished": self.finished,
            "rows": self.rows,
            "options": {k: v for k, v in self.options.items() if k in ("timeout", "jobs")},
            "limits": {
                "memory_bytes": self.budget.memory,
                "output_bytes": self.budget.output,
                "refused_cases": len(self.refused),
            },
            "python": platform.python_version(),
            "determinism": {
                "environment": determinism.apply_environment(),
                "backends": {  # in run order, whichever worker reported first
                    b: self.settings[b]
                    for b in dict.fromkeys([*self.backends, *self.settings])
                    if b in self.settings
                },
            },
        }
        atomic_write_text(self.out / RUN_FILE, json.dumps(record, indent=2, default=str) + "\n")

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class _ChunkProgress:
    """Progress of a chunk as progress through the whole run: done counts never go back."""

    def __init__(self, progress: Progress, start: int, total: int) -> None:
        self.progress = progress
        self.start = start
        self.total = total
        self.reported: dict[str, int] = {}

    def __call__(self, backend: str, done: int, _: int, case: str) -> None:
        self._report(backend, self.start + done, case)

    def chunk_done(self, backends: list[str], done: int, case: str) -> None:
        for backend in backends:
            self._report(backend, done, case)

    def _report(self, backend: str, done: int, case: str) -> None:
        if done > self.reported.get(backend, -1):
            self.reported[backend] = done
            self.progress(backend, done, self.total, case)


def _create(path: Path) -> TextIO:
    """A new file at ``path`` for writing: never an existing file, never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o666), "w", encoding="utf-8")


def _version(backend: str) -> str:
    try:
        return registry.load_class(backend).version()
    except BackendUnavailable:
        return ""
