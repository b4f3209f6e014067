"""Ctrl-C and SIGTERM during a run: the first one stops the run, a second one exits at once.

While cases run, the first SIGINT or SIGTERM raises ``Interrupted`` in the main thread,
so the run stops and the report of everything finished so far is written. Once that
writing has begun (or after a run that finished), any further signal ends the process
immediately: the results streamed so far are already on disk.

A run written chunk by chunk ``holds`` signals while it writes a chunk's results: the
first signal then stops the run when that chunk is on disk, not halfway through it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

from harness.run import workers

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
        self._held = False
        self._pending: Interrupted | None = None
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

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Within the block the first signal is kept for ``raise_pending``, not raised."""
        held, self._held = self._held, True
        try:
            yield
        finally:
            self._held = held

    @contextmanager
    def releasing(self) -> Iterator[None]:
        """Within a ``holding`` block, a block where signals raise again (a held one first)."""
        held, self._held = self._held, False
        try:
            self.raise_pending()
            yield
        finally:
            self._held = held

    def raise_pending(self) -> None:
        """Raise the ``Interrupted`` of a signal that came while signals were held."""
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending

    def exit_at_once(self) -> None:
        """From now on a signal ends the process without unwinding."""
        self.raising = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        status = 128 + signum
        if self.raising:
            self.raising = False  # the next signal is the "second Ctrl-C"
            interrupted = Interrupted(signal.Signals(signum).name, status)
            if self._held:
                self._pending = interrupted
                return
            raise interrupted
        workers.kill_all()
        os._exit(status)
