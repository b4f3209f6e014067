"""Known divergences: matching turns diverged rows into known; stale entries are reported."""

from __future__ import annotations

import pandas as pd
import pytest
from support import CASES, write_case

from harness.cases.loader import load_cases
from harness.cases.patterns import matches
from harness.cli import main
from harness.errors import CaseError
from harness.verdict.known import apply_known, load_known

ENTRY = """\
divergences:
  - id: {id}
    backend: {backend}
    cases: ["{case}"]
    {extra}
    measured: "1e-4 in one bias gradient"
    reason: "a test entry"
    source: tests/test_known.py
"""


@pytest.fixture
def wrong_bias(monkeypatch):
    from fake_plugins import register

    register(monkeypatch, {"wrong_bias": "adapters:WrongBiasGradientBackend"})


def _run(tmp_path, known_text: str) -> tuple[int, pd.DataFrame, str]:
    known = write_case(tmp_path, known_text, "known.yaml")
    out = tmp_path / "out"
    status = main(
        ["run", "cases/seed.yaml", "-b", "wrong_bias", "--known", str(known), "--out", str(out)]
    )
    return status, pd.read_parquet(out / "results.parquet"), (out / "summary.md").read_text()


def test_a_matching_entry_makes_the_divergence_known_and_the_run_pass(tmp_path, wrong_bias):
    status, table, summary = _run(
        tmp_path, ENTRY.format(id="bias-off", backend="wrong_bias", case="seed-*", extra="")
    )
    rows = table[table["backend"] == "wrong_bias"]
    assert status == 0
    assert "diverged" not in set(rows["status"])
    assert (
        rows.loc[rows["status"] == "known", "detail"].str.startswith("known divergence bias-off:")
    ).all()
    assert "| bias-off | wrong_bias |" in summary


def test_a_bound_smaller_than_the_effect_keeps_the_rows_diverged(tmp_path, wrong_bias):
    status, table, _ = _run(
        tmp_path,
        ENTRY.format(
            id="bias-off", backend="wrong_bias", case="seed-*", extra="max_rel_err: 1.0e-6"
        ),
    )
    assert status == 1
    assert "diverged" in set(table["status"])


def test_an_entry_that_matches_nothing_that_ran_is_stale(tmp_path, capsys, wrong_bias):
    text = ENTRY.format(id="never", backend="numpy", case="seed-*", extra="")
    status, _, summary = _run(tmp_path, text)
    assert status == 1  # the wrong adapter is still diverged
    assert "Stale known divergences" in summary and "`never`" in summary
    assert "stale known divergence never" in capsys.readouterr().err


def test_an_entry_outside_what_ran_is_neither_matched_nor_stale(tmp_path):
    cases = load_cases(["cases/seed.yaml"])
    table = pd.DataFrame(
        {
            "case": ["seed-1-1-1"],
            "backend": ["torch"],
            "status": ["ok"],
            "detail": [""],
            "quantity": ["output"],
            "param": [""],
            "rel_err": [0.0],
        }
    )
    entries = load_known(
        write_case(
            tmp_path, ENTRY.format(id="other", backend="jax", case="seed-*", extra=""), "known.yaml"
        )
    )
    _, stale = apply_known(table, cases, entries)
    assert stale == []


def test_a_bad_known_file_is_exit_2_with_its_location(tmp_path, capsys):
    known = write_case(
        tmp_path, "divergences:\n  - id: x\n    backend: torch\n    reasn: typo\n", "known.yaml"
    )
    assert (
        main(
            [
                "run",
                "cases/seed.yaml",
                "-b",
                "numpy",
                "--known",
                str(known),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"{known}:4:5: divergences.0.reasn: unknown key (did you mean 'reason'?)" in err
    assert f"{known}:2:5: divergences.0.measured: required key is missing" in err


def test_the_committed_file_loads():
    entries = load_known(CASES / "known_divergences.yaml")
    assert len({e.id for e in entries}) == len(entries) > 0
    assert all(e.source and e.measured and e.reason for e in entries)


@pytest.mark.parametrize(
    "name, pattern, expected",
    [
        ("optim[dtype=float64]", "optim[dtype=float64]", True),
        ("optim[dtype=float64]", "optim[*float64]", True),
        ("optim[dtype=float64]", "optim[*float32]", False),
        ("optimd", "optim[d]", False),  # brackets are literal, not a character class
        ("seed-1-1-1", "seed-?-1-1", True),
    ],
)
def test_patterns_treat_brackets_literally(name, pattern, expected):
    assert matches(name, pattern) is expected


def test_a_missing_known_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(CaseError, match="absent.yaml: cannot read the known divergences: no such file"):
        load_known(tmp_path / "absent.yaml")


def test_load_known_reports_every_problem(tmp_path):
    path = write_case(tmp_path, "divergences:\n  - id: a\n    backend: 1\n  - {}\n", "known.yaml")
    with pytest.raises(CaseError) as info:
        load_known(path)
    assert len(info.value.problems) >= 3
