"""The report folder is owned by the run that writes it: nothing outside it changes, whatever
is planted in it; a folder that is not a crossgrad report is refused; a failed run leaves the
previous report as it was; a report is replaced whole; one run at a time (docs/running.md,
"Who owns the report folder")."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fake_plugins import register
from support import CASES, ROOT, write_case

from harness.cli import main
from harness.report import folder as report_folder
from harness.report import writer as report_writer
from harness.report.folder import ReportFolder, leftovers, lock_path
from harness.run.session import PARTIAL_FILE, RUN_FILE, RunSession

SEED = str(CASES / "seed.yaml")
REPORT = {
    "results.csv",
    "results.parquet",
    "summary.md",
    "junit.xml",
    "report.html",
    "environment.json",
    "coverage.csv",
    "known.json",
    RUN_FILE,
}


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes | str | None]]:
    """Every entry under ``root``, links not followed: mode, inode, mtime and content."""
    entries = {}
    for where, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(where, name)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                content: bytes | str | None = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                content = path.read_bytes()
            else:
                content = None
            key = str(path.relative_to(root))
            entries[key] = (info.st_mode, info.st_ino, info.st_mtime_ns, content)
    return entries


def _failing_report(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report of a failing run (a divergence, with repro/) in ``out``."""
    register(monkeypatch, {"wrong_bias": "adapters:WrongBiasGradientBackend"})
    assert main(["run", SEED, "-b", "wrong_bias", "--known", "none", "--out", str(out)]) == 1
    assert (out / "repro" / "commands.sh").is_file()


def _passing(out: Path) -> list[str]:
    return ["run", SEED, "-b", "numpy", "--out", str(out)]


def test_links_planted_in_the_report_folder_are_never_written_through(tmp_path, monkeypatch):
    out = tmp_path / "reports" / "latest"
    _failing_report(out, monkeypatch)
    outside = tmp_path / "outside"
    (outside / "repro").mkdir(parents=True)
    planted = [*sorted(REPORT - {RUN_FILE}), PARTIAL_FILE]
    for name in planted:
        victim = outside / name
        victim.write_text(f"precious {name}\n")
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(victim)
    for name in ("commands.sh", "pairs.json", "seed.yaml"):
        (outside / "repro" / name).write_text(f"precious {name}\n")
    for item in (out / "repro").iterdir():
        item.unlink()
    (out / "repro").rmdir()
    (out / "repro").symlink_to(outside / "repro", target_is_directory=True)
    before = _snapshot(outside)

    assert main(["run", SEED, "-b", "wrong_bias", "--known", "none", "--out", str(out)]) == 1

    assert _snapshot(outside) == before
    for path in [out, *out.rglob("*")]:
        assert not path.is_symlink(), path
    assert (out / "repro" / "commands.sh").read_text().startswith("crossgrad run ")
    assert pd.read_csv(out / "results.csv")["backend"].tolist().count("wrong_bias") > 0


@pytest.mark.parametrize("content", ["notes.txt", "run.json of another tool", "linked run.json"])
def test_a_folder_that_is_not_a_crossgrad_report_is_refused(tmp_path, capsys, content):
    out = tmp_path / "reports" / "mine"
    out.mkdir(parents=True)
    if content == "notes.txt":
        (out / "notes.txt").write_text("keep me\n")
    elif content == "run.json of another tool":
        (out / RUN_FILE).write_text('{"complete": true}\n')
    else:  # a crossgrad report's run.json, linked in: the folder itself is not one
        assert main(_passing(tmp_path / "real")) == 0
        (out / RUN_FILE).symlink_to(tmp_path / "real" / RUN_FILE)
    capsys.readouterr()
    before = _snapshot(tmp_path / "reports")

    assert main(_passing(out)) == 2

    err = capsys.readouterr().err
    assert "is not empty and is not a crossgrad report" in err and str(out) in err
    assert "Traceback" not in err
    assert _snapshot(tmp_path / "reports") == before  # no lock file, no fresh folder left


def test_the_root_folder_is_refused_and_nothing_lands_in_it(capsys):
    before = sorted(os.listdir("/"))
    assert main(["run", SEED, "-b", "numpy", "--out", "/"]) == 2
    assert "the root folder cannot be a report folder" in capsys.readouterr().err
    assert sorted(os.listdir("/")) == before


