"""The report files: merged per-backend runs equal an all-in-one run, ``crossgrad diff``
finds every change, junit.xml validates, report.html renders its plots in a browser, and
every report carries the environment fingerprint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter

import pandas as pd
import pytest
import xmlschema
from fake_plugins import register
from support import BUILTIN_BACKENDS, CASES, DATA, ROOT

from harness.cli import main
from harness.report.coverage import coverage_frame, coverage_text

BASELINE = ROOT / "reports" / "baseline"
# The baseline's cases (a reviewable subset of cases/); the report tests use them too.
REPORT_CASES = [
    str(ROOT / line)
    for line in (BASELINE / "CASES").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


@pytest.fixture(scope="module")
def all_in_one(tmp_path_factory):
    """Every case in cases/ on every backend, in one run."""
    out = tmp_path_factory.mktemp("all")
    # Named, so that a plugin adapter installed on this machine does not join the run.
    backends = ",".join(BUILTIN_BACKENDS)
    assert main(["run", *REPORT_CASES, "--backend", backends, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def per_backend(tmp_path_factory):
    """One run per backend, as the nox sessions and CI jobs make them."""
    folders = []
    for backend in BUILTIN_BACKENDS:
        out = tmp_path_factory.mktemp(backend)
        assert main(["run", *REPORT_CASES, "--backend", backend, "--out", str(out)]) == 0
        folders.append(out)
    return folders


# Full tier: four backends run twice in worker processes (about 25 s).
@pytest.mark.full
def test_merged_per_backend_runs_equal_the_all_in_one_run_value_for_value(
    all_in_one, per_backend, tmp_path
):
    # Deliberately not in registry order: the merge restores the all-in-one order.
    inputs = [str(p) for p in reversed(per_backend)]
    assert main(["report", *inputs, "--out", str(tmp_path)]) == 0
    merged = pd.read_parquet(tmp_path / "results.parquet")
    single = pd.read_parquet(all_in_one / "results.parquet")
    assert sorted(merged["backend"].unique()) == sorted(BUILTIN_BACKENDS)
    pd.testing.assert_frame_equal(merged, single)
    assert (tmp_path / "results.csv").read_bytes() == (all_in_one / "results.csv").read_bytes()
    table = (tmp_path / "summary.md").read_text().split("## Environment")[0]
    assert table == (all_in_one / "summary.md").read_text().split("## Environment")[0]
    # Each input's environment is kept: four runs behind the merged report.
    assert len(json.loads((tmp_path / "environment.json").read_text())) == len(per_backend)


def test_merge_accepts_results_files_as_well_as_folders(per_backend, all_in_one, tmp_path):
    files = [str(p / "results.csv") for p in per_backend]
    assert main(["report", *files, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "results.csv").read_bytes() == (all_in_one / "results.csv").read_bytes()


def test_merge_refuses_runs_whose_reference_values_differ(per_backend, tmp_path, capsys):
    table = pd.read_csv(per_backend[1] / "results.csv", keep_default_na=False, dtype={"index": str})
    row = table.index[table["backend"] == "numpy"][0]
    table.loc[row, "value"] = float(table.loc[row, "value"]) + 1.0
    other = tmp_path / "other.csv"
    table.to_csv(other, index=False)
    args = ["report", str(per_backend[0]), str(other), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "on 'numpy' differs between" in err and str(other) in err


def test_diff_of_a_run_against_itself_exits_0(all_in_one, capsys):
    assert main(["diff", str(all_in_one), str(all_in_one)]) == 0
    assert "no change" in capsys.readouterr().err


def _changed_copy(source, tmp_path, change):
    table = change(pd.read_csv(source / "results.csv", keep_default_na=False, dtype={"index": str}))
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    return path


def test_diff_names_the_one_value_that_moved_and_exits_1(all_in_one, tmp_path, capsys):
    def nudge(table):
        row = table.index[
            (table["backend"] == "torch")
            & (table["case"] == "seed-1-1-1")
            & (table["quantity"] == "grad")
            & (table["param"] == "layers.0.weight")
        ][0]
        table.loc[row, "value"] = float(table.loc[row, "value"]) * 1.01
        return table

    changed = _changed_copy(all_in_one, tmp_path, nudge)
    assert main(["diff", str(all_in_one), str(changed)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("value moved: seed-1-1-1 torch step 0 grad layers.0.weight[0]: ")


def test_diff_ignores_a_change_within_tolerance(all_in_one, tmp_path):
    def within(table):
        row = table.index[(table["backend"] == "torch") & (table["quantity"] == "loss")][0]
        value = float(table.loc[row, "value"])
        table.loc[row, "value"] = value + 0.1 * float(table.loc[row, "tol"])
        return table

    assert main(["diff", str(all_in_one), str(_changed_copy(all_in_one, tmp_path, within))]) == 0


def test_diff_lists_status_changes_and_cases_and_backends_gone(all_in_one, tmp_path, capsys):
    def damage(table):
        table = table[(table["case"] != "seed-1-1-1") & (table["backend"] != "jax")].copy()
        table.loc[table.index[table["backend"] == "torch"][0], "status"] = "diverged"
        return table

    assert main(["diff", str(all_in_one), str(_changed_copy(all_in_one, tmp_path, damage))]) == 1
    out = capsys.readouterr().out
    assert "case gone: seed-1-1-1" in out
    assert "backend gone: jax" in out
    assert "status changed: " in out and "ok -> diverged" in out


@pytest.mark.parametrize(
    "bad, message",
    [("missing.csv", "no such file"), ("not-results.csv", "not a crossgrad results table")],
)
def test_diff_and_report_reject_a_bad_results_file_with_exit_2(
    all_in_one, tmp_path, capsys, bad, message
):
    (tmp_path / "not-results.csv").write_text("a,b\n1,2\n")
    path = str(tmp_path / bad)
    assert main(["diff", str(all_in_one), path]) == 2
    assert main(["report", path, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count(path) == 2 and message in err
    assert "Traceback" not in err


def test_the_committed_baseline_matches_a_fresh_run(all_in_one, capsys):
    """A real regression check: refresh the baseline deliberately (README) when this fails."""
    status = main(["diff", str(BASELINE / "results.csv"), str(all_in_one)])
    assert status == 0, capsys.readouterr().out


@pytest.fixture(scope="module")
def failing_report(tmp_path_factory):
    """A report with every outcome: ok, diverged, expect_failed, crashed and skipped pairs."""
    out = tmp_path_factory.mktemp("failing")
    skipping = out.parent / "skips-jax.yaml"
    seed = (CASES / "seed.yaml").read_text().replace("name: seed-1-1-1", "name: seed-skips-jax")
    skipping.write_text(seed + "backends: {skip: [jax]}\n")
    with pytest.MonkeyPatch.context() as patch:
        register(
            patch,
            {
                "wrong_bias": "adapters:WrongBiasGradientBackend",
                "crashing": "adapters:CrashingBackend",
            },
        )
        args = ["run", str(DATA / "spec_example.yaml"), str(skipping)]
        assert main([*args, "-b", "wrong_bias,crashing,jax", "--out", str(out)]) == 1
    return out


@pytest.mark.parametrize("report", ["all_in_one", "failing_report"])
def test_junit_xml_validates_with_one_testcase_per_case_and_backend(report, request):
    folder = request.getfixturevalue(report)
    xmlschema.XMLSchema(DATA / "junit.xsd").validate(folder / "junit.xml")
    table = pd.read_parquet(folder / "results.parquet")
    document = xmlschema.XMLSchema(DATA / "junit.xsd").to_dict(folder / "junit.xml")
    cases = document["testsuite"][0]["testcase"]
    assert len(cases) == len(table[["case", "backend"]].drop_duplicates())


def test_junit_xml_marks_failures_and_errors(failing_report):
    text = (failing_report / "junit.xml").read_text()
    assert (
        '<testcase classname="seed-1-1-1[network.activation=sigmoid,dtype=float32]" name="wrong_bias"'
        in text
    )
    # wrong_bias diverges on all five cases; the tanh variants miss the published values
    # on numpy and jax (2 × 2); crashing crashes on all five; jax skips one case.
    assert 'tests="20" failures="9" errors="5" skipped="1"' in text
    assert "simulated framework failure" in text


def test_the_verdict_line_counts_the_reference_apart_from_the_compared_backends(failing_report):
    """The reference's pairs compare it with itself: not ``ok`` comparisons in the counts."""
    table = pd.read_parquet(failing_report / "results.parquet")
    pairs = table.groupby(["case", "backend"], sort=False)["status"].agg(list)
    reference = pairs[pairs.index.get_level_values("backend") == "numpy"]
    assert len(reference) == 5 and any("expect_failed" in s for s in reference)
    lines = (failing_report / "summary.md").read_text().splitlines()
    verdict = next(line for line in lines if line.startswith("**FAIL**"))
    # 5 cases on wrong_bias, crashing and jax: 15 compared pairs, none of them numpy's
    # (wrong_bias and jax miss the tanh variants' published values, as numpy does); numpy
    # misses those two and runs the other three.
    assert verdict == (
        "**FAIL** — 5 cases × 3 backends compared with the reference numpy: "
        "5 crashed, 4 expect_failed, 3 diverged, 1 skipped, 2 ok "
        "(reference numpy: 2 expect_failed, 3 ran)"
    )
    coverage = lines[lines.index("### dtype") + 2]
    assert coverage == "| value | numpy (reference) | wrong_bias | crashing | jax |"
    # junit.xml still has a testcase per pair, the reference's included (it checks the
    # published values); and the exit status is the run's (the fixture asserts 1).
    assert 'tests="20"' in (failing_report / "junit.xml").read_text()


