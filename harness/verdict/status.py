"""The status of a results row and of a case × backend pair: one vocabulary for the harness.

A row is ``ok`` (agrees with the reference), ``diverged`` (outside the tolerance),
``known`` (diverged as a known-divergence entry says it does), ``expect_failed`` (does not
round to the case's published value), ``crashed`` (the backend raised, timed out or died)
or ``skipped`` (the backend declined the case or is unavailable, or the reference has no
value to compare with). A pair takes the worst status of its rows, in the order the
members are declared.

``Status`` is a ``StrEnum``: each member is the plain string it names, so tables, CSV,
parquet, JSON, XML and f-strings hold ``"diverged"``, never ``Status.DIVERGED``, and rows
read back from a results file compare equal to the members.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Declared worst first: a pair takes the first status, in this order, that any of its rows has."""

    CRASHED = "crashed"
    EXPECT_FAILED = "expect_failed"
    DIVERGED = "diverged"
    KNOWN = "known"
    SKIPPED = "skipped"
    OK = "ok"


# Tuples, not sets: numpy.isin takes them as arrays of strings.
SEVERITY: tuple[Status, ...] = tuple(Status)
# A row or pair with one of these fails the run (exit status 1, a repro command, fail-fast).
FAILING = (Status.CRASHED, Status.EXPECT_FAILED, Status.DIVERGED)
# A compared value that is wrong and not excused: a JUnit failure, a "mismatched" count.
MISMATCHED = (Status.EXPECT_FAILED, Status.DIVERGED)
# Rows whose value was compared with the reference (or the published expectation).
COMPARED = (Status.EXPECT_FAILED, Status.DIVERGED, Status.KNOWN, Status.OK)
# Rows where a pair's first divergence can be: the failing ones and the known divergences.
FAILING_OR_KNOWN = (*FAILING, Status.KNOWN)
