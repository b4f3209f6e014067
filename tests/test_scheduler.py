"""Which backends start first, and how many run at once by default."""

from __future__ import annotations

import os

import pytest

from backends import registry
from harness.run.scheduler import default_jobs, start_order


def test_the_reference_starts_first_then_the_slowest_starting_backends():
    names = ["numpy", "torch", "jax", "tensorflow"]
    startup = {name: registry.load_class(name).startup_seconds for name in names}
    assert startup["tensorflow"] > startup["torch"] > startup["numpy"]  # what the order relies on
    order = start_order(["numpy", "torch", "jax", "tensorflow"])
    assert order[0] == "numpy"  # every comparison (and --fail-fast) waits for the reference
    rest = order[1:]
    assert sorted(rest) == ["jax", "tensorflow", "torch"]
    assert [startup[name] for name in rest] == sorted((startup[n] for n in rest), reverse=True)
    assert start_order(["torch", "numpy", "tensorflow"]) == ["torch", "tensorflow", "numpy"]


def test_an_unknown_backend_does_not_stop_the_ordering():
    assert start_order(["numpy", "no-such-backend", "tensorflow"]) == [
        "numpy",
        "tensorflow",
        "no-such-backend",
    ]


@pytest.mark.parametrize("backends", [1, 2, 4, 64])
def test_by_default_no_more_workers_than_cores_or_backends(backends):
    cores = len(os.sched_getaffinity(0))
    assert default_jobs(backends) == max(1, min(backends, cores))
