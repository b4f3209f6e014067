"""Reading results tables back: from results.csv, results.parquet or a report folder.

A folder is read through its results.parquet (exact dtypes) when there is one, else its
results.csv. A file that is missing or lacks the results columns is a ``ResultsError``
naming the file and what is wrong, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backends import registry
from harness.errors import ResultsError
from harness.run.runner import RAW_TEXT_COLUMNS
from harness.verdict.compare import RESULT_COLUMNS

TEXT_COLUMNS = (*RAW_TEXT_COLUMNS, "cause")
INT_COLUMNS = ("step", "index")


@dataclass
class Results:
    """One run's results table, where it came from, and that run's environment."""

    table: pd.DataFrame
    path: Path
    folder: Path | None = None
    environments: list[dict[str, Any]] = field(default_factory=list)


def read_results(path: Path) -> Results:
    folder = path if path.is_dir() else None
    if folder is not None:
        candidates = [folder / "results.parquet", folder / "results.csv"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise ResultsError(f"{path}: no results.parquet or results.csv in this folder")
        path = found[0]
    elif not path.is_file():
        raise ResultsError(f"{path}: no such file")
    table = _read_table(path)
    if "mode" not in table.columns and "backend" in table.columns:
        # Results written before execution modes were recorded: the backend name implies it.
        table["mode"] = table["backend"].astype(str).map(registry.mode_of)
    missing = [c for c in RESULT_COLUMNS if c not in table.columns]
    if missing:
        raise ResultsError(
            f"{path}: not a crossgrad results table. Expected the columns {', '.join(RESULT_COLUMNS)}. "
            f"Received a table without {', '.join(missing)}"
        )
    environment_file = (folder or path.parent) / "environment.json"
    environments = []
    if environment_file.is_file():
        try:
            environments = json.loads(environment_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{environment_file}:{exc.lineno}:{exc.colno}: {exc.msg}") from exc
    return Results(
        normalize_results(table[RESULT_COLUMNS]), path, folder or path.parent, environments
    )


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(
                path,
                dtype=dict.fromkeys(TEXT_COLUMNS, str),
                keep_default_na=False,
                # An empty numeric cell is missing; an empty text cell is "".
                na_values={c: [""] for c in RESULT_COLUMNS if c not in TEXT_COLUMNS},
            )
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot be read as a results table: {exc}") from exc
    raise ResultsError(f"{path}: expected a .csv or .parquet results file or a report folder")


def normalize_results(table: pd.DataFrame) -> pd.DataFrame:
    """The dtypes ``compare`` produces, whichever file format the table came from."""
    table = table.copy()
    for column in INT_COLUMNS:
        table[column] = pd.to_numeric(table[column]).astype("Int64")
    for column in TEXT_COLUMNS:
        table[column] = table[column].fillna("").astype(str)
    for column in RESULT_COLUMNS:
        if column not in TEXT_COLUMNS and column not in INT_COLUMNS:
            table[column] = pd.to_numeric(table[column]).astype(np.float64)
    return table.reset_index(drop=True)
