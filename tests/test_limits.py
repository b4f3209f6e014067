"""Limits on what one run may take: oversized case files, too many cases, workers that
outlive their parent, and cases whose memory or output would exceed the run's budget."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from adapters import MISBEHAVES_ON
from fake_plugins import register
from support import CASES, ROOT, write_case
from test_bad_input import GOOD

from harness.cases import loader, yaml_nodes
from harness.cases.yaml_nodes import MAX_FILE_VALUES
from harness.cli import main
from harness.run import budget
from harness.run.runner import run

# -- case files ---------------------------------------------------------------------------


def _plain_values(count: int) -> str:
    """A case whose description is a list of ``count`` plain numbers: no alias at all."""
    return GOOD + "description: [" + ", ".join(["1.5"] * count) + "]\n"


@pytest.mark.parametrize(
    "libyaml",
    [
        pytest.param(True, id="libyaml"),
        pytest.param(False, id="pure-python", marks=pytest.mark.full),  # about 3 s
    ],
)
def test_a_file_of_too_many_plain_values_is_refused_while_composing(
    tmp_path, capsys, monkeypatch, libyaml
):
    """1.6 MB of plain values (within the file-size limit) is refused after reading the
    first MAX_FILE_VALUES of them, with the file, line and limit in the message."""
    monkeypatch.setattr(yaml, "__with_libyaml__", libyaml and yaml.__with_libyaml__)
    path = write_case(tmp_path, _plain_values(4 * MAX_FILE_VALUES))
    assert path.stat().st_size < loader.MAX_FILE_BYTES
    started = time.process_time()
    assert main(["validate", str(path)]) == 2
    spent = time.process_time() - started
    err = capsys.readouterr().err
    assert f"{path}:14:" in err
    assert f"file holds more than {MAX_FILE_VALUES:,} YAML values, the limit for one file" in err
    # Generous: refusing costs the first MAX_FILE_VALUES values, not the whole file
    # (libyaml's count takes about 0.1 s; the pure-Python composer about 2 s).
    assert spent < (2 if libyaml else 15)


# Full tier: thousands of rows through the loader (about 2 s).
@pytest.mark.full
def test_a_case_with_thousands_of_data_rows_still_loads(tmp_path):
    rows = "[" + ", ".join(["[0.5]"] * 5000) + "]"
    text = GOOD.replace("x: [[0.8]]", f"x: {rows}").replace("y: [[1.0]]", f"y: {rows}")
    (case,) = loader.load_cases([write_case(tmp_path, text)])
    assert case.x.shape == (5000, 1)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(int(14.8 * 2**20))  # the size of the file in the report
    started = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    assert time.perf_counter() - started < 1
    assert (
        f"{path}: file is 14.8 MiB; a case file may hold at most 2 MiB" in capsys.readouterr().err
    )


def _sweep(name: str, variants: int) -> str:
    lrs = ", ".join(f"0.{i + 1:06d}" for i in range(variants))
    return GOOD.replace("name: ok-case", f"name: {name}") + f"matrix:\n  optimizer.lr: [{lrs}]\n"


def test_the_case_cap_counts_every_file_of_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loader, "MAX_CASES", 10)
    for i in range(3):  # 4 + 4 fit; the third file brings the run to 12
        write_case(tmp_path, _sweep(f"sweep{i}", 4), f"s{i}.yaml")
    assert len(loader.load_cases([tmp_path / "s0.yaml", tmp_path / "s1.yaml"])) == 8
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 's2.yaml'}:15:3: matrix: this matrix expands to 4 cases, bringing the run "
        "to 12 cases (8 came before it): a run may hold at most 10 cases (matrix variants of "
        "every file together)"
    ) in err


def test_the_case_cap_is_checked_before_a_matrix_is_expanded(tmp_path, capsys):
    """One case, then a matrix of exactly MAX_CASES variants: refused in a moment, unexpanded."""
    axis = ", ".join(str(i) for i in range(1000))
    text = (
        GOOD
        + "---\n"
        + GOOD.replace("name: ok-case", "name: big")
        + f"matrix:\n  steps: [{axis}]\n  optimizer.lr: [{axis}]\n"
    )
    path = write_case(tmp_path, text)
    started = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    assert time.perf_counter() - started < 10
    err = capsys.readouterr().err
    assert "this matrix expands to 1,000,000 cases, bringing the run to 1,000,001 cases" in err
    assert f"a run may hold at most {loader.MAX_CASES:,} cases" in err


def test_the_value_limit_is_per_file_across_its_documents(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(yaml_nodes, "MAX_FILE_VALUES", 60)
    one = GOOD  # about 25 values
    path = write_case(tmp_path, one + "---\n" + one.replace("ok-case", "two") + "---\n" + one)
    assert main(["validate", str(path)]) == 2
    assert "file holds more than 60 YAML values" in capsys.readouterr().err


# -- workers die with their parent --------------------------------------------------------

CLI_WITH_HANGING_ADAPTER = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from fake_plugins import register
register(None, {{"marked_hanging": "adapters:MarkedHangingBackend"}})
from harness.cli import main
if sys.argv[1] == "--in-a-thread":  # no parent-death signal there: only the lifeline pipe
    import threading
    thread = threading.Thread(target=main, args=(sys.argv[2:],))
    thread.start()
    thread.join()
else:
    sys.exit(main(sys.argv[1:]))
"""


