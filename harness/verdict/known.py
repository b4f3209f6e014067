"""Known divergences: triaged framework differences, kept as data, verified on every row.

An entry names a framework behaviour the reference can take on as a switch
(backends/numpy/semantics.py: eps inside the square root, epsilon-hat Adam, decoupled weight
decay, …) and the case keys it applies to (``where``: ``optimizer.name: rmsprop``,
``optimizer.weight_decay: ">0"``, ``dtype: float64``), never the library's case names. A
diverged row becomes ``known`` only when the backend matches the reference recomputed with
the entry's switches under the normal tolerance: a planted bug in the same optimizer still
diverges from that, and the row's detail says the entry was tried and what still differs.
An effect that cannot be written as a switch keeps a ``max_rel_err`` bound instead and is
reported as "bounded, not verified".

An entry whose scope ran in this run (its backend, not the reference, on a case it
covers) but explained no row is *stale*: the framework changed, or the entry is wrong.
An entry that could never match is an error when the file is read: an empty list, a
``where`` key that is no case key path, a ``where`` value a case cannot have. So is one
that would cover every case of its backends without saying ``all_cases: true``.

The built-in file is ``BUILTIN_KNOWN``, found from this package, whatever the working
directory; an adapter may ship its own (``Backend.known_divergences``), applied in addition;
a file named on the command line that does not exist is an error.
"""

from __future__ import annotations

import operator
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backends.numpy.eager import NumpyBackend
from backends.numpy.rounding import magnitudes
from backends.numpy.semantics import SWITCH_TYPES, Semantics
from harness.cases.checker import INVALID, Checker, any_invalid, describe, did_you_mean
from harness.cases.inputs import make_inputs
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
from harness.verdict.compare import DEFAULT_TOLERANCES, agrees, tolerance_for
from harness.verdict.status import Status

ENTRY_KEYS = (
    "id",
    "backend",
    "where",
    "semantics",
    "quantities",
    "params",
    "max_rel_err",
    "measured",
    "reason",
    "source",
    "all_cases",
)

# Where a report folder keeps what its run's known divergences covered and explained.
KNOWN_FILE = "known.json"

# cases/known_divergences.yaml of the repository this package is in (the built-in cases'
# folder), so a run from any working directory finds the same entries.
BUILTIN_KNOWN = Path(__file__).resolve().parents[2] / "cases" / "known_divergences.yaml"

