"""Ctrl-C and SIGTERM during a run: the first one stops the run, a second one exits at once.

While cases run, the first SIGINT or SIGTERM raises ``Interrupted`` in the main thread,
so the run stops and the report of everything finished so far is written. Once that
writing has begun (or after a run that finished), any further signal ends the process
immediately: the results streamed so far are already on disk.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType

from harness import workers

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The run was stopped by a signal; ``status`` is the shell's 128 + signal number."""

    def __init__(self, signal_name: str, status: int) -> None:
        self.signal_name = signal_name
        self.status = status
        super().__init__(f"interrupted by {signal_name}")


class SignalGuard:
    """Installs the handlers for the duration of a ``with`` block (main thread only)."""

    def __init__(self) -> None:
        self.raising = True
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def exit_at_once(self) -> None:
        """From now on a signal ends the process without unwinding."""
        self.raising = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        status = 128 + signum
        if self.raising:
            self.raising = False  # the next signal is the "second Ctrl-C"
            raise Interrupted(signal.Signals(signum).name, status)
        workers.kill_all()
        os._exit(status)
