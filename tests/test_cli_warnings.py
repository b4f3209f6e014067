"""How the command line prints a warning: crossgrad's own as ``crossgrad: warning: ...``,
any other library's with where it came from, never passed off as crossgrad's."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from fake_plugins import FakeDistribution, FakeEntryPoint, add_entry_points
from support import CASES, ROOT

from backends import registry
from harness.cli import main
from harness.errors import BackendUnavailable

SUMMARIES = ROOT / "harness" / "report" / "summaries.py"


@pytest.fixture
def printed(monkeypatch, capsys):
    """What the command line's warning format prints, for the warnings raised in the test."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # undone after
    assert main(["validate", str(CASES / "seed.yaml")]) == 0  # installs crossgrad's format
    capsys.readouterr()
    lines: list[str] = []

    def show(message, category, filename, lineno, file=None, line=None):
        # As warnings.showwarning does, but into a list: pytest records warnings otherwise.
        lines.append(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show  # restored by catch_warnings
        yield lines


def _run_as(module: str, path: Path | str, source: str) -> None:
    """Run ``source`` as code of module ``module`` in file ``path``: a library's code."""
    exec(compile(source, str(path), "exec"), {"__name__": module, "warnings": warnings})


def test_crossgrads_own_warning_reads_crossgrad_warning(monkeypatch, printed):
    broken = FakeEntryPoint("broken", "broken_plugin:Nothing", FakeDistribution("crossgrad-tests"))
    add_entry_points(monkeypatch, broken)
    with pytest.raises(BackendUnavailable):
        registry.load_class("broken")  # warns from backends/registry.py
    (line,) = printed
    assert line.startswith("crossgrad: warning: adapter 'broken' (plugin crossgrad-tests) failed")


def test_a_librarys_warning_names_the_library_not_crossgrad(printed):
    _run_as(
        "torch.storage",
        "/site-packages/torch/storage.py",
        'warnings.warn("TypedStorage is deprecated")',
    )
    assert printed == ["warning (UserWarning from torch): TypedStorage is deprecated\n"]


def test_a_librarys_warning_pointing_at_crossgrad_code_still_names_the_library(printed):
    # pandas and torch set stacklevel so that the warning names the caller's line, here a
    # line of crossgrad's: the module that raised it is still pandas.
    _run_as(
        "pandas.core.series",
        "/site-packages/pandas/core/series.py",
        "warnings.warn_explicit("
        f'"Series.__getitem__ treating keys as positions is deprecated", FutureWarning, {str(SUMMARIES)!r}, 60)',
    )
    assert printed == [
        "warning (FutureWarning from pandas): "
        "Series.__getitem__ treating keys as positions is deprecated\n"
    ]


def test_a_c_level_warning_while_crossgrad_code_runs_is_not_crossgrads_own(printed):
    # NumPy warns from C: the Python frame running is crossgrad's, the warning is NumPy's.
    _run_as(
        "harness.report.summaries",
        SUMMARIES,
        'warnings.warn("overflow encountered in multiply", RuntimeWarning)',
    )
    (line,) = printed
    assert line.startswith(f"warning (RuntimeWarning from {SUMMARIES}:1): overflow encountered")
    assert "crossgrad: warning" not in line
