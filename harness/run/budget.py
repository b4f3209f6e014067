"""What a case will cost before it runs: memory, results rows and disk, against the run's budget.

A case that passes ``validate`` can still ask for more than the machine has (width 64,
batch 256 and 100,000 steps record five billion numbers). Each case is estimated from its
sizes, batch and steps before it runs; one whose estimate does not fit is not run: it gets
one ``skipped`` row per backend whose ``detail`` starts with ``refused:`` and says what it
would need and which limit it exceeds (the run goes on). A case is not approximated or cut
short, since a partial trace would compare as a different case.

Two limits, each an option of ``crossgrad run`` and an environment variable:

- memory (``--memory-limit``, ``CROSSGRAD_MEMORY_LIMIT``, default 4 GiB): what one case
  needs at its peak, in the workers running it at once plus the parent holding its rows;
  the parent also cuts its chunks so that one chunk's rows fit in it;
- output (``--output-limit``, ``CROSSGRAD_OUTPUT_LIMIT``, default 8 GiB): the results files
  of the whole run. Cases are counted in load order; one that would take the run past the
  limit is refused, and a smaller one after it may still fit.

Each worker also runs a case under an address-space limit (``RLIMIT_AS``) of its address
space before the case, plus ``FRAMEWORK_ALLOWANCE``, plus three times the case's worker
estimate (``address_space_limit``): a case the estimate missed is stopped there as a
``crashed`` row whose detail says "memory limit", instead of growing until the kernel's
OOM killer picks a process, perhaps the parent.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.cases.inputs import batch_rows
from harness.cases.model import Case
from harness.errors import UsageError

MEMORY_ENV = "CROSSGRAD_MEMORY_LIMIT"
OUTPUT_ENV = "CROSSGRAD_OUTPUT_LIMIT"
DEFAULT_MEMORY = 4 * 2**30
DEFAULT_OUTPUT = 8 * 2**30
# The parent's memory per results row while a chunk is compared and written: 790 bytes
# measured (9.9 million rows of one case on numpy peaked at 8.0 GB), rounded up.
ROW_BYTES = 1000
# Disk per results row: results.csv 180 B and results.parquet 38 B (the same 9.9 million
# rows), and results.partial.csv, 180 B more until the run ends.
OUTPUT_ROW_BYTES = 400
# A recorded number as it crosses from a worker: float64 (a float32 trace is widened).
VALUE_BYTES = 8
# Address space a framework may add while running one case, beyond the case's own arrays:
# jax's address space grew by 1.5 GB over the 100 cases of cases/ (compiled programs,
# thread stacks, one malloc arena per thread), TensorFlow's by 0.7 GB, torch's by 4 MB.
FRAMEWORK_ALLOWANCE = 4 * 2**30
ALLOWANCE_ENV = "CROSSGRAD_FRAMEWORK_ALLOWANCE"
REFUSED = "refused"

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass(frozen=True)
class Budget:
    """The run's limits, in bytes; ``workers`` is how many run at once (``--jobs``)."""

    memory: int = DEFAULT_MEMORY
    output: int = DEFAULT_OUTPUT
    workers: int = 1


