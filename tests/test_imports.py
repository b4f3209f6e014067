"""Importing the harness, loading every case and listing backends imports no framework."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

FRAMEWORKS = ["torch", "jax", "jaxlib", "optax", "tensorflow", "keras"]

PROBE = """
import json, sys
import harness, harness.cli, harness.runner, harness.compare, harness.report
from harness import registry
from harness.loader import load_cases
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
