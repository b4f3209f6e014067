"""Reading results tables back: from results.csv, results.parquet or a report folder.

A folder is read through its results.parquet (exact dtypes) when there is one, else its
results.csv. Every table is checked in full before anything uses it, and a table that
breaks the format is a ``ResultsError`` naming the file, the row (counting the header as
row 1, so the line number where no value spans lines) and the column, never a traceback:

- the file must parse, with as many fields on every row as the header has, and a CSV must
  end with a line end (a file cut short mid-row does not);
- every results column is there; the numeric columns hold numbers, ``step`` and ``index``
  integers >= 0 (empty on a crashed or skipped pair's single row);
- ``quantity``, ``status`` and ``cause`` hold the values docs/spec.md §7 lists, ``case``
  and ``backend`` are not empty, and no (case, backend, step, quantity, param, index)
  appears twice;
- every pair that ran has at least its reference's rows (activations aside): ``compare``
  adds a row for every value a backend failed to record, so fewer means rows were cut;
- where the table is a report folder's own (results.csv / results.parquet beside its
  run.json), the run must be complete (``run.json``'s ``complete``) unless the caller
  allows an incomplete one, and the table must hold the rows run.json counted.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from backends import registry
from harness.errors import ResultsError
from harness.run.runner import RAW_TEXT_COLUMNS
from harness.verdict.compare import RESULT_COLUMNS
from harness.verdict.status import Status

TEXT_COLUMNS = (*RAW_TEXT_COLUMNS, "cause")
INT_COLUMNS = ("step", "index")
FLOAT_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in TEXT_COLUMNS and c not in INT_COLUMNS)
KEY_COLUMNS = ["case", "backend", "step", "quantity", "param", "index"]
RUN_FILE = "run.json"  # harness.run.session.RUN_FILE (not imported: it would pull in the runner)
RESULT_FILES = ("results.parquet", "results.csv")
# docs/spec.md §7.2–7.4; "" is the quantity of a crashed or skipped pair's single row.
QUANTITIES = ("activation", "output", "loss", "grad", "param", "output_after", "")
STATUSES = tuple(str(s) for s in Status)
CAUSES = ("", "precision", "semantic", "known")
NO_STEP_STATUSES = (str(Status.CRASHED), str(Status.SKIPPED))
# Integers beyond this are not step or index numbers of any case (nor exact in float64).
MAX_INT = 2**53
SHOWN = 3
_FIELD_COUNT = re.compile(
    r"Row #(\d+): Expected (\d+) columns, got (\d+): (.*)", re.DOTALL
)  # offending rows quoted in one message


@dataclass
class Results:
    """One run's results table, where it came from, and that run's environment."""

    table: pd.DataFrame
    path: Path
    folder: Path | None = None
    environments: list[dict[str, Any]] = field(default_factory=list)
    incomplete: str | None = None  # why the run behind it did not finish (allowed by the caller)


def read_results(path: Path, allow_incomplete: bool = False) -> Results:
    """The checked results table at ``path`` (a file or a report folder).

    An incomplete run (run.json ``"complete": false``) is refused unless ``allow_incomplete``;
    then ``Results.incomplete`` says why it is incomplete.
    """
    folder = path if path.is_dir() else None
    if folder is not None:
        found = [folder / name for name in RESULT_FILES if (folder / name).is_file()]
        # Checked first: a killed run's folder has a run.json and no results yet.
        record = _run_record(folder / RUN_FILE)
        incomplete = _incompleteness(folder, record, allow_incomplete)
        if not found:
            raise ResultsError(f"{path}: no results.parquet or results.csv in this folder")
        path = found[0]
    elif not path.is_file():
        raise ResultsError(f"{path}: no such file")
    else:
        # A report folder's own table carries its run.json; any other file stands alone.
        own = path.name in RESULT_FILES
        record = _run_record(path.parent / RUN_FILE) if own else None
        incomplete = _incompleteness(path.parent, record, allow_incomplete)
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
    table = checked_results(table[RESULT_COLUMNS], path)
    _check_row_count(table, path, record)
    environments = _environments((folder or path.parent) / "environment.json")
    return Results(table, path, folder or path.parent, environments, incomplete)


def read_json(path: Path) -> Any:
    """A JSON file of a report folder; a ``ResultsError`` naming the place if it is not one."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot be read: {exc}") from exc


def _run_record(path: Path) -> dict[str, Any] | None:
    """run.json as a mapping, None where there is none (a report written before run.json)."""
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(record).__name__}")
    if not isinstance(record.get("complete"), bool):
        raise ResultsError(
            f"{path}: complete: expected true or false, got {record.get('complete')!r}"
        )
    return record


