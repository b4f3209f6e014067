"""What one backend did with one case: the unit the runner collects and streams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.cases.model import Case
from harness.run.trace import Trace

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
