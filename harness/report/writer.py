"""The report folder: results.csv, results.parquet, summary.md, junit.xml, report.html and
environment.json, written chunk by chunk (``ReportWriter``) or from a whole table.

Files are written to a temporary name and renamed into place, so a reader never sees a
half-written report. The commands write into a fresh folder of their own, which then
replaces ``--out`` whole (harness/report/folder.py): nothing here writes into a folder a
user named.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.report.html import case_margins, report_html
from harness.report.junit import junit_pieces
from harness.report.markdown import (
    extra_sections,
    known_markdown,
    summary_head,
    summary_row,
    summary_tail,
)
from harness.report.summaries import KnownTally, PairSummary, exit_status, known_tallies, summarize
from harness.report.table import TABLE_HEADER, table_cells, table_lines
from harness.verdict.known import KnownDivergence
from harness.verdict.status import FAILING, Status

_UMASK = os.umask(0)
os.umask(_UMASK)

# report.html of a huge run: this many cases plotted and pairs listed, failing ones first.
HTML_CASES = 200
HTML_PAIRS = 2_000


def write_report(
    table: pd.DataFrame,
    out: Path,
    environments: list[dict[str, Any]] | None = None,
    repro: list[str] | None = None,
    stale: Sequence[KnownDivergence] = (),
    sections: Sequence[str] = (),
    summaries: list[PairSummary] | None = None,
    incomplete: str | None = None,
) -> list[PairSummary]:
    """Write every report file of a whole table into ``out``; return the per-pair summaries.

    ``environments`` are the fingerprints of the runs behind the table (several when
    merged); ``repro`` the one-line commands that reproduce each failing pair; ``stale``
    the known divergences that matched nothing; ``sections`` extra Markdown blocks
    (coverage, ...) for summary.md; ``incomplete`` why a stopped run's report lacks
    pairs (summary.md leads with it).
    """
    with ReportWriter(out) as writer:
        summaries = writer.add(table, summaries)
        writer.finish(environments or [], repro or [], stale, sections, incomplete)
    return summaries


class ReportWriter:
    """The report folder of a run written chunk by chunk, in memory bounded by a chunk.

    ``add`` appends a chunk's rows to results.csv and results.parquet (under temporary
    names until ``finish``) and its pair summaries to a spool file, keeping only tallies
    and a bounded choice of pairs and plots for report.html; ``finish`` writes
    summary.md, junit.xml, report.html and environment.json and puts the tables in place.
    """

    def __init__(
        self, out: Path, html_cases: int = HTML_CASES, html_pairs: int = HTML_PAIRS
    ) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.html_cases = html_cases
        self.html_pairs = html_pairs
        self.statuses: Counter[Status] = Counter()  # every pair's, the reference's too
        # The same split: pairs compared with the reference, and the reference's own pairs
        # (compared with itself: what it ran, and any published value it missed).
        self.compared_statuses: Counter[Status] = Counter()
        self.reference_statuses: Counter[Status] = Counter()
        self.failed = False  # some row diverged, crashed or failed its expect
        self.cases = 0
        self.backends: dict[str, None] = {}
        self.reference = ""
        self.failing: list[tuple[str, str]] = []  # failing pairs, in table order
        self.known: dict[str, KnownTally] = {}
        self.widths = [len(h) for h in TABLE_HEADER]
        self._csv = self._partial("results.csv")
        self._parquet = self._partial("results.parquet")
        self._csv_file = self._csv.open("w", encoding="utf-8", newline="")
        self._parquet_writer: pq.ParquetWriter | None = None
        # Deleted by the system when closed; a context manager would end with __init__.
        self._spool: IO[bytes] = tempfile.TemporaryFile(dir=out)  # noqa: SIM115
        self._empty: pd.DataFrame | None = None  # the columns, while no row has come
        self._seen_cases = 0
        # For report.html: the first pairs and cases, and the first failing ones.
        self._pairs: list[PairSummary] = []
        self._failing_pairs: list[PairSummary] = []
        self._plots: dict[str, tuple[int, pd.DataFrame]] = {}
        self._failing_plots: dict[str, tuple[int, pd.DataFrame]] = {}

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.close()
        if kind is not None:  # a report that did not finish leaves no half-written table
            self._csv.unlink(missing_ok=True)
            self._parquet.unlink(missing_ok=True)

    @property
    def pairs(self) -> int:
        return self.statuses.total()

    def add(
        self, table: pd.DataFrame, summaries: list[PairSummary] | None = None
    ) -> list[PairSummary]:
        """Append one chunk (whole cases, in run order) to the report; its pair summaries."""
        summaries = summarize(table) if summaries is None else summaries
        if table.empty:
            self._empty = table if self._parquet_writer is None else None
            return summaries
        header = self._parquet_writer is None
        table.to_csv(self._csv_file, index=False, header=header, float_format="%.17g")
        arrow = pa.Table.from_pandas(
            table,
            preserve_index=False,
            schema=self._parquet_writer.schema if self._parquet_writer else None,
        )
        if self._parquet_writer is None:
            self._parquet_writer = pq.ParquetWriter(self._parquet, arrow.schema)
            self.reference = str(table["backend"].iloc[0])  # compare puts it first
        self._parquet_writer.write_table(arrow)
        self.failed = self.failed or bool(exit_status(table))
        self.cases += table["case"].nunique()
        self.backends.update(dict.fromkeys(table["backend"]))
        for entry_id, tally in known_tallies(table).items():
            if entry_id in self.known:
                self.known[entry_id].add(tally)
            else:
                self.known[entry_id] = tally
        pickle.dump(summaries, self._spool)
        for s in summaries:
            self.statuses[s.status] += 1
            if s.backend == self.reference:
                self.reference_statuses[s.status] += 1
            else:
                self.compared_statuses[s.status] += 1
            self.widths = [max(w, len(c)) for w, c in zip(self.widths, table_cells(s), strict=True)]
            if s.status in FAILING:
                self.failing.append((s.case, s.backend))
        self._keep_for_html(table, summaries)
        return summaries

    def _keep_for_html(self, table: pd.DataFrame, summaries: list[PairSummary]) -> None:
        room = self.html_pairs - len(self._pairs)
        self._pairs += summaries[: max(room, 0)]
        room = self.html_pairs - len(self._failing_pairs)
        self._failing_pairs += [s for s in summaries if s.status in FAILING][: max(room, 0)]
        failing_cases = {s.case for s in summaries if s.status in FAILING}
        for case, rows in case_margins(table):
            order = self._seen_cases  # run order, for the page
            self._seen_cases += 1
            if case in failing_cases and len(self._failing_plots) < self.html_cases:
                self._failing_plots[case] = (order, rows)
            elif len(self._plots) < self.html_cases:
                self._plots[case] = (order, rows)

    def summaries(self) -> Iterator[PairSummary]:
        """Every pair's summary, in run order, read back from the spool."""
        self._spool.flush()
        self._spool.seek(0)
        while True:
            try:
                chunk: list[PairSummary] = pickle.load(self._spool)
            except EOFError:
                return
            yield from chunk

    def printed_table(self) -> Iterator[str]:
        """The lines of the plain-text table ``crossgrad run`` prints."""
        return table_lines((table_cells(s) for s in self.summaries()), self.widths)

    def finish(
        self,
        environments: list[dict[str, Any]],
        repro: list[str],
        stale: Sequence[KnownDivergence] = (),
        sections: Sequence[str] = (),
        incomplete: str | None = None,
    ) -> None:
        """Write summary.md, junit.xml, report.html and environment.json; put the tables in place."""
        self.close()
        compared = len(self.backends) - (self.reference in self.backends)
        head = summary_head(
            self.failed,
            self.cases,
            compared,
            self.compared_statuses,
            incomplete,
            self.reference,
            self.reference_statuses,
        )
        tail = [*summary_tail(stale, [known_markdown(self.known), *sections])]
        extra = extra_sections(environments, repro)

        def write_summary(path: str) -> None:
            with open(path, "w", encoding="utf-8") as file:
                file.write("\n".join(head))
                for s in self.summaries():
                    file.write("\n" + summary_row(s))
                file.write("\n" + "\n".join(tail) + extra)

        _atomic(self.out / "summary.md", write_summary)
        environment = environments[0] if environments else None

        def write_junit(path: str) -> None:
            with open(path, "w", encoding="utf-8") as file:
                file.writelines(junit_pieces(self.summaries(), self.statuses, environment))

        _atomic(self.out / "junit.xml", write_junit)
        _write_text(self.out / "environment.json", json.dumps(environments, indent=1) + "\n")
        if self.pairs <= self.html_pairs:
            pairs, markdown = self._pairs, (self.out / "summary.md").read_text(encoding="utf-8")
        else:  # the page lists the failing pairs first, summary.md has them all
            chosen = {(s.case, s.backend) for s in self._failing_pairs}
            rest = [s for s in self._pairs if (s.case, s.backend) not in chosen]
            pairs = [*self._failing_pairs, *rest][: self.html_pairs]
            note = f"({self.pairs - len(pairs):,} more pairs in summary.md)"
            markdown = "\n".join([*head, *map(summary_row, pairs), note, *tail]) + extra
        plots = self._chosen_plots()
        _write_text(
            self.out / "report.html",
            report_html(plots, self.reference, pairs, markdown, self._left_out(pairs, plots)),
        )
        os.replace(self._csv, self.out / "results.csv")
        os.replace(self._parquet, self.out / "results.parquet")

    def _chosen_plots(self) -> list[tuple[str, pd.DataFrame]]:
        """Up to ``html_cases`` cases to plot, failing ones first, shown in run order."""
        chosen = dict(self._failing_plots)
        for case, kept in self._plots.items():
            if len(chosen) >= self.html_cases:
                break
            chosen.setdefault(case, kept)
        ordered = sorted(chosen.items(), key=lambda item: item[1][0])
        return [(case, rows) for case, (_, rows) in ordered]

    def _left_out(self, pairs: list[PairSummary], plots: list[tuple[str, pd.DataFrame]]) -> str:
        if self.pairs <= len(pairs) and self.cases <= self.html_cases:
            return ""
        return (
            f"This page lists {len(pairs):,} of {self.pairs:,} case × backend pairs and plots "
            f"{len(plots):,} of {self.cases:,} cases, failing ones first; summary.md and "
            "results.csv hold them all."
        )

    def close(self) -> None:
        """Close the open files (the spool stays readable until the writer is dropped)."""
        if self._empty is not None and self._parquet_writer is None:
            # A table without rows still gets both files, columns and all.
            self._empty.to_csv(self._csv_file, index=False)
            self._empty.to_parquet(self._parquet, index=False)
            self._empty = None
        if not self._csv_file.closed:
            self._csv_file.close()
        if self._parquet_writer is not None:
            self._parquet_writer.close()

    def _partial(self, name: str) -> Path:
        """A fresh hidden file that grows into ``name``: two runs into one folder never share it."""
        handle, path = tempfile.mkstemp(dir=self.out, prefix=f".{name}.", suffix=".writing")
        os.close(handle)
        os.chmod(path, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the report from CI readers
        return Path(path)


def atomic_write_text(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file and a rename."""
    _write_text(path, text)


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """``write(temporary)`` makes the file, renamed to ``path``: an existing link is replaced."""
    _atomic(path, write)


def _write_text(path: Path, text: str) -> None:
    _atomic(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def _atomic(path: Path, write: Callable[[str], object]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the report from CI readers
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