def test_the_printed_coverage_heads_the_reference_column_as_the_reference():
    counts = Counter(
        {("dtype", "float32", "numpy", "ok"): 1, ("dtype", "float32", "torch", "ok"): 1}
    )
    lines = coverage_text(coverage_frame(counts), "numpy").splitlines()
    assert lines[1].split() == ["knob", "value", "numpy", "(reference)", "torch"]
    assert lines[2].split() == ["dtype", "float32", "1", "ran", "1", "ran"]


def test_every_report_carries_the_environment_fingerprint(failing_report):
    (environment,) = json.loads((failing_report / "environment.json").read_text())
    for key in ("python", "os", "cpu", "versions", "threads", "determinism", "backends", "seeds"):
        assert key in environment
    assert environment["versions"]["jax"]
    # What the jax worker read back (tests/test_environment.py checks the rest).
    assert environment["backends"]["jax"]["flags"]["jax_default_matmul_precision"] == "highest"
    summary = (failing_report / "summary.md").read_text()
    assert "## Environment" in summary and environment["python"] in summary
    assert 'name="versions.jax"' in (failing_report / "junit.xml").read_text()
    assert "## Environment" in (failing_report / "report.html").read_text()


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("CI must have chromium: .ci/run installs it (apt-get install chromium)")
    pytest.skip("no chromium here: apt-get install chromium (CI installs it in .ci/run)")