def test_a_report_written_before_the_mark_is_still_recognized(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / RUN_FILE).write_text(
        json.dumps({"complete": True, "state": "complete", "pairs_total": 2})
    )
    (out / "summary.md").write_text("old\n")
    assert main(_passing(out)) == 0
    assert json.loads((out / RUN_FILE).read_text())["written_by"] == "crossgrad"
    assert "old" not in (out / "summary.md").read_text()


def test_a_passing_run_replaces_a_failing_report_whole(tmp_path, monkeypatch):
    out = tmp_path / "reports" / "latest"
    _failing_report(out, monkeypatch)
    (out / "regression.txt").write_text("written into the report by CI\n")

    assert main(_passing(out)) == 0

    assert {p.name for p in out.iterdir()} == REPORT  # no repro/, nothing of the old run
    record = json.loads((out / RUN_FILE).read_text())
    assert record["complete"] is True and record["backends"] == ["numpy"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["latest"]  # no lock, no leftovers


def test_repro_commands_name_the_report_folder_not_the_fresh_one(tmp_path, monkeypatch):
    out = tmp_path / "latest"
    _failing_report(out, monkeypatch)
    command = (out / "repro" / "commands.sh").read_text()
    assert f"{out}/repro/cases__seed.yaml" in command
    assert ".crossgrad-" not in command + (out / "summary.md").read_text()


def _no_space(path: object) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.mark.parametrize("where", ["streaming", "report.html", "run.json at the end"])
def test_a_full_disk_leaves_the_previous_report_as_it_was(tmp_path, monkeypatch, capsys, where):
    out = tmp_path / "reports" / "latest"
    _failing_report(out, monkeypatch)
    before = _snapshot(tmp_path / "reports")
    before_out = _snapshot(out)
    if where == "streaming":

        def stream(self, rows):
            raise _no_space(self.out / PARTIAL_FILE)

        monkeypatch.setattr(RunSession, "_stream_rows", stream)
    elif where == "report.html":
        write_text = report_writer._write_text

        def full_at_html(path, text):
            if path.name == "report.html":  # summary.md and junit.xml are written by now
                raise _no_space(path)
            write_text(path, text)

        monkeypatch.setattr(report_writer, "_write_text", full_at_html)
    else:
        write_run_file = RunSession._write_run_file

        def full_at_the_end(self, state):
            if state != "running":
                raise _no_space(self.out / RUN_FILE)
            write_run_file(self, state)

        monkeypatch.setattr(RunSession, "_write_run_file", full_at_the_end)
    capsys.readouterr()

    assert main(_passing(out)) == 2

    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert f"The previous report in {out} is untouched; " in err
    assert _snapshot(out) == before_out
    kept = leftovers(out)
    if where == "streaming":  # nothing was computed into the fresh folder: it is removed
        assert "the unfinished one was removed" in err and kept == []
        assert _snapshot(tmp_path / "reports") == before
    else:  # the finished results are kept beside the report, never deleted
        [folder] = kept
        assert f"the results computed so far are kept in {folder}" in err
        results = [f for f in folder.iterdir() if "results." in f.name and f.stat().st_size]
        assert results, sorted(f.name for f in folder.iterdir())


def test_a_run_that_cannot_swap_its_report_in_keeps_it_and_says_where(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "latest"
    _failing_report(out, monkeypatch)
    before = _snapshot(out)

    def no_swap(fresh, target):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(target))

    monkeypatch.setattr(report_folder, "_swap", no_swap)
    assert main(_passing(out)) == 2
    err = capsys.readouterr().err
    [kept] = leftovers(out)
    assert f"The finished report is in {kept}" in err
    assert json.loads((kept / RUN_FILE).read_text())["complete"] is True
    assert _snapshot(out) == before


def test_a_report_folder_taken_over_during_the_run_is_left_alone(tmp_path, monkeypatch, capsys):
    out = tmp_path / "latest"
    finish = RunSession.finish

    def someone_writes_into_out(self, *args):
        finish(self, *args)
        out.mkdir()
        (out / "theirs.txt").write_text("not crossgrad's\n")

    monkeypatch.setattr(RunSession, "finish", someone_writes_into_out)
    assert main(_passing(out)) == 2
    err = capsys.readouterr().err
    [kept] = leftovers(out)
    assert "is not empty and is not a crossgrad report" in err and str(kept) in err
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert (kept / "summary.md").is_file()


def test_without_an_atomic_exchange_two_renames_swap_the_report(tmp_path, monkeypatch):
    out = tmp_path / "latest"
    _failing_report(out, monkeypatch)
    monkeypatch.setattr(report_folder, "exchange", lambda one, other: False)
    assert main(_passing(out)) == 0
    assert {p.name for p in out.iterdir()} == REPORT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_a_failed_second_rename_puts_the_previous_report_back(tmp_path, monkeypatch):
    target, fresh = tmp_path / "latest", tmp_path / "fresh"
    target.mkdir()
    (target / "old.txt").write_text("old\n")
    fresh.mkdir()
    rename = os.rename
    calls = []

    def second_fails(source, destination):
        calls.append(destination)
        if len(calls) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(destination))
        rename(source, destination)

    monkeypatch.setattr(report_folder, "exchange", lambda one, other: False)
    monkeypatch.setattr(report_folder.os, "rename", second_fails)
    with pytest.raises(OSError):
        report_folder._swap(fresh, target)
    assert (target / "old.txt").read_text() == "old\n"
    assert fresh.is_dir()


