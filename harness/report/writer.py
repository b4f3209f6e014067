"""The report folder: results.csv, results.parquet and summary.md, plus the printed summary.

Files are written to a temporary name and renamed into place, so a reader never sees a
half-written report.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.report.html import case_margins, report_html
from harness.report.junit import junit_pieces
from harness.run.fingerprint import markdown as fingerprint_markdown
from harness.verdict.known import KnownDivergence
from harness.verdict.localize import first_divergence, off_oracle
from harness.verdict.status import (
    COMPARED,
    FAILING,
    FAILING_OR_KNOWN,
    MISMATCHED,
    SEVERITY,
    Status,
)

_UMASK = os.umask(0)
os.umask(_UMASK)

# report.html of a huge run: this many cases plotted and pairs listed, failing ones first.
HTML_CASES = 200
HTML_PAIRS = 2_000


@dataclass(frozen=True)
class PairSummary:
    """One case on one backend, as a CI reviewer reads it."""

    case: str
    backend: str
    version: str
    status: Status
    compared: int
    mismatched: int
    worst_margin: float  # largest abs_err / tol; above 1 is a divergence
    first_divergence: str
    cause: str = ""  # precision, semantic or known (harness/verdict/triage.py)
    off_oracle: str = ""  # the side farther from the oracle at the first divergence


def summarize(table: pd.DataFrame) -> list[PairSummary]:
    """One summary per case × backend pair, in the table's order.

    Counts and margins are grouped column-wise; only the few pairs with a failing or
    skipped row are looked at row by row, so a sweep's summaries cost little per pair.
    """
    if table.empty:
        return []
    reference = str(table["backend"].iloc[0])  # compare puts it first
    codes, pairs = pd.factorize(pd.MultiIndex.from_frame(table[["case", "backend"]]), sort=False)
    n = len(pairs)
    status = table["status"].to_numpy(dtype=object)
    rank = pd.Series(status).map({s: i for i, s in enumerate(SEVERITY)}).to_numpy()
    worst = np.full(n, len(SEVERITY))
    np.minimum.at(worst, codes, np.nan_to_num(rank, nan=len(SEVERITY)).astype(np.int64))
    is_compared = np.isin(status, COMPARED)
    compared = np.bincount(codes[is_compared], minlength=n)
    mismatched = np.bincount(codes[np.isin(status, MISMATCHED)], minlength=n)
    abs_err = table["abs_err"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        margins = abs_err / table["tol"].to_numpy(dtype=np.float64)
    margins = np.where(abs_err == 0, 0.0, margins)
    worst_margin = (
        pd.Series(margins[is_compared]).groupby(codes[is_compared]).max().reindex(range(n))
    ).to_numpy(dtype=np.float64)
    first_row = np.unique(codes, return_index=True)[1]
    versions = table["version"].to_numpy(dtype=object)[first_row]
    causes = _first_per_pair(table["cause"].fillna("") if "cause" in table else None, codes, n)
    looked_at = np.isin(status, (*FAILING_OR_KNOWN, Status.SKIPPED))
    # keyed by numpy integers, which hash and compare as the ints looked up below
    details: dict[Any, pd.DataFrame] = dict(iter(table[looked_at].groupby(codes[looked_at])))
    summaries = []
    for code, (case, backend) in enumerate(pairs):
        rows = details.get(code)
        first = first_divergence(rows) if rows is not None else None
        summaries.append(
            PairSummary(
                case=str(case),
                backend=str(backend),
                version=str(versions[code]),
                status=SEVERITY[worst[code]] if worst[code] < len(SEVERITY) else Status.OK,
                compared=int(compared[code]),
                mismatched=int(mismatched[code]),
                worst_margin=float(worst_margin[code]),
                first_divergence=describe_row(first)
                if first is not None
                else (_skip_reason(rows) if rows is not None else ""),
                cause=causes[code],
                off_oracle=off_oracle(first, reference)
                if first is not None and first["status"] == Status.DIVERGED
                else "",
            )
        )
    return summaries


def _first_per_pair(column: pd.Series | None, codes: np.ndarray, n: int) -> list[str]:
    """Each pair's first non-empty value of ``column`` ("" where it has none)."""
    found = [""] * n
    if column is None:
        return found
    values = column.to_numpy(dtype=object)
    filled = np.flatnonzero(values != "")
    for code, value in zip(codes[filled][::-1], values[filled][::-1], strict=True):
        found[code] = str(value)  # walked backwards, so the first one is written last
    return found


