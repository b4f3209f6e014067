"""Worker processes: each backend runs in a spawned process of its own.

A framework that segfaults, calls ``os._exit``, raises or hangs takes down only its worker:
the parent turns that into a ``crashed`` result with the reason (signal, exit code,
exception text or "timed out after N s"), starts a fresh worker and goes on. Workers are
spawned, never forked, so no framework state from the parent leaks in, and a worker
imports its framework once, when it starts. Healthy workers are kept warm between runs of
one process (a test session calls ``run`` many times) and stopped when it exits.

The adapter's ``module:Class`` target and ``sys.path`` are resolved in the parent and
handed to the worker, so adapters registered at run time (tests, plugins) work there too.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from typing import Any

from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.run import budget, determinism, fingerprint
from harness.run.trace import Trace
from harness.verdict.status import Status

# A sane bound for one case on one backend; the largest cases in cases/ take a few seconds.
DEFAULT_TIMEOUT = 300.0
# Importing a framework under load (several workers starting at once) can take a while.
STARTUP_TIMEOUT = 300.0
_STOP_GRACE = 5.0  # seconds to wait for a killed or dying worker process to be reaped


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a fresh process needs to build one adapter."""

    backend: str
    target: str  # "module:Class"
    sys_path: tuple[str, ...]


@dataclass
class CaseResult:
    """What a worker sends back for one case (``status``: ok, crashed or skipped)."""

    status: Status
    detail: str = ""
    trace: Trace | None = None


@dataclass
class Ready:
    """A worker's first message: its adapter is built; or why it could not be."""

    version: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def worker_sys_path() -> tuple[str, ...]:
    """This process's ``sys.path`` made absolute, led by the folder this harness came from.

    A relative entry ("" for the working directory) would mean another folder if the
    working directory changes, and the worker must import this very harness.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    entries = [root, *(os.path.abspath(entry or os.curdir) for entry in sys.path)]
    return tuple(dict.fromkeys(entries))


class WorkerDied(Exception):
    """The worker process ended without answering; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# -- the worker process -------------------------------------------------------------------


def _worker_main(
    spec: WorkerSpec,
    conn: multiprocessing.connection.Connection,
    lifeline: multiprocessing.connection.Connection,
    parent: int,
    death_signal: bool,
) -> None:
    """Entry point of a worker: build the adapter once, then run cases until told to stop."""
    _die_with_parent(lifeline, parent, death_signal)
    # The parent decides what an interrupt means; a terminal's Ctrl-C reaches every process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.dup2(2, 1)  # framework chatter on stdout would mix into the printed summary table
    sys.path[:] = list(spec.sys_path)
    determinism.apply_environment()
    try:
        module_name, _, class_name = spec.target.partition(":")
        backend = getattr(importlib.import_module(module_name), class_name)()
        version = backend.version()
    except Exception as exc:
        conn.send(Ready(error=f"could not build the adapter {spec.target}: {_describe(exc)}"))
        return
    # What the harness set, what the frameworks and the adapter report back (for run.json).
    conn.send(Ready(version=version, settings=fingerprint.backend_settings(backend)))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            return
        if message is None:
            return
        case, inputs, estimate = message
        result = _run_case(backend, case, inputs, estimate)
        try:
            conn.send(result)
        except Exception as exc:  # a trace holding something unpicklable (a framework tensor)
            conn.send(
                CaseResult(Status.CRASHED, f"result could not be sent back: {_describe(exc)}")
            )


# linux/prctl.h
_PR_SET_PDEATHSIG = 1


def _die_with_parent(
    lifeline: multiprocessing.connection.Connection, parent: int, death_signal: bool
) -> None:
    """End this worker the moment its parent dies, even by SIGKILL, whatever it is running.

    Two mechanisms, because a parent killed outright runs no cleanup and a worker left
    behind is no longer bound by ``--timeout``:

    - on Linux, the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``). It
      fires when the *thread* that started the worker ends, so it is asked for only when
      the worker was started from the main thread (``death_signal``). If the parent died
      before the request, nothing would be sent: the worker checks that its parent is
      still the process that started it;
    - everywhere, a thread waits on ``lifeline``, a pipe whose other end only the parent
      holds: when the parent dies the pipe reads as closed, and the thread ends the
      process (it needs the interpreter lock, which a framework's C code releases
      while it computes).
    """
    if death_signal and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the lifeline still holds
    if os.getppid() != parent:
        os._exit(_ORPHANED)
    threading.Thread(target=_watch, args=(lifeline,), name="lifeline", daemon=True).start()


_ORPHANED = 71  # exit status of a worker that found its parent gone


