"""Repro files: for each failing case × backend, its case file and a one-line command.

The case's own YAML file is copied into ``repro/`` (a file is self-contained: anchors and
matrices resolve inside it), and the command runs just that case on just that backend,
with the case name as its own --case pattern (brackets in matrix names are literal there).

A copy's name is its folder's name and its own joined by ``__`` (``cases__seed.yaml``),
made of letters, digits, ``_``, ``.`` and ``-`` only and never starting with a dot or a
dash, so it is always a plain file inside ``repro/``. Two different files that would get
the same name are told apart by ``-2``, ``-3``, ... in the order their failing pairs come
(the same file, or the same text under the same name, is copied once).

``crossgrad report`` copies the case files that earlier reports' ``repro/pairs.json``
name, and only those that lie inside that report's own folder once every link is
resolved: a pairs.json from an untrusted artifact cannot make it publish another file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
from functools import partial
from pathlib import Path

import pandas as pd

from harness.cases.model import Case
from harness.errors import ResultsError
from harness.report.results_io import read_json
from harness.report.writer import atomic_write, atomic_write_text
from harness.verdict.status import FAILING

INDEX = "pairs.json"  # what a merged report reads back to rebuild the commands
COMMANDS = "commands.sh"
Pair = tuple[str, str]  # (case, backend)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_LEADING = re.compile(r"^[.-]+")
_PART_LENGTH = 100  # characters kept of each part: a name stays under the 255-byte limit


def command(case_file: Path, case: str, backend: str) -> str:
    """The shell line that reruns ``case`` on ``backend`` from ``case_file``.

    ``--case=NAME`` and ``--backend=NAME`` keep a name that starts with a dash a value
    (``--case -h`` would be read as the help option); a path starting with a dash is
    written ``./-...``. ``--case`` patterns treat brackets literally
    (harness.cases.patterns), so a name matches itself.
    """
    path = str(case_file)
    if path.startswith("-"):
        path = f"./{path}"
    words = ["crossgrad", "run", path, f"--backend={backend}", f"--case={case}"]
    return shlex.join([*words, "--out", "reports/repro"])


def failing_pairs(table: pd.DataFrame) -> list[Pair]:
    bad = table.loc[table["status"].isin(FAILING), ["case", "backend"]].drop_duplicates()
    return [(str(c), str(b)) for c, b in bad.itertuples(index=False)]


def repro_name(source: Path) -> str:
    """The name ``source`` gets in repro/ (before telling equal names apart).

    Its folder's name and its own (its own alone for a file from an earlier repro/ or at
    the filesystem root), each with every character but letters, digits, ``_``, ``.`` and
    ``-`` replaced by ``_`` and leading dots and dashes by ``_``.
    """
    parts = [source.name] if source.parent.name in ("repro", "") else source.parts[-2:]
    safe = [_safe(part) for part in parts]
    return "__".join(part for part in safe if part) or "case.yaml"


def _safe(part: str) -> str:
    part = _UNSAFE.sub("_", part)[-_PART_LENGTH:]
    return _LEADING.sub(lambda m: "_" * len(m.group()), part)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``stem-2.suffix``, ``stem-3.suffix``, ...: the first not yet taken.

    Compared without case: on a case-insensitive filesystem ``A.yaml`` is ``a.yaml``.
    """
    stem, dot, suffix = name.partition(".")
    candidate, number = name, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{stem}-{number}{dot}{suffix}"
    taken.add(candidate.casefold())
    return candidate


def write_repro(
    failing: list[Pair], sources: dict[Pair, Path], out: Path, named: Path | None = None
) -> list[str]:
    """Copy each failing pair's case file into ``out/repro`` and return the commands.

    The commands name the copies in ``named/repro`` (the report folder as the user named
    it, when ``out`` is the fresh folder that will replace it).
    """
    folder = out / "repro"
    taken = {INDEX.casefold(), COMMANDS.casefold()}
    copies: dict[tuple[str, bytes], str] = {}  # (name, text) -> the copy's file name
    texts: dict[Path, bytes | None] = {}  # each file read once, however many pairs it has
    entries, lines = [], []
    # Every source is read before anything is written: a source may be in out/repro itself.
    for case, backend in failing:
        source = sources.get((case, backend))
        if source is None:
            continue
        if source not in texts:
            texts[source] = _read_case_file(source)
        text = texts[source]
        if text is None:
            continue
        key = (repro_name(source), text)
        if key not in copies:
            copies[key] = _unique(key[0], taken)
        name = copies[key]
        entries.append({"case": case, "backend": backend, "file": name})
        lines.append(command((named or out) / "repro" / name, case, backend))
    if entries:
        if folder.is_symlink():  # the report's own repro/ slot: never write through a link
            folder.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        for (_, text), name in copies.items():
            atomic_write(folder / name, partial(_write_bytes, text))
        atomic_write_text(folder / INDEX, json.dumps(entries, indent=1) + "\n")
        atomic_write_text(folder / COMMANDS, "\n".join(lines) + "\n")
    return lines


def _read_case_file(path: Path) -> bytes | None:
    """The file's bytes; None when it is missing or not a regular file (a FIFO, a device)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
        return file.read()


def _write_bytes(data: bytes, path: str) -> None:
    Path(path).write_bytes(data)


def case_sources(cases: list[Case], backends: list[str]) -> dict[Pair, Path]:
    """Each (case, backend)'s YAML file, from ``Case.source`` ("file:line")."""
    files = {c.name: Path(c.source.rpartition(":")[0]) for c in cases if c.source}
    return {(case, b): path for case, path in files.items() for b in backends}


def sources_from_reports(folders: list[Path]) -> dict[Pair, Path]:
    """(case, backend) -> copied case file, from the repro/ folders of earlier reports.

    Each file pairs.json names must be a plain file name whose file, links resolved, lies
    inside that report's folder; anything else is a ``ResultsError`` (nothing is copied).
    """
    found = {}
    for folder in folders:
        index = folder / "repro" / INDEX
        if not index.is_file():
            continue
        base = folder.resolve()
        _inside(index, base, index, "pairs.json itself")
        for number, entry in enumerate(_entries(index), start=1):
            name = entry["file"]
            where = f"entry {number}: file {name!r}"
            if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
                raise ResultsError(
                    f"{index}: {where}: expected the name of a file in {index.parent}"
                )
            path = folder / "repro" / name
            found[(entry["case"], entry["backend"])] = _inside(path, base, index, where)
    return found


def _entries(index: Path) -> list[dict[str, str]]:
    entries = read_json(index)
    if not isinstance(entries, list):
        raise ResultsError(f"{index}: expected a list of {{case, backend, file}} entries")
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(key), str) for key in ("case", "backend", "file")
        ):
            raise ResultsError(
                f'{index}: entry {number}: expected {{"case": ..., "backend": ..., '
                f'"file": ...}} with text values, got {json.dumps(entry)[:80]}'
            )
    return entries


def _inside(path: Path, base: Path, index: Path, where: str) -> Path:
    """``path`` with every link resolved, when that lies inside ``base``."""
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a link loop
        raise ResultsError(f"{index}: {where}: cannot be resolved: {exc}") from exc
    if not resolved.is_relative_to(base):
        raise ResultsError(
            f"{index}: {where}: resolves to {resolved}, outside the report folder {base}; "
            "a report copies only files of its inputs' own folders"
        )
    return resolved
