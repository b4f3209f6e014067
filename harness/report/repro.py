"""Repro files: for each failing case × backend, its case file and a one-line command.

The case's own YAML file is copied into ``repro/`` (a file is self-contained: anchors and
matrices resolve inside it), and the command runs just that case on just that backend,
with the case name as its own --case pattern (brackets in matrix names are literal there).
"""

from __future__ import annotations

import json
import shlex
import shutil
from functools import partial
from pathlib import Path

import pandas as pd

from harness.cases.model import Case
from harness.report.writer import atomic_write, atomic_write_text
from harness.verdict.status import FAILING

INDEX = "pairs.json"  # what a merged report reads back to rebuild the commands
Pair = tuple[str, str]  # (case, backend)


def command(case_file: Path, case: str, backend: str) -> str:
    words = ["crossgrad", "run", str(case_file), "--backend", backend]
    # --case patterns treat brackets literally (harness.cases.patterns), so a name matches itself.
    return shlex.join([*words, "--case", case, "--out", "reports/repro"])


def failing_pairs(table: pd.DataFrame) -> list[Pair]:
    bad = table.loc[table["status"].isin(FAILING), ["case", "backend"]].drop_duplicates()
    return [(str(c), str(b)) for c, b in bad.itertuples(index=False)]


def write_repro(
    failing: list[Pair], sources: dict[Pair, Path], out: Path, named: Path | None = None
) -> list[str]:
    """Copy each failing pair's case file into ``out/repro`` and return the commands.

    The commands name the copies in ``named/repro`` (the report folder as the user named
    it, when ``out`` is the fresh folder that will replace it). Every file is written
    under a new name and renamed into place, so a link in ``out`` is replaced, never
    followed.
    """
    folder = out / "repro"
    entries, lines = [], []
    for case, backend in failing:
        source = sources.get((case, backend))
        if source is None or not source.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        # Short and unique across case folders; a file from an earlier repro/ keeps its name.
        name = source.name if source.parent.name == "repro" else "__".join(source.parts[-2:])
        copy = folder / name
        if source.resolve() != copy.resolve():
            atomic_write(copy, partial(shutil.copyfile, source))
        entries.append({"case": case, "backend": backend, "file": copy.name})
        lines.append(command((named or out) / "repro" / name, case, backend))
    if entries:
        atomic_write_text(folder / INDEX, json.dumps(entries, indent=1) + "\n")
        atomic_write_text(folder / "commands.sh", "\n".join(lines) + "\n")
    return lines


def case_sources(cases: list[Case], backends: list[str]) -> dict[Pair, Path]:
    """Each (case, backend)'s YAML file, from ``Case.source`` ("file:line")."""
    files = {c.name: Path(c.source.rpartition(":")[0]) for c in cases if c.source}
    return {(case, b): path for case, path in files.items() for b in backends}


def sources_from_reports(folders: list[Path]) -> dict[Pair, Path]:
    """(case, backend) -> copied case file, from the repro/ folders of earlier reports."""
    found = {}
    for folder in folders:
        index = folder / "repro" / INDEX
        if index.is_file():
            for entry in json.loads(index.read_text(encoding="utf-8")):
                found[(entry["case"], entry["backend"])] = folder / "repro" / entry["file"]
    return found
