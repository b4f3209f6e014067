"""``crossgrad diff BASELINE CURRENT``: what changed between two results tables.

Reported, each as one line: a case or a backend added or gone, a case × backend pair
added or gone, a value recorded on one side only, a value that moved by more than its
tolerance (``atol + rtol·|reference|``, the larger of the two sides'), and a status
change. Any of these is unexpected: a deliberate change refreshes the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

KEYS = ["case", "backend", "step", "quantity", "param", "index"]


@dataclass(frozen=True)
class Change:
    kind: str  # case added, value moved, status changed, ...
    where: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}" + (f": {self.detail}" if self.detail else "")


def diff(baseline: pd.DataFrame, current: pd.DataFrame) -> list[Change]:
    changes = _added_or_gone(baseline, current, "case", ["case"])
    changes += _added_or_gone(baseline, current, "backend", ["backend"])
    both_cases = set(baseline["case"]) & set(current["case"])
    both_backends = set(baseline["backend"]) & set(current["backend"])

    def common(table: pd.DataFrame) -> pd.DataFrame:
        return table[table["case"].isin(both_cases) & table["backend"].isin(both_backends)]

    changes += _added_or_gone(common(baseline), common(current), "pair", ["case", "backend"])
    merged = common(baseline).merge(
        common(current), on=KEYS, how="outer", suffixes=("_base", "_now"), indicator="side"
    )
    pairs_both = merged.groupby(["case", "backend"])["side"].transform(
        lambda m: (m == "both").any()
    )
    merged = merged[pairs_both]
    for row in merged.itertuples(index=False):
        where = _where(row)
        if row.side == "left_only":
            changes.append(Change("value gone", where, f"was {row.value_base:.17g}"))
        elif row.side == "right_only":
            changes.append(Change("value added", where, f"now {row.value_now:.17g}"))
        else:
            changes += _row_changes(row, where)
    return changes


def _added_or_gone(
    baseline: pd.DataFrame, current: pd.DataFrame, kind: str, keys: list[str]
) -> list[Change]:
    before = set(map(tuple, baseline[keys].drop_duplicates().to_numpy()))
    after = set(map(tuple, current[keys].drop_duplicates().to_numpy()))
    changes = [Change(f"{kind} gone", " on ".join(map(str, k))) for k in sorted(before - after)]
    return changes + [
        Change(f"{kind} added", " on ".join(map(str, k))) for k in sorted(after - before)
    ]


def _row_changes(row: Any, where: str) -> list[Change]:
    found = []
    base, now = float(row.value_base), float(row.value_now)
    tol = np.nanmax([row.tol_base, row.tol_now, 0.0])
    same = (np.isnan(base) and np.isnan(now)) or base == now
    if not same and not abs(now - base) <= tol:
        found.append(
            Change(
                "value moved",
                where,
                f"{base:.9g} -> {now:.9g} (|change| {abs(now - base):.3g} > tol {tol:.3g})",
            )
        )
    if row.status_base != row.status_now:
        found.append(Change("status changed", where, f"{row.status_base} -> {row.status_now}"))
    return found


def _where(row: Any) -> str:
    text = f"{row.case} {row.backend}"
    if not pd.isna(row.step):
        text += f" step {row.step}"
    if row.quantity:
        text += f" {row.quantity}"
    if row.param:
        text += f" {row.param}"
    if not pd.isna(row.index):
        text += f"[{row.index}]"
    return text
