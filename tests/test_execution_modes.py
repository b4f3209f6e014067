"""Execution modes: each is a backend of its own, recorded in every row, compiled once per key."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support import run_and_compare

from backends import registry
from harness.cases.inputs import make_inputs

DEFAULT_MODES = {"numpy": "eager", "torch": "eager", "jax": "jit", "tensorflow": "function"}
EXTRA_MODES = {"jax:eager": "eager", "tensorflow:eager": "eager", "torch:compile": "compile"}


def _available(name: str) -> None:
    reason = registry.load_class(name).unavailable_reason()
    if reason:
        pytest.skip(f"{name}: {reason}")


@pytest.mark.parametrize(("name", "mode"), [*DEFAULT_MODES.items(), *EXTRA_MODES.items()])
def test_each_backend_name_has_its_mode(name: str, mode: str) -> None:
    assert registry.mode_of(name) == mode
    assert registry.load_class(name).name == name


@pytest.mark.parametrize("name", list(EXTRA_MODES))
def test_extra_modes_run_only_when_named(name: str) -> None:
    assert name in registry.entries()
    assert name not in registry.available_names()


@pytest.mark.parametrize(
    "name",
    # Importing TensorFlow in this process and tracing costs most of this file: full tier
    # (the quick tier runs TensorFlow in workers, through test_reports.py).
    [
        "jax",
        "jax:eager",
        pytest.param("tensorflow", marks=pytest.mark.full),
        pytest.param("tensorflow:eager", marks=pytest.mark.full),
    ],
)
def test_mode_reproduces_the_seed_and_is_in_every_row(name: str, seed_case) -> None:
    _available(name)
    table = run_and_compare([seed_case], [name])
    rows = table[table["backend"] == name]
    assert len(rows) > 10
    assert set(rows["status"]) == {"ok"}
    assert set(rows["mode"]) == {registry.mode_of(name)}
    assert set(table.loc[table["backend"] == "numpy", "mode"]) == {"eager"}


def _value_variants(case, count: int) -> list:
    """``count`` copies of ``case`` that differ only in their initial weights."""
    rng = np.random.default_rng(0)
    return [
        dataclasses.replace(
            case,
            name=f"{case.name}-{i}",
            network=dataclasses.replace(
                case.network,
                params={k: rng.uniform(-2, 2, v.shape) for k, v in case.network.params.items()},
            ),
        )
        for i in range(count)
    ]


def test_jax_jit_compiles_a_value_matrix_once(seed_case) -> None:
    _available("jax")
    backend = registry.create("jax")
    variants = _value_variants(seed_case, 4)
    outputs = [backend.run(case, make_inputs(case)).output for case in variants]
    assert len({float(o.ravel()[0]) for o in outputs}) == 4  # the weights did reach the step
    (jitted,) = backend.jit_cache.entries.values()
    assert jitted.case.flat._cache_size() == 1


def test_jax_jit_recompiles_for_another_learning_rate(seed_case) -> None:
    _available("jax")
    backend = registry.create("jax")
    faster = dataclasses.replace(
        seed_case,
        optimizer=dataclasses.replace(
            seed_case.optimizer, args={**seed_case.optimizer.args, "lr": 0.5}
        ),
    )
    for case in (seed_case, faster):
        backend.run(case, make_inputs(case))
    assert len(backend.jit_cache.entries) == 2


@pytest.mark.full  # imports TensorFlow in this process
def test_tf_function_traces_a_value_matrix_once(seed_case) -> None:
    _available("tensorflow")
    backend = registry.create("tensorflow")
    for case in _value_variants(seed_case, 4):
        backend.run(case, make_inputs(case))
    (slot,) = backend.function_cache.slots.values()
    assert slot.whole_case.function.experimental_get_tracing_count() == 1


LOOP_BACKENDS = ["numpy", "torch", "jax", "jax:eager", "tensorflow", "tensorflow:eager"]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.full) if name.startswith("tensorflow") else name
        for name in LOOP_BACKENDS
    ],
)
def test_no_state_leaks_between_cases_of_one_adapter(name: str, seed_case) -> None:
    """Adapters reuse layers and compiled steps across cases: a momentum case run after other
    cases of its shape (one of them its own key) gives a fresh adapter's values, bit for bit."""
    _available(name)
    momentum = dataclasses.replace(
        seed_case,
        steps=3,
        optimizer=dataclasses.replace(
            seed_case.optimizer, args={**seed_case.optimizer.args, "momentum": 0.9}
        ),
    )
    (other,) = _value_variants(momentum, 1)
    inputs = make_inputs(momentum)
    fresh = registry.create(name).run(momentum, inputs).rows()["value"]
    backend = registry.create(name)
    for case in (other, seed_case, momentum, other):
        backend.run(case, make_inputs(case))
    again = backend.run(momentum, inputs).rows()["value"]
    np.testing.assert_array_equal(again, fresh)


@pytest.mark.full
def test_torch_compile_reproduces_the_seed(seed_case) -> None:
    _available("torch:compile")
    table = run_and_compare([seed_case], ["torch:compile"])
    rows = table[table["backend"] == "torch:compile"]
    assert set(rows["status"]) == {"ok"}
    assert set(rows["mode"]) == {"compile"}


@pytest.mark.full
def test_torch_compile_traces_one_graph_for_a_value_matrix(seed_case) -> None:
    """Output, hidden outputs, loss and the output after the update share one compiled
    graph (autograd always on), and other values of the same step key reuse it."""
    _available("torch:compile")
    from torch._dynamo.utils import counters

    backend = registry.create("torch:compile")
    two_steps = dataclasses.replace(seed_case, steps=2)
    before = counters["stats"]["unique_graphs"]
    for weight in (0.5, 1.5, -2.0):
        inputs = make_inputs(two_steps)
        inputs.params["layers.0.weight"][...] = weight
        backend.run(two_steps, inputs)
    assert counters["stats"]["unique_graphs"] - before == 1
