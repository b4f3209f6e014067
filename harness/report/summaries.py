"""What a CI reviewer reads of each case × backend pair, from the rows of a results table.

``summarize`` folds a table into one ``PairSummary`` per pair: its worst status, how many
values were compared and how many mismatched, its worst err/tol and where it first
diverges. ``known_tallies`` says what each known divergence matched. The report files
(summary.md, junit.xml, report.html, the printed table) are all written from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.verdict.localize import first_divergence, off_oracle
from harness.verdict.status import (
    COMPARED,
    FAILING,
    FAILING_OR_KNOWN,
    MISMATCHED,
    SEVERITY,
    Status,
)


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
        f"(abs err {row['abs_err']:.3g} > tol {row['tol']:.3g}{_terms(row)}, "
        f"rel err {row['rel_err']:.3g})"
    )
    return f"{text}; {row['detail']}" if row["detail"] else text


def _terms(row: pd.Series) -> str:
    """Where a value's terms cancelled, the size they had: why its tolerance is what it is."""
    magnitude = row.get("magnitude", np.nan)
    reference = abs(float(row["reference"]))
    if pd.isna(magnitude) or not magnitude > 2 * reference:
        return ""
    return f" from terms of size {float(magnitude):.3g}"


def exit_status(table: pd.DataFrame) -> int:
    return 1 if table["status"].isin(FAILING).any() else 0


def margin_text(value: float) -> str:
    """A pair's worst err/tol as a table cell: 3 digits, ``-`` when nothing was compared."""
    return "-" if np.isnan(value) else f"{value:.3g}"


@dataclass
class KnownTally:
    """What one known divergence matched: backends, pairs, values, largest errors."""

    kind: str  # "verified" or "bounded, not verified"
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
    """Per known-divergence id, in the order the table first shows it: what it explained.

    A row explained by several entries at once (tried together) counts for each of them.
    """
    known = table[table["status"] == Status.KNOWN]
    if known.empty:
        return {}
    parts = known["detail"].str.extract(
        r"^known divergence (?P<ids>[^(]+?) \((?P<kind>verified|bounded, not verified)"
    )
    rows = known.assign(_id=parts["ids"].str.split(", "), _kind=parts["kind"]).explode("_id")
    return {
        str(entry_id): KnownTally(
            kind=str(group["_kind"].iloc[0]),
            backends=set(group["backend"]),
            pairs=len(group[["case", "backend"]].drop_duplicates()),
            values=len(group),
            max_abs_err=float(group["abs_err"].max()),
            max_rel_err=float(group["rel_err"].max()),
        )
        for entry_id, group in rows.groupby("_id", sort=False)
    }
