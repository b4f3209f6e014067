"""Determinism and quiet: every switch the harness sets on frameworks, in one place.

Environment variables are set before any framework is imported (they are read at import);
the per-framework calls run once, right after the adapter imports its framework. Every
setting is recorded (``framework_settings``) and written to the report's ``run.json``.

Each worker computes with one thread by default (``CROSSGRAD_THREADS`` changes it): a
sum split across threads is added in an order that depends on the core count, and the
backends already run in parallel, one process each.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

THREADS_VARIABLE = "CROSSGRAD_THREADS"
_THREADS = os.environ.get(THREADS_VARIABLE, "1")

ENVIRONMENT: dict[str, str] = {
    "OMP_NUM_THREADS": _THREADS,
    "MKL_NUM_THREADS": _THREADS,
    "OPENBLAS_NUM_THREADS": _THREADS,
    # XLA's CPU client reads its thread count at import; one Eigen thread per op.
    "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'false' if _THREADS == '1' else 'true'} "
    f"intra_op_parallelism_threads={_THREADS}",
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ banner and info logs
    "TF_ENABLE_ONEDNN_OPTS": "0",  # oneDNN reorders float sums: results would vary by CPU
    "TF_DETERMINISTIC_OPS": "1",
    "KERAS_BACKEND": "tensorflow",  # tf.keras is Keras 3 on TensorFlow
    "PYTHONHASHSEED": "0",
}


# What each configure_* call set, by framework, for the report.
_APPLIED: dict[str, dict[str, Any]] = {}


def apply_environment() -> dict[str, str]:
    """Set the switches the user has not set themselves; return what is in force."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in ENVIRONMENT}


def threads() -> int:
    return max(1, int(os.environ.get(THREADS_VARIABLE, "1") or "1"))


def framework_settings() -> dict[str, Any]:
    """What the configure_* calls of this process set, by framework."""
    return {name: dict(settings) for name, settings in _APPLIED.items()}


def configure_torch(torch: ModuleType) -> dict[str, Any]:
    torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(threads())
    settings = {"deterministic_algorithms": True, "allow_tf32": False, "threads": threads()}
    _APPLIED["torch"] = settings
    return settings


def configure_jax(jax: ModuleType) -> dict[str, Any]:
    # float64 cases need x64; float32 arrays stay float32 because adapters cast explicitly.
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32/bf16 matmul passes
    settings = {"jax_enable_x64": True, "jax_default_matmul_precision": "highest"}
    _APPLIED["jax"] = settings
    return settings


def configure_tensorflow(tf: ModuleType) -> dict[str, Any]:
    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    # Thread pools can be sized only before TensorFlow runs its first op.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads())
        tf.config.threading.set_inter_op_parallelism_threads(threads())
    except RuntimeError:
        pass
    settings = {
        "op_determinism": True,
        "tensor_float_32": False,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }
    _APPLIED["tensorflow"] = settings
    return settings
