"""The report folder a command writes (``--out DIR``), owned whole by the run that writes it.

- DIR is never written into. The run writes a fresh folder beside it,
  ``.NAME.crossgrad-PID-XXXXXXXX`` (same parent, so the swap is a rename on one filesystem),
  and swaps it in at the end: one ``renameat2(RENAME_EXCHANGE)`` where the system has it,
  else two renames with Ctrl-C and SIGTERM held between them. The previous report is then
  deleted whole, so no file of it (an old ``repro/``) survives, and a link planted in DIR
  is deleted, never followed.
- An existing DIR must be empty or a crossgrad report: a folder holding ``run.json``, a
  regular file whose JSON object has ``"written_by": "crossgrad"`` (reports from before
  that key are recognized by their ``state`` and ``pairs_total``). Anything else (``/``, a
  source folder, a file, a link) is refused with exit 2 before a case runs.
- One run at a time: ``.NAME.crossgrad.lock`` beside DIR is held (``flock``) from the
  start to the swap; a second run into DIR stops at once, naming the first. The lock file
  says which run holds it and where it writes; the system drops the lock when the
  process dies, however it dies.
- A failure while writing (a full disk, a permission) leaves the previous report as it
  was (``OutputError``, exit 2); the fresh folder is kept when it holds results (computed
  values are never deleted: the message names it), else removed. A run killed outright
  (SIGKILL, a second Ctrl-C while the report is finished) leaves the fresh folder, with
  its ``results.partial.csv``; the next run into DIR names it and leaves it alone.
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import json
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from harness.errors import CrossgradError

RUN_FILE = "run.json"
MARK = {"written_by": "crossgrad"}  # in run.json: what makes a folder a crossgrad report
_UMASK = os.umask(0)
os.umask(_UMASK)
_LEGACY_KEYS = {"state", "pairs_total"}  # run.json of a report written before MARK
_RUN_FILE_LIMIT = 1 << 20
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class OutputError(CrossgradError):
    """The report folder cannot be (or could not be) written; the previous report is untouched."""


class ReportFolder:
    """``with ReportFolder(out, "run") as folder:`` write into ``folder.path``, then ``commit()``.

    Leaving the block without ``commit()`` (an error, ``OutputError`` included) removes the
    fresh folder; an ``OSError`` from inside the block leaves it as an ``OutputError``.
    """

    def __init__(self, out: Path, command: str, log: TextIO | None = None) -> None:
        self.target = target_path(out)
        self.command = command
        self.log = log
        self.path = self.target  # the fresh folder, once entered
        self._lock: _Lock | None = None
        self._committed = False
        self._keep = False  # a finished report whose swap failed stays where it is

    def __enter__(self) -> ReportFolder:
        check_target(self.target)
        _make_parent(self.target)
        self._lock = _Lock(self.target)
        try:
            self._lock.describe(self.command)
            check_target(self.target)  # again, now that no other run can swap it
            for left in leftovers(self.target):
                warnings.warn(
                    f"{left} was left by an earlier run into {self.target} that did not finish "
                    "(killed?); its results.partial.csv holds that run's raw results. "
                    "crossgrad leaves it alone: delete it when done with it.",
                    stacklevel=2,
                )
            name = self.target.name
            try:
                made = tempfile.mkdtemp(
                    dir=self.target.parent, prefix=f".{name}.crossgrad-{os.getpid()}-"
                )
                # mkdtemp's 0700 would hide the report from CI readers
                os.chmod(made, 0o777 & ~_UMASK)
            except OSError as exc:
                raise OutputError(
                    f"cannot create a folder beside {self.target}: {_reason(exc)}"
                ) from exc
            self.path = Path(made)
            self._lock.describe(self.command, self.path)
        except BaseException:
            self._lock.release()
            raise
        if self.log is not None:
            print(
                f"crossgrad: writing the report in {self.path} (results.partial.csv streams "
                f"there); it replaces {self.target} when the run ends",
                file=self.log,
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        unfinished = not self._committed and not self._keep and self.path != self.target
        kept = unfinished and _holds_results(self.path)
        try:
            if unfinished and not kept:
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
        if isinstance(error, OSError) and not self._committed:
            fate = (
                f"the results computed so far are kept in {self.path} (delete it when done)"
                if kept
                else "the unfinished one was removed"
            )
            raise OutputError(
                f"could not write the report: {_reason(error)}. The previous report in "
                f"{self.target} is untouched; {fate}"
            ) from error

    def commit(self, record: dict[str, Any] | None = None) -> None:
        """Put the finished report in place of the previous one (if any) and delete that.

        ``record`` is written as ``run.json`` when the fresh folder has none.
        """
        run_file = self.path / RUN_FILE
        if not run_file.exists():
            record = {
                **MARK,
                "command": self.command,
                "complete": True,
                "state": "complete",
                "finished": now(),
                **(record or {}),
            }
            run_file.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        try:
            check_target(self.target)  # what another program may have put there meanwhile
            old = _swap(self.path, self.target)
        except (OSError, OutputError) as exc:
            self._keep = True
            reason = _reason(exc) if isinstance(exc, OSError) else str(exc)
            raise OutputError(
                f"could not put the report in place: {reason}. The finished report is in "
                f"{self.path}; {self.target} is as it was"
            ) from exc
        self._committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)  # links inside are deleted, never followed
            if os.path.lexists(old):
                warnings.warn(
                    f"could not delete all of the previous report, moved to {old}: "
                    "delete it yourself",
                    stacklevel=2,
                )


def check_out(out: Path) -> None:
    """Refuse a bad ``--out`` (``OutputError``) before any work: ``ReportFolder`` checks again."""
    target = target_path(out)
    check_target(target)
    if os.path.isdir(target.parent):
        _Lock(target).release()  # another run writing it stops this one now, not at the end


def target_path(out: Path) -> Path:
    """``out`` as an absolute path, its parent's links resolved (DIR's own name is not)."""
    absolute = Path(os.path.abspath(out))
    if absolute.name in ("", ".", ".."):
        raise OutputError(
            f"--out {out}: the root folder cannot be a report folder (a run replaces its "
            "--out folder whole); give a folder of its own, such as reports/latest"
        )
    return Path(os.path.realpath(absolute.parent)) / absolute.name


def check_target(target: Path) -> None:
    """Raise ``OutputError`` unless ``target`` is absent, an empty folder or a crossgrad report."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"--out {target}: {_reason(exc)}") from exc
    if stat.S_ISLNK(info.st_mode):
        where = os.readlink(target)
        dangling = "" if os.path.exists(target) else ", which does not exist"
        raise OutputError(
            f"--out {target} is a symbolic link (to {where}{dangling}); a report folder is "
            "replaced whole and no link is followed: give the folder itself, or another --out"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise OutputError(
            f"--out {target} is a file, not a folder; crossgrad writes a folder of its own: "
            "give another --out"
        )
    try:
        cwd: Path | None = Path(os.path.realpath(Path.cwd()))
    except OSError:  # the working folder was deleted: it is inside nothing
        cwd = None
    if cwd is not None and (cwd == target or target in cwd.parents):
        raise OutputError(
            f"--out {target} holds the working folder, and a run replaces its --out folder "
            "whole: run from another folder, or give another --out"
        )
    try:
        parent = os.stat(target.parent)
        with os.scandir(target) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        raise OutputError(f"--out {target}: {_reason(exc)}") from exc
    if parent.st_dev != info.st_dev:
        raise OutputError(
            f"--out {target} is a mount point, which cannot be replaced by a rename; give a "
            "folder inside it, such as --out " + str(target / "latest")
        )
    if not empty and not is_report(target):
        raise OutputError(
            f"--out {target} is not empty and is not a crossgrad report (it has no {RUN_FILE} "
            "written by crossgrad); a run replaces its --out folder whole. Give a new or empty "
            "folder, or move this one's contents away first"
        )
    if not os.access(target, os.W_OK | os.X_OK):
        raise OutputError(
            f"--out {target} is read-only, and a run replaces its --out folder whole: make it "
            "writable (chmod u+w) or give another --out"
        )


def is_report(folder: Path) -> bool:
    """Whether ``folder`` holds a ``run.json`` written by crossgrad (a regular file, not a link)."""
    try:
        handle = os.open(folder / RUN_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(handle, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return False
        try:
            record = json.loads(file.read(_RUN_FILE_LIMIT))
        except (ValueError, UnicodeDecodeError):
            return False
    if not isinstance(record, dict):
        return False
    return record.get("written_by") == MARK["written_by"] or record.keys() >= _LEGACY_KEYS


def _holds_results(folder: Path) -> bool:
    """Whether ``folder`` holds computed values: streamed or written results tables."""
    try:
        with os.scandir(folder) as entries:
            return any(
                e.name.startswith(("results.", ".results."))
                and e.is_file(follow_symlinks=False)
                and e.stat(follow_symlinks=False).st_size > 0
                for e in entries
            )
    except OSError:
        return False


def leftovers(target: Path) -> list[Path]:
    """Fresh folders beside ``target`` that runs into it left (killed before their swap)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.crossgrad-(\d+|old)-\w+")
    try:
        with os.scandir(target.parent) as entries:
            found = [
                Path(e.path)
                for e in entries
                if pattern.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []
    return sorted(found)


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.crossgrad.lock"


class _Lock:
    """``.NAME.crossgrad.lock`` beside the target, held with ``flock`` until ``release``."""

    def __init__(self, target: Path) -> None:
        import fcntl

        self.path = lock_path(target)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        while True:
            try:
                handle = os.open(self.path, flags, 0o666 & ~_UMASK)
            except OSError as exc:
                raise OutputError(
                    f"cannot create the lock file {self.path}: {_reason(exc)}"
                ) from exc
            try:
                if not stat.S_ISREG(os.fstat(handle).st_mode):
                    raise OutputError(f"{self.path} is not a regular file: remove it")
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(handle, 4096, 0).decode("utf-8", "replace").strip()
                os.close(handle)
                raise OutputError(
                    f"--out {target} is being written by another crossgrad run "
                    f"({holder or 'starting'}); one run at a time writes a report folder: wait "
                    "for that run to end, or give this one another --out"
                ) from None
            except BaseException:
                os.close(handle)
                raise
            try:  # a run that just finished may have removed the file we opened: start again
                same = os.path.samestat(os.fstat(handle), os.lstat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self.handle: int | None = handle
                return
            os.close(handle)

    def describe(self, command: str, folder: Path | None = None) -> None:
        """Who holds the lock, for a run that finds it taken (a killed run's text goes)."""
        text = (
            f"crossgrad {command}, pid {os.getpid()} on {socket.gethostname()}, "
            f"started {now()}" + (f", writing {folder}\n" if folder else "\n")
        )
        if self.handle is not None:
            os.ftruncate(self.handle, 0)
            os.pwrite(self.handle, text.encode("utf-8"), 0)

    def release(self) -> None:
        if self.handle is not None:
            self.path.unlink(missing_ok=True)  # while still held: no other run holds this file
            os.close(self.handle)
            self.handle = None


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {target.parent}: {_reason(exc)}") from exc


def _swap(fresh: Path, target: Path) -> Path | None:
    """Put ``fresh`` at ``target``; return where the previous ``target`` now is (or None)."""
    with _signals_held():
        if not os.path.lexists(target):
            os.rename(fresh, target)
            return None
        if exchange(fresh, target):
            return fresh
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.crossgrad-old-"))
        os.rename(target, old)  # onto the empty folder just made
        try:
            os.rename(fresh, target)
        except OSError:
            os.rename(old, target)
            raise
        return old


def exchange(one: Path, other: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    done = renameat2(_AT_FDCWD, os.fsencode(one), _AT_FDCWD, os.fsencode(other), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(one), None, str(other))


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait (blocked, not lost) until the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _reason(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    text = exc.strerror or str(exc)
    return f"{text}: {where}" if where else text


def now() -> str:
    """The time as run.json and the lock file record it: UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