def _processes() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, state), read from /proc (zombies left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if state not in ("Z", "X"):
            found[int(entry.name)] = (int(ppid), state)
    return found


def _descendants(root: int) -> set[int]:
    processes = _processes()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in processes.items() if ppid in frontier} - found
        found |= frontier
    return found


@pytest.mark.full
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize(
    "jobs, how", [("1", "main"), ("2", "main"), ("2", "--in-a-thread")], ids=["j1", "j2", "thread"]
)
def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path, jobs, how):
    """kill -9 of the parent while a worker is inside a case that never ends (and, with
    -j 1, while the other worker waits idle): no worker outlives it by more than seconds.
    Started from a thread, the workers rely on the lifeline pipe alone."""
    marker = tmp_path / "hanging"
    mode = [how] if how != "main" else []
    process = subprocess.Popen(
        [
            *(sys.executable, "-c", CLI_WITH_HANGING_ADAPTER, *mode, "run"),
            *(str(CASES / "seed.yaml"), "-b", "marked_hanging", "-j", jobs),
            *("-o", str(tmp_path / "out")),
        ],
        cwd=ROOT,
        env={**os.environ, "CROSSGRAD_TEST_HANG_MARKER": str(marker)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("hanging.*")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        hanging = int(next(tmp_path.glob("hanging.*")).suffix[1:])
        children = _descendants(process.pid)
        assert hanging in children
    finally:
        process.kill()  # SIGKILL: no handler, no atexit, no cleanup in the parent
        process.wait()
    deadline = time.monotonic() + 10
    while children & _processes().keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = children & _processes().keys()
    for pid in left:  # do not leave them behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived their parent: {left}"


# -- memory and output budget -------------------------------------------------------------


def _wide(name: str, steps: int, batch: int = 256) -> str:
    return f"""\
name: {name}
network:
  sizes: [64, 64, 64, 1]
  activation: tanh
  init: {{seed: 1, scheme: xavier_uniform}}
data:
  x: {{seed: 2, batch: {batch}}}
  y: {{seed: 3, batch: {batch}}}
optimizer: {{name: adam, lr: 0.001}}
steps: {steps}
"""


def _case(text: str, tmp_path: Path, name: str = "one.yaml"):
    (case,) = loader.load_cases([write_case(tmp_path, text, name)])
    return case


def test_the_estimated_rows_are_the_rows_a_run_records(tmp_path):
    """The estimate is exact for the rows: every case of two library files, on numpy."""
    cases = loader.load_cases([CASES / "seed.yaml", CASES / "mlp-nonsquare.yaml"])
    cases.append(_case(_wide("wide", 2, batch=8), tmp_path))
    raw = run(cases, ["numpy"])
    counted = raw.groupby("case").size()
    for case in cases:
        assert counted[case.name] == budget.recorded_values(case), case.name


def test_a_case_over_the_memory_budget_is_skipped_before_it_runs_and_the_run_goes_on(
    tmp_path, capsys
):
    """Budget 50 MB; the wide case is estimated at about 200 MB on two backends."""
    write_case(tmp_path, (CASES / "seed.yaml").read_text(), "seed.yaml")
    write_case(tmp_path, _wide("wide", 2), "wide.yaml")
    wide = _case(_wide("wide", 2), tmp_path, "wide.yaml")
    assert budget.peak_bytes(wide, 2, budget.Budget(workers=2)) > 150 * 2**20
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "seed.yaml"), str(tmp_path / "wide.yaml"), "-b", "torch"]
    status = main([*args, "--memory-limit", "50MB", "--known", "none", "-o", str(out)])
    assert status == 0  # the seed case agrees; a refused case does not fail the run
    table = pd.read_csv(out / "results.csv", keep_default_na=False)
    refused = table[table["case"] == "wide"]
    assert len(refused) == 2  # one row per backend: it never ran
    assert set(refused["status"]) == {"skipped"}
    assert (
        refused["detail"]
        .str.match(
            r"refused: estimated to need [0-9.]+ MiB of memory \(99,590 recorded numbers per "
            r"backend\); the limit is 50\.0 MiB \(--memory-limit, CROSSGRAD_MEMORY_LIMIT\)"
        )
        .all()
    ), refused["detail"].tolist()
    assert set(table.loc[table["case"] != "wide", "status"]) == {"ok"}
    assert json.loads((out / "run.json").read_text())["limits"]["refused_cases"] == 1
    assert "warning: case wide not run: refused: estimated" in capsys.readouterr().err


