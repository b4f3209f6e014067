"""``crossgrad run`` as a pipeline of chunks: each chunk of cases is run, compared, matched
against the known divergences, triaged and appended to the report before the next starts.

Memory is bounded by a chunk (``harness.run.session.CHUNK_CASES`` cases), not by the run:
between chunks only tallies are kept (per-pair summaries go to a spool file, see
``harness.report.writer.ReportWriter``), so a 100,000-case sweep needs about what a 10,000-case
one does. Cases are compared within their own chunk (all their backends run in it), so
the report equals the one a single chunk would give.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pandas as pd

from harness.cases.model import Case
from harness.report.coverage import (
    CoverageCounts,
    coverage_counts,
    coverage_frame,
    coverage_markdown,
)
from harness.report.folder import ReportFolder
from harness.report.repro import case_sources, write_repro
from harness.report.writer import ReportWriter, atomic_write_text
from harness.run.budget import Budget, from_environment
from harness.run.fingerprint import fingerprint
from harness.run.outcome import Progress
from harness.run.scheduler import default_jobs
from harness.run.session import CHUNK_CASES, FAIL_FAST, RunSession
from harness.run.workers import DEFAULT_TIMEOUT
from harness.verdict.compare import compare
from harness.verdict.known import (
    KNOWN_FILE,
    KnownDivergence,
    known_record,
    match_known,
    stale_entries,
)
from harness.verdict.status import FAILING
from harness.verdict.triage import assign_causes


@dataclass
class RunReport:
    """What ``crossgrad run`` prints and exits with once the report folder is written."""

    status: int  # the exit status (docs/spec.md §8.1)
    rows: int  # results rows written
    writer: ReportWriter  # its pair summaries and printed table
    coverage: pd.DataFrame
    stale: list[KnownDivergence] = field(default_factory=list)
    incomplete: str | None = None
    refused: dict[str, str] = field(default_factory=dict)  # cases the budget refused


def run_and_report(
    out: Path,
    cases: list[Case],
    backends: list[str],
    reference: str,
    known: list[KnownDivergence],
    progress: Progress | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    jobs: int | None = None,
    vectorize: bool = False,
    fail_fast: bool = False,
    chunk_cases: int | None = None,
    log: TextIO | None = None,
    budget: Budget | None = None,
) -> RunReport:
    """Run ``cases`` on ``backends`` chunk by chunk and write the report folder ``out``.

    The report is written in a fresh folder beside ``out`` that replaces ``out`` whole when
    the run ends, stopped or not (harness/report/folder.py); ``log`` is told where it is.
    ``chunk_cases`` defaults to ``CHUNK_CASES`` as it is when called (tests shrink it); a
    chunk is also cut where its rows would not fit in half of ``budget.memory``, and cases
    that do not fit ``budget`` at all are refused (``harness.run.budget``).
    """
    if budget is None:
        budget = from_environment(workers=jobs or default_jobs(len(backends)))
    with ReportFolder(out, "run", log) as folder:
        counts: CoverageCounts = Counter()
        covered: set[str] = set()
        matched: set[str] = set()
        rows = 0
        session = RunSession(
            folder.path,
            cases,
            backends,
            reference,
            fail_fast=fail_fast,
            chunk_cases=chunk_cases or CHUNK_CASES,
            budget=budget,
        )
        with session, ReportWriter(folder.path) as writer:
            chunks = session.chunks(progress, vectorize=vectorize, timeout=timeout, jobs=jobs)
            for chunk, raw in chunks:
                table, chunk_covered, chunk_matched = judge(raw, chunk, known, reference)
                covered |= chunk_covered
                matched |= chunk_matched
                summaries = writer.add(table)
                counts.update(coverage_counts(summaries, chunk))
                rows += len(table)
                if fail_fast:
                    _stop_at_first_failure(session, table)
            stale = stale_entries(known, covered, matched)
            atomic_write_text(
                folder.path / KNOWN_FILE,
                json.dumps(known_record(known, covered, matched), indent=1),
            )
            failing_cases = {case for case, _ in writer.failing}
            sources = case_sources([c for c in cases if c.name in failing_cases], backends)
            repro = write_repro(writer.failing, sources, folder.path, out)
            knob_coverage = coverage_frame(counts)
            writer.finish(
                [fingerprint(cases, session.settings, backends)],
                repro,
                stale,
                [coverage_markdown(knob_coverage, reference)],
                session.incomplete,
            )
            knob_coverage.to_csv(folder.path / "coverage.csv", index=False)
            session.finish(rows)
            folder.commit()  # while the session holds signals: a stop cannot cut the swap
        return RunReport(
            status=session.exit_status(1 if writer.failed else 0),
            rows=rows,
            writer=writer,
            coverage=knob_coverage,
            stale=stale,
            incomplete=session.incomplete,
            refused=session.refused,
        )


def judge(
    raw: pd.DataFrame, cases: list[Case], known: list[KnownDivergence], reference: str
) -> tuple[pd.DataFrame, set[str], set[str]]:
    """Raw results -> the results table: compared, matched against the known divergences,
    triaged. Also the ids of the entries whose cases ran and of those that matched a row."""
    table, covered, matched = match_known(compare(raw, cases, reference), cases, known, reference)
    return assign_causes(table, cases, reference), covered, matched


def _stop_at_first_failure(session: RunSession, table: pd.DataFrame) -> None:
    """``--fail-fast`` for rows no outcome hook saw (a vectorized batch's): stop after this chunk."""
    failing = table[table["status"].isin(FAILING)]
    if len(failing):
        row = failing.iloc[0]
        session.stop(f"{FAIL_FAST}: {row['case']} on {row['backend']} is {row['status']}")