def _watch(lifeline: multiprocessing.connection.Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()  # the parent never sends: this returns only when its end closes
    os._exit(_ORPHANED)


def _run_case(backend: Any, case: Case, inputs: Inputs, estimate: int | None) -> CaseResult:
    limit = _limit_address_space(estimate)
    try:
        reason = backend.unsupported_reason(case)
        if reason:
            return CaseResult(Status.SKIPPED, reason)
        return CaseResult(Status.OK, trace=backend.run(case, inputs))
    except MemoryError as exc:
        return CaseResult(Status.CRASHED, f"{memory_limit_note(limit)}: {_describe(exc)}")
    except Exception as exc:  # any failure inside an adapter is a result, not the end of the run
        detail = _describe(exc)
        if limit is not None and "alloc" in detail.lower():  # torch: "can't allocate memory"
            detail += f" ({memory_limit_note(limit)})"
        return CaseResult(Status.CRASHED, detail)
    finally:
        _limit_address_space(None)


_UNLIMITED: tuple[int, int] | None = None  # this worker's own RLIMIT_AS, before any case


def _limit_address_space(estimate: int | None) -> int | None:
    """Run the next case under ``RLIMIT_AS`` (harness.run.budget.address_space_limit), or
    with ``None`` restore the worker's own limit; the limit set, or None where there is none.

    Only the soft limit moves, so it can be raised again after the case.
    """
    global _UNLIMITED
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    if _UNLIMITED is None:
        _UNLIMITED = resource.getrlimit(resource.RLIMIT_AS)
    soft, hard = _UNLIMITED
    current = budget.address_space()
    if estimate is None or current is None:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        return None
    limit = budget.address_space_limit(current, estimate)
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            limit = min(limit, bound)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def memory_limit_note(limit: int | None) -> str:
    shown = budget.format_size(limit) if limit else "its"
    return f"memory limit: the case ran past the worker's address-space limit of {shown}"


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


# -- the parent's handle on one worker ----------------------------------------------------


class Worker:
    """One live worker process and the parent's end of its pipe."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        # Only this process holds the write end: the worker sees it close when we die.
        child_lifeline, self.lifeline = context.Pipe(duplex=False)
        main_thread = threading.current_thread() is threading.main_thread()
        self.process: SpawnProcess = context.Process(
            target=_worker_main,
            args=(spec, child_conn, child_lifeline, os.getpid(), main_thread),
            name=f"crossgrad-{spec.backend}",
            daemon=True,
        )
        # The child bootstraps from the parent's sys.path before any of our code runs.
        saved = sys.path[:]
        sys.path[:] = list(spec.sys_path)
        try:
            self.process.start()
        finally:
            sys.path[:] = saved
        child_conn.close()
        child_lifeline.close()
        _LIVE.add(self)
        self.ready: Ready | None = None
        self.deadline = time.monotonic() + STARTUP_TIMEOUT
        self.timeout = STARTUP_TIMEOUT

    def submit(self, case: Case, inputs: Inputs, timeout: float, estimate: int | None) -> None:
        """Send the next case; ``estimate`` (bytes) sets its address-space limit, None none."""
        self.conn.send((case, inputs, estimate))
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def overdue(self) -> bool:
        return self.deadline <= time.monotonic()

    def receive(self) -> Any:
        """The worker's next message; raises ``WorkerDied`` if it ended instead."""
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            pass
        self.process.join(_STOP_GRACE)
        self.close()
        raise WorkerDied(_death_reason(self.process.exitcode))

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_STOP_GRACE)
        self.close()

    def close(self) -> None:
        self.conn.close()
        self.lifeline.close()
        _LIVE.discard(self)


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker killed by {name}"
    return f"worker exited with code {exitcode}"


def wait(workers: list[Worker]) -> list[Worker]:
    """The workers with a message (or an ended process), waiting until the nearest deadline."""
    if not workers:
        return []
    timeout = max(0.0, min(w.deadline for w in workers) - time.monotonic())
    handles: list[Any] = [w.conn for w in workers] + [w.process.sentinel for w in workers]
    ready = set(multiprocessing.connection.wait(handles, timeout))
    return [w for w in workers if w.conn in ready or w.process.sentinel in ready]


# -- warm workers kept between runs of one process ----------------------------------------

_LIVE: set[Worker] = set()
_IDLE: dict[WorkerSpec, list[Worker]] = {}


def acquire(spec: WorkerSpec) -> Worker:
    """A warm idle worker for ``spec`` if there is one, else a newly spawned one."""
    idle = _IDLE.get(spec, [])
    while idle:
        worker = idle.pop()
        if worker.process.is_alive():
            return worker
        worker.close()
    return Worker(spec)


def release(worker: Worker) -> None:
    """Keep a healthy worker for the next run in this process."""
    _IDLE.setdefault(worker.spec, []).append(worker)


def idle_workers() -> Iterator[Worker]:
    for workers in _IDLE.values():
        yield from workers


def kill_all() -> None:
    """Kill every worker at once (interrupts, and before an immediate exit)."""
    for worker in list(_LIVE):
        if worker.process.is_alive():
            worker.process.kill()
    for worker in list(_LIVE):
        worker.process.join(_STOP_GRACE)
        worker.close()
    _IDLE.clear()


@atexit.register
def stop_idle() -> None:
    """End the warm workers (a later run starts fresh ones).

    They are killed rather than asked to exit: an idle worker holds nothing worth
    saving, and a framework's own teardown can take seconds.
    """
    idle = list(idle_workers())
    _IDLE.clear()
    for worker in idle:
        if worker.process.is_alive():
            worker.process.kill()
    for worker in idle:
        worker.process.join(_STOP_GRACE)
        worker.close()