@pytest.mark.full
def test_report_html_renders_its_plots_in_a_headless_browser(all_in_one, tmp_path):
    page = (all_in_one / "report.html").read_text()
    assert "<script src=" not in page  # self-contained: plotly.js is inlined
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (all_in_one / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    cases = pd.read_parquet(all_in_one / "results.parquet").groupby("case")["step"].nunique()
    multi_step = int((cases > 1).sum())
    # plotly draws each figure into <svg class="main-svg"> after the page's scripts run:
    # one heatmap per case, and one line plot per multi-step case.
    assert dom.count('<g class="hm"') == len(cases)
    assert dom.count('class="trace scatter') >= multi_step * (len(BUILTIN_BACKENDS) - 1)
    assert dom.count('class="main-svg"') >= len(cases) + multi_step


def test_merging_failing_runs_keeps_causes_oracle_verdicts_and_repro_files(tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        register(patch, {"wrong_bias": "adapters:WrongBiasGradientBackend"})
        seed = str(CASES / "seed.yaml")
        for name, backends in (
            ("one", "torch,wrong_bias"),
            ("torch", "torch"),
            ("wrong", "wrong_bias"),
        ):
            main(["run", seed, "-b", backends, "--out", str(tmp_path / name)])
        status = main(
            [
                "report",
                str(tmp_path / "wrong"),
                str(tmp_path / "torch"),
                "--out",
                str(tmp_path / "merged"),
            ]
        )
    assert status == 1
    merged = tmp_path / "merged"
    assert (merged / "results.csv").read_bytes() == (tmp_path / "one" / "results.csv").read_bytes()
    table = pd.read_csv(merged / "results.csv", keep_default_na=False)
    assert set(table.loc[table["status"] == "diverged", "cause"]) == {"semantic"}
    (command,) = (merged / "repro" / "commands.sh").read_text().splitlines()
    assert command.startswith(
        f"crossgrad run {merged / 'repro' / 'cases__seed.yaml'} --backend=wrong_bias"
    )
    assert (merged / "repro" / "cases__seed.yaml").read_text() == (CASES / "seed.yaml").read_text()
