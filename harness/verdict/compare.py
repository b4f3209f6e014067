"""Comparison with the reference backend: tolerances, error columns and statuses.

A value agrees when ``|value - reference| <= atol + rtol * magnitude`` (docs/spec.md §6.4),
where ``magnitude`` is the size of the terms the reference made the value of
(backends/numpy/rounding.py), never less than |reference|: a value whose terms cancelled is
judged by the size of what cancelled, a well-conditioned one keeps a tight tolerance. NaN
agrees only with NaN and an infinity only with the same infinity. The default rtol per
dtype is a multiple of its unit roundoff; docs/tolerances.md gives the reasoning and a
worked example.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from backends.numpy.rounding import magnitudes
from harness.cases.inputs import make_inputs
from harness.cases.model import Case, Tolerance
from harness.run.runner import normalize
from harness.verdict.oracle import add_oracle_error, oracle_rows
from harness.verdict.oracle import normalize_keys as normalize_oracle_keys
from harness.verdict.status import Status

UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
# How many unit roundoffs of the magnitude two correct implementations may differ by. The
# library's correct rows (every built-in, float32 and float64, atol aside) differ by at most
# 9 (99.9% by at most 6.4), tests/data/cancellation.yaml's by at most 4, and 300 generated
# cases raise no alarm on torch or jax; 16 keeps a 1e-4 relative error visible on float32
# values whose terms cancel up to about a hundredfold (docs/tolerances.md). Half precision
# keeps its measured rtol (20 and 13 roundoffs): frameworks compute it in float32 and round
# once.
ROUNDOFFS = 16

DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=ROUNDOFFS * UNIT_ROUNDOFF["float64"], atol=1e-13),
    "float32": Tolerance(rtol=ROUNDOFFS * UNIT_ROUNDOFF["float32"], atol=1e-7),
    "float16": Tolerance(rtol=1e-2, atol=2e-3),
    "bfloat16": Tolerance(rtol=5e-2, atol=1.6e-2),
}

RESULT_COLUMNS = [
    "case",
    "backend",
    "mode",  # the backend's execution mode: eager, jit, function, compile
    "version",
    "dtype",
    "step",
    "quantity",
    "param",
    "index",
    "value",
    "reference",
    "abs_err",
    "rel_err",
    "ulp_err",
    "tol",
    "magnitude",  # the size of the terms the value was made of (backends/numpy/rounding.py)
    "expected",
    "status",
    "detail",
    "oracle",  # the float64 / 50-digit value of the same computation (harness/verdict/oracle.py)
    "oracle_err",  # |value - oracle|
    "cause",  # of a divergence: precision, semantic or known (harness/verdict/triage.py)
]
_VALUE_KEYS = ["case", "step", "quantity", "param", "index"]


def tolerance_for(case: Case) -> Tolerance:
    return case.tolerance or DEFAULT_TOLERANCES[case.dtype]


def compare(raw: pd.DataFrame, cases: Iterable[Case], reference: str) -> pd.DataFrame:
    """The results table: every raw row with its reference value, errors and status."""
    cases = list(cases)
    backend_order = list(dict.fromkeys(raw["backend"]))
    raw = raw.assign(_seq=raw.groupby(["case", "backend"], sort=False).cumcount())
    ran = raw["status"] == Status.OK
    ref_rows = raw.loc[ran & (raw["backend"] == reference), [*_VALUE_KEYS, "value", "_seq"]].rename(
        columns={"value": "reference", "_seq": "_ref_seq"}
    )
    compared = _with_missing_rows(raw.loc[ran], ref_rows)
    not_run = raw.loc[~ran].assign(reference=np.nan, _ref_seq=np.nan)
    table = pd.concat([compared, not_run], ignore_index=True) if len(not_run) else compared
    table = normalize(table)
    table = _add_reference_columns(table, cases)
    table = _add_errors(table, {c.name: tolerance_for(c) for c in cases})
    table = _add_expected(table, cases)
    table["status"] = _statuses(table, reference)
    table = add_oracle_error(table)
    table["cause"] = np.where(table["status"] == Status.KNOWN, "known", "")
    return _in_order(table, reference, backend_order, [c.name for c in cases])[RESULT_COLUMNS]


def _with_missing_rows(ran: pd.DataFrame, ref_rows: pd.DataFrame) -> pd.DataFrame:
    """Each ran row joined to its reference value, plus a row per reference value missing."""
    pairs = ran[["case", "backend", "mode", "version", "dtype"]].drop_duplicates()
    expected = pairs.merge(ref_rows, on="case")
    merged = ran.merge(
        expected,
        on=["case", "backend", "mode", "version", "dtype", *_VALUE_KEYS[1:]],
        how="outer",
        indicator=True,
    )
    extra = merged["_merge"] == "left_only"  # recorded by the backend, not by the reference
    missing = merged["_merge"] == "right_only"  # recorded by the reference, not by the backend
    has_reference = merged["case"].isin(ref_rows["case"].unique())
    # Per-layer activations are optional (Model.layer_outputs): absent is not a divergence.
    merged = merged.loc[~(missing & (merged["quantity"] == "activation"))]
    extra, missing = extra[merged.index], missing[merged.index]
    merged.loc[missing, "status"] = Status.OK  # compared below: a NaN value never agrees
    merged.loc[missing, "detail"] = "missing: the backend did not record this value"
    merged.loc[extra & has_reference, "detail"] = (
        "extra: the reference has no such value (shape mismatch?)"
    )
    merged.loc[extra & ~has_reference, "detail"] = (
        "not compared: the reference backend has no result for this case"
    )
    return merged.drop(columns="_merge")


def _add_errors(table: pd.DataFrame, tolerances: dict[str, Tolerance]) -> pd.DataFrame:
    value = table["value"].to_numpy(dtype=np.float64)
    ref = table["reference"].to_numpy(dtype=np.float64)
    rtol = table["case"].map({k: t.rtol for k, t in tolerances.items()}).to_numpy(dtype=np.float64)
    atol = table["case"].map({k: t.atol for k, t in tolerances.items()}).to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        abs_err = np.abs(value - ref)
        same_special = (np.isnan(value) & np.isnan(ref)) | (np.isinf(value) & (value == ref))
        abs_err = np.where(same_special, 0.0, abs_err)
        rel_err = np.where(abs_err == 0, 0.0, abs_err / np.abs(ref))
        ulp_err = abs_err / _ulp(ref, table["dtype"].to_numpy())
    table["abs_err"] = abs_err
    table["rel_err"] = rel_err
    table["ulp_err"] = ulp_err
    magnitude = table["magnitude"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        magnitude = np.where(np.isnan(magnitude), np.abs(ref), np.fmax(magnitude, np.abs(ref)))
    table["magnitude"] = magnitude
    table["tol"] = atol + rtol * magnitude
    return table


def _add_reference_columns(table: pd.DataFrame, cases: list[Case]) -> pd.DataFrame:
    """``table`` with each row's ``oracle`` (harness/verdict/oracle.py) and ``magnitude``
    (backends/numpy/rounding.py), both from one set of inputs per case; NaN where the
    reference records no such value. Only cases with recorded values: a stopped run's
    "not run" rows have nothing to match."""
    names = set(table.loc[table["step"].notna(), "case"])
    frames = []
    for case in cases:
        if case.name not in names:
            continue
        inputs = make_inputs(case)
        columns = oracle_rows(case, inputs)
        sizes = magnitudes(case, inputs, tolerance_for(case).rtol).rows()
        if not np.array_equal(sizes["quantity"], columns["quantity"]):
            raise AssertionError(f"{case.name}: magnitudes and oracle have different layouts")
        frames.append(pd.DataFrame({**columns, "magnitude": sizes["value"]}))
    if not frames:
        return table.assign(oracle=np.nan, magnitude=np.nan)
    found = normalize_oracle_keys(pd.concat(frames, ignore_index=True))
    return table.merge(found, on=_VALUE_KEYS, how="left")


def _ulp(ref: np.ndarray, dtypes: np.ndarray) -> np.ndarray:
    """Spacing of each reference value in its row's dtype (the size of one unit in the last place)."""
    ulp = np.full(ref.shape, np.nan)
    magnitude = np.abs(np.nan_to_num(ref, nan=0.0, posinf=0.0, neginf=0.0))
    for dtype in ("float16", "float32", "float64"):
        rows = dtypes == dtype
        ulp[rows] = np.spacing(magnitude[rows].astype(dtype)).astype(np.float64)
    rows = dtypes == "bfloat16"
    _, exponent = np.frexp(np.maximum(magnitude[rows], 2.0**-126))
    ulp[rows] = np.ldexp(1.0, exponent - 8)
    return ulp