def _incompleteness(
    folder: Path, record: dict[str, Any] | None, allow_incomplete: bool
) -> str | None:
    """Why the run in ``folder`` is incomplete (None if complete); an error unless allowed."""
    if record is None or record["complete"]:
        return None
    state = record.get("state")
    reason = str(record.get("reason") or "")
    if not reason:
        reason = (
            "the run never finished (it is still running, or was killed)"
            if state == "running"
            else f"run.json says state {state!r}"
        )
    why = f"{folder} is an incomplete run ({RUN_FILE}: complete false): {reason}"
    if not allow_incomplete:
        raise ResultsError(f"{why}. Pass --allow-incomplete to use it anyway")
    return why


def _check_row_count(table: pd.DataFrame, path: Path, record: dict[str, Any] | None) -> None:
    rows = None if record is None else record.get("rows")
    if rows is None:  # run.json of a run still going, or written before it counted rows
        return
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise ResultsError(f"{path.parent / RUN_FILE}: rows: expected a count, got {rows!r}")
    if rows != len(table):
        raise ResultsError(
            f"{path}: holds {len(table):,} rows, but {path.parent / RUN_FILE} says the run wrote "
            f"{rows:,}: the table is truncated or was changed"
        )


def _environments(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    environments = read_json(path)
    if not isinstance(environments, list) or not all(isinstance(e, dict) for e in environments):
        raise ResultsError(f"{path}: expected a list of environment objects (JSON [{{...}}, ...])")
    return environments


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            _check_csv_structure(path)
            return pd.read_csv(
                path,
                dtype=dict.fromkeys(TEXT_COLUMNS, str),
                keep_default_na=False,
                # An empty numeric cell is missing; an empty text cell is "".
                na_values={c: [""] for c in RESULT_COLUMNS if c not in TEXT_COLUMNS},
            )
    except (OSError, ValueError) as exc:  # pyarrow's and pandas's parse errors included
        raise ResultsError(f"{path}: cannot be read as a results table: {exc}") from exc
    raise ResultsError(f"{path}: expected a .csv or .parquet results file or a report folder")


def _check_csv_structure(path: Path) -> None:
    """Every row has the header's number of fields, and the file ends with a line end.

    pandas fills a short row's missing fields with empty cells, so a file cut short mid-row
    would read as a complete table; this pass (pyarrow's parser, every column as text)
    stops at the first row whose field count is off, and names it (pyarrow numbers rows
    from the header, as this module does).
    """
    with path.open("rb") as file:
        if file.seek(0, io.SEEK_END) == 0:
            raise ResultsError(f"{path}: empty file, not a results table")
        file.seek(-1, io.SEEK_END)
        cut = file.read(1) not in (b"\n", b"\r")
    truncated = " (the file does not end with a line end: it is truncated)" if cut else ""
    try:
        reader = pa_csv.open_csv(  # reads the first block: it may raise too
            path,
            read_options=pa_csv.ReadOptions(use_threads=False),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(RESULT_COLUMNS, pa.string())
            ),
        )
        for _ in reader:
            pass
    except pa.ArrowInvalid as exc:
        found = _FIELD_COUNT.search(str(exc))
        if found is None:
            raise ResultsError(f"{path}: {str(exc)[:200]!r}{truncated}") from exc
        row, expected, got, text = found.groups()
        raise ResultsError(
            f"{path}: row {row}: expected {expected} fields (as the header has), "
            f"got {got}: {text[:80]!r}{truncated}"
        ) from exc
    if cut:
        raise ResultsError(f"{path}: the last row is cut short{truncated}")