def _skip_reason(rows: pd.DataFrame) -> str:
    skipped = rows[rows["status"] == Status.SKIPPED]
    return str(skipped["detail"].iloc[0]) if len(skipped) else ""


def describe_row(row: pd.Series) -> str:
    """Where and how one row fails, in the torch.testing / assert_allclose manner."""
    if row["status"] in (Status.CRASHED, Status.SKIPPED):
        return str(row["detail"])
    where = f"step {row['step']} {row['quantity']}"
    if row["param"]:
        where += f" {row['param']}"
    if not pd.isna(row["index"]):
        where += f"[{row['index']}]"
    if row["status"] == Status.EXPECT_FAILED:
        return f"{where}: {row['value']:.8g} does not round to the expected {row['expected']} ({row['detail'] or 'expect'})"
    text = (
        f"{where}: {row['value']:.9g} vs reference {row['reference']:.9g} "
        f"(abs err {row['abs_err']:.3g} > tol {row['tol']:.3g}, rel err {row['rel_err']:.3g})"
    )
    return f"{text}; {row['detail']}" if row["detail"] else text


def exit_status(table: pd.DataFrame) -> int:
    return 1 if table["status"].isin(FAILING).any() else 0


TABLE_HEADER = ("case", "backend", "status", "cause", "worst err/tol", "first divergence")


def table_cells(s: PairSummary) -> tuple[str, ...]:
    """One pair's cells in the printed table."""
    return (
        s.case,
        s.backend,
        s.status,
        s.cause,
        _margin(s.worst_margin),
        _shorten(s.first_divergence, 90),
    )


def format_table(summaries: list[PairSummary]) -> str:
    """The short plain-text table ``crossgrad run`` prints."""
    lines = [table_cells(s) for s in summaries]
    widths = [max(len(row[i]) for row in [TABLE_HEADER, *lines]) for i in range(len(TABLE_HEADER))]
    return "\n".join(table_lines(lines, widths))


