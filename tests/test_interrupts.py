"""A stopped run (SIGTERM, Ctrl-C, --fail-fast) leaves a readable report marked incomplete."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fake_plugins import register
from support import CASES, ROOT, write_case

from harness.cli import main
from harness.report.folder import leftovers
from harness.run.session import PARTIAL_FILE, RUN_FILE

# Full tier: every test here signals or times a real crossgrad process.
pytestmark = pytest.mark.full

VARIANTS = 40
SWEEP = (CASES / "seed.yaml").read_text(encoding="utf-8").split("expect:")[0] + (
    "matrix:\n  optimizer.lr: [" + ", ".join(f"0.{i:02d}" for i in range(1, VARIANTS + 1)) + "]\n"
)
# The CLI in a process of its own, with the slow test adapter registered.
CLI_WITH_TEST_ADAPTERS = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from fake_plugins import register
register(None, {{"slow": "adapters:SlowBackend"}})
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _streamed_pairs(out: Path) -> int:
    """Case × backend pairs streamed so far into the run's fresh folder beside ``out`` (the
    last line may be half-written)."""
    for folder in leftovers(out):  # while the run goes on, its fresh folder is one of these
        try:
            rows = pd.read_csv(folder / PARTIAL_FILE, on_bad_lines="skip")
            return len(rows[["case", "backend"]].drop_duplicates())
        except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError):
            pass
    return 0


@pytest.mark.parametrize(
    "signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_run_stopped_by_a_signal_leaves_a_readable_report_marked_incomplete(
    tmp_path, signum, status
):
    cases = write_case(tmp_path, SWEEP, "sweep.yaml")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI_WITH_TEST_ADAPTERS,
            "run",
            str(cases),
            "-b",
            "slow",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    # numpy finishes its 40 cases at once; wait until the slow backend is part-way through.
    while _streamed_pairs(out) < VARIANTS + 3:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    assert "report incomplete: interrupted by " + signal.Signals(signum).name in stderr
    table = pd.read_csv(out / "results.csv", keep_default_na=False)
    run_record = json.loads((out / RUN_FILE).read_text())
    assert run_record["complete"] is False
    assert run_record["reason"] == f"interrupted by {signal.Signals(signum).name}"
    slow = table[table["backend"] == "slow"]
    finished = slow[slow["status"] == "ok"]["case"].nunique()
    not_run = slow[slow["detail"].str.startswith("not run: interrupted")]
    assert 3 <= finished < VARIANTS
    assert set(not_run["status"]) == {"skipped"}
    assert finished + len(not_run) == VARIANTS
    assert set(table.loc[table["backend"] == "numpy", "status"]) == {"ok"}
    assert run_record["pairs_finished"] == VARIANTS + finished
    assert "**INCOMPLETE** — interrupted by" in (out / "summary.md").read_text()
    assert pd.read_parquet(out / "results.parquet").shape == table.shape
    assert not (out / PARTIAL_FILE).exists()
    assert leftovers(out) == []  # the fresh folder became out


def test_a_complete_run_is_marked_complete_and_records_its_determinism_settings(tmp_path):
    assert main(["run", str(CASES / "seed.yaml"), "-b", "torch", "--out", str(tmp_path)]) == 0
    run_record = json.loads((tmp_path / RUN_FILE).read_text())
    assert run_record["complete"] is True
    assert run_record["pairs_finished"] == run_record["pairs_total"] == 2
    torch_settings = run_record["determinism"]["backends"]["torch"]["torch"]
    assert torch_settings["deterministic_algorithms"] is True
    assert torch_settings["threads"] == 1
    assert run_record["determinism"]["environment"]["TF_DETERMINISTIC_OPS"] == "1"
    assert "INCOMPLETE" not in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / PARTIAL_FILE).exists()


def test_fail_fast_stops_at_the_first_crash_and_says_so(tmp_path, monkeypatch, capsys):
    register(monkeypatch, {"crashing": "adapters:CrashingBackend"})
    args = ["run", str(CASES / "mlp-nonsquare.yaml"), "-b", "crashing", "--fail-fast"]
    assert main([*args, "--out", str(tmp_path)]) == 1
    table = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    crashing = table[table["backend"] == "crashing"]
    assert sorted(crashing["status"]) == ["crashed"] + ["skipped"] * 4
    not_run = crashing[crashing["status"] == "skipped"]
    assert not_run["detail"].str.startswith("not run: stopped by --fail-fast").all()
    assert json.loads((tmp_path / RUN_FILE).read_text())["complete"] is False
    assert "report incomplete: stopped by --fail-fast" in capsys.readouterr().err


def test_fail_fast_stops_at_the_first_divergence(tmp_path, monkeypatch):
    register(monkeypatch, {"wrong_bias": "adapters:WrongBiasGradientBackend"})
    args = ["run", str(CASES / "mlp-nonsquare.yaml"), "-b", "wrong_bias", "-x", "-j", "1"]
    assert main([*args, "--out", str(tmp_path)]) == 1
    reason = json.loads((tmp_path / RUN_FILE).read_text())["reason"]
    assert reason.startswith("stopped by --fail-fast at the first failure: mlp-3-4-2[")
    assert reason.endswith("on wrong_bias is diverged")


SECOND_SIGNAL = """
import os, signal, time
from harness.run.interrupts import Interrupted, SignalGuard
with SignalGuard() as guard:
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
    except Interrupted as exc:
        print("first signal stopped the run, status", exc.status, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
    print("still running after the second signal", flush=True)
"""


def test_a_second_ctrl_c_exits_at_once():
    result = subprocess.run(
        [sys.executable, "-c", SECOND_SIGNAL], capture_output=True, text=True, cwd=ROOT, timeout=20
    )
    assert result.returncode == 130
    assert result.stdout.splitlines() == ["first signal stopped the run, status 130"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--timeout", "--jobs", "--fail-fast"])
def test_run_help_documents_the_option(capsys, option):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert option in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--timeout", "0"], ["--jobs", "0"], ["--timeout", "soon"]])
def test_a_bad_option_value_is_a_usage_error(capsys, args):
    with pytest.raises(SystemExit) as stopped:
        main(["run", *args])
    assert stopped.value.code == 2
    assert args[0] in capsys.readouterr().err
