"""What one backend did with one case: the unit the runner collects and streams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.cases.model import Case
from harness.run.trace import Trace
from harness.verdict.status import Status

Progress = Callable[[str, int, int, str], None]  # backend, done, total, case name


@dataclass
class Outcome:
    """What one backend did with one case: a trace, or why there is none."""

    case: Case
    backend: str
    version: str
    trace: Trace | None = None
    status: Status = Status.OK  # ok (ran), crashed or skipped
    detail: str = ""
