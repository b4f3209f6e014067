"""The environment a report was produced in: enough to tell two runs' machines apart.

Python, OS, CPU, every framework's version (from package metadata: nothing is imported
for this), thread and determinism settings, TF32 flags read back from the frameworks a
run actually imported, and the seeds of every case. The frameworks are imported in the
backends' worker processes, so each worker reads its own back (``framework_threads``,
``framework_flags``) and the run hands them to ``fingerprint``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Mapping
from typing import Any

from harness import text
from harness.cases.model import Case, InitSpec, RandomArraySpec
from harness.run import determinism

DISTRIBUTIONS = (
    "numpy",
    "pandas",
    "torch",
    "jax",
    "jaxlib",
    "optax",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "mpmath",
)
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def fingerprint(
    cases: list[Case], workers: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """A JSON-ready description of this process's machine, software and settings.

    ``workers`` holds, per backend, the ``threads`` and ``flags`` its worker read back.
    """
    threads = {name: os.environ.get(name, "") for name in THREAD_VARIABLES} | framework_threads()
    flags = determinism.apply_environment() | framework_flags()
    for reported in (workers or {}).values():
        threads |= reported.get("threads", {})
        flags |= reported.get("flags", {})
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": _versions(),
        "threads": threads,
        "determinism": flags,
        "seeds": _seeds(cases),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    found = {}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def framework_threads() -> dict[str, Any]:
    threads: dict[str, Any] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        threads["torch.get_num_threads"] = torch.get_num_threads()
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        threads["tf.intra_op_parallelism"] = tf.config.threading.get_intra_op_parallelism_threads()
        threads["tf.inter_op_parallelism"] = tf.config.threading.get_inter_op_parallelism_threads()
    return threads


def framework_flags() -> dict[str, Any]:
    """Determinism and TF32 switches as the frameworks this process imported report them."""
    flags: dict[str, Any] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        flags["torch.deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
        flags["torch.cuda.matmul.allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
        flags["torch.cudnn.allow_tf32"] = torch.backends.cudnn.allow_tf32
    jax = sys.modules.get("jax")
    if jax is not None:
        flags["jax_enable_x64"] = bool(jax.config.jax_enable_x64)
        flags["jax_default_matmul_precision"] = str(jax.config.jax_default_matmul_precision)
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        flags["tf.tensor_float_32_execution"] = (
            tf.config.experimental.tensor_float_32_execution_enabled()
        )
    return flags


def _seeds(cases: list[Case]) -> dict[str, dict[str, int]]:
    seeds: dict[str, dict[str, int]] = {}
    for case in cases:
        found = {}
        if isinstance(case.network.init, InitSpec):
            found["init"] = case.network.init.seed
        for name, source in (("x", case.x), ("y", case.y)):
            if isinstance(source, RandomArraySpec):
                found[name] = source.seed
        if found:
            seeds[case.name] = found
    return seeds


def markdown(environments: list[dict[str, Any]]) -> list[str]:
    """The environment section of summary.md: one column per run that fed the report."""
    if not environments:
        return []
    keys = ["python", "os", "cpu", "cpu_count"]
    rows = [(key, [str(env.get(key, "")) for env in environments]) for key in keys]
    for group in ("versions", "threads", "determinism"):
        names = list(dict.fromkeys(k for env in environments for k in env.get(group, {})))
        rows += [
            (name, [str(env.get(group, {}).get(name, "")) for env in environments])
            for name in names
        ]
    header = "| setting | " + " | ".join(f"run {i + 1}" for i in range(len(environments))) + " |"
    lines = ["## Environment", "", header, "|---" * (len(environments) + 1) + "|"]
    lines += [
        "| " + " | ".join(map(text.markdown, [key, *values])) + " |"
        for key, values in rows
        if any(values)
    ]
    seeds = {case: s for env in environments for case, s in env.get("seeds", {}).items()}
    if seeds:
        lines += [
            "",
            "Seeds: " + "; ".join(text.markdown(f"{case}: {s}") for case, s in seeds.items()),
        ]
    return [*lines, ""]
