"""Known divergences: verified or bounded rows become known; stale entries are reported."""

from __future__ import annotations

import dataclasses
import random
import re
import time

import pandas as pd
import pytest
from support import CASES, write_case

from harness.cases.loader import load_cases
from harness.cases.patterns import matches
from harness.cli import main
from harness.errors import CaseError
from harness.verdict.known import (
    BUILTIN_KNOWN,
    WHERE_PATHS,
    apply_known,
    case_attribute,
    known_option,
    load_known,
)

ENTRY = """\
divergences:
  - id: {id}
    backend: {backend}
    where: {{network.sizes: [1, 1, 1]}}
    {extra}
    measured: "1e-3 in one bias gradient"
    reason: "a test entry"
    source: tests/test_known.py
"""
BOUNDED = "max_rel_err: 1.0"


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


def test_a_bounded_entry_makes_the_divergence_known_and_says_it_is_not_verified(
    tmp_path, wrong_bias
):
    status, table, summary = _run(
        tmp_path, ENTRY.format(id="bias-off", backend="wrong_bias", extra=BOUNDED)
    )
    rows = table[table["backend"] == "wrong_bias"]
    assert status == 0
    assert "diverged" not in set(rows["status"])
    assert (
        rows.loc[rows["status"] == "known", "detail"].str.startswith(
            "known divergence bias-off (bounded, not verified: rel err <= 1 from the reference):"
        )
    ).all()
    assert "| bias-off | bounded, not verified | wrong_bias |" in summary


def test_a_switch_that_does_not_explain_the_difference_leaves_it_diverged(tmp_path, wrong_bias):
    """A verified entry claims only rows the switched reference reproduces; the others say
    which entry was tried and what still differs."""
    status, table, summary = _run(
        tmp_path,
        ENTRY.format(id="wrong-idea", backend="wrong_bias", extra="semantics: {epsilon_hat: true}"),
    )
    rows = table[table["backend"] == "wrong_bias"]
    assert status == 1
    diverged = rows[rows["status"] == "diverged"]
    assert not diverged.empty and "known" not in set(rows["status"])
    assert (
        diverged["detail"]
        .str.startswith("known divergence wrong-idea tried: the reference with epsilon_hat gives")
        .all()
    )
    assert "wrong-idea" in summary


def test_a_bound_smaller_than_the_effect_keeps_the_rows_diverged(tmp_path, wrong_bias):
    status, table, _ = _run(
        tmp_path,
        ENTRY.format(id="bias-off", backend="wrong_bias", extra="max_rel_err: 1.0e-6"),
    )
    assert status == 1
    assert "diverged" in set(table["status"])


def test_an_entry_that_matches_nothing_that_ran_is_stale(tmp_path, capsys, wrong_bias):
    text = ENTRY.format(id="never", backend="wrong_bias", extra="max_rel_err: 1.0e-9")
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
        write_case(tmp_path, ENTRY.format(id="other", backend="jax", extra=BOUNDED), "known.yaml")
    )
    _, stale = apply_known(table, cases, entries, "numpy")
    assert stale == []


def test_an_entry_whose_cases_only_the_reference_ran_is_not_stale(tmp_path):
    cases = load_cases(["cases/seed.yaml"])
    table = pd.DataFrame(
        {
            "case": ["seed-1-1-1"],
            "backend": ["numpy"],
            "status": ["ok"],
            "detail": [""],
            "quantity": ["output"],
            "param": [""],
            "rel_err": [0.0],
        }
    )
    path = write_case(tmp_path, ENTRY.format(id="all", backend="'*'", extra=BOUNDED), "k.yaml")
    _, stale = apply_known(table, cases, load_known(path), "numpy")
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
    message = "absent.yaml: cannot read the known divergences: no such file"
    with pytest.raises(CaseError, match=re.escape(message)):
        load_known(tmp_path / "absent.yaml")


def test_load_known_reports_every_problem(tmp_path):
    path = write_case(tmp_path, "divergences:\n  - id: a\n    backend: 1\n  - {}\n", "known.yaml")
    with pytest.raises(CaseError) as info:
        load_known(path)
    assert len(info.value.problems) >= 3


# -- patterns are matched in linear time ------------------------------------------------


def test_a_pathological_pattern_against_a_long_name_takes_no_time():
    # As a regular expression (.*a.*a...b) this backtracks: 50 characters took a minute.
    started = time.perf_counter()
    assert not matches("a" * 100_000, "*a" * 9 + "*b")
    assert not matches("a" * 100_000, "*a?" * 30 + "*b")
    assert matches("a" * 100_000 + "b", "*a" * 9 + "*b")
    assert time.perf_counter() - started < 0.5  # generous: it takes microseconds


