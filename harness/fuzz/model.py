"""What a fuzz campaign is given and what it hands back (harness/fuzz/campaign.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.cases.model import DTYPES
from harness.fuzz.signature import Kind, Signature
from harness.verdict.known import KnownDivergence


@dataclass(frozen=True)
class Options:
    seed: int
    budget: int | None  # cases
    seconds: float | None
    backends: list[str]  # the reference first
    reference: str
    known: list[KnownDivergence]
    timeout: float
    jobs: int | None
    dtypes: Sequence[str] = DTYPES
    shrink_seconds: float = 120.0  # per finding, from its first failing family on


@dataclass
class Observation:
    """One generated case that failed on one backend."""

    family: str
    variant: int
    kind: Kind
    knobs: Mapping[str, Any]


@dataclass
class Finding:
    signature: Signature
    case: dict[str, Any]  # the minimal case's mapping, named
    hits: int = 0  # generated cases of this kind with these knob values
    shrunk: str = ""  # how it was shrunk, or why not
    first_divergence: str = ""
    off_oracle: str = ""


@dataclass
class Outcome:
    """What ``campaign`` hands back to the command line."""

    cases_run: int
    cases_cached: int
    findings: list[Finding]
    explained: int  # generated pairs explained by known entries
    incomplete: str | None
    seconds: float
    rows: int = 0
    stop_status: int | None = None  # the exit status a signal asks for (130 for Ctrl-C)
    after_overflow: int = 0  # failing pairs whose divergence came after the reference's overflow
