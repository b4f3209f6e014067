"""Vectorized sweeps: batches by step key, the same rows and verdicts as the per-case loop."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
from fake_plugins import register
from support import CASES

from backends import registry
from harness.cases.inputs import make_inputs
from harness.cases.loader import load_cases
from harness.cases.model import Case
from harness.report.summaries import summarize
from harness.run import runner, vectorize
from harness.run.batch_trace import BatchInputs, BatchTrace
from harness.run.pipeline import judge
from harness.run.trace import Trace
from harness.verdict.known import known_option

# Full tier: every batched backend against its per-case loop on the case library.
pytestmark = pytest.mark.full

BATCHED = [name for name in registry.entries() if registry.vectorized(name)]
# TensorFlow traces a tf.function per step key, the slowest part of this file: full tier.
BATCHED_PARAMS = [
    pytest.param(name, marks=pytest.mark.full) if name == "tensorflow" else name for name in BATCHED
]
VARIANTS = 2


def init_variants(case: Case, count: int) -> list[Case]:
    """``count`` copies of ``case`` with other initial-weight seeds: values differ, nothing else."""
    assert case.network.init is not None
    return [
        dataclasses.replace(
            case,
            name=f"{case.name}#{seed}",
            network=dataclasses.replace(
                case.network, init=dataclasses.replace(case.network.init, seed=seed)
            ),
        )
        for seed in range(count)
    ]


@pytest.fixture(scope="module")
def sample() -> list[Case]:
    """Every loss (float64) and every optimizer (float32) of the library, in a few value variants."""
    library = load_cases([CASES / "losses.yaml", CASES / "optimizers.yaml"])
    losses = [case for case in library if case.name.startswith("loss") and case.dtype == "float64"]
    optimizers: dict[str, Case] = {}
    for case in library:
        if case.name.startswith("optim") and case.dtype == "float32":
            optimizers.setdefault(case.optimizer.name, case)
    chosen = [*losses, *optimizers.values()]
    return [variant for case in chosen for variant in init_variants(case, VARIANTS)]


@pytest.fixture(scope="module")
def both_ways(
    sample: list[Case], request: pytest.FixtureRequest
) -> tuple[pd.DataFrame, pd.DataFrame]:
    full = request.config.getoption("--full")
    wanted = [name for name in BATCHED if full or name != "tensorflow"]
    backends = [name for name in wanted if registry.load_class(name).unavailable_reason() is None]
    # Verdicts as a run gives them, known entries applied: TensorFlow's float32 Adagrad
    # (eps inside the square root, a known entry) sits at 1.0x its tolerance after one step,
    # and its batched kernels land 1 ulp on the other side of it than the per-case ones.
    known = known_option([])
    looped, _, _ = judge(runner.run(sample, backends), sample, known, "numpy")
    swept, _, _ = judge(vectorize.run(sample, backends), sample, known, "numpy")
    return looped, swept


def test_the_backends_that_batch_are_the_usual_modes_of_the_builtins() -> None:
    # Declared on each adapter class (Backend.vectorized); the opt-in modes and plugins loop.
    assert BATCHED == ["numpy", "torch", "jax", "tensorflow"]
    for name in ("jax:eager", "tensorflow:eager", "torch:compile"):
        assert registry.vectorized(name) == ""


def test_a_plugin_declares_its_own_vectorized_implementation(monkeypatch, sample) -> None:
    """Declared on the adapter class and never inherited: a subclass computes its own maths."""
    register(
        monkeypatch,
        {"echo": "fake_plugins:EchoPluginBackend", "batched": "fake_plugins:BatchedPluginBackend"},
    )
    assert registry.vectorized("echo") == ""  # a NumpyBackend subclass that declares none
    assert registry.vectorized("batched") == registry.vectorized("numpy")
    batched: list[str] = []
    find_runner = vectorize._batch_runner

    def counting_runner(name: str) -> vectorize.BatchRunner | None:
        runner = find_runner(name)
        if runner is None:
            return None

        def counted(adapter, case: Case, inputs: BatchInputs) -> BatchTrace:
            batched.append(name)
            return runner(adapter, case, inputs)

        return counted

    monkeypatch.setattr(vectorize, "_batch_runner", counting_runner)
    raw = vectorize.run(sample[:VARIANTS], ["numpy", "batched", "echo"])
    assert batched == ["numpy", "batched"]
    assert set(raw["status"]) == {"ok"}
    assert set(raw["backend"]) == {"numpy", "batched", "echo"}


def test_a_batched_plugin_records_its_settings_where_its_batches_ran(monkeypatch, sample) -> None:
    """A batch runs in the run's process: the adapter's settings are read there, once built."""
    register(monkeypatch, {"batched_settings": "fake_plugins:BatchedSettingsPluginBackend"})
    raw = vectorize.run(sample[:VARIANTS], ["numpy", "batched_settings"])
    settings = raw.attrs["determinism"]
    assert set(settings) == {"numpy", "batched_settings"}
    adapter = settings["batched_settings"]["adapter"]
    assert adapter["pid"] == os.getpid() and adapter["deterministic"] is True
    assert settings["numpy"]["adapter"] == {}


def test_value_variants_share_a_group_and_knobs_split_them(sample: list[Case]) -> None:
    inputs = {case.name: make_inputs(case) for case in sample}
    groups = vectorize.groups(sample, inputs)
    assert len(groups) == len(sample) // VARIANTS
    assert all(len(group) == VARIANTS for group in groups)


@pytest.mark.parametrize("backend", BATCHED_PARAMS)
def test_vectorized_verdicts_are_the_loops(backend: str, both_ways) -> None:
    looped, swept = both_ways
    if backend not in set(looped["backend"]):
        pytest.skip(f"{backend} is not installed")
    verdict = {(s.case, s.backend): s.status for s in summarize(looped) if s.backend == backend}
    swept_verdict = {
        (s.case, s.backend): s.status for s in summarize(swept) if s.backend == backend
    }
    assert swept_verdict.keys() == verdict.keys()
    # A value 1 ulp from its tolerance may be ok one way and known (explained by its entry)
    # the other: both pass, for the same reason. Any other difference is a wrong verdict.
    flips = {k: (verdict[k], swept_verdict[k]) for k in verdict if swept_verdict[k] != verdict[k]}
    assert all(set(pair) == {"ok", "known"} for pair in flips.values()), flips
    assert "ok" in verdict.values()


@pytest.mark.parametrize("backend", BATCHED_PARAMS)
def test_vectorized_values_match_the_loops_within_tolerance(backend: str, both_ways) -> None:
    looped, swept = both_ways
    keys = ["case", "backend", "step", "quantity", "param", "index"]
    merged = looped.merge(swept, on=keys, suffixes=("_loop", "_sweep"))
    rows = merged[(merged["backend"] == backend) & (merged["status_loop"] != "skipped")]
    if rows.empty:
        pytest.skip(f"{backend} is not installed")
    assert len(rows) == ((looped["backend"] == backend) & (looped["status"] != "skipped")).sum()
    gap = np.abs(rows["value_loop"] - rows["value_sweep"]).to_numpy()
    assert np.all(np.isnan(gap) | (gap <= rows["tol_loop"].to_numpy()))


def test_batch_rows_lay_out_each_variant_as_a_trace_does() -> None:
    rng = np.random.default_rng(0)
    batch = BatchTrace(
        output=rng.normal(size=(2, 3, 1)),
        losses=[rng.normal(size=2)],
        grads=[{"w": rng.normal(size=(2, 1, 2)), "b": rng.normal(size=(2, 1))}],
        params=[{"w": rng.normal(size=(2, 1, 2)), "b": rng.normal(size=(2, 1))}],
        output_after=rng.normal(size=(2, 3, 1)),
        activations=[[rng.normal(size=(2, 3, 2))]],
    )
    rows = batch.rows()
    for variant in range(2):
        single = Trace(
            output=batch.output[variant],
            losses=[batch.losses[0][variant]],
            grads=[{k: v[variant] for k, v in batch.grads[0].items()}],
            params=[{k: v[variant] for k, v in batch.params[0].items()}],
            output_after=batch.output_after[variant],  # type: ignore[index]
            activations=[[batch.activations[0][0][variant]]],
        ).rows()
        mine = rows["variant"] == variant
        for column, values in single.items():
            np.testing.assert_array_equal(rows[column][mine], values, err_msg=column)


@pytest.mark.parametrize("backend", BATCHED_PARAMS)
def test_a_batch_leaves_its_inputs_alone(backend: str, sample: list[Case]) -> None:
    """Every backend reads the same stacked inputs: an in-place update would corrupt the next."""
    reason = registry.load_class(backend).unavailable_reason()
    if reason:
        pytest.skip(reason)
    cases = [case for case in sample if case.dtype == "float64"][:VARIANTS]
    inputs = BatchInputs.stack([make_inputs(case) for case in cases])
    before = {name: value.copy() for name, value in inputs.params.items()}
    runner = vectorize._batch_runner(backend)
    assert runner is not None
    runner(registry.create(backend), cases[0], inputs)
    for name, value in before.items():
        np.testing.assert_array_equal(inputs.params[name], value, err_msg=name)


def test_a_batch_that_raises_falls_back_to_the_loop(monkeypatch, sample: list[Case]) -> None:
    def broken(adapter, case, inputs: BatchInputs) -> BatchTrace:
        raise RuntimeError("simulated batched failure")

    monkeypatch.setattr(vectorize, "_batch_runner", lambda name: broken)
    cases = sample[:VARIANTS]
    raw = vectorize.run(cases, ["numpy"])
    assert set(raw["status"]) == {"ok"}
    assert list(dict.fromkeys(raw["case"])) == [case.name for case in cases]