def _add_expected(table: pd.DataFrame, cases: list[Case]) -> pd.DataFrame:
    rows = [row for case in cases for row in _expected_rows(case)]
    if not rows:
        table["expected"] = np.nan
        table["_decimals"] = np.nan
        return table
    expected = normalize_keys(pd.DataFrame(rows, columns=[*_VALUE_KEYS, "expected", "_decimals"]))
    return table.merge(expected, on=_VALUE_KEYS, how="left")


def normalize_keys(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("step", "index"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _expected_rows(case: Case) -> list[tuple[Any, ...]]:
    expect = case.expect
    if expect is None:
        return []
    last = case.steps - 1
    rows: list[tuple[Any, ...]] = []

    def add(step: int, quantity: str, param: str, values: np.ndarray) -> None:
        for index, value in enumerate(np.asarray(values, dtype=np.float64).ravel()):
            rows.append((case.name, step, quantity, param, index, value, expect.decimals))

    if expect.output is not None:
        add(0, "output", "", expect.output)
    if expect.loss is not None:
        rows.append((case.name, 0, "loss", "", pd.NA, expect.loss, expect.decimals))
    for name, values in expect.params_after.items():
        add(last, "param", name, values)
    if expect.output_after is not None:
        add(last, "output_after", "", expect.output_after)
    return rows


def agrees(value: np.ndarray, reference: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Which values agree with their reference (docs/spec.md §6.4): NaN only with NaN, an
    infinity only with the same infinity (an infinite reference makes the tolerance
    infinite, so there only equality counts), any other value within ``tol``."""
    with np.errstate(invalid="ignore"):
        same = (value == reference) | (np.isnan(value) & np.isnan(reference))
        return same | (np.isfinite(reference) & (np.abs(value - reference) <= tol))


def _statuses(table: pd.DataFrame, reference: str) -> pd.Series:
    status = table["status"].copy()
    compared = (status == Status.OK) & ~table["detail"].str.startswith("not compared")
    agree = agrees(
        table["value"].to_numpy(dtype=np.float64),
        table["reference"].to_numpy(dtype=np.float64),
        table["tol"].to_numpy(dtype=np.float64),
    )
    expected = table["expected"].to_numpy(dtype=np.float64)
    half_unit = 0.5 * 10.0 ** -table["_decimals"].to_numpy(dtype=np.float64)
    # 1e-9 of slack absorbs the binary representation of a decimal such as 0.85055
    expect_failed = ~np.isnan(expected) & ~(
        np.abs(table["value"].to_numpy() - expected) <= half_unit * (1 + 1e-9)
    )
    status[compared & ~agree] = Status.DIVERGED
    status[(status == Status.OK) & table["detail"].str.startswith("not compared")] = Status.SKIPPED
    status[(table["status"] == Status.OK) & expect_failed] = Status.EXPECT_FAILED
    return status


def _in_order(
    table: pd.DataFrame, reference: str, backend_order: list[str], case_order: list[str]
) -> pd.DataFrame:
    """Cases in load order, reference backend first, rows in the reference's computation order.

    Rows the reference lacks (a backend's extra values) follow in the backend's own order.
    """
    first_seen = {name: i for i, name in enumerate(dict.fromkeys([*case_order, *table["case"]]))}
    backends = {name: i for i, name in enumerate(backend_order)}
    ordered = table.assign(
        _case=table["case"].map(first_seen),
        _backend=table["backend"].map(backends).where(table["backend"] != reference, -1),
        _order=table["_ref_seq"].astype(float).fillna(1e12 + table["_seq"].astype(float).fillna(0)),
    ).sort_values(["_case", "_backend", "_order"], kind="stable")
    helpers = ["_case", "_backend", "_order", "_seq", "_ref_seq", "_decimals"]
    return ordered.drop(columns=helpers).reset_index(drop=True)
