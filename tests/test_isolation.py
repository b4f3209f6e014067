"""A backend that segfaults, exits, raises or hangs costs only its own cases, with the reason."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from adapters import MISBEHAVES_ON
from fake_plugins import register
from support import CASES

from harness.cases.loader import load_cases
from harness.cli import main
from harness.run import workers
from harness.run.runner import run

# Full tier: every test here runs worker processes that die, hang or crash.
pytestmark = pytest.mark.full

TIMEOUT_S = 3
MISBEHAVING = {
    "segfaulting": "worker killed by SIGSEGV",
    "exiting": "worker exited with code 3",
    "hanging": f"timed out after {TIMEOUT_S} s",
    "crashing": "RuntimeError: simulated framework failure in backward()",
}


@pytest.fixture(autouse=True)
def test_adapters(monkeypatch):
    register(
        monkeypatch,
        {
            "segfaulting": "adapters:SegfaultingBackend",
            "exiting": "adapters:ExitingBackend",
            "hanging": "adapters:HangingBackend",
            "crashing": "adapters:CrashingBackend",
            "slow": "adapters:SlowBackend",
        },
    )


# The hanging adapter waits out its timeout: full tier.
@pytest.mark.parametrize(
    "adapter, reason",
    [
        pytest.param(name, reason, id=name, marks=pytest.mark.full if name == "hanging" else ())
        for name, reason in MISBEHAVING.items()
    ],
)
def test_a_dying_or_hanging_backend_is_crashed_with_its_reason_and_the_run_goes_on(
    tmp_path, capsys, adapter, reason
):
    started = time.monotonic()
    status = main(
        [
            "run",
            str(CASES / "mlp-nonsquare.yaml"),
            "-b",
            adapter,
            "-b",
            "torch",
            "--timeout",
            str(TIMEOUT_S),
            "--out",
            str(tmp_path),
        ]
    )
    elapsed = time.monotonic() - started
    assert status == 1
    table = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    mine = table[table["backend"] == adapter]
    cases = load_cases([CASES / "mlp-nonsquare.yaml"])
    hit = {c.name for c in cases if adapter == "crashing" or c.network.activation == MISBEHAVES_ON}
    crashed = mine[mine["case"].isin(hit)]
    assert set(crashed["status"]) == {"crashed"}
    assert len(crashed) == len(hit)  # one row per case
    assert crashed["detail"].str.contains(reason, regex=False).all(), crashed["detail"].tolist()
    # The restarted worker ran the lane's other cases, and they agree with the reference.
    assert set(mine.loc[~mine["case"].isin(hit), "status"]) <= {"ok"}
    assert len(mine[~mine["case"].isin(hit)]) == len(
        table[(table["backend"] == "numpy") & ~table["case"].isin(hit)]
    )
    torch_rows = table[table["backend"] == "torch"]
    assert len(torch_rows) == len(table[table["backend"] == "numpy"])
    assert set(torch_rows["status"]) == {"ok"}
    # Bounded: each hung case costs its timeout, plus worker restarts and imports.
    assert elapsed < 120
    assert "crashed" in capsys.readouterr().out


def test_rows_come_back_in_backend_then_case_order_whatever_finishes_first():
    cases = load_cases([CASES / "mlp-nonsquare.yaml"])
    raw = run(cases, ["slow", "numpy"], jobs=2)
    pairs = raw[["backend", "case"]].drop_duplicates()
    expected = [(b, c.name) for b in ("slow", "numpy") for c in cases]
    assert list(pairs.itertuples(index=False, name=None)) == expected


@pytest.mark.parametrize("jobs", [1, 2, 4])
def test_every_jobs_setting_gives_the_same_values(jobs):
    cases = load_cases([CASES / "seed.yaml"])
    raw = run(cases, ["numpy", "slow", "torch"], jobs=jobs)
    by_backend = raw.groupby("backend")["value"].apply(list)
    assert by_backend["slow"] == by_backend["numpy"]
    assert set(raw["status"]) == {"ok"}


def test_a_healthy_worker_is_reused_by_the_next_run_in_the_process():
    cases = load_cases([CASES / "seed.yaml"])
    run(cases, ["numpy"])
    before = {id(w) for w in workers.idle_workers()}
    run(cases, ["numpy"])
    after = {id(w) for w in workers.idle_workers()}
    assert before and before == after


def test_an_adapter_that_fails_to_build_in_its_worker_crashes_every_case_with_the_reason(
    monkeypatch,
):
    register(monkeypatch, {"unbuildable": "adapters:UnbuildableBackend"})
    cases = load_cases([CASES / "mlp-nonsquare.yaml"])
    raw = run(cases, ["numpy", "unbuildable"])
    rows = raw[raw["backend"] == "unbuildable"]
    assert len(rows) == len(cases)
    assert set(rows["status"]) == {"crashed"}
    assert rows["detail"].str.contains("ImportError: simulated broken framework install").all()


def test_an_adapter_class_that_does_not_exist_is_skipped_as_unavailable(monkeypatch):
    register(monkeypatch, {"missing": "adapters:NoSuchBackend"})
    cases = load_cases([CASES / "seed.yaml"])
    with pytest.warns(UserWarning, match="'missing'.*failed to load"):  # as any broken plugin
        raw = run(cases, ["numpy", "missing"])
    rows = raw[raw["backend"] == "missing"]
    assert set(rows["status"]) == {"skipped"}
    assert rows["detail"].str.contains("backend unavailable.*NoSuchBackend").all()


def test_a_result_that_cannot_cross_the_process_boundary_is_crashed_with_the_reason(monkeypatch):
    register(monkeypatch, {"unpicklable": "adapters:UnpicklableTraceBackend"})
    cases = load_cases([CASES / "mlp-nonsquare.yaml"])
    raw = run(cases, ["numpy", "unpicklable"])
    rows = raw[raw["backend"] == "unpicklable"]
    assert len(rows) == len(cases)
    assert set(rows["status"]) == {"crashed"}
    assert rows["detail"].str.startswith("result could not be sent back: ").all()