def test_patterns_agree_with_the_wildcard_definition():
    """``*`` any run, ``?`` any one character, everything else itself, on every small case."""
    rng = random.Random(14)
    for _ in range(20_000):
        name = "".join(rng.choice("ab[]") for _ in range(rng.randint(0, 8)))
        pattern = "".join(rng.choice("ab[]*?") for _ in range(rng.randint(0, 6)))
        assert matches(name, pattern) is _by_definition(name, pattern), (name, pattern)


def _by_definition(name: str, pattern: str) -> bool:
    if not pattern:
        return not name
    if pattern[0] == "*":
        return any(_by_definition(name[i:], pattern[1:]) for i in range(len(name) + 1))
    return bool(name) and pattern[0] in ("?", name[0]) and _by_definition(name[1:], pattern[1:])


def test_a_known_file_with_a_pathological_pattern_is_matched_quickly(tmp_path):
    entries = load_known(
        write_case(
            tmp_path,
            ENTRY.format(id="slow", backend="'" + "*a" * 9 + "*b'", extra=BOUNDED),
            "known.yaml",
        )
    )
    case = load_cases(["cases/seed.yaml"])[0]
    long_name = dataclasses.replace(case, name="a" * 10_000)
    started = time.perf_counter()
    assert not entries[0].covers(long_name, "a" * 10_000)
    assert time.perf_counter() - started < 0.5


# -- entries that could never match, or that match everything ------------------------------


def _problems(tmp_path, body: str) -> str:
    path = write_case(tmp_path, "divergences:\n" + body, "known.yaml")
    with pytest.raises(CaseError) as info:
        load_known(path)
    return str(info.value)


BODY = """\
  - id: e
    backend: "*"
{extra}
    max_rel_err: 1.0
    measured: m
    reason: r
    source: s
"""


