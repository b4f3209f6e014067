"""A run taken in chunks: the same report as in one piece, batch rows streamed, a bounded
report.html, progress through the whole run, and stops that land between chunks."""

from __future__ import annotations

import json
import os
import signal

import pandas as pd
import pytest
from fake_plugins import register
from support import CASES, DATA, write_case

from harness.cases.loader import load_cases
from harness.cli import main
from harness.report.writer import ReportWriter
from harness.run import pipeline
from harness.run.interrupts import Interrupted, SignalGuard
from harness.run.session import FAIL_FAST, PARTIAL_FILE, RUN_FILE, RunSession

# The seed network over 11 initial-weight seeds: one vectorized group, cut by any chunk size.
SEEDS = 11
SWEEP = (CASES / "seed.yaml").read_text(encoding="utf-8").split("expect:")[0].replace(
    "  params:\n    layers.0.weight: [[1.58]]\n    layers.0.bias: [-0.14]\n"
    "    layers.1.weight: [[2.45]]\n    layers.1.bias: [-0.11]\n",
    "  init: {seed: 0, scheme: uniform}\n",
) + ("matrix:\n  network.init.seed: [" + ", ".join(map(str, range(SEEDS))) + "]\n")
REPORT_FILES = ("results.csv", "summary.md", "junit.xml", "coverage.csv", "report.html")


def _run(out, args, chunk_cases, monkeypatch):
    monkeypatch.setattr(pipeline, "CHUNK_CASES", chunk_cases)
    return main(["run", *args, "--out", str(out)])


def _same_reports(one, chunked):
    for name in REPORT_FILES:
        # repro commands name the report folder, which is all that may differ
        expected = (one / name).read_text().replace(str(one), "OUT")
        assert (chunked / name).read_text().replace(str(chunked), "OUT") == expected, name
    pd.testing.assert_frame_equal(
        pd.read_parquet(chunked / "results.parquet"), pd.read_parquet(one / "results.parquet")
    )


# Full tier: two whole runs compared (about 4 s).
@pytest.mark.full
def test_a_run_in_chunks_writes_the_report_of_a_run_in_one_piece(tmp_path, monkeypatch):
    register(monkeypatch, {"wrong_bias": "adapters:WrongBiasGradientBackend"})
    skipping = write_case(
        tmp_path,
        (CASES / "seed.yaml").read_text().replace("name: seed-1-1-1", "name: seed-skips")
        + "backends: {skip: [wrong_bias]}\n",
        "skips.yaml",
    )
    files = [str(CASES / "mlp-nonsquare.yaml"), str(DATA / "spec_example.yaml"), str(skipping)]
    args = [*files, "-b", "wrong_bias,torch"]
    # diverged, expect_failed, known-free ok and skipped pairs, and repro files
    assert _run(tmp_path / "one", args, 1000, monkeypatch) == 1
    assert _run(tmp_path / "chunked", args, 2, monkeypatch) == 1
    _same_reports(tmp_path / "one", tmp_path / "chunked")
    summary = (tmp_path / "chunked" / "summary.md").read_text()
    assert "diverged" in summary and "expect_failed" in summary and "skipped" in summary


def test_a_vectorized_group_cut_by_chunks_is_batched_on_both_sides(tmp_path, monkeypatch):
    cases = write_case(tmp_path, SWEEP, "sweep.yaml")
    args = [str(cases), "-b", "numpy", "--vectorize"]
    assert _run(tmp_path / "one", args, 1000, monkeypatch) == 0
    assert _run(tmp_path / "chunked", args, 5, monkeypatch) == 0  # 5 + 5 + 1 cases
    _same_reports(tmp_path / "one", tmp_path / "chunked")