# The case key paths a ``where`` may test (as ``case_attribute`` reads them), each with
# the values a case can have there (None: any value).
# A case's name and description are not here: an entry states the behaviour's scope in
# case keys, so it applies to every case with those keys, written or generated.
WHERE_PATHS: Mapping[str, tuple[Any, ...] | None] = {
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


_COMPARISON = re.compile(r"^\s*(<=|>=|<|>|!=|==)\s*([-+0-9.eE]+)\s*$")
_COMPARE: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "!=": operator.ne,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Condition:
    """What a ``where`` accepts at one case key: one of some values, or a comparison ('>0')."""

    values: tuple[Any, ...] = ()
    comparison: tuple[str, float] | None = None

    def accepts(self, value: Any) -> bool:
        if self.comparison is not None:
            op, bound = self.comparison
            number = 0.0 if value is None else value
            return (
                isinstance(number, int | float)
                and not isinstance(number, bool)
                and _COMPARE[op](float(number), bound)
            )
        return value in self.values

    def __str__(self) -> str:
        if self.comparison is not None:
            return f"{self.comparison[0]}{self.comparison[1]:g}"
        return " or ".join(map(str, self.values))


@dataclass(frozen=True)
class KnownDivergence:
    id: str
    backend: str  # backend name or shell-style pattern
    reason: str
    source: str
    measured: str
    where: Mapping[str, Condition] = field(default_factory=dict)
    # The framework's behaviour as switches of the reference: rows are verified against it.
    semantics: Semantics | None = None
    quantities: tuple[str, ...] = QUANTITIES
    params: tuple[str, ...] = ("*",)
    # Without semantics: rows within this fraction of their magnitude (from the reference
    # with the pair's verified switches) are known, "bounded, not verified".
    max_rel_err: float | None = None
    location: str = ""
    all_cases: bool = False  # covers every case on purpose (no where)

    @property
    def verified(self) -> bool:
        return self.semantics is not None

    def covers(self, case: Case, backend: str) -> bool:
        """Whether this entry is about ``case`` on ``backend`` at all."""
        return matches(backend, self.backend) and all(
            condition.accepts(case_attribute(case, path)) for path, condition in self.where.items()
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


def known_option(values: str | Sequence[str] | None) -> list[KnownDivergence]:
    """The entries of ``--known`` (repeatable): the built-in file, then each named file.

    ``none`` among them drops the built-in entries (and the adapters' own, which
    ``adapter_known`` adds); every other value is a file that must exist.
    """
    named = [values] if isinstance(values, str) else list(values or [])
    entries: list[KnownDivergence] = []
    if "none" not in named:
        if BUILTIN_KNOWN.is_file():
            entries += load_known(BUILTIN_KNOWN)
        else:  # a package installed without its cases/ folder
            warnings.warn(f"no built-in known divergences at {BUILTIN_KNOWN}", stacklevel=2)
    for value in named:
        if value != "none":
            entries += load_known(Path(value))
    _check_unique_ids_across(entries)
    return entries


def adapter_known(backends: Iterable[str], entries: list[KnownDivergence]) -> list[KnownDivergence]:
    """``entries`` plus the known divergences each adapter's package ships
    (``Backend.known_divergences``), read once per file; never imports a framework."""
    from backends import registry  # the registry reads entry points: only when asked

    files: list[Path] = []
    for name in backends:
        path = registry.known_file(name)
        if path is not None and path not in files and path.resolve() != BUILTIN_KNOWN:
            files.append(path)
    combined = list(entries)
    for path in files:
        combined += load_known(path)
    _check_unique_ids_across(combined)
    return combined


def _check_unique_ids_across(entries: list[KnownDivergence]) -> None:
    problems = _duplicate_ids(entries)
    if problems:
        raise CaseError(problems)


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
    checker.problems += _duplicate_ids(entries)
    if checker.problems:
        raise CaseError(checker.problems)
    return entries


def _read_entry(checker: Checker, node: Located, key: str) -> KnownDivergence | None:
    required = ("id", "backend", "measured", "reason", "source")
    if isinstance(node.value, dict) and "cases" in node.value:
        line_column = node.key_positions.get("cases", (node.line, node.column))
        checker.fail(
            line_column,
            f"{key}.cases",
            "entries no longer name cases: say which case keys the behaviour applies to "
            "with where (e.g. where: {optimizer.name: rmsprop, dtype: float64})",
        )
        return None
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
        for name, default in (("quantities", QUANTITIES), ("params", ("*",)))
    }
    for quantity in patterns["quantities"] if patterns["quantities"] is not INVALID else ():
        if quantity not in QUANTITIES:
            checker.fail(
                fields["quantities"],
                f"{key}.quantities",
                f"unknown quantity {quantity!r}; expected some of: {', '.join(QUANTITIES)}",
            )
    where = _read_where(checker, fields["where"], f"{key}.where") if "where" in fields else {}
    semantics = (
        _read_semantics(checker, fields["semantics"], f"{key}.semantics")
        if "semantics" in fields
        else None
    )
    max_rel = (
        checker.number(fields["max_rel_err"], f"{key}.max_rel_err", positive=True)
        if "max_rel_err" in fields
        else None
    )
    all_cases = (
        checker.boolean(fields["all_cases"], f"{key}.all_cases") if "all_cases" in fields else False
    )
    if INVALID in (*text.values(), *patterns.values(), where, semantics, max_rel, all_cases):
        return None
    if (semantics is None) == (max_rel is None):
        checker.fail(
            node,
            key,
            f"entry {text['id']!r} needs exactly one of semantics (the framework's behaviour, "
            "verified on every row) or max_rel_err (a bound, for an effect no switch can "
            "express)",
        )
        return None
    if all_cases and where:
        checker.fail(
            fields["all_cases"],
            f"{key}.all_cases",
            "all_cases: true says the entry covers every case, but where narrows it; drop one",
        )
        return None
    if not all_cases and not where:
        checker.fail(
            node,
            key,
            f"entry {text['id']!r} covers every case on backend {text['backend']!r} (no "
            "where), so it would apply to every divergence there; narrow it with where, or "
            "write all_cases: true if that is meant",
        )
        return None
    return KnownDivergence(
        id=text["id"],
        backend=text["backend"],
        reason=text["reason"],
        source=text["source"],
        measured=text["measured"],
        where=where,
        semantics=semantics,
        quantities=patterns["quantities"],
        params=patterns["params"],
        max_rel_err=max_rel,
        location=f"{checker.filename}:{node.line}",
        all_cases=all_cases,
    )


def _read_semantics(checker: Checker, node: Located, key: str) -> Semantics | Any:
    if not isinstance(node.value, dict) or not node.value:
        return checker.fail(
            node,
            key,
            f"expected a mapping of switch -> value (switches: {', '.join(SWITCH_TYPES)}), "
            f"got {describe(node.value)}",
        )
    switches: dict[str, Any] = {}
    failed = False
    for name, value in node.value.items():
        line_column = node.key_positions.get(name, (node.line, node.column))
        if name not in SWITCH_TYPES:
            checker.fail(
                line_column,
                f"{key}.{name}",
                f"unknown switch{did_you_mean(name, SWITCH_TYPES)}; the reference has: "
                f"{', '.join(SWITCH_TYPES)}",
            )
            failed = True
            continue
        kind = SWITCH_TYPES[name]
        if kind is bool:
            read = checker.boolean(value, f"{key}.{name}")
        elif kind is float:
            read = checker.number(value, f"{key}.{name}")
        else:
            read = checker.choice(value, f"{key}.{name}", DTYPES)
        if read is INVALID:
            failed = True
        switches[name] = read
    return INVALID if failed else Semantics(**switches)


def _strings(checker: Checker, node: Located, key: str) -> tuple[str, ...] | Any:
    items = checker.sequence(node, key)
    if items is INVALID:
        return INVALID
    if not items:  # matches nothing, so it would never be reported stale either
        return checker.fail(node, key, "empty list: the entry could never match")
    values = [checker.string(item, f"{key}.{i}") for i, item in enumerate(items)]
    return INVALID if any_invalid(values) else tuple(values)


def _read_where(checker: Checker, node: Located, key: str) -> dict[str, Condition] | Any:
    if not isinstance(node.value, dict):
        return checker.fail(
            node,
            key,
            f"expected a mapping of case key path -> value(s), got {describe(node.value)}",
        )
    if not node.value:
        return checker.fail(node, key, "empty mapping: leave where out, or name a case key path")
    where: dict[str, Condition] = {}
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
        choices = WHERE_PATHS[path] or ()  # () where any value will do
        comparison = _COMPARISON.match(plain) if isinstance(plain, str) and not choices else None
        if comparison is not None:
            where[path] = Condition(comparison=(comparison[1], float(comparison[2])))
            continue
        accepted = (
            tuple(plain)
            if isinstance(plain, list) and not path.endswith(("sizes", "betas"))
            else (plain,)
        )
        if not accepted:
            checker.fail(value, f"{key}.{path}", "empty list: the entry could never match")
            failed = True
        for item in accepted if choices else ():
            if item not in choices:
                checker.fail(
                    value,
                    f"{key}.{path}",
                    f"unknown value {item!r}{did_you_mean(item, choices)}; a case's {path} is "
                    f"one of: {', '.join(choices)}",
                )
                failed = True
        where[path] = Condition(values=accepted)
    return INVALID if failed else where


def _duplicate_ids(entries: list[KnownDivergence]) -> list[Problem]:
    """An id used by two entries, in one file or across files (one entry read twice, as
    when a file is named twice, is not a duplicate)."""
    seen: dict[str, str] = {}
    problems = []
    for entry in entries:
        if entry.id in seen and seen[entry.id] != entry.location:
            filename, _, line = entry.location.rpartition(":")
            message = f"duplicate id {entry.id!r} (first at {seen[entry.id]})"
            problems.append(Problem(filename, int(line or 0), 1, "id", message))
        seen.setdefault(entry.id, entry.location)
    return problems


def apply_known(
    table: pd.DataFrame, cases: Iterable[Case], entries: list[KnownDivergence], reference: str
) -> tuple[pd.DataFrame, list[KnownDivergence]]:
    """Turn explained diverged rows into ``known``; return the table and the stale entries."""
    table, covered, matched = match_known(table, cases, entries, reference)
    return table, stale_entries(entries, covered, matched)


def stale_entries(
    entries: list[KnownDivergence], covered: set[str], matched: set[str]
) -> list[KnownDivergence]:
    """Entries whose scope ran (``covered`` ids) without explaining a row (``matched``)."""
    return [e for e in entries if e.id in covered and e.id not in matched]


def known_record(
    entries: list[KnownDivergence], covered: set[str], matched: set[str]
) -> dict[str, Any]:
    """What a report folder keeps of its run's known divergences (``known.json``), so that a
    merge of per-backend runs finds the same stale entries as one run over all of them."""
    return {
        "entries": {
            e.id: {
                "location": e.location,
                "measured": e.measured,
                "explained": "verified" if e.verified else "bounded, not verified",
            }
            for e in entries
            if e.id in covered
        },
        "covered": [e.id for e in entries if e.id in covered],
        "explained": [e.id for e in entries if e.id in matched],
    }


def stale_from_records(records: Iterable[Mapping[str, Any]]) -> list[KnownDivergence]:
    """Entries some run covered and no run explained, in first-covered order."""
    entries: dict[str, Mapping[str, Any]] = {}
    explained: set[str] = set()
    for record in records:
        described = record.get("entries")
        described = described if isinstance(described, dict) else {}
        for entry_id in _listed(record.get("covered")):
            info = described.get(entry_id)
            entries.setdefault(entry_id, info if isinstance(info, dict) else {})
        explained.update(_listed(record.get("explained")))
    return [
        KnownDivergence(
            id=entry_id,
            backend="",
            reason="",
            source="",
            measured=str(info.get("measured", "")),
            location=str(info.get("location", "")),
        )
        for entry_id, info in entries.items()
        if entry_id not in explained
    ]


def _listed(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def match_known(
    table: pd.DataFrame, cases: Iterable[Case], entries: list[KnownDivergence], reference: str
) -> tuple[pd.DataFrame, set[str], set[str]]:
    """Turn explained diverged rows into ``known``; also the ids of the entries whose scope
    ran on a compared backend and of those that explained a row (a run taken in chunks
    finds its stale entries from them).

    Per pair, the verified entries that cover it are tried one at a time and then all
    together (a Keras optimizer can show two behaviours at once); a row is explained by
    the first whose switched reference it matches. Bounded entries come after.
    """
    covered_ids: set[str] = set()
    matched_ids: set[str] = set()
    if not entries or table.empty:
        return table, covered_ids, matched_ids
    by_name = {case.name: case for case in cases}
    status = table["status"].to_numpy(dtype=object).copy()
    detail = table["detail"].to_numpy(dtype=object).copy()
    switched = _SwitchedReferences()
    for (case_name, backend), index in table.groupby(
        ["case", "backend"], sort=False
    ).indices.items():
        case = by_name.get(str(case_name))
        if case is None or backend == reference:
            continue
        applying = [entry for entry in entries if entry.covers(case, str(backend))]
        if not applying:
            continue
        covered_ids.update(entry.id for entry in applying)
        if not (status[index] == Status.DIVERGED).any():
            continue
        rows = table.iloc[index]
        matched_ids |= _explain_pair(rows, case, applying, switched, status, detail, index)
    return table.assign(status=status, detail=detail), covered_ids, matched_ids


class _SwitchedReferences:
    """The reference's values of a case under some switches, computed once per run."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, Semantics], dict[tuple[int, str, str, int], float]] = {}
        self._magnitudes: dict[
            tuple[str, float, Semantics], dict[tuple[int, str, str, int], float]
        ] = {}

    def magnitudes(
        self, case: Case, rtol: float, semantics: Semantics
    ) -> dict[tuple[int, str, str, int], float]:
        """The case's magnitudes as the switched computation has them (its own sensitivity:
        √(v + ε) is not √v + ε near v = 0), at the rtol it is judged with."""
        key = (case.name, rtol, semantics)
        if key not in self._magnitudes:
            trace = magnitudes(case, make_inputs(case), rtol, semantics)
            self._magnitudes[key] = _keyed(trace.rows())
        return self._magnitudes[key]

    def values(self, case: Case, semantics: Semantics) -> dict[tuple[int, str, str, int], float]:
        key = (case.name, semantics)
        if key not in self._values:
            rows = NumpyBackend(semantics).run(case, make_inputs(case)).rows()
            self._values[key] = _keyed(rows)
        return self._values[key]


def _keyed(rows: Mapping[str, np.ndarray]) -> dict[tuple[int, str, str, int], float]:
    labels = zip(rows["step"], rows["quantity"], rows["param"], rows["index"], strict=True)
    return {
        (int(step), str(quantity), str(param), int(i)): float(value)
        for (step, quantity, param, i), value in zip(labels, rows["value"], strict=True)
    }


def _row_keys(rows: pd.DataFrame) -> list[tuple[int, str, str, int]]:
    step = rows["step"].fillna(-1).astype(int).to_numpy()
    index = rows["index"].fillna(-1).astype(int).to_numpy()
    return list(
        zip(
            step.tolist(),
            rows["quantity"].tolist(),
            rows["param"].tolist(),
            index.tolist(),
            strict=True,
        )
    )


def _explain_pair(
    rows: pd.DataFrame,
    case: Case,
    applying: list[KnownDivergence],
    switched: _SwitchedReferences,
    status: np.ndarray,
    detail: np.ndarray,
    index: np.ndarray,
) -> set[str]:
    """Mark the rows of one pair that ``applying`` explains; return the ids that explained any."""
    explained: set[str] = set()
    remaining = status[index] == Status.DIVERGED
    value = rows["value"].to_numpy(dtype=np.float64)
    case_magnitude = rows["magnitude"].to_numpy(dtype=np.float64)
    keys = _row_keys(rows)
    verified = [entry for entry in applying if entry.verified]
    groups: list[tuple[KnownDivergence, ...]] = [(entry,) for entry in verified]
    if len(verified) > 1:
        groups.append(tuple(verified))
    tried = np.full(len(rows), "", dtype=object)
    for group in groups:
        semantics = Semantics()
        for entry in group:
            semantics = semantics.combined(entry.semantics)  # type: ignore[arg-type]
        values = switched.values(case, semantics)
        reference = np.array([values.get(key, np.nan) for key in keys])
        tolerance = (
            DEFAULT_TOLERANCES[semantics.compute_dtype]
            if semantics.compute_dtype and case.tolerance is None
            else tolerance_for(case)
        )
        spreads = switched.magnitudes(case, tolerance.rtol, semantics)
        magnitude = np.array([spreads.get(key, np.nan) for key in keys])
        with np.errstate(invalid="ignore"):
            error = np.abs(value - reference)
            tol = tolerance.atol + tolerance.rtol * np.fmax(magnitude, np.abs(reference))
        agree = agrees(value, reference, tol)
        scope = np.zeros(len(rows), dtype=bool)
        for entry in group:
            scope |= _in_scope(rows, entry)
        claim = remaining & scope & agree
        ids = ", ".join(entry.id for entry in group)
        if claim.any():
            explained.update(entry.id for entry in group)
            status[index[claim]] = Status.KNOWN
            detail[index[claim]] = storable(
                f"known divergence {ids} (verified: matches the reference with "
                f"{semantics.describe()}): {group[0].reason}"
            )
            remaining &= ~claim
        still = remaining & scope
        tried[still] = [
            f"known divergence {ids} tried: the reference with {semantics.describe()} gives "
            f"{r:.9g}, still abs err {e:.3g} > tol {t:.3g}"
            for r, e, t in zip(reference[still], error[still], tol[still], strict=True)
        ]
    # A bound is measured from the reference with every verified switch that covers the
    # pair (what the bounded effect comes on top of), else from the plain reference.
    # Relative to the value's magnitude, as the tolerance is: a bounded effect of float32
    # arithmetic is a fraction of the terms, not of a value that cancelled to near 0.
    if not groups:
        reference = rows["reference"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel_err = np.abs(value - reference) / np.fmax(case_magnitude, np.abs(reference))
    for entry in applying:
        if entry.verified:
            continue
        claim = remaining & _in_scope(rows, entry) & (rel_err <= entry.max_rel_err)
        if claim.any():
            explained.add(entry.id)
            status[index[claim]] = Status.KNOWN
            base = f"the reference with {semantics.describe()}" if groups else "the reference"
            detail[index[claim]] = storable(
                f"known divergence {entry.id} (bounded, not verified: rel err <= "
                f"{entry.max_rel_err:g} from {base}): {entry.reason}"
            )
            remaining &= ~claim
    still = remaining & (tried != "")
    if still.any():
        old = detail[index[still]]
        detail[index[still]] = [
            storable(f"{note}; {before}" if before else note)
            for note, before in zip(tried[still], old, strict=True)
        ]
    return explained


def _in_scope(rows: pd.DataFrame, entry: KnownDivergence) -> np.ndarray:
    """The rows of a covered pair that ``entry``'s quantities and params select."""
    quantities = rows["quantity"].isin(entry.quantities).to_numpy()
    names = {
        p: p == "" or any(matches(p, pattern) for pattern in entry.params)
        for p in rows["param"].unique()
    }
    return quantities & rows["param"].map(names).to_numpy(dtype=bool)