def parse_size(text: str) -> int:
    """``4GiB``, ``4G``, ``500MB``, ``500m`` or plain bytes; binary units either way."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"expected a size such as 4GiB, 500MB or 1000000, got {text!r}")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < 1:
        raise ValueError(f"expected a size above 0, got {text!r}")
    return int(value)


def from_environment(
    memory: int | None = None, output: int | None = None, workers: int = 1
) -> Budget:
    """The budget: the options given, else the environment variables, else the defaults."""
    limits = []
    for given, env, default in (
        (memory, MEMORY_ENV, DEFAULT_MEMORY),
        (output, OUTPUT_ENV, DEFAULT_OUTPUT),
    ):
        if given is None and os.environ.get(env):
            try:
                given = parse_size(os.environ[env])
            except ValueError as exc:
                raise UsageError(f"{env}: {exc}") from None
        limits.append(default if given is None else given)
    return Budget(limits[0], limits[1], max(1, workers))


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _parameters(sizes: Sequence[int]) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def recorded_values(case: Case) -> int:
    """Numbers one backend records for ``case``: its results rows (docs/spec.md §7).

    Per step the hidden layers' outputs, the loss, every gradient and every updated
    parameter; the output before the first update and after the last.
    """
    sizes, batch = case.network.sizes, batch_rows(case)
    per_step = batch * sum(sizes[1:-1]) + 1 + 2 * _parameters(sizes)
    return case.steps * per_step + 2 * batch * sizes[-1]


def worker_bytes(case: Case) -> int:
    """Peak memory of one worker running ``case``: the trace three times over (its arrays,
    a framework's flat copy, the pickled message) and the training state twice over
    (parameters, gradients and two optimizer moments; each layer's activations and their
    gradients; the data)."""
    sizes, batch = case.network.sizes, batch_rows(case)
    state = 4 * _parameters(sizes) + 3 * batch * sum(sizes) + batch * (sizes[0] + sizes[-1])
    return VALUE_BYTES * (3 * recorded_values(case) + 2 * state)


def parent_bytes(case: Case, backends: int) -> int:
    """The parent's memory for ``case``'s rows on ``backends`` backends."""
    return ROW_BYTES * backends * recorded_values(case)


def output_bytes(case: Case, backends: int) -> int:
    return OUTPUT_ROW_BYTES * backends * recorded_values(case)


def peak_bytes(case: Case, backends: int, budget: Budget) -> int:
    """Workers running ``case`` at once (up to one per backend), plus the parent."""
    return min(budget.workers, backends) * worker_bytes(case) + parent_bytes(case, backends)


def refusals(cases: Sequence[Case], backends: int, budget: Budget) -> dict[str, str]:
    """Why each case that does not fit the budget is refused, by case name."""
    refused: dict[str, str] = {}
    written = 0
    for case in cases:
        rows = recorded_values(case)
        peak = peak_bytes(case, backends, budget)
        output = output_bytes(case, backends)
        if peak > budget.memory:
            refused[case.name] = (
                f"{REFUSED}: estimated to need {format_size(peak)} of memory "
                f"({rows:,} recorded numbers per backend); the limit is "
                f"{format_size(budget.memory)} (--memory-limit, {MEMORY_ENV})"
            )
        elif written + output > budget.output:
            refused[case.name] = (
                f"{REFUSED}: its {rows:,} recorded numbers per backend would take the run's "
                f"results to about {format_size(written + output)}; the limit is "
                f"{format_size(budget.output)} (--output-limit, {OUTPUT_ENV})"
            )
        else:
            written += output
    return refused


def chunk_bounds(
    cases: Sequence[Case],
    backends: int,
    chunk_cases: int,
    budget: Budget,
    refused: dict[str, str] | None = None,
) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk: at most ``chunk_cases`` cases, and rows that fit in
    half the memory budget (the other half is the workers'); a case that alone exceeds it
    has been refused, and a refused case costs one row per backend."""
    refused = refused or {}
    bounds, start, held = [], 0, 0
    for i, case in enumerate(cases):
        cost = backends * ROW_BYTES if case.name in refused else parent_bytes(case, backends)
        if i > start and (i - start >= chunk_cases or held + cost > budget.memory // 2):
            bounds.append((start, i))
            start, held = i, 0
        held += cost
    if start < len(cases):
        bounds.append((start, len(cases)))
    return bounds


def address_space_limit(current: int, estimate: int) -> int:
    """The ``RLIMIT_AS`` soft limit for one case, from the worker's address space now.

    ``CROSSGRAD_FRAMEWORK_ALLOWANCE`` (a size) replaces ``FRAMEWORK_ALLOWANCE``: more for a
    framework that reserves more, less to test the limit.
    """
    allowance = FRAMEWORK_ALLOWANCE
    if os.environ.get(ALLOWANCE_ENV):
        # A bad value: a worker has no one to tell, and the default is the safe side.
        with contextlib.suppress(ValueError):
            allowance = parse_size(os.environ[ALLOWANCE_ENV])
    return current + allowance + 3 * estimate


def address_space() -> int | None:
    """This process's address space in bytes (``VmSize``), or None where /proc is missing."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
