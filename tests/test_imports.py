"""Importing the harness, loading every case and listing backends imports no framework."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT

FRAMEWORKS = ["torch", "jax", "jaxlib", "optax", "tensorflow", "keras"]

PROBE = """
import json, sys
import harness, harness.cli, harness.run.runner, harness.verdict.compare, harness.report.writer
from backends import registry
from harness.cases.loader import load_cases
load_cases(["cases"])
registry.available_names()
for name in registry.entries():
    registry.load_class(name).version()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
"""


def test_harness_imports_no_framework():
    result = subprocess.run(
        [sys.executable, "-c", PROBE % (FRAMEWORKS,)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_backends_command_lists_every_builtin_without_importing_them():
    result = subprocess.run(
        [sys.executable, "-m", "harness", "backends"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name in ("numpy", "torch", "jax", "tensorflow"):
        assert any(line.startswith(name + " ") for line in result.stdout.splitlines()), (
            result.stdout
        )


def test_what_a_worker_imports_before_its_framework_leaves_out_pandas_and_reports():
    """A spawned worker re-imports the command-line module that started the run (the console
    script imports harness.cli) and then the worker module; pandas and the report code
    there would cost every worker most of a second of CPU while the frameworks load."""
    probe = (
        "import json, sys, harness.cli, harness.run.workers; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'pyarrow', 'plotly', 'mpmath') or m.startswith('harness.report.') or m == 'harness.verdict.compare')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
