"""Declared capabilities: a case outside them is skipped with the reason, never a crash."""

from __future__ import annotations

import pytest
from fake_plugins import register
from support import CASES, write_case

from backends import registry
from harness.cases.loader import load_cases
from harness.cases.model import ACTIVATIONS, DTYPES, LOSSES, OPTIMIZERS
from harness.run.runner import run

SEED_TEXT = (CASES / "seed.yaml").read_text(encoding="utf-8")

OUTSIDE = {
    "activation": (("activation: sigmoid", "activation: tanh"), "activation 'tanh'"),
    "output_activation": (
        ("output_activation: sigmoid", "output_activation: identity"),
        "activation 'identity'",
    ),
    "loss": (("loss: mse", "loss: mae"), "loss 'mae'"),
    "optimizer": (("{name: sgd, lr: 0.1}", "{name: adam, lr: 0.1}"), "optimizer 'adam'"),
    "dtype": (("dtype: float32", "dtype: float64"), "dtype 'float64'"),
}


@pytest.fixture(autouse=True)
def seed_only_adapter(monkeypatch):
    register(monkeypatch, {"seed_only": "fake_plugins:SeedOnlyBackend"})


def test_the_default_capabilities_are_the_whole_vocabulary():
    backend = registry.load_class("numpy")
    assert (backend.activations, backend.losses, backend.optimizers, backend.dtypes) == (
        ACTIVATIONS,
        tuple(LOSSES),
        tuple(OPTIMIZERS),
        DTYPES,
    )


def test_a_case_inside_the_capabilities_runs():
    raw = run(load_cases([CASES / "seed.yaml"]), ["numpy", "seed_only"])
    assert set(raw.loc[raw["backend"] == "seed_only", "status"]) == {"ok"}


@pytest.mark.parametrize("edit, named", OUTSIDE.values(), ids=OUTSIDE.keys())
def test_a_case_outside_the_capabilities_is_skipped_with_the_reason(tmp_path, edit, named):
    old, new = edit
    assert old in SEED_TEXT
    text = SEED_TEXT.replace(old, new).split("expect:")[0]  # published values are for the seed
    cases = load_cases([write_case(tmp_path, text)])
    raw = run(cases, ["numpy", "seed_only"])
    (row,) = raw[raw["backend"] == "seed_only"].itertuples()
    assert row.status == "skipped"
    assert f"seed_only does not support {named}" in row.detail
    assert set(raw.loc[raw["backend"] == "numpy", "status"]) == {"ok"}


@pytest.mark.parametrize("name", ["numpy", "jax", "tensorflow"])
def test_builtin_overrides_keep_the_declared_capabilities(monkeypatch, name):
    cls = registry.load_class(name)
    monkeypatch.setattr(cls, "dtypes", ("float32",))
    case = load_cases([CASES / "mlp-nonsquare.yaml"])[-1]
    assert case.dtype == "float64"
    adapter = cls.__new__(cls)  # without __init__: this check needs no framework import
    assert "does not support dtype 'float64'" in (adapter.unsupported_reason(case) or "")