def checked_results(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``table`` (the results columns) checked row by row and with ``compare``'s dtypes."""
    if table.empty:
        raise ResultsError(
            f"{path}: holds no result rows (a run writes at least one per case × backend pair)"
        )
    table = table.reset_index(drop=True)
    columns: dict[str, pd.Series] = {}
    for column in TEXT_COLUMNS:
        columns[column] = _text(table[column], path, column)
    for column in INT_COLUMNS:
        columns[column] = _integers(table[column], path, column)
    for column in FLOAT_COLUMNS:
        columns[column] = _floats(table[column], path, column)
    checked = pd.DataFrame(columns)[RESULT_COLUMNS]
    for column in ("case", "backend"):
        _fail_where(checked[column] == "", path, column, "is empty", checked[column])
    for column, allowed in (("quantity", QUANTITIES), ("status", STATUSES), ("cause", CAUSES)):
        values = checked[column]
        _fail_where(
            ~values.isin(allowed),
            path,
            column,
            f"is not one of {', '.join(repr(a) for a in allowed)}",
            values,
        )
    no_step = checked["step"].isna().to_numpy()
    no_quantity = (checked["quantity"] == "").to_numpy()
    _fail_where(
        no_step != no_quantity,
        path,
        "step",
        "and quantity must both be empty (a crashed or skipped pair's single row) or both set",
        checked["step"],
    )
    _fail_where(
        no_step & ~checked["status"].isin(NO_STEP_STATUSES).to_numpy(),
        path,
        "status",
        "of a row without a step must be crashed or skipped",
        checked["status"],
    )
    _check_pairs_hold_the_reference_values(checked, path)
    twice = checked.duplicated(KEY_COLUMNS, keep="first").to_numpy()
    if twice.any():
        row = int(np.flatnonzero(twice)[0])
        key = _key(checked, row)
        firsts = np.flatnonzero(checked.duplicated(KEY_COLUMNS, keep=False).to_numpy() & ~twice)
        first = next(int(r) for r in firsts if _key(checked, int(r)) == key)
        raise ResultsError(
            f"{path}: row {_row(row, path)}: the same case, backend, step, quantity, param and "
            f"index as row {_row(first, path)} ({', '.join(_show(v) for v in key)}): each value "
            f"is recorded once ({int(twice.sum()):,} duplicated rows)"
        )
    return checked


def _check_pairs_hold_the_reference_values(table: pd.DataFrame, path: Path) -> None:
    """Every pair that ran has a row for each value its case's reference recorded.

    ``compare`` adds a ``missing`` row for a value the backend did not record (activations
    excepted: they are optional), so a pair with fewer such rows than the reference was
    cut short: a table truncated at a row boundary. The reference is the first row's
    backend (``compare`` puts it first; ``merge`` relies on the same).
    """
    reference = table["backend"].iloc[0]
    ran = table["step"].notna() & (table["quantity"] != "activation")
    counts = table.loc[ran].groupby(["case", "backend"], sort=False).size()
    if counts.empty:
        return
    frame = counts.rename("rows").reset_index()
    expected = frame.loc[frame["backend"] == reference].set_index("case")["rows"]
    frame["expected"] = frame["case"].map(expected)
    short = frame[frame["expected"].notna() & (frame["rows"] < frame["expected"])]
    if len(short):
        pair = short.iloc[0]
        raise ResultsError(
            f"{path}: case {pair['case']!r} on {pair['backend']!r} has {pair['rows']:,} rows "
            f"(activations aside), fewer than the {int(pair['expected']):,} its reference "
            f"{reference!r} recorded: the table is cut short or rows were removed"
        )


def _key(table: pd.DataFrame, row: int) -> tuple[Any, ...]:
    return tuple(None if pd.isna(v) else v for v in table.loc[row, KEY_COLUMNS])


def _text(values: pd.Series, path: Path, column: str) -> pd.Series:
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        return values.fillna("").astype(str)  # a text dtype: every cell is a string or missing
    if values.dtype == object:
        kinds = values.map(lambda v: isinstance(v, str) or v is None or v is pd.NA)
        if bool(kinds.all()):
            return values.fillna("").astype(str)
        _fail_where(~kinds.to_numpy(), path, column, "expected text", values)
    raise ResultsError(f"{path}: column {column}: expected text, got {values.dtype} values")


def _numbers(values: pd.Series, path: Path, column: str, what: str) -> pd.Series:
    """``values`` as numbers; an error naming the first cell that is not one."""
    if pd.api.types.is_bool_dtype(values):
        raise ResultsError(f"{path}: column {column}: expected {what}, got true/false values")
    if pd.api.types.is_numeric_dtype(values):
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    given = values.notna() & (values.astype(str) != "")
    _fail_where((numbers.isna() & given).to_numpy(), path, column, f"expected {what}", values)
    return numbers


def _integers(values: pd.Series, path: Path, column: str) -> pd.Series:
    what = "an integer >= 0 (or an empty cell)"
    numbers = _numbers(values, path, column, what).astype(np.float64)
    present = numbers.notna().to_numpy()
    finite = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = present & ~(
            np.isfinite(finite) & (finite >= 0) & (finite < MAX_INT) & (finite % 1 == 0)
        )
    _fail_where(bad, path, column, f"expected {what}", values)
    return pd.Series(finite, index=values.index).astype("Int64")


def _floats(values: pd.Series, path: Path, column: str) -> pd.Series:
    return _numbers(values, path, column, "a number").astype(np.float64)


def _fail_where(bad: Any, path: Path, column: str, problem: str, values: pd.Series) -> None:
    """A ``ResultsError`` quoting the first rows where ``bad`` holds, if any does."""
    rows = np.flatnonzero(np.asarray(bad, dtype=bool))
    if not len(rows):
        return
    shown = "; ".join(f"row {_row(r, path)}: {_show(values.iloc[r])}" for r in rows[:SHOWN])
    more = f" (and {len(rows) - SHOWN:,} more rows)" if len(rows) > SHOWN else ""
    raise ResultsError(f"{path}: column {column} {problem}: {shown}{more}")


def _row(position: int, path: Path) -> int:
    """The row number of a table position: a CSV's header is row 1 (so it is the line
    number where no value spans lines), a parquet table's first row is row 1."""
    return int(position) + (2 if path.suffix == ".csv" else 1)


def _show(value: Any) -> str:
    text = "empty" if value is None or value is pd.NA or value == "" else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
