"""Known divergences: triaged framework differences, kept as data (cases/known_divergences.yaml).

A diverged row that an entry matches becomes ``known``. An entry whose scope ran in this
run (its backend on a case it covers) but matched no diverged row is *stale*: the
framework changed, or the entry is wrong, and either way it should be looked at (as
array-api-tests reports xfails that pass).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.cases.checker import INVALID, Checker, any_invalid, describe
from harness.cases.model import QUANTITIES, Case
from harness.cases.patterns import matches
from harness.cases.yaml_nodes import Located, YamlProblems, parse_documents
from harness.errors import CaseError, Problem
from harness.verdict.status import Status

ENTRY_KEYS = (
    "id",
    "backend",
    "cases",
    "where",
    "quantities",
    "params",
    "max_rel_err",
    "measured",
    "reason",
    "source",
)


@dataclass(frozen=True)
class KnownDivergence:
    id: str
    backend: str  # backend name or shell-style pattern
    reason: str
    source: str
    measured: str
    cases: tuple[str, ...] = ("*",)
    where: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    quantities: tuple[str, ...] = QUANTITIES
    params: tuple[str, ...] = ("*",)
    max_rel_err: float | None = None  # beyond this the row stays diverged: a new, larger effect
    location: str = ""

    def covers(self, case: Case, backend: str) -> bool:
        """Whether this entry is about ``case`` on ``backend`` at all."""
        return (
            matches(backend, self.backend)
            and any(matches(case.name, pattern) for pattern in self.cases)
            and all(case_attribute(case, path) in values for path, values in self.where.items())
        )


def case_attribute(case: Case, path: str) -> Any:
    """The value at a dotted path of a case, as written in YAML (``optimizer.momentum``)."""
    head, _, rest = path.partition(".")
    if head == "optimizer" and rest not in ("", "name"):
        return case.optimizer.args.get(rest)
    if head == "loss" and rest not in ("", "name"):
        return case.loss.args.get(rest)
    value: Any = case
    for part in path.split("."):
        value = getattr(value, part, None)
    return list(value) if isinstance(value, tuple) else value


def load_known(path: Path) -> list[KnownDivergence]:
    """Entries of a known-divergences file; a missing file means none."""
    if not path.exists():
        return []
    filename = str(path)
    try:
        documents = parse_documents(path.read_text(encoding="utf-8"), filename)
    except YamlProblems as exc:
        raise CaseError(exc.problems) from None
    except UnicodeDecodeError as exc:
        raise CaseError([Problem(filename, 0, 0, "", f"not UTF-8 text: {exc.reason}")]) from None
    checker = Checker(filename)
    entries: list[KnownDivergence] = []
    for document in documents:
        top = checker.mapping(document, "", ("divergences",), ("divergences",))
        if top is INVALID or "divergences" not in top:
            continue
        items = checker.sequence(top["divergences"], "divergences")
        if items is INVALID:
            continue
        for i, item in enumerate(items):
            entry = _read_entry(checker, item, f"divergences.{i}")
            if entry is not None:
                entries.append(entry)
    _check_unique_ids(checker, entries)
    if checker.problems:
        raise CaseError(checker.problems)
    return entries


def _read_entry(checker: Checker, node: Located, key: str) -> KnownDivergence | None:
    required = ("id", "backend", "measured", "reason", "source")
    fields = checker.mapping(node, key, ENTRY_KEYS, required)
    if fields is INVALID or any(name not in fields for name in required):
        return None
    text = {name: checker.string(fields[name], f"{key}.{name}") for name in required}
    patterns = {
        name: _strings(checker, fields[name], f"{key}.{name}") if name in fields else default
        for name, default in (("cases", ("*",)), ("quantities", QUANTITIES), ("params", ("*",)))
    }
    for quantity in patterns["quantities"] if patterns["quantities"] is not INVALID else ():
        if quantity not in QUANTITIES:
            checker.fail(
                fields["quantities"],
                f"{key}.quantities",
                f"unknown quantity {quantity!r}; expected some of: {', '.join(QUANTITIES)}",
            )
    where = _read_where(checker, fields["where"], f"{key}.where") if "where" in fields else {}
    max_rel = (
        checker.number(fields["max_rel_err"], f"{key}.max_rel_err", positive=True)
        if "max_rel_err" in fields
        else None
    )
    if INVALID in (*text.values(), *patterns.values(), where, max_rel):
        return None
    return KnownDivergence(
        id=text["id"],
        backend=text["backend"],
        reason=text["reason"],
        source=text["source"],
        measured=text["measured"],
        cases=patterns["cases"],
        quantities=patterns["quantities"],
        params=patterns["params"],
        where=where,
        max_rel_err=max_rel,
        location=f"{checker.filename}:{node.line}",
    )


def _strings(checker: Checker, node: Located, key: str) -> tuple[str, ...] | Any:
    items = checker.sequence(node, key)
    if items is INVALID:
        return INVALID
    values = [checker.string(item, f"{key}.{i}") for i, item in enumerate(items)]
    return INVALID if any_invalid(values) else tuple(values)


def _read_where(checker: Checker, node: Located, key: str) -> dict[str, tuple[Any, ...]] | Any:
    if not isinstance(node.value, dict):
        return checker.fail(
            node,
            key,
            f"expected a mapping of case key path -> value(s), got {describe(node.value)}",
        )
    where: dict[str, tuple[Any, ...]] = {}
    for path, value in node.value.items():
        plain = value.plain()
        where[path] = (
            tuple(plain)
            if isinstance(plain, list) and not path.endswith(("sizes", "betas"))
            else (plain,)
        )
    return where


def _check_unique_ids(checker: Checker, entries: list[KnownDivergence]) -> None:
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.id in seen:
            line = int(entry.location.rpartition(":")[2])
            checker.fail((line, 1), "id", f"duplicate id {entry.id!r} (first at {seen[entry.id]})")
        seen.setdefault(entry.id, entry.location)


def apply_known(
    table: pd.DataFrame, cases: Iterable[Case], entries: list[KnownDivergence]
) -> tuple[pd.DataFrame, list[KnownDivergence]]:
    """Turn matched diverged rows into ``known``; return the table and the stale entries."""
    table, covered, matched = match_known(table, cases, entries)
    return table, stale_entries(entries, covered, matched)


def stale_entries(
    entries: list[KnownDivergence], covered: set[str], matched: set[str]
) -> list[KnownDivergence]:
    """Entries whose scope ran (``covered`` ids) without matching a divergence (``matched``)."""
    return [e for e in entries if e.id in covered and e.id not in matched]


def match_known(
    table: pd.DataFrame, cases: Iterable[Case], entries: list[KnownDivergence]
) -> tuple[pd.DataFrame, set[str], set[str]]:
    """Turn matched diverged rows into ``known``; also the ids of the entries whose scope
    ran and of those that matched (a run taken in chunks finds its stale entries from them).
    """
    covered_ids: set[str] = set()
    matched_ids: set[str] = set()
    if not entries:
        return table, covered_ids, matched_ids
    by_name = {case.name: case for case in cases}
    status = table["status"].to_numpy(dtype=object).copy()
    detail = table["detail"].to_numpy(dtype=object).copy()
    pairs = table[["case", "backend"]].drop_duplicates().itertuples(index=False)
    pair_list = [(case, backend) for case, backend in pairs if case in by_name]
    for entry in entries:
        covered = [(c, b) for c, b in pair_list if entry.covers(by_name[c], b)]
        if not covered:
            continue  # nothing in its scope ran: neither matched nor stale
        covered_ids.add(entry.id)
        rows = _entry_rows(table, entry, covered)
        matched = rows & (status == Status.DIVERGED)  # an earlier entry's rows stay its own
        if entry.max_rel_err is not None:
            matched &= table["rel_err"].to_numpy(dtype=np.float64) <= entry.max_rel_err
        if not matched.any():
            continue
        matched_ids.add(entry.id)
        status[matched] = Status.KNOWN
        detail[matched] = f"known divergence {entry.id}: {entry.reason}"
    table = table.assign(status=status, detail=detail)
    return table, covered_ids, matched_ids


def _entry_rows(
    table: pd.DataFrame, entry: KnownDivergence, covered: list[tuple[str, str]]
) -> np.ndarray:
    pair_index = pd.MultiIndex.from_tuples(covered, names=["case", "backend"])
    in_scope = pd.MultiIndex.from_frame(table[["case", "backend"]]).isin(pair_index)
    quantities = table["quantity"].isin(entry.quantities).to_numpy()
    names = {
        p: p == "" or any(matches(p, pattern) for pattern in entry.params)
        for p in table["param"].unique()
    }
    param_ok = table["param"].map(names).to_numpy(dtype=bool)
    return np.asarray(in_scope) & quantities & param_ok