def test_the_exchange_swaps_two_folders_in_one_step(tmp_path):
    one, other = tmp_path / "one", tmp_path / "other"
    one.mkdir()
    other.mkdir()
    (one / "a").write_text("a")
    if not report_folder.exchange(one, other):
        pytest.skip("no renameat2(RENAME_EXCHANGE) on this system")
    assert (other / "a").read_text() == "a" and not (one / "a").exists()


def test_a_second_run_into_the_same_folder_stops_at_once_naming_the_first(tmp_path, capsys):
    out = tmp_path / "latest"
    assert main(_passing(out)) == 0
    before = _snapshot(tmp_path)
    with ReportFolder(out, "run") as first:
        capsys.readouterr()
        for command in (_passing(out), ["report", str(out), "--out", str(out)]):
            assert main(command) == 2
            err = capsys.readouterr().err
            assert f"--out {out} is being written by another crossgrad run" in err
            assert f"crossgrad run, pid {os.getpid()} on " in err and str(first.path) in err
            assert "Traceback" not in err
    assert _snapshot(tmp_path) == before  # the first run, never committed, left nothing
    assert main(_passing(out)) == 0  # the lock went with it


@pytest.mark.parametrize("kind", ["file", "dangling link", "link to a report"])
def test_an_out_that_is_not_a_folder_is_a_message_and_exit_2(tmp_path, capsys, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("not a folder\n")
        expected = "is a file, not a folder"
    elif kind == "dangling link":
        out.symlink_to(tmp_path / "nowhere")
        expected = "is a symbolic link (to "
    else:
        assert main(_passing(tmp_path / "real")) == 0
        out.symlink_to(tmp_path / "real", target_is_directory=True)
        expected = "is a symbolic link (to "
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main(_passing(out)) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before


def _refuse_writes_under(monkeypatch: pytest.MonkeyPatch, readonly: Path) -> None:
    """Writes in ``readonly`` fail as in a read-only folder (root ignores permissions)."""
    mkdir, open_ = os.mkdir, os.open

    def no_mkdir(path, *args, **kwargs):
        if Path(os.path.abspath(path)).parent == readonly:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return mkdir(path, *args, **kwargs)

    def no_create(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(os.path.abspath(path)).parent == readonly:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return open_(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", no_mkdir)
    monkeypatch.setattr(os, "open", no_create)


def test_a_read_only_working_folder_is_a_message_and_exit_2(tmp_path, monkeypatch, capsys):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    monkeypatch.chdir(readonly)
    _refuse_writes_under(monkeypatch, readonly)
    assert main(["run", SEED, "-b", "numpy"]) == 2  # the default --out, reports/latest
    err = capsys.readouterr().err
    assert f"cannot create the folder {readonly / 'reports'}: Permission denied" in err
    assert "Traceback" not in err
    assert list(readonly.iterdir()) == []


def test_a_folder_beside_which_nothing_can_be_written_is_a_message_and_exit_2(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "latest"
    assert main(_passing(out)) == 0
    before = _snapshot(tmp_path)
    _refuse_writes_under(monkeypatch, tmp_path)
    assert main(_passing(out)) == 2
    err = capsys.readouterr().err
    assert f"cannot create the lock file {lock_path(out)}: Permission denied" in err
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folders_are_a_message_and_exit_2(tmp_path, capsys):
    out = tmp_path / "parent" / "latest"
    assert main(_passing(out)) == 0
    out.chmod(0o555)
    try:
        assert main(_passing(out)) == 2
        assert "is read-only" in capsys.readouterr().err
        out.chmod(0o755)
        out.parent.chmod(0o555)
        assert main(_passing(out)) == 2
        assert "Permission denied" in capsys.readouterr().err
    finally:
        out.parent.chmod(0o755)
        out.chmod(0o755)


def test_the_working_folder_inside_out_is_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "latest"
    assert main(_passing(out)) == 0
    monkeypatch.chdir(out)
    assert main(["run", SEED, "-b", "numpy", "--out", "."]) == 2
    assert "holds the working folder" in capsys.readouterr().err


def test_report_merges_into_a_folder_it_owns_and_marks_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_passing(run)) == 0
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "notes.txt").write_text("keep me\n")
    assert main(["report", str(run), "--out", str(merged)]) == 2
    assert "is not a crossgrad report" in capsys.readouterr().err
    (merged / "notes.txt").unlink()
    assert main(["report", str(run), "--out", str(merged)]) == 0
    record = json.loads((merged / RUN_FILE).read_text())
    assert record["written_by"] == "crossgrad" and record["command"] == "report"
    assert main(["report", str(merged), "--out", str(merged)]) == 0  # its own input, even
    assert (merged / "results.csv").read_bytes() == (run / "results.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged", "run"]


# The CLI in a process of its own, with the slow test adapter registered.
CLI_WITH_SLOW = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from fake_plugins import register
register(None, {{"slow": "adapters:SlowBackend"}})
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""
SWEEP = (CASES / "seed.yaml").read_text(encoding="utf-8").split("expect:")[0] + (
    "matrix:\n  optimizer.lr: [" + ", ".join(f"0.{i:02d}" for i in range(1, 41)) + "]\n"
)


def _start_slow_run(tmp_path: Path, out: Path) -> tuple[subprocess.Popen[str], Path]:
    """A slow run into ``out``, once it has streamed a few results; and its fresh folder."""
    cases = write_case(tmp_path, SWEEP, "sweep.yaml")
    process = subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_SLOW, "run", str(cases), "-b", "slow", "-o", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        fresh = [f for f in leftovers(out) if (f / PARTIAL_FILE).is_file()]
        if fresh and len((fresh[0] / PARTIAL_FILE).read_text().splitlines()) > 50:
            return process, fresh[0]
        time.sleep(0.1)


@pytest.mark.full
def test_two_runs_at_once_the_second_stops_and_the_first_keeps_its_results(tmp_path, capsys):
    out = tmp_path / "latest"
    first, fresh = _start_slow_run(tmp_path, out)
    try:
        assert main(_passing(out)) == 2
        err = capsys.readouterr().err
        assert f"crossgrad run, pid {first.pid} on " in err and str(fresh) in err
        assert (fresh / PARTIAL_FILE).is_file()  # its streamed results are still there
    finally:
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=60)
    assert first.returncode == 143, stderr
    table = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert set(table["backend"]) == {"numpy", "slow"}  # the first run's report, whole
    assert leftovers(out) == []


@pytest.mark.full
def test_a_run_killed_outright_leaves_the_previous_report_and_its_fresh_folder(tmp_path):
    out = tmp_path / "latest"
    assert main(_passing(out)) == 0
    before = _snapshot(out)
    process, fresh = _start_slow_run(tmp_path, out)
    process.kill()
    process.communicate(timeout=60)
    assert _snapshot(out) == before
    assert leftovers(out) == [fresh] and (fresh / PARTIAL_FILE).is_file()
    result = subprocess.run(
        [sys.executable, "-m", "harness", *_passing(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"{fresh} was left by an earlier run into {out}" in result.stderr
    assert leftovers(out) == [fresh]  # named, never deleted: it holds that run's results
    assert not lock_path(out).exists()  # the killed run's lock file went with the next run
