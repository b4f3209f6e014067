"""The report folder: results.csv, results.parquet and summary.md, plus the printed summary.

Files are written to a temporary name and renamed into place, so a reader never sees a
half-written report.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.fingerprint import markdown as fingerprint_markdown
from harness.html_report import report_html
from harness.junit import junit_xml
from harness.known import KnownDivergence
from harness.localize import FAILING as FAILING_OR_KNOWN
from harness.localize import first_divergence, off_oracle

_UMASK = os.umask(0)
os.umask(_UMASK)

# Worst first: the status a case × backend pair gets from its rows.
SEVERITY = ("crashed", "expect_failed", "diverged", "known", "skipped", "ok")


@dataclass(frozen=True)
class PairSummary:
    """One case on one backend, as a CI reviewer reads it."""

    case: str
    backend: str
    version: str
    status: str
    compared: int
    mismatched: int
    worst_margin: float  # largest abs_err / tol; above 1 is a divergence
    first_divergence: str
    cause: str = ""  # precision, semantic or known (harness/triage.py)
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
    is_compared = np.isin(status, ("ok", "diverged", "known", "expect_failed"))
    compared = np.bincount(codes[is_compared], minlength=n)
    mismatched = np.bincount(codes[np.isin(status, ("diverged", "expect_failed"))], minlength=n)
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
    looked_at = np.isin(status, (*FAILING_OR_KNOWN, "skipped"))
    details = {int(code): rows for code, rows in table[looked_at].groupby(codes[looked_at])}
    summaries = []
    for code, (case, backend) in enumerate(pairs):
        rows = details.get(code)
        first = first_divergence(rows) if rows is not None else None
        summaries.append(
            PairSummary(
                case=str(case),
                backend=str(backend),
                version=str(versions[code]),
                status=SEVERITY[worst[code]] if worst[code] < len(SEVERITY) else "ok",
                compared=int(compared[code]),
                mismatched=int(mismatched[code]),
                worst_margin=float(worst_margin[code]),
                first_divergence=describe_row(first)
                if first is not None
                else (_skip_reason(rows) if rows is not None else ""),
                cause=causes[code],
                off_oracle=off_oracle(first, reference)
                if first is not None and first["status"] == "diverged"
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
    skipped = rows[rows["status"] == "skipped"]
    return str(skipped["detail"].iloc[0]) if len(skipped) else ""


def describe_row(row: pd.Series) -> str:
    """Where and how one row fails, in the torch.testing / assert_allclose manner."""
    if row["status"] in ("crashed", "skipped"):
        return str(row["detail"])
    where = f"step {row['step']} {row['quantity']}"
    if row["param"]:
        where += f" {row['param']}"
    if not pd.isna(row["index"]):
        where += f"[{row['index']}]"
    if row["status"] == "expect_failed":
        return f"{where}: {row['value']:.8g} does not round to the expected {row['expected']} ({row['detail'] or 'expect'})"
    text = (
        f"{where}: {row['value']:.9g} vs reference {row['reference']:.9g} "
        f"(abs err {row['abs_err']:.3g} > tol {row['tol']:.3g}, rel err {row['rel_err']:.3g})"
    )
    return f"{text}; {row['detail']}" if row["detail"] else text


def exit_status(table: pd.DataFrame) -> int:
    return 1 if table["status"].isin(("diverged", "crashed", "expect_failed")).any() else 0


def format_table(summaries: list[PairSummary]) -> str:
    """The short plain-text table ``crossgrad run`` prints."""
    header = ("case", "backend", "status", "cause", "worst err/tol", "first divergence")
    lines = [
        (
            s.case,
            s.backend,
            s.status,
            s.cause,
            _margin(s.worst_margin),
            _shorten(s.first_divergence, 90),
        )
        for s in summaries
    ]
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]

    def render(row: tuple[str, ...]) -> str:
        return "  ".join(
            str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()

    return "\n".join([render(header), render(tuple("-" * w for w in widths)), *map(render, lines)])


def _margin(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3g}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def known_markdown(table: pd.DataFrame) -> str:
    """Each known divergence that matched in this run: how many values, how large."""
    known = table[table["status"] == "known"]
    if known.empty:
        return ""
    ids = known["detail"].str.extract(r"^known divergence (\S+):", expand=False)
    lines = [
        "## Known divergences in this run",
        "",
        "| id | backends | pairs | values | max abs err | max rel err |",
        "|---|---|---|---|---|---|",
    ]
    for entry_id, rows in known.groupby(ids, sort=False):
        pairs = rows[["case", "backend"]].drop_duplicates()
        lines.append(
            f"| {entry_id} | {', '.join(sorted(rows['backend'].unique()))} | {len(pairs)} | {len(rows)} | "
            f"{rows['abs_err'].max():.3g} | {rows['rel_err'].max():.3g} |"
        )
    return "\n".join([*lines, ""])


def summary_markdown(
    table: pd.DataFrame,
    summaries: list[PairSummary],
    stale: Sequence[KnownDivergence] = (),
    sections: Sequence[str] = (),
    incomplete: str | None = None,
) -> str:
    counts = pd.Series([s.status for s in summaries]).value_counts()
    verdict = "FAIL" if exit_status(table) else "PASS"
    lines = [
        "# crossgrad report",
        "",
        *([f"**INCOMPLETE** — {incomplete}.", ""] if incomplete else []),
        f"**{verdict}** — {table['case'].nunique()} cases × {table['backend'].nunique()} backends: "
        + ", ".join(f"{counts[s]} {s}" for s in SEVERITY if s in counts),
        "",
        "| case | backend | version | status | mismatched | worst err/tol | first divergence | cause | off the oracle |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
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
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
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
    return "\n".join(lines)


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
    """Write every report file into ``out`` atomically; return the per-pair summaries.

    ``environments`` are the fingerprints of the runs behind the table (several when
    merged); ``repro`` the one-line commands that reproduce each failing pair; ``stale``
    the known divergences that matched nothing; ``sections`` extra Markdown blocks
    (coverage, ...) for summary.md; ``incomplete`` why a stopped run's report lacks
    pairs (summary.md leads with it).
    """
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarize(table) if summaries is None else summaries
    environments = environments or []
    markdown = summary_markdown(
        table, summaries, stale, [known_markdown(table), *sections], incomplete
    )
    markdown += extra_sections(environments, repro or [])
    _atomic(out / "results.csv", lambda p: table.to_csv(p, index=False, float_format="%.17g"))
    _atomic(out / "results.parquet", lambda p: table.to_parquet(p, index=False))
    _atomic(out / "summary.md", lambda p: Path(p).write_text(markdown, encoding="utf-8"))
    _write_text(out / "environment.json", json.dumps(environments, indent=1) + "\n")
    _write_text(out / "junit.xml", junit_xml(summaries, environments[0] if environments else None))
    _write_text(out / "report.html", report_html(table, summaries, markdown))
    return summaries


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