def table_lines(rows: Iterable[tuple[str, ...]], widths: Sequence[int]) -> Iterator[str]:
    """Header, rule and ``rows`` of the printed table, columns padded to ``widths``."""

    def render(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()

    yield render(TABLE_HEADER)
    yield render(tuple("-" * w for w in widths))
    yield from map(render, rows)


def _margin(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3g}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class KnownTally:
    """What one known divergence matched: backends, pairs, values, largest errors."""

    backends: set[str]
    pairs: int
    values: int
    max_abs_err: float
    max_rel_err: float

    def add(self, other: KnownTally) -> None:
        """Fold in the tally of another chunk (whose pairs are not this one's)."""
        self.backends |= other.backends
        self.pairs += other.pairs
        self.values += other.values
        self.max_abs_err = _nanmax(self.max_abs_err, other.max_abs_err)
        self.max_rel_err = _nanmax(self.max_rel_err, other.max_rel_err)


def _nanmax(a: float, b: float) -> float:
    return float(np.fmax(a, b))


def known_tallies(table: pd.DataFrame) -> dict[str, KnownTally]:
    """Per known-divergence id, in the order the table first shows it: what it matched."""
    known = table[table["status"] == Status.KNOWN]
    if known.empty:
        return {}
    ids = known["detail"].str.extract(r"^known divergence (\S+):", expand=False)
    return {
        str(entry_id): KnownTally(
            backends=set(rows["backend"]),
            pairs=len(rows[["case", "backend"]].drop_duplicates()),
            values=len(rows),
            max_abs_err=float(rows["abs_err"].max()),
            max_rel_err=float(rows["rel_err"].max()),
        )
        for entry_id, rows in known.groupby(ids, sort=False)
    }


def known_markdown(table: pd.DataFrame | Mapping[str, KnownTally]) -> str:
    """Each known divergence that matched in this run: how many values, how large."""
    tallies = known_tallies(table) if isinstance(table, pd.DataFrame) else table
    if not tallies:
        return ""
    lines = [
        "## Known divergences in this run",
        "",
        "| id | backends | pairs | values | max abs err | max rel err |",
        "|---|---|---|---|---|---|",
    ]
    for entry_id, t in tallies.items():
        lines.append(
            f"| {entry_id} | {', '.join(sorted(t.backends))} | {t.pairs} | {t.values} | "
            f"{t.max_abs_err:.3g} | {t.max_rel_err:.3g} |"
        )
    return "\n".join([*lines, ""])


def summary_markdown(
    table: pd.DataFrame,
    summaries: list[PairSummary],
    stale: Sequence[KnownDivergence] = (),
    sections: Sequence[str] = (),
    incomplete: str | None = None,
) -> str:
    counts = Counter(s.status for s in summaries)
    head = summary_head(
        bool(exit_status(table)),
        table["case"].nunique(),
        table["backend"].nunique(),
        counts,
        incomplete,
    )
    return "\n".join([*head, *map(summary_row, summaries), *summary_tail(stale, sections)])


def summary_head(
    failed: bool, cases: int, backends: int, counts: Mapping[Status, int], incomplete: str | None
) -> list[str]:
    """summary.md's lines down to the pair table's header."""
    verdict = "FAIL" if failed else "PASS"
    return [
        "# crossgrad report",
        "",
        *([f"**INCOMPLETE** — {incomplete}.", ""] if incomplete else []),
        f"**{verdict}** — {cases} cases × {backends} backends: "
        + ", ".join(f"{counts[s]} {s}" for s in SEVERITY if counts.get(s)),
        "",
        "| case | backend | version | status | mismatched | worst err/tol | first divergence | cause | off the oracle |",
        "|---|---|---|---|---|---|---|---|---|",
    ]


def summary_row(s: PairSummary) -> str:
    """One pair's line in summary.md's table."""
    mismatch = f"{s.mismatched} / {s.compared}" if s.compared else "-"
    cells = (
        s.case,
        s.backend,
        s.version,
        s.status,
        mismatch,
        _margin(s.worst_margin),
        s.first_divergence,
        s.cause,
        s.off_oracle,
    )
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def summary_tail(stale: Sequence[KnownDivergence], sections: Sequence[str]) -> list[str]:
    """summary.md's lines after the pair table: stale entries, legend, extra sections."""
    lines = []
    if stale:
        lines += [
            "",
            "## Stale known divergences",
            "",
            "These entries cover cases that ran but matched no divergence; the framework may have changed.",
            "",
        ]
        lines += [f"- `{entry.id}` ({entry.location}): {entry.measured}" for entry in stale]
    lines += [
        "",
        "worst err/tol: the largest |value − reference| / (atol + rtol·|reference|) of the pair; above 1 is a divergence.",
        "first divergence: the first failing value in computation order (activations layer by layer, output, loss, gradients from the last layer back, parameters).",
        "cause: `precision` (the float64 control run agrees), `semantic` (it diverges too), `known` (registry).",
        "off the oracle: the side farther from the float64/50-digit oracle at the first divergence.",
        "",
    ]
    lines += [section for section in sections if section]
    return lines


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
        self.statuses: Counter[Status] = Counter()
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
        head = summary_head(self.failed, self.cases, len(self.backends), self.statuses, incomplete)
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


def extra_sections(environments: list[dict[str, Any]], repro: list[str]) -> str:
    """The Reproduce and Environment sections that follow the summary table."""
    lines = []
    if repro:
        lines += ["## Reproduce", "", "Each failing pair alone (its case file is in `repro/`):"]
        lines += ["", "```sh", *repro, "```", ""]
    return "\n".join([*lines, *fingerprint_markdown(environments)])


def atomic_write_text(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file and a rename."""
    _write_text(path, text)


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
