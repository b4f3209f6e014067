"""Coverage: which activations, losses, optimizers and dtypes each backend ran, and how.

Every knob value of every case is counted once per case × backend under the pair's
status, so a glance shows that, say, rmsprop ran on tensorflow and was ``known`` there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from harness.cases.model import Case
from harness.errors import ResultsError
from harness.report.summaries import PairSummary
from harness.text import markdown
from harness.verdict.status import FAILING, SEVERITY, Status

KNOBS = ("activation", "output_activation", "loss", "optimizer", "dtype")


def knob_values(case: Case) -> dict[str, str]:
    return {
        "activation": case.network.activation,
        "output_activation": case.network.output_activation,
        "loss": case.loss.name,
        "optimizer": case.optimizer.name,
        "dtype": case.dtype,
    }


CoverageCounts = Counter[tuple[str, str, str, str]]  # (knob, value, backend, status) -> pairs


def coverage(summaries: Iterable[PairSummary], cases: Iterable[Case]) -> pd.DataFrame:
    """Long table: knob, value, backend, status, pairs (number of case × backend pairs)."""
    return coverage_frame(coverage_counts(summaries, cases))


def coverage_counts(summaries: Iterable[PairSummary], cases: Iterable[Case]) -> CoverageCounts:
    """Pairs per knob value, backend and status, in first-seen order (chunks add up)."""
    knobs = {case.name: knob_values(case) for case in cases}
    return Counter(
        (knob, value, s.backend, s.status)
        for s in summaries
        if s.case in knobs
        for knob, value in knobs[s.case].items()
    )


def coverage_frame(counts: CoverageCounts) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(*key, pairs) for key, pairs in counts.items()],
        columns=["knob", "value", "backend", "status", "pairs"],
    )
    return frame.astype({"pairs": "int64"})


def column_label(backend: str, reference: str | None) -> str:
    """A backend's column heading: the reference's says so, as its pairs compare it with itself."""
    return f"{backend} (reference)" if backend == reference else backend


def coverage_markdown(table: pd.DataFrame, reference: str | None = None) -> str:
    """One table per knob: a row per value, a column per backend, cells like "12 ok, 2 known".

    ``reference``'s column is headed as the reference's: its ``ok`` pairs ran, compared
    with nothing but the case's published values.
    """
    if table.empty:
        return ""
    backends = list(dict.fromkeys(table["backend"]))
    headings = [column_label(b, reference) for b in backends]
    lines = ["## Coverage", "", "Case × backend pairs per knob value and status.", ""]
    for knob in KNOBS:
        part = table[table["knob"] == knob]
        lines += [
            f"### {knob}",
            "",
            "| value | " + " | ".join(map(markdown, headings)) + " |",
            "|---" * (len(backends) + 1) + "|",
        ]
        for value in dict.fromkeys(part["value"]):
            cells = [
                _cell(part[(part["value"] == value) & (part["backend"] == b)]) for b in backends
            ]
            lines.append(f"| {markdown(value)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(rows: pd.DataFrame) -> str:
    counts = dict(zip(rows["status"], rows["pairs"], strict=True))
    return ", ".join(f"{counts[s]} {s}" for s in SEVERITY if s in counts) or "-"


def coverage_text(table: pd.DataFrame, reference: str | None = None) -> str:
    """Compact terminal form: per knob value, each backend's pair counts as ok/known/skip/fail
    (``reference``'s column headed as the reference's)."""
    if table.empty:
        return ""
    backends = list(dict.fromkeys(table["backend"]))
    header = ["knob", "value", *(column_label(b, reference) for b in backends)]
    rows = []
    for knob in KNOBS:
        part = table[table["knob"] == knob]
        for value in dict.fromkeys(part["value"]):
            cells = []
            for backend in backends:
                counts = (
                    part[(part["value"] == value) & (part["backend"] == backend)]
                    .groupby("status")["pairs"]
                    .sum()
                )
                ran = int(counts.get(Status.OK, 0) + counts.get(Status.KNOWN, 0))
                cell = f"{ran} ran"
                if counts.get(Status.KNOWN, 0):
                    cell += f" ({int(counts[Status.KNOWN])} known)"
                if counts.get(Status.SKIPPED, 0):
                    cell += f", {int(counts[Status.SKIPPED])} skipped"
                bad = int(sum(counts.get(s, 0) for s in FAILING))
                if bad:
                    cell += f", {bad} FAILED"
                cells.append(cell)
            rows.append([knob, value, *cells])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def render(row):
        return "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join(["coverage (case × backend pairs):", render(header), *map(render, rows)])


def merge_coverage(folders: Iterable[Path], backend_order: list[str]) -> pd.DataFrame:
    """The coverage one all-backend run would give, from the coverage.csv of separate runs.

    Each backend's rows are taken from the first input that has them (every per-backend run
    also holds the reference's), then ordered as the merged results table orders backends.
    """
    kept: dict[str, pd.DataFrame] = {}
    tables = [_read_coverage(f / "coverage.csv") for f in folders if (f / "coverage.csv").exists()]
    for table in tables:
        for backend, rows in table.groupby("backend", sort=False):
            kept.setdefault(str(backend), rows)
    if not kept:
        return pd.DataFrame(columns=["knob", "value", "backend", "status", "pairs"])
    rank = {name: i for i, name in enumerate(dict.fromkeys([*backend_order, *kept]))}
    merged = pd.concat(kept.values(), ignore_index=True)
    return merged.sort_values("backend", key=lambda b: b.map(rank), kind="stable").reset_index(
        drop=True
    )


COVERAGE_COLUMNS = ["knob", "value", "backend", "status", "pairs"]


def _read_coverage(path: Path) -> pd.DataFrame:
    """An earlier report's coverage.csv, checked: its columns, known statuses, pair counts."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot be read as a coverage table: {exc}") from exc
    missing = [c for c in COVERAGE_COLUMNS if c not in table.columns]
    if missing:
        raise ResultsError(
            f"{path}: not a crossgrad coverage table. Expected the columns "
            f"{', '.join(COVERAGE_COLUMNS)}. Received a table without {', '.join(missing)}"
        )
    table = table[COVERAGE_COLUMNS]
    counts = table["pairs"].str.fullmatch(r"[0-9]{1,15}")
    statuses = table["status"].isin([str(s) for s in Status])
    for bad, what in ((~statuses, "status: not a status"), (~counts, "pairs: not a count")):
        if bool(bad.any()):
            row = int(bad.to_numpy().nonzero()[0][0])
            value = table.iloc[row][what.partition(":")[0]]
            raise ResultsError(f"{path}: row {row + 2}: {what}: {value!r}")
    return table.astype({"pairs": "int64"})
