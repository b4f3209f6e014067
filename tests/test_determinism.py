"""Same cases, versions and seeds: bit-identical values on a rerun in fresh worker processes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from support import BUILTIN_BACKENDS, CASES

from harness.cli import main
from harness.run import workers
from harness.run.session import RUN_FILE

# Full tier: reruns the library in fresh processes to compare bits.
pytestmark = pytest.mark.full

SUITE = [str(CASES / "seed.yaml"), str(CASES / "mlp-nonsquare.yaml")]
# float32 and float64, one and three steps, with momentum: enough to show any drift,
# few enough that JAX compiles for seconds, not a minute.
PICK = ["-k", "seed-1-1-1", "-k", "mlp-3-4-2-f64", "-k", "mlp-3-4-2*tanh*0.9*"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The suite run twice, each time in newly started workers, with different --jobs."""
    reports = []
    for jobs in ("4", "2"):
        out = tmp_path_factory.mktemp(f"jobs{jobs}")
        workers.stop_idle()  # a rerun, not the same warm processes answering twice
        args = ["run", *SUITE, *PICK, "-b", ",".join(BUILTIN_BACKENDS), "-j", jobs, "-o", str(out)]
        assert main(args) == 0
        reports.append(out)
    workers.stop_idle()
    return reports


def test_a_rerun_gives_bit_identical_values(two_runs):
    first, second = (pd.read_parquet(out / "results.parquet") for out in two_runs)
    assert len(first) > 0
    assert first.drop(columns="value").equals(second.drop(columns="value"))
    # Compare the bits: == would call -0.0 and 0.0 equal, and NaN unequal to itself.
    assert np.array_equal(
        first["value"].to_numpy().view(np.int64), second["value"].to_numpy().view(np.int64)
    )
    assert set(first["backend"]) == set(BUILTIN_BACKENDS)
    assert first["case"].nunique() == 3


def test_the_determinism_settings_are_recorded_and_the_same(two_runs):
    first, second = (json.loads((out / RUN_FILE).read_text())["determinism"] for out in two_runs)
    assert first == second
    environment = first["environment"]
    assert environment["TF_DETERMINISTIC_OPS"] == "1"
    assert environment["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert environment["OMP_NUM_THREADS"] == "1"
    frameworks = first["backends"]
    assert frameworks["torch"]["torch"] == {
        "deterministic_algorithms": True,
        "allow_tf32": False,
        "threads": 1,
    }
    assert frameworks["jax"]["jax"]["jax_default_matmul_precision"] == "highest"
    assert frameworks["tensorflow"]["tensorflow"]["op_determinism"] is True
    assert frameworks["tensorflow"]["tensorflow"]["intra_op_threads"] == 1