def test_batch_rows_reach_the_streamed_partial_results(tmp_path):
    cases = load_cases([write_case(tmp_path, SWEEP, "sweep.yaml")])
    with RunSession(tmp_path, cases, ["numpy"], "numpy", chunk_cases=4) as session:
        chunks = session.chunks(vectorize=True)
        first_cases, raw = next(chunks)
        streamed = pd.read_csv(tmp_path / PARTIAL_FILE, keep_default_na=False)
        assert len(streamed) == len(raw)
        assert list(dict.fromkeys(streamed["case"])) == [c.name for c in first_cases]
        assert json.loads((tmp_path / RUN_FILE).read_text())["pairs_finished"] == 0
        next(chunks)
        assert json.loads((tmp_path / RUN_FILE).read_text())["pairs_finished"] == 4
        chunks.close()


def test_progress_counts_through_the_whole_run(tmp_path):
    cases = load_cases([write_case(tmp_path, SWEEP, "sweep.yaml")])
    calls = []
    backends = ["numpy", "torch"]
    with RunSession(tmp_path, cases, backends, "numpy", chunk_cases=4) as session:
        for _ in session.chunks(lambda *call: calls.append(call)):
            pass
    for backend in backends:
        done = [d for b, d, _, _ in calls if b == backend]
        assert done == sorted(set(done)) and done[-1] == SEEDS  # never back, never twice
        assert {4, 8} <= set(done)  # each chunk's end is reported
    assert {total for _, _, total, _ in calls} == {SEEDS}


def test_fail_fast_stops_after_the_chunk_of_a_failing_batch(tmp_path, monkeypatch):
    # Every variant keeps the published values of the seed case: the others miss them.
    failing = (CASES / "seed.yaml").read_text() + "matrix:\n  data.y: [[[1.0]], [[0.0]], [[0.5]]]\n"
    cases = write_case(tmp_path, failing, "failing.yaml")
    args = [str(cases), "-b", "numpy", "--vectorize", "--fail-fast"]
    assert _run(tmp_path / "out", args, 2, monkeypatch) == 1
    record = json.loads((tmp_path / "out" / RUN_FILE).read_text())
    assert record["complete"] is False and record["reason"].startswith(FAIL_FAST)
    assert record["pairs_finished"] == 2
    table = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False)
    not_run = table[table["detail"].str.startswith("not run: " + FAIL_FAST)]
    assert list(not_run["case"]) == ["seed-1-1-1[data.y=[[0.5]]]"]


def test_a_signal_while_a_chunk_is_written_stops_the_run_after_it():
    with SignalGuard() as guard:
        with guard.holding():
            os.kill(os.getpid(), signal.SIGINT)  # held: the chunk's writing goes on
            written = True
        assert written
        with pytest.raises(Interrupted) as stopped:
            guard.raise_pending()
        assert stopped.value.status == 130
        guard.raise_pending()  # raised once only


def test_report_html_of_a_huge_run_plots_and_lists_a_bounded_part_failing_first(tmp_path):
    assert main(["run", str(CASES / "mlp-nonsquare.yaml"), "-b", "torch", "-o", str(tmp_path)]) == 0
    table = pd.read_parquet(tmp_path / "results.parquet")
    last_case = table["case"].iloc[-1]
    table.loc[(table["case"] == last_case) & (table["backend"] == "torch"), "status"] = "diverged"
    with ReportWriter(tmp_path / "small", html_cases=2, html_pairs=3) as writer:
        for case in table["case"].unique():
            writer.add(table[table["case"] == case].reset_index(drop=True))
        writer.finish([], [])
    ok = table
    page = (tmp_path / "small" / "report.html").read_text()
    cases = ok["case"].nunique()
    assert f"This page lists 3 of {2 * cases} case × backend pairs and plots 2 of {cases}" in page
    assert page.count("per backend and quantity (above 1 diverges)") == 2  # heatmap titles
    listed = page.split("<table>")[1].split("</table>")[0]
    assert listed.count("<tr class=") == 3
    assert listed.index(f"<td>{last_case}</td>") < listed.index("<td>ok</td>")  # failing first
    summary = (tmp_path / "small" / "summary.md").read_text()
    assert summary.count("| numpy |") == cases  # summary.md keeps every pair
