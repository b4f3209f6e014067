"""YAML case files -> ``Case`` objects, with every problem located (file:line:col key.path)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.cases.matrix import MAX_VARIANTS, expand, variant_count
from harness.cases.model import Case
from harness.cases.schema import check_case
from harness.cases.yaml_nodes import Located, YamlProblems, parse_documents_leniently
from harness.errors import CaseError, Problem

CASE_SUFFIXES = (".yaml", ".yml")
# Files under cases/ that hold data about cases rather than cases.
NOT_CASE_FILES = ("known_divergences.yaml",)
# Far above any hand-written case file (the largest in cases/ is 4 kB); a bigger one is a
# mistake that would take PyYAML's pure-Python reader many seconds per MiB. Refused unread.
MAX_FILE_BYTES = 2 * 2**20
# Cases of one run, matrix variants of every file together: each costs about 2.6 kB once
# loaded, so a million cases is already 2.6 GB. Counted before a matrix is expanded.
MAX_CASES = MAX_VARIANTS


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Case files under ``paths`` (files as given, directories searched recursively)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in CASE_SUFFIXES and p.name not in NOT_CASE_FILES and p.is_file()
            )
            if not found:
                problems.append(
                    Problem(str(path), 0, 0, "", "directory holds no case files (*.yaml, *.yml)")
                )
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), 0, 0, "", "no such file or directory"))
    if problems:
        raise CaseError(problems)
    return list(dict.fromkeys(files))


def load_cases(paths: Iterable[str | Path]) -> list[Case]:
    """Every case (matrix variants expanded) in ``paths``; raises ``CaseError`` with all problems."""
    cases: list[Case] = []
    problems: list[Problem] = []
    counted = 0  # cases of the files so far, problems or not
    for file in discover(paths):
        found, found_problems, count = _load_file(file, MAX_CASES - counted)
        cases += found
        problems += found_problems
        counted += count
        if counted > MAX_CASES:  # stop before expanding any further matrix
            raise CaseError(problems)
    problems += _duplicate_names(cases)
    if problems:
        raise CaseError(problems)
    return cases


def load_file(file: Path) -> list[Case]:
    cases, problems, _ = _load_file(file, MAX_CASES)
    if problems:
        raise CaseError(problems)
    return cases


def load_mappings(mappings: Iterable[Mapping[str, Any]], filename: str) -> list[Case]:
    """Cases from case mappings already in memory (a generator's), checked exactly as a
    file's are; problems name ``filename`` without a line. For a program that writes its
    cases to files as well: parsing them back costs more than running them."""
    cases: list[Case] = []
    problems: list[Problem] = []
    for mapping in mappings:
        _check_node(_located(mapping), filename, set(), cases, problems)
    problems += _duplicate_names(cases)
    if problems:
        raise CaseError(problems)
    return cases


def _located(value: Any) -> Located:
    if isinstance(value, Mapping):
        return Located({str(k): _located(v) for k, v in value.items()}, 0, 0)
    if isinstance(value, (list, tuple)):
        return Located([_located(v) for v in value], 0, 0)
    return Located(value, 0, 0)


def _load_file(file: Path, room: int) -> tuple[list[Case], list[Problem], int]:
    """The cases of one file, its problems, and how many cases it declares (matrices
    counted, not expanded). Past ``room`` more cases it stops, with a problem saying so and
    a count above ``room``."""
    filename = str(file)
    try:
        text = _read_text(file)
        documents, problems = parse_documents_leniently(text, filename)
        refused = {(p.line, p.column) for p in problems}  # values already reported as unreadable
    except YamlProblems as exc:
        return [], exc.problems, 0
    if not documents:
        message = "empty file: expected a case mapping or 'cases: [...]'"
        return [], [Problem(filename, 0, 0, "", message)], 0
    cases: list[Case] = []
    counted = 0
    for node in _case_nodes(documents, filename, problems):
        count = variant_count(node)
        if counted + count > room:
            problems.append(_over_cap(node, filename, count, MAX_CASES - room + counted))
            return cases, problems, counted + count
        counted += count
        _check_node(node, filename, refused, cases, problems)
    return cases, problems, counted


def _check_node(
    node: Located,
    filename: str,
    refused: set[tuple[int, int]],
    cases: list[Case],
    problems: list[Problem],
) -> None:
    """Expand one case node's matrix and check each variant, adding to ``cases`` and
    ``problems`` (except at ``refused`` positions: values already reported unreadable)."""
    expanded = expand(node, filename)
    if isinstance(expanded, list):
        problems += expanded
        return
    for variant_node, variant in expanded:
        case, found = check_case(variant_node, filename, variant)
        problems += [p for p in found if (p.line, p.column) not in refused]
        if case is not None:
            cases.append(case)


def _over_cap(node: Located, filename: str, count: int, before: int) -> Problem:
    where = node.value.get("matrix", node) if isinstance(node.value, dict) else node
    what = f"this matrix expands to {count:,} cases" if count > 1 else "this case"
    if before:
        what += f", bringing the run to {before + count:,} cases ({before:,} came before it)"
    message = (
        f"{what}: a run may hold at most {MAX_CASES:,} cases (matrix variants of every "
        "file together)"
    )
    return Problem(filename, where.line, where.column, "matrix" if count > 1 else "", message)


def _read_text(file: Path) -> str:
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            message = (
                f"file is {size / 2**20:.1f} MiB; a case file may hold at most "
                f"{MAX_FILE_BYTES / 2**20:g} MiB"
            )
            raise YamlProblems([Problem(str(file), 0, 0, "", message)])
        data = file.read_bytes()
    except OSError as exc:
        raise YamlProblems([Problem(str(file), 0, 0, "", f"cannot read: {exc.strerror}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlProblems(
            [
                Problem(
                    str(file),
                    line,
                    column,
                    "",
                    f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded",
                )
            ]
        ) from None


def _case_nodes(documents: list[Located], filename: str, problems: list[Problem]) -> list[Located]:
    nodes: list[Located] = []
    for doc in documents:
        if isinstance(doc.value, dict) and "cases" in doc.value:
            extra = [k for k in doc.value if k != "cases"]
            for key in extra:
                problems.append(
                    Problem(
                        filename,
                        *doc.key_positions[key],
                        key,
                        "a file with 'cases:' holds nothing else",
                    )
                )
            listed = doc.value["cases"]
            if not isinstance(listed.value, list) or not listed.value:
                problems.append(
                    Problem(
                        filename,
                        listed.line,
                        listed.column,
                        "cases",
                        "expected a non-empty list of case mappings",
                    )
                )
                continue
            for i, item in enumerate(listed.value):
                if not isinstance(item.value, dict):
                    problems.append(
                        Problem(
                            filename,
                            item.line,
                            item.column,
                            f"cases.{i}",
                            "expected a case mapping",
                        )
                    )
                else:
                    nodes.append(item)
        elif isinstance(doc.value, dict):
            nodes.append(doc)
        else:
            problems.append(
                Problem(
                    filename, doc.line, doc.column, "", "expected a case mapping or 'cases: [...]'"
                )
            )
    return nodes


def _duplicate_names(cases: list[Case]) -> list[Problem]:
    seen: dict[str, Case] = {}
    problems = []
    for case in cases:
        if case.name in seen:
            file, _, line = case.source.rpartition(":")
            message = (
                f"duplicate case name {case.name!r} (first defined at {seen[case.name].source})"
            )
            problems.append(Problem(file, int(line), 1, "name", message))
        else:
            seen[case.name] = case
    return problems
