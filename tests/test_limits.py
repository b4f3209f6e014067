"""Limits on what one run may take: oversized case files, too many cases, workers that
outlive their parent, and cases whose memory or output would exceed the run's budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import CASES, ROOT, write_case
from test_bad_input import GOOD

from harness.cases import loader, yaml_nodes
from harness.cases.yaml_nodes import MAX_FILE_VALUES
from harness.cli import main

# -- case files ---------------------------------------------------------------------------


def _plain_values(count: int) -> str:
    """A case whose description is a list of ``count`` plain numbers: no alias at all."""
    return GOOD + "description: [" + ", ".join(["1.5"] * count) + "]\n"


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure-python"])
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
    assert f"{path}: file is 14.8 MiB; a case file may hold at most 2 MiB" in capsys.readouterr().err


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
        [sys.executable, "-c", CLI_WITH_HANGING_ADAPTER, *mode, "run", str(CASES / "seed.yaml")]
        + ["-b", "marked_hanging", "-j", jobs, "-o", str(tmp_path / "out")],
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
