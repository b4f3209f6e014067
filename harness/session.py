"""One ``crossgrad run`` as it happens: results streamed to disk, stopped early, marked.

Every outcome is appended to ``results.partial.csv`` in the report folder the moment it
is known, so even a run killed outright (SIGKILL, power cut of the parent) leaves its raw
results. ``run.json`` says whether the report is complete: it is written with
``"complete": false`` when the run starts and rewritten at the end. A run stopped by a
signal or by ``--fail-fast`` still writes the full report of what finished, with one
``skipped`` row ("not run: ...") for every case × backend pair it did not reach.
"""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import pandas as pd

from harness import determinism, registry
from harness.cases import Case
from harness.compare import FAILING, compare
from harness.errors import BackendUnavailable
from harness.interrupts import Interrupted, SignalGuard
from harness.outcome import Outcome
from harness.report import atomic_write_text
from harness.runner import Progress, outcomes_frame, run
from harness.vectorize import run as vectorized_run

RUN_FILE = "run.json"
PARTIAL_FILE = "results.partial.csv"
NOT_RUN = "not run"


class StopRun(Exception):
    """Raised from the outcome hook to end a run early (``--fail-fast``)."""


class RunSession:
    """Runs the cases, streaming each outcome, and knows whether the run completed."""

    def __init__(
        self,
        out: Path,
        cases: list[Case],
        backends: list[str],
        reference: str,
        *,
        fail_fast: bool = False,
    ) -> None:
        self.out = out
        self.cases = cases
        self.backends = backends
        self.reference = reference
        self.fail_fast = fail_fast
        self.outcomes: dict[tuple[str, str], Outcome] = {}
        self.stopped: str | None = None  # why the run ended early
        self.status: int | None = None  # exit status forced by the stop
        self.settings: dict[str, Any] = {}
        self.options: dict[str, Any] = {}
        self._judged: set[tuple[str, str]] = set()
        self._stream: TextIO | None = None
        self._guard = SignalGuard()
        self._started = _now()

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
        return f"{self.stopped}; {len(self.outcomes)} of {self.total} case × backend pairs finished"

    @property
    def total(self) -> int:
        return len(self.cases) * len(self.backends)

    def run(
        self, progress: Progress | None = None, *, vectorize: bool = False, **options: Any
    ) -> pd.DataFrame:
        """The raw results table: of every pair, or of those finished before a stop.

        ``vectorize`` batches cases that differ only in values (harness/vectorize.py); a
        batch's rows reach the report, not the per-outcome stream.
        """
        self.options = options
        run_cases = vectorized_run if vectorize else run
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_run_file("running")
            self._stream = (self.out / PARTIAL_FILE).open("w", encoding="utf-8")
            raw = run_cases(self.cases, self.backends, progress, on_outcome=self.record, **options)
            self.settings = dict(raw.attrs.get("determinism", {}))
        except Interrupted as exc:
            self.stopped, self.status = f"interrupted by {exc.signal_name}", exc.status
        except StopRun as exc:
            self.stopped, self.status = str(exc), 1
        finally:
            self._guard.exit_at_once()  # from here on, a signal ends the process at once
            self._close_stream()
        if self.stopped is None:
            return raw
        return self._partial_frame()

    def record(self, outcome: Outcome) -> None:
        """Stream one outcome to disk; under ``--fail-fast``, stop at the first failure."""
        self.outcomes[(outcome.case.name, outcome.backend)] = outcome
        if self._stream is not None:
            outcomes_frame([outcome]).to_csv(
                self._stream, index=False, header=self._stream.tell() == 0, float_format="%.17g"
            )
            self._stream.flush()
        if self.fail_fast:
            failure = self._first_failure(outcome.case)
            if failure:
                raise StopRun(f"stopped by --fail-fast at the first failure: {failure}")

    def finish(self) -> None:
        """Mark the report complete (or say why not); the streamed copy is then redundant."""
        state = "complete" if self.stopped is None else "stopped"
        self._write_run_file(state)
        (self.out / PARTIAL_FILE).unlink(missing_ok=True)

    def exit_status(self, status: int) -> int:
        """An interrupted run exits 128 + signal; a fail-fast stop exits 1."""
        return self.status if self.status is not None else status

    def _first_failure(self, case: Case) -> str | None:
        """The first failing pair of ``case`` once its reference is in, or None."""
        ref = self.outcomes.get((case.name, self.reference))
        mine = [o for (name, _), o in self.outcomes.items() if name == case.name]
        for outcome in mine:
            if outcome.status == "crashed":
                return f"{case.name} on {outcome.backend} crashed: {outcome.detail}"
        if ref is None or ref.trace is None:
            return None
        fresh = [o for o in mine if (case.name, o.backend) not in self._judged]
        if not fresh:
            return None
        self._judged.update((case.name, o.backend) for o in fresh)
        others = [o for o in mine if o is not ref]
        table = compare(outcomes_frame([ref, *others]), [case], self.reference)
        failing = table[table["status"].isin(FAILING)]
        if failing.empty:
            return None
        row = failing.iloc[0]
        return f"{case.name} on {row['backend']} is {row['status']}"

    def _partial_frame(self) -> pd.DataFrame:
        """Finished outcomes in backend then case order, and a ``not run`` row for the rest."""
        rows = []
        for backend in self.backends:
            version = _version(backend)
            for case in self.cases:
                outcome = self.outcomes.get((case.name, backend))
                rows.append(
                    outcome
                    or Outcome(
                        case,
                        backend,
                        version,
                        status="skipped",
                        detail=f"{NOT_RUN}: {self.stopped}",
                    )
                )
        return outcomes_frame(rows)

    def _write_run_file(self, state: str) -> None:
        record = {
            "complete": state == "complete",
            "state": state,
            "reason": self.stopped or "",
            "started": self._started,
            "finished": _now() if state != "running" else None,
            "cases": len(self.cases),
            "backends": self.backends,
            "reference": self.reference,
            "pairs_total": self.total,
            "pairs_finished": len(self.outcomes),
            "options": {k: v for k, v in self.options.items() if k in ("timeout", "jobs")},
            "python": platform.python_version(),
            "determinism": {
                "environment": determinism.apply_environment(),
                "backends": self.settings,
            },
        }
        atomic_write_text(self.out / RUN_FILE, json.dumps(record, indent=2, default=str) + "\n")

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _version(backend: str) -> str:
    try:
        return registry.load_class(backend).version()
    except BackendUnavailable:
        return ""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
