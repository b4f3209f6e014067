"""The whole case library on the four built-in backends: only ok, known or skipped.

One run of cases/ (about two minutes, most of it TensorFlow in eager mode) is shared by
every test in this module.
"""

from __future__ import annotations

import pandas as pd
import pytest
from support import BUILTIN_BACKENDS, CASES

from harness.cases.model import ACTIVATIONS, DTYPES, LOSSES, OPTIMIZERS
from harness.cli import main

# Full tier: runs the whole case library on every framework (about 70 s).
pytestmark = pytest.mark.full

KNOB_VOCABULARY = {
    "activation": ACTIVATIONS,
    "loss": tuple(LOSSES),
    "optimizer": tuple(OPTIMIZERS),
    "dtype": DTYPES,
}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    out = tmp_path_factory.mktemp("library")
    status = main(["run", str(CASES), "--backend", ",".join(BUILTIN_BACKENDS), "--out", str(out)])
    table = pd.read_parquet(out / "results.parquet")
    knobs = pd.read_csv(out / "coverage.csv")
    summary = (out / "summary.md").read_text()
    return status, table, knobs, summary


def test_library_exits_0_with_only_ok_known_and_skipped(library):
    status, table, _, _ = library
    bad = table[~table["status"].isin(["ok", "known", "skipped"])]
    assert bad.empty, (
        bad[["case", "backend", "step", "quantity", "param", "detail"]].head(10).to_string()
    )
    assert status == 0


def test_every_skip_says_why(library):
    _, table, _, _ = library
    skipped = table[table["status"] == "skipped"]
    assert (skipped["detail"].str.len() > 0).all()


def test_every_known_row_names_its_entry(library):
    _, table, _, summary = library
    known = table[table["status"] == "known"]
    assert known["detail"].str.startswith("known divergence ").all()
    assert "Stale known divergences" not in summary


@pytest.mark.parametrize("backend", BUILTIN_BACKENDS)
@pytest.mark.parametrize("knob", list(KNOB_VOCABULARY))
def test_every_knob_value_runs_on_every_backend(library, knob, backend):
    _, _, knobs, _ = library
    ran = knobs[
        (knobs["knob"] == knob)
        & (knobs["backend"] == backend)
        & knobs["status"].isin(["ok", "known"])
    ]
    missing = set(KNOB_VOCABULARY[knob]) - set(ran["value"])
    assert not missing, f"{knob} values never run on {backend}: {sorted(missing)}"


@pytest.mark.parametrize("case", ["seed-1-1-1", "mazur-2-2-2"])
def test_published_values_reproduce_on_every_backend(library, case):
    _, table, _, _ = library
    checked = table[(table["case"] == case) & table["expected"].notna()]
    assert sorted(checked["backend"].unique()) == sorted(BUILTIN_BACKENDS)
    assert set(checked["status"]) == {"ok"}
