"""The harness's own exceptions: what was expected, what was received, and where."""

from __future__ import annotations

from dataclasses import dataclass


class CrossgradError(Exception):
    """Base of every error the harness raises on purpose; the CLI turns these into exit 2."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input file, located to the character."""

    file: str
    line: int  # 1-based; 0 when the whole file is at fault
    column: int  # 1-based
    key: str  # dotted key path, "" for the document itself
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class CaseError(CrossgradError):
    """One or more problems in case files, all reported at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(CrossgradError):
    """A command line that cannot be carried out (bad option, missing path, ...)."""


class UnknownBackend(CrossgradError):
    """A backend name that no built-in adapter or installed plugin provides."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(
            f"unknown backend {name!r}. Expected one of: {', '.join(sorted(known))}. "
            f"Received: {name!r}"
        )


class BackendUnavailable(CrossgradError):
    """A known backend whose framework is not installed (or fails to import)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"backend {name!r} is unavailable: {reason}")


class ResultsError(CrossgradError):
    """A results file that cannot be read back (missing, wrong columns, not a results table)."""
