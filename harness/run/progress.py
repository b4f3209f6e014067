"""How far each backend has got: a bar per backend on a terminal, quiet lines elsewhere.

On a terminal every backend has a line of its own, redrawn in place (at most ten times a
second, so a fast backend does not spend its time printing). In a log (CI, a pipe) a
backend prints one line when it finishes, and on a long run a line at most every
``LOG_INTERVAL`` seconds, so a job that is working never looks stuck.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from harness.text import terminal

BAR_WIDTH = 24
REDRAW_INTERVAL = 0.1  # seconds between terminal redraws
LOG_INTERVAL = 30.0  # seconds between progress lines of one backend in a log


class ProgressDisplay:
    """A ``Progress`` callback: ``display(backend, done, total, case)``."""

    def __init__(
        self,
        backends: list[str],
        total: int,
        stream: TextIO,
        *,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.terminal = stream.isatty() if terminal is None else terminal
        self.clock = clock
        self.state: dict[str, tuple[int, int, str]] = {name: (0, total, "") for name in backends}
        self.width = max((len(name) for name in backends), default=0)
        self.drawn = 0  # lines of the block drawn so far on the terminal
        self.last_draw = float("-inf")
        self.last_line: dict[str, float] = {}
        self.finished: set[str] = set()

    def __call__(self, backend: str, done: int, total: int, case: str) -> None:
        if backend not in self.state:  # a backend the run added (never expected, but shown)
            self.width = max(self.width, len(backend))
        self.state[backend] = (done, total, case)
        if self.terminal:
            self._redraw(force=done >= total)
        else:
            self._log(backend, done, total)

    def _redraw(self, force: bool) -> None:
        now = self.clock()
        if not force and now - self.last_draw < REDRAW_INTERVAL:
            return
        self.last_draw = now
        up = f"\x1b[{self.drawn}F" if self.drawn else ""  # back to the block's first line
        lines = [self.bar_line(name) for name in self.state]
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self.drawn = len(lines)

    def bar_line(self, backend: str) -> str:
        done, total, case = self.state[backend]
        filled = BAR_WIDTH * done // total if total else 0
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        count = f"{done}/{total}".rjust(2 * len(str(total)) + 1)
        # The block is redrawn with cursor movements: a name must not move the cursor itself.
        name = terminal(backend)
        return f"  {name:<{self.width}} [{bar}] {count} {terminal(case[:48])}".rstrip()

    def _log(self, backend: str, done: int, total: int) -> None:
        if backend in self.finished:
            return
        now = self.clock()
        if done >= total:
            self.finished.add(backend)
            print(f"  {terminal(backend)}: {total} case{'s' * (total != 1)} done", file=self.stream)
        elif now - self.last_line.setdefault(backend, now) >= LOG_INTERVAL:
            self.last_line[backend] = now
            print(f"  {terminal(backend)}: {done}/{total} cases", file=self.stream)
        else:
            return
        self.stream.flush()