def test_the_output_budget_is_run_wide_and_counted_in_case_order(tmp_path):
    cases = [_case(_wide(f"w{i}", n), tmp_path, f"{i}.yaml") for i, n in enumerate((3, 5, 1))]
    sizes = [budget.output_bytes(case, 2) for case in cases]
    limit = budget.Budget(memory=2**40, output=sizes[0] + sizes[2] + 1, workers=2)
    refused = budget.refusals(cases, 2, limit)
    assert list(refused) == ["w1"]  # the first and the last fit, together
    assert "--output-limit, CROSSGRAD_OUTPUT_LIMIT" in refused["w1"]


def test_the_memory_limit_comes_from_the_environment_and_a_bad_value_is_exit_2(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv(budget.MEMORY_ENV, "1k")
    out = tmp_path / "out"
    assert main(["run", str(CASES / "seed.yaml"), "-b", "numpy", "-o", str(out)]) == 0
    table = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert table["detail"].str.startswith("refused:").all()
    monkeypatch.setenv(budget.MEMORY_ENV, "lots")
    assert main(["run", str(CASES / "seed.yaml"), "-b", "numpy", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "crossgrad: error: CROSSGRAD_MEMORY_LIMIT: expected a size such as 4GiB" in err
    assert "Traceback" not in err


def test_sizes_are_read_with_binary_units():
    assert budget.parse_size("4GiB") == budget.parse_size("4g") == 4 * 2**30
    assert budget.parse_size("50MB") == 50 * 2**20
    assert budget.parse_size("1000") == 1000
    for bad in ("", "0", "-1G", "4 parsecs"):
        with pytest.raises(ValueError):
            budget.parse_size(bad)


def test_chunks_are_cut_where_their_rows_would_not_fit_half_the_memory_budget(tmp_path):
    """A chunk of the parent holds at most half the budget of rows (the rest is the workers')."""
    case = _case(_wide("w", 1, batch=8), tmp_path)
    cases = [dataclasses.replace(case, name=f"w{i}") for i in range(7)]
    each = budget.parent_bytes(case, 2)
    limit = budget.Budget(memory=5 * each, workers=2)  # half of it holds two cases' rows
    assert budget.chunk_bounds(cases, 2, 2000, limit) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert budget.chunk_bounds(cases, 2, 3, budget.Budget()) == [(0, 3), (3, 6), (6, 7)]
    # A refused case holds one row per backend.
    refused = {f"w{i}": "refused" for i in range(1, 7)}
    assert budget.chunk_bounds(cases, 2, 2000, limit, refused) == [(0, 7)]


@pytest.mark.full
def test_a_case_past_the_address_space_limit_is_crashed_with_a_memory_limit_reason(
    tmp_path, monkeypatch
):
    """The greedy adapter allocates 768 MiB on relu cases; with a 256 MiB allowance its
    worker's address-space limit stops it there: a crashed row, and the lane goes on."""
    monkeypatch.setenv(budget.ALLOWANCE_ENV, "256MiB")
    register(monkeypatch, {"greedy": "adapters:GreedyBackend"})
    cases = loader.load_cases([CASES / "mlp-nonsquare.yaml"])
    raw = run(cases, ["numpy", "greedy"])
    greedy = raw[raw["backend"] == "greedy"].groupby("case").first()
    for case in cases:
        row = greedy.loc[case.name]
        if case.network.activation == MISBEHAVES_ON:
            assert row["status"] == "crashed"
            assert row["detail"].startswith(
                "memory limit: the case ran past the worker's address-space limit of"
            ), row["detail"]
            assert "MemoryError" in row["detail"]
        else:
            assert row["status"] == "ok", row["detail"]


def test_the_cases_that_exhausted_memory_are_refused_in_a_moment_under_the_default_budget(
    tmp_path, capsys, monkeypatch
):
    """Width 64, batch 256, 100,000 steps (3.4 GB in 15 s, then the OOM killer) and
    sizes [4096]×3 with batch 65,536 (which killed the parent): both pass validate, and
    neither reaches a worker or has its data drawn."""
    monkeypatch.delenv(budget.MEMORY_ENV, raising=False)
    monkeypatch.delenv(budget.OUTPUT_ENV, raising=False)
    long_run = _wide("long", 100_000)
    huge = _wide("huge", 1, batch=65_536).replace("[64, 64, 64, 1]", "[4096, 4096, 4096]")
    write_case(tmp_path, long_run + "---\n" + huge, "greedy.yaml")
    assert main(["validate", str(tmp_path / "greedy.yaml")]) == 0
    started = time.perf_counter()
    out = tmp_path / "out"
    status = main(["run", str(tmp_path / "greedy.yaml"), "-b", "numpy", "-o", str(out)])
    assert status == 0
    assert time.perf_counter() - started < 30
    table = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert sorted(table["case"]) == ["huge", "long"]
    assert table["detail"].str.startswith("refused: estimated to need").all()
    assert "the limit is 4.0 GiB (--memory-limit" in table["detail"].iloc[0]


@pytest.mark.full
def test_a_worker_that_aborts_is_crashed_with_a_hint_at_the_memory_limit(monkeypatch):
    register(monkeypatch, {"aborting": "adapters:AbortingBackend"})
    cases = loader.load_cases([CASES / "mlp-nonsquare.yaml"])
    raw = run(cases, ["numpy", "aborting"])
    mine = raw[(raw["backend"] == "aborting") & (raw["status"] == "crashed")]
    assert len(mine) == sum(c.network.activation == MISBEHAVES_ON for c in cases) > 0
    assert (
        mine["detail"]
        == "worker killed by SIGABRT (under an address-space limit: a memory limit may have "
        "ended it)"
    ).all(), mine["detail"].tolist()
