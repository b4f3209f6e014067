"""Determinism and quiet: every switch the harness sets on frameworks, in one place.

Environment variables are set before any framework is imported (they are read at import);
the per-framework calls run once, right after the adapter imports its framework. The
settings are recorded so reports can show what was in force.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

ENVIRONMENT: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ banner and info logs
    "TF_ENABLE_ONEDNN_OPTS": "0",  # oneDNN reorders float sums: results would vary by CPU
    "TF_DETERMINISTIC_OPS": "1",
    "KERAS_BACKEND": "tensorflow",  # tf.keras is Keras 3 on TensorFlow
    "PYTHONHASHSEED": "0",
}


def apply_environment() -> dict[str, str]:
    """Set the switches the user has not set themselves; return what is in force."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in ENVIRONMENT}


def configure_torch(torch: ModuleType) -> dict[str, Any]:
    torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return {"deterministic_algorithms": True, "allow_tf32": False}


def configure_jax(jax: ModuleType) -> dict[str, Any]:
    # float64 cases need x64; float32 arrays stay float32 because adapters cast explicitly.
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32/bf16 matmul passes
    return {"jax_enable_x64": True, "jax_default_matmul_precision": "highest"}


def configure_tensorflow(tf: ModuleType) -> dict[str, Any]:
    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return {"op_determinism": True, "tensor_float_32": False}
