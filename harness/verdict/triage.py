"""Why a pair diverged: ``precision``, ``semantic`` or ``known``.

A diverged low-precision pair is re-run as its float64 control (same case, same starting
numbers, float64 and float64's tolerance) on the backend and on the reference. If the
control agrees, the frameworks compute the same function and only their rounding differs:
``precision``. If the control diverges too, they compute different things: ``semantic``.
A float64 case is its own control. ``known`` comes from the known-divergence registry.
"""

from __future__ import annotations

import pandas as pd

from harness.cases.inputs import make_inputs
from harness.cases.model import Case
from harness.run.runner import run
from harness.verdict.compare import compare
from harness.verdict.oracle import control_case
from harness.verdict.status import Status

PAIR = ["case", "backend"]


def assign_causes(table: pd.DataFrame, cases: list[Case], reference: str) -> pd.DataFrame:
    """``table`` with ``cause`` filled in on every diverged and every known row."""
    table = table.copy()
    table.loc[table["status"] == Status.KNOWN, "cause"] = "known"
    diverged = table.loc[table["status"] == Status.DIVERGED, [*PAIR, "dtype"]].drop_duplicates()
    if diverged.empty:
        return table
    low = diverged[diverged["dtype"] != "float64"]
    controls = _control_verdicts(low, {c.name: c for c in cases}, reference)
    causes = {
        (str(case), str(backend)): "semantic"
        if dtype == "float64"
        else controls.get((str(case), str(backend)), "")
        for case, backend, dtype in diverged.itertuples(index=False)
    }
    pair_cause = pd.Series(
        [causes.get(key, "") for key in zip(table["case"], table["backend"], strict=True)],
        index=table.index,
    )
    is_diverged = table["status"] == Status.DIVERGED
    table.loc[is_diverged, "cause"] = pair_cause[is_diverged]
    return table


def _control_verdicts(
    pairs: pd.DataFrame, by_name: dict[str, Case], reference: str
) -> dict[tuple[str, str], str]:
    """``precision`` or ``semantic`` for each (case, backend) from its float64 control run."""
    if pairs.empty:
        return {}
    names = list(dict.fromkeys(pairs["case"]))
    controls = [control_case(by_name[name]) for name in names]
    # The control starts from the low-precision run's numbers (exact in float64).
    inputs = {name: make_inputs(by_name[name]) for name in names}
    # In the run's worker processes (still warm), never in this one.
    frames = [run(controls, [reference], inputs=inputs)]
    for name, group in pairs.groupby("backend", sort=False):
        wanted = [c for c in controls if c.name in set(group["case"])]
        frames.append(run(wanted, [str(name)], inputs=inputs))
    table = compare(pd.concat(frames, ignore_index=True), controls, reference)
    verdicts = {}
    for (case, backend), rows in table.groupby(PAIR, sort=False):
        if backend == reference:
            continue
        if rows["status"].isin((Status.DIVERGED, Status.CRASHED)).any():
            verdicts[(str(case), str(backend))] = "semantic"
        elif (rows["status"] == Status.OK).any():
            verdicts[(str(case), str(backend))] = "precision"
        # else the control could not run (skipped): the cause stays undetermined
    return verdicts
