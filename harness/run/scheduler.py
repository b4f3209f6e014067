"""Runs the cases of several backends at once, one worker process per backend.

Each backend is a ``Lane``: its cases in order, the worker running them, the outcomes so
far. The ``Scheduler`` keeps up to ``jobs`` lanes busy and waits on all their workers at
once, so the run's wall time approaches the slowest backend's rather than the sum. A
worker that dies or overruns its deadline costs only the case it was running: that case
is ``crashed`` with the reason and the lane goes on in a fresh worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from backends import registry
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.errors import BackendUnavailable, UnknownBackend
from harness.run import budget, workers
from harness.run.outcome import Outcome, Progress
from harness.run.workers import CaseResult, Ready, Worker, WorkerDied, WorkerSpec
from harness.verdict.status import Status


def worker_spec(backend: str) -> WorkerSpec:
    """How a fresh process builds ``backend``'s adapter (resolved here, in the parent)."""
    return WorkerSpec(backend, registry.entries()[backend].target, workers.worker_sys_path())


def default_jobs(n_backends: int) -> int:
    """One worker per core, at most one per backend.

    Importing a framework and running small cases are CPU-bound: with more workers than
    cores the slowest backend, which decides the run's wall time, shares its core with the
    others (the seed case on four backends, 2 cores: 9.5 s with 4 jobs, 7.5 s with 2).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(n_backends, cores or 1))


def start_order(backends: list[str]) -> list[str]:
    """The first backend (a run lists its reference first: every comparison, and so
    ``--fail-fast``, waits for it), then the others slowest-starting first
    (``Backend.startup_seconds``), ties in the given order."""

    def startup(name: str) -> float:
        try:
            return float(registry.load_class(name).startup_seconds)
        except (BackendUnavailable, UnknownBackend):
            return 0.0  # its lane reports it at once

    return backends[:1] + sorted(backends[1:], key=startup, reverse=True)


def prestart(backends: list[str], jobs: int | None = None) -> None:
    """Start the workers of the lanes that run first, so they import their frameworks while
    this process loads the rest of the harness; the lanes then take them from the warm pool.

    A framework import is the longest part of a small run (TensorFlow takes seconds), and
    nothing in it depends on the cases. Unavailable backends are left to the lanes, which
    report them as skipped.
    """
    for name in start_order(backends)[: jobs or default_jobs(len(backends))]:
        try:
            if registry.load_class(name).unavailable_reason():
                continue
        except BackendUnavailable:
            continue
        workers.release(workers.acquire(worker_spec(name)))


class Lane:
    """One backend's way through the cases: which is next, and in which worker."""

    def __init__(self, name: str, scheduler: Scheduler) -> None:
        self.name = name
        self.s = scheduler
        self.outcomes: list[Outcome] = []
        self.worker: Worker | None = None
        self.spec: WorkerSpec | None = None
        self.version = ""
        self.done = False

    @property
    def position(self) -> int:
        return len(self.outcomes)

    def start(self) -> None:
        """Resolve the adapter here, in the parent, and start on the first case."""
        try:
            cls = registry.load_class(self.name)
            reason = cls.unavailable_reason()
        except BackendUnavailable as exc:
            reason = exc.reason
        if reason:
            self._finish_all(Status.SKIPPED, f"backend unavailable: {reason}")
            return
        self.version = cls.version()
        self.spec = worker_spec(self.name)
        self._advance()

    def _advance(self) -> None:
        """Skip excluded cases, then hand the next case to a worker (starting one if needed)."""
        assert self.spec is not None
        cases = self.s.cases
        while self.position < len(cases):
            case = cases[self.position]
            reason = case.backends.excludes(self.name) or self.s.refused.get(case.name)
            if not reason:
                break
            self._record(case, Status.SKIPPED, reason)
        else:
            self._release()
            self.done = True
            return
        if self.worker is None:
            self.worker = workers.acquire(self.spec)
        if self.worker.ready is not None:  # a warm worker; a new one announces itself first
            self.s.settings[self.name] = self.worker.ready.settings
            try:
                estimate = budget.worker_bytes(case)  # sets the case's address-space limit
                self.worker.submit(case, self.s.inputs[case.name], self.s.timeout, estimate)
            except OSError:  # it died while idle: start afresh
                self.worker.kill()
                self.worker = workers.Worker(self.spec)

    def on_message(self) -> None:
        assert self.worker is not None
        starting = self.worker.ready is None
        try:
            message = self.worker.receive()
        except WorkerDied as died:
            self.worker = None
            if starting:
                self._finish_all(Status.CRASHED, f"worker failed to start: {died.reason}")
            else:
                reason = died.reason
                if reason.endswith("SIGABRT"):  # C++ code aborts when an allocation fails
                    reason += " (under an address-space limit: a memory limit may have ended it)"
                self._record(self._current(), Status.CRASHED, reason)
                self._advance()
            return
        if isinstance(message, Ready):
            self._on_ready(message)
        elif isinstance(message, CaseResult):
            self._record(self._current(), message.status, message.detail, message.trace)
            self._advance()

    def _on_ready(self, ready: Ready) -> None:
        assert self.worker is not None
        if ready.error:
            self.worker.kill()
            self.worker = None
            self._finish_all(Status.CRASHED, ready.error)
            return
        self.worker.ready = ready
        self._advance()

    def on_timeout(self) -> None:
        assert self.worker is not None
        starting = self.worker.ready is None
        limit = self.worker.timeout
        self.worker.kill()
        self.worker = None
        if starting:
            self._finish_all(Status.CRASHED, f"worker did not start within {limit:g} s")
        else:
            self._record(self._current(), Status.CRASHED, f"timed out after {limit:g} s")
            self._advance()

    def abort(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None

    def _current(self) -> Case:
        return self.s.cases[self.position]

    def _record(self, case: Case, status: Status, detail: str, trace: Any = None) -> None:
        outcome = Outcome(case, self.name, self.version, trace=trace, status=status, detail=detail)
        self.outcomes.append(outcome)
        self.s.report(outcome, self.position)

    def _finish_all(self, status: Status, detail: str) -> None:
        for case in self.s.cases[self.position :]:
            self._record(case, status, detail)
        self.done = True

    def _release(self) -> None:
        if self.worker is not None:
            workers.release(self.worker)
            self.worker = None


class Scheduler:
    """Every backend's lane, up to ``jobs`` at once, until every case has an outcome."""

    def __init__(
        self,
        cases: list[Case],
        inputs: dict[str, Inputs],
        progress: Progress | None,
        timeout: float,
        on_outcome: Callable[[Outcome], None] | None,
        refused: Mapping[str, str] | None = None,
    ) -> None:
        self.cases = cases
        self.inputs = inputs
        self.progress = progress
        self.timeout = timeout
        self.on_outcome = on_outcome
        # Cases the run's budget refused (harness.run.budget), with why: skipped, never sent.
        self.refused = refused or {}
        self.settings: dict[str, dict[str, Any]] = {}  # determinism settings per backend

    def report(self, outcome: Outcome, done: int) -> None:
        if self.on_outcome:
            self.on_outcome(outcome)
        if self.progress:
            self.progress(outcome.backend, done, len(self.cases), outcome.case.name)

    def run(self, backends: list[str], jobs: int) -> dict[str, list[Outcome]]:
        lanes = {name: Lane(name, self) for name in backends}
        waiting = [lanes[name] for name in start_order(backends)]
        active: list[Lane] = []
        try:
            while waiting or active:
                while waiting and len(active) < jobs:
                    lane = waiting.pop(0)
                    lane.start()
                    if not lane.done:
                        active.append(lane)
                if not active:
                    continue
                busy = [lane.worker for lane in active if lane.worker is not None]
                answered = workers.wait(busy)
                for lane in active:
                    if any(lane.worker is worker for worker in answered):
                        lane.on_message()
                for lane in active:
                    if lane.worker is not None and lane.worker.overdue():
                        lane.on_timeout()
                active = [lane for lane in active if not lane.done]
        finally:
            for lane in active:  # only on an interrupt or an exception from on_outcome
                lane.abort()
        return {name: lane.outcomes for name, lane in lanes.items()}