def test_an_entry_that_covers_every_case_is_an_error_unless_it_says_so(tmp_path, capsys):
    path = write_case(tmp_path, "divergences:\n" + BODY.format(extra=""), "known.yaml")
    args = ["run", "cases/seed.yaml", "-b", "numpy", "--out", str(tmp_path / "o")]
    assert main([*args, "--known", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:5: divergences.0: entry 'e' covers every case on backend '*'" in err
    assert "all_cases: true" in err
    acknowledged = write_case(
        tmp_path, "divergences:\n" + BODY.format(extra="    all_cases: true"), "ack.yaml"
    )
    assert load_known(acknowledged)[0].all_cases
    both = BODY.format(extra="    all_cases: true\n    where: {dtype: float64}")
    assert "divergences.0.all_cases: all_cases: true says" in _problems(tmp_path, both)


def test_an_entry_naming_cases_is_an_error_pointing_to_where(tmp_path):
    problems = _problems(tmp_path, BODY.format(extra='    cases: ["optim[*"]'))
    assert "divergences.0.cases: entries no longer name cases" in problems
    assert "where" in problems


def test_an_entry_needs_semantics_or_a_bound_but_not_both(tmp_path):
    neither = BODY.format(extra="    where: {dtype: float64}").replace("    max_rel_err: 1.0\n", "")
    assert "needs exactly one of semantics" in _problems(tmp_path, neither)
    both = BODY.format(extra="    where: {dtype: float64}\n    semantics: {epsilon_hat: true}")
    assert "needs exactly one of semantics" in _problems(tmp_path, both)


def test_an_unknown_switch_is_an_error_naming_the_switches(tmp_path):
    body = BODY.format(extra="    where: {dtype: float64}\n    semantics: {epsilon_hatt: true}")
    body = body.replace("    max_rel_err: 1.0\n", "")
    problems = _problems(tmp_path, body)
    assert "divergences.0.semantics.epsilon_hatt: unknown switch (did you mean 'epsilon_hat'?)" in (
        problems
    )
    assert "eps_inside_sqrt" in problems


@pytest.mark.parametrize(
    ("condition", "decay", "covered"),
    [(">0", 0.05, True), (">0", 0.0, False), ("<=0.01", 0.05, False), ("!=0", 0.0, False)],
)
def test_a_where_comparison_tests_the_number(tmp_path, condition, decay, covered):
    body = BODY.format(extra=f'    where: {{optimizer.weight_decay: "{condition}"}}')
    entry = load_known(write_case(tmp_path, "divergences:\n" + body, "known.yaml"))[0]
    case = load_cases(["cases/seed.yaml"])[0]
    optimizer = dataclasses.replace(
        case.optimizer, args={**case.optimizer.args, "weight_decay": decay}
    )
    assert entry.covers(dataclasses.replace(case, optimizer=optimizer), "torch") is covered


@pytest.mark.parametrize("key", ["quantities", "params"])
def test_an_empty_list_is_an_error(tmp_path, key):
    body = BODY.format(extra=f"    where: {{dtype: float64}}\n    {key}: []")
    column = len(f"    {key}: ") + 1
    problems = _problems(tmp_path, body)
    assert f"known.yaml:5:{column}: divergences.0.{key}: empty list" in problems


def test_a_where_key_that_is_no_case_key_is_an_error_listing_the_valid_ones(tmp_path):
    body = BODY.format(extra="    where: {optimizer.nme: adam, dtype: float64}")
    problems = _problems(tmp_path, body)
    assert "known.yaml:4:13: divergences.0.where.optimizer.nme: not a case key path" in problems
    assert "did you mean 'optimizer.name'?" in problems
    for valid in ("optimizer.name", "optimizer.weight_decay", "dtype", "network.activation"):
        assert valid in problems.partition("expected one of: ")[2]


@pytest.mark.parametrize(
    "where, message",
    [
        ("{dtype: float65}", "where.dtype: unknown value 'float65' (did you mean 'float64'?)"),
        ("{optimizer.name: [adam, adamm]}", "where.optimizer.name: unknown value 'adamm'"),
        ("{dtype: []}", "where.dtype: empty list"),
        ("{}", "where: empty mapping"),
    ],
)
def test_a_where_value_no_case_can_have_is_an_error(tmp_path, where, message):
    assert message in _problems(tmp_path, BODY.format(extra=f"    where: {where}"))


def test_every_where_path_reads_a_value_of_some_case_in_the_library():
    cases = load_cases([str(CASES)])
    for path, choices in WHERE_PATHS.items():
        values = [case_attribute(case, path) for case in cases]
        assert any(v is not None for v in values), path
        if choices is not None:
            assert {v for v in values if v is not None} <= set(choices), path


def test_a_where_on_betas_matches_the_case_that_has_them(tmp_path):
    body = BODY.format(extra="    where: {optimizer.betas: [0.8, 0.99]}")
    entries = load_known(write_case(tmp_path, "divergences:\n" + body, "known.yaml"))
    cases = load_cases([str(CASES)])
    covered = [c for c in cases if entries[0].covers(c, "torch")]
    assert covered and all(c.optimizer.args["betas"] == (0.8, 0.99) for c in covered)


def test_an_id_must_be_a_plain_name(tmp_path):
    body = BODY.format(extra="    where: {dtype: float64}").replace("id: e", 'id: "a|b <x>"')
    assert "divergences.0.id: expected letters, digits" in _problems(tmp_path, body)


# -- which file ---------------------------------------------------------------------------


def test_a_known_file_that_does_not_exist_is_exit_2(tmp_path, capsys):
    args = ["run", "cases/seed.yaml", "-b", "numpy", "--out", str(tmp_path / "o")]
    assert main([*args, "--known", str(tmp_path / "typo.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'typo.yaml'}: cannot read the known divergences: no such file" in err
    assert "Traceback" not in err


def test_the_built_in_file_is_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert BUILTIN_KNOWN == CASES / "known_divergences.yaml"
    assert [e.id for e in known_option(None)] == [e.id for e in load_known(BUILTIN_KNOWN)]
    assert known_option(["none"]) == []


def test_a_named_file_adds_to_the_built_in_entries(tmp_path):
    path = write_case(tmp_path, ENTRY.format(id="mine", backend="torch", extra=BOUNDED), "k.yaml")
    ids = [e.id for e in known_option([str(path)])]
    assert ids == [*(e.id for e in load_known(BUILTIN_KNOWN)), "mine"]
    with pytest.raises(CaseError, match="duplicate id 'mine'"):
        known_option([str(path), str(write_case(tmp_path, path.read_text(), "again.yaml"))])


@pytest.mark.full
def test_a_run_from_another_directory_applies_the_built_in_entries(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    args = ["run", str(CASES / "edge_cases.yaml"), "-b", "torch", "-k", "edge-softplus-threshold*"]
    assert main([*args, "--out", str(out)]) == 0
    table = pd.read_parquet(out / "results.parquet")
    torch = table[(table["backend"] == "torch") & (table["case"].str.endswith("float64]"))]
    assert "known" in set(torch["status"]) and "diverged" not in set(torch["status"])
    assert torch["detail"].str.contains("torch-softplus-threshold").any()
