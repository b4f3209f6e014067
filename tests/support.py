"""What tests share besides fixtures: the repository's paths, the built-in backend names,
and small helpers to write a case file or run and compare cases."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"
DATA = Path(__file__).resolve().parent / "data"
BUILTIN_BACKENDS = ["numpy", "torch", "jax", "tensorflow"]


def write_case(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_and_compare(cases, backends, reference="numpy"):
    """The compared results table of ``cases`` on ``backends`` (reference run first)."""
    from harness.run.runner import run
    from harness.verdict.compare import compare

    names = list(dict.fromkeys([reference, *backends]))
    return compare(run(cases, names), cases, reference)
