"""Known divergences: triaged framework differences, kept as data (cases/known_divergences.yaml).

A diverged row that an entry matches becomes ``known``. An entry whose scope ran in this
run (its backend on a case it covers) but matched no diverged row is *stale*: the
framework changed, or the entry is wrong, and either way it should be looked at (as
array-api-tests reports xfails that pass).

An entry that could never match, and so never be reported stale, is an error when the file
is read: an empty list (``cases: []``), a ``where`` key that is no case key path, or a
``where`` value a case cannot have (``dtype: float65``). So is an entry that silences every
divergence of its backends: one without a ``cases`` pattern narrower than ``*`` and
without ``where`` must say so with ``all_cases: true``.

The built-in file is ``BUILTIN_KNOWN``, found from this package, whatever the working
directory; a file named on the command line that does not exist is an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.cases.checker import INVALID, Checker, any_invalid, describe, did_you_mean
from harness.cases.model import (
    ACTIVATIONS,
    DTYPES,
    INIT_SCHEMES,
    LOSSES,
    OPTIMIZERS,
    QUANTITIES,
    Case,
)
from harness.cases.patterns import matches
from harness.cases.schema import NAME_PATTERN
from harness.cases.yaml_nodes import Located, YamlProblems, parse_documents
from harness.errors import CaseError, Problem
from harness.text import storable
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
    "all_cases",
)

# cases/known_divergences.yaml of the repository this package is in (the built-in cases'
# folder), so a run from any working directory finds the same entries.
BUILTIN_KNOWN = Path(__file__).resolve().parents[2] / "cases" / "known_divergences.yaml"

# The case key paths a ``where`` may test (as ``case_attribute`` reads them), each with
# the values a case can have there (None: any value).
WHERE_PATHS: Mapping[str, tuple[Any, ...] | None] = {
    "name": None,
    "description": None,
    "steps": None,
    "dtype": DTYPES,
    "network.sizes": None,
    "network.activation": ACTIVATIONS,
    "network.output_activation": ACTIVATIONS,
    "network.init.seed": None,
    "network.init.scheme": tuple(INIT_SCHEMES),
    "loss.name": tuple(LOSSES),
    **{f"loss.{arg}": None for args in LOSSES.values() for arg in args},
    "optimizer.name": tuple(OPTIMIZERS),
    **{f"optimizer.{arg}": None for args in OPTIMIZERS.values() for arg in args},
    "tolerance.rtol": None,
    "tolerance.atol": None,
}


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
    all_cases: bool = False  # covers every case on purpose (no cases pattern, no where)

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
    value: Any = case
    if head == "optimizer" and rest not in ("", "name"):
        value = case.optimizer.args.get(rest)
    elif head == "loss" and rest not in ("", "name"):
        value = case.loss.args.get(rest)
    else:
        for part in path.split("."):
            value = getattr(value, part, None)
    return list(value) if isinstance(value, tuple) else value  # YAML has lists (betas, sizes)


def known_option(value: str | None) -> list[KnownDivergence]:
    """The entries ``--known`` names: None the built-in file, ``none`` no entries."""
    if value == "none":
        return []
    if value is None:
        if not BUILTIN_KNOWN.is_file():  # a package installed without its cases/ folder
            warnings.warn(f"no built-in known divergences at {BUILTIN_KNOWN}", stacklevel=2)
            return []
        return load_known(BUILTIN_KNOWN)
    return load_known(Path(value))


def load_known(path: Path) -> list[KnownDivergence]:
    """Entries of a known-divergences file (which must exist), every problem at once."""
    filename = str(path)
    try:
        documents = parse_documents(path.read_text(encoding="utf-8"), filename)
    except YamlProblems as exc:
        raise CaseError(exc.problems) from None
    except UnicodeDecodeError as exc:
        raise CaseError([Problem(filename, 0, 0, "", f"not UTF-8 text: {exc.reason}")]) from None
    except OSError as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or exc
        raise CaseError(
            [Problem(filename, 0, 0, "", f"cannot read the known divergences: {reason}")]
        ) from None
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
    if text["id"] is not INVALID and not NAME_PATTERN.fullmatch(text["id"]):
        text["id"] = checker.fail(
            fields["id"],
            f"{key}.id",
            f"expected letters, digits, '_', '.', '-' only, got {text['id']!r}",
        )
    if text["backend"] == "":
        text["backend"] = checker.fail(fields["backend"], f"{key}.backend", "empty pattern")
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
    all_cases = (
        checker.boolean(fields["all_cases"], f"{key}.all_cases") if "all_cases" in fields else False
    )
    if INVALID in (*text.values(), *patterns.values(), where, max_rel, all_cases):
        return None
    # A pattern of stars and question marks alone covers (nearly) every name.
    narrowed = bool(where) or (
        "cases" in fields and all(set(pattern) - {"*", "?"} for pattern in patterns["cases"])
    )
    if all_cases and narrowed:
        checker.fail(
            fields["all_cases"],
            f"{key}.all_cases",
            "all_cases: true says the entry covers every case, but cases or where narrows it; "
            "drop one",
        )
        return None
    if not all_cases and not narrowed:
        checker.fail(
            node,
            key,
            f"entry {text['id']!r} covers every case on backend {text['backend']!r} (no cases "
            "pattern narrower than '*', no where), so it would silence every divergence there; "
            "narrow it with cases or where, or write all_cases: true if that is meant",
        )
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
        all_cases=all_cases,
    )


def _strings(checker: Checker, node: Located, key: str) -> tuple[str, ...] | Any:
    items = checker.sequence(node, key)
    if items is INVALID:
        return INVALID
    if not items:  # matches nothing, so it would never be reported stale either
        return checker.fail(node, key, "empty list: the entry could never match")
    values = [checker.string(item, f"{key}.{i}") for i, item in enumerate(items)]
    return INVALID if any_invalid(values) else tuple(values)


def _read_where(checker: Checker, node: Located, key: str) -> dict[str, tuple[Any, ...]] | Any:
    if not isinstance(node.value, dict):
        return checker.fail(
            node,
            key,
            f"expected a mapping of case key path -> value(s), got {describe(node.value)}",
        )
    if not node.value:
        return checker.fail(node, key, "empty mapping: leave where out, or name a case key path")
    where: dict[str, tuple[Any, ...]] = {}
    failed = False
    for path, value in node.value.items():
        line_column = node.key_positions.get(path, (node.line, node.column))
        if path not in WHERE_PATHS:
            hint = did_you_mean(path, WHERE_PATHS)
            checker.fail(
                line_column,
                f"{key}.{path}",
                f"not a case key path{hint}; expected one of: {', '.join(WHERE_PATHS)}",
            )
            failed = True
            continue
        plain = value.plain()
        accepted = (
            tuple(plain)
            if isinstance(plain, list) and not path.endswith(("sizes", "betas"))
            else (plain,)
        )
        if not accepted:
            checker.fail(value, f"{key}.{path}", "empty list: the entry could never match")
            failed = True
        choices = WHERE_PATHS[path] or ()  # () where any value will do
        for item in accepted if choices else ():
            if item not in choices:
                checker.fail(
                    value,
                    f"{key}.{path}",
                    f"unknown value {item!r}{did_you_mean(item, choices)}; a case's {path} is "
                    f"one of: {', '.join(choices)}",
                )
                failed = True
        where[path] = accepted
    return INVALID if failed else where


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
        detail[matched] = storable(f"known divergence {entry.id}: {entry.reason}")
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
