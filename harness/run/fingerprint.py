"""The environment a report was produced in: enough to tell two runs' machines apart.

Python, OS, CPU, the versions of crossgrad, of the libraries its comparison uses and of
every adapter that ran (from package metadata: nothing is imported for this), the thread
and determinism environment, what each backend's process has in force, and the seeds of
every case. The frameworks are imported in the backends' worker processes, so each worker
reads its own settings back (``backend_settings``: what the harness set, what the
frameworks report, what the adapter reports of itself), and the run hands them to
``fingerprint``, as run.json records them.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from backends import registry
from harness import text
from harness.cases.model import Case, InitSpec, RandomArraySpec
from harness.errors import BackendUnavailable, UnknownBackend
from harness.run import determinism

if TYPE_CHECKING:
    from backends.base import Backend

# The distributions crossgrad's own comparison runs on (tables, the 50-digit oracle,
# bfloat16), recorded whatever backends ran; ml_dtypes only where it is installed.
COMPARISON_DISTRIBUTIONS = ("numpy", "pandas", "pyarrow", "mpmath", "ml_dtypes")
OPTIONAL_DISTRIBUTIONS = ("ml_dtypes",)
NOT_INSTALLED = "not installed"
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
# What a backend's record holds that summary.md shows: read back in its process, and the
# adapter's own report. The rest (what each configure_* call asked for) stays in the JSON.
READ_BACK = ("threads", "flags", "adapter")


def fingerprint(
    cases: list[Case],
    workers: Mapping[str, Mapping[str, Any]] | None = None,
    backends: Sequence[str] = (),
) -> dict[str, Any]:
    """A JSON-ready description of this run's machine, software and settings.

    ``backends`` are the backends that ran, in run order; ``workers`` holds, per backend,
    what its process read back (``backend_settings``), as run.json records it.
    """
    reported = workers or {}
    ran = list(dict.fromkeys([*backends, *reported]))
    environment = determinism.apply_environment()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": versions(ran),
        # Each variable once: the thread counts here, the other switches under determinism.
        "threads": {name: os.environ.get(name, "") for name in THREAD_VARIABLES},
        "determinism": {k: v for k, v in environment.items() if k not in THREAD_VARIABLES},
        "backends": {name: dict(reported[name]) for name in ran if name in reported},
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


def versions(backends: Iterable[str] = ()) -> dict[str, str]:
    """Distribution -> version: crossgrad, the libraries its comparison uses, then each
    backend's (``backend_distributions``), each once; ``not installed`` where a backend
    names a distribution that is not (ml_dtypes, optional, is then left out)."""
    wanted = [registry.DISTRIBUTION, *COMPARISON_DISTRIBUTIONS]
    wanted += [dist for name in backends for dist in backend_distributions(name)]
    found: dict[str, str] = {}
    seen: set[str] = set()
    for dist in wanted:
        key = _canonical(dist)
        if key in seen:
            continue
        seen.add(key)
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if dist not in OPTIONAL_DISTRIBUTIONS:
                found[dist] = NOT_INSTALLED
    return found


def backend_distributions(name: str) -> list[str]:
    """The distributions behind backend ``name``: its class's ``distribution`` (the
    framework), those that provide the modules it ``requires``, and a plugin's own."""
    entry = registry.entries().get(name)
    found = []
    try:
        cls = registry.load_class(name)
    except (BackendUnavailable, UnknownBackend):
        cls = None
    if cls is not None:
        # A framework installed under another name (the full "tensorflow" for
        # "tensorflow-cpu") is found through ``requires``; ``version()`` knows it.
        if cls.distribution and (_installed(cls.distribution) or cls.version() in ("", "unknown")):
            found.append(cls.distribution)
        provided = _module_distributions()
        found += [dist for module in cls.requires for dist in provided.get(module, [])]
    if entry is not None and entry.distribution and entry.source != registry.BUILT_IN:
        found.append(entry.distribution)
    return found


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@functools.cache
def _module_distributions() -> Mapping[str, list[str]]:
    """Top-level module -> the distributions that provide it; read once (it scans every
    installed distribution's file list)."""
    return importlib.metadata.packages_distributions()


def _canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def backend_settings(adapter: Backend) -> dict[str, Any]:
    """What one backend's process has in force, as run.json and environment.json record it:
    what the harness's configure_* calls set (by framework), the thread counts and flags
    the frameworks it imported report back, and the adapter's own
    ``determinism_settings()`` (``adapter``). Called where the adapter was just built."""
    return determinism.framework_settings() | {
        "threads": framework_threads(),
        "flags": framework_flags(),
        "adapter": _adapter_settings(adapter),
    }


def _adapter_settings(adapter: Backend) -> dict[str, Any]:
    """``adapter.determinism_settings()`` as plain JSON values; a failure is recorded, not
    raised: a report of settings must not stop the backend from running."""
    try:
        settings = adapter.determinism_settings()
    except Exception as exc:
        return {"error": f"determinism_settings() raised {type(exc).__name__}: {exc}"}
    if not isinstance(settings, Mapping):
        return {"error": f"determinism_settings() returned {type(settings).__name__}, not a dict"}
    return {str(key): _plain(value) for key, value in settings.items()}


def _plain(value: object) -> object:
    """``value`` as JSON holds it: containers rebuilt, anything unusual as its ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)


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
    """The environment section of summary.md: one column per run that fed the report.

    Each setting once (an older environment.json named the thread variables under both
    ``threads`` and ``determinism``), then each backend's settings as its own process
    read them back, labelled ``backend: setting``: the run's own process imports no
    framework, so its values would say nothing about the backends'.
    """
    if not environments:
        return []
    keys = ["python", "os", "cpu", "cpu_count"]
    rows = [(key, [str(env.get(key, "")) for env in environments]) for key in keys]
    shown = set(keys)
    for group in ("versions", "threads", "determinism"):
        names = list(dict.fromkeys(k for env in environments for k in env.get(group, {})))
        for name in names:
            if name not in shown:
                shown.add(name)
                rows.append((name, [str(env.get(group, {}).get(name, "")) for env in environments]))
    records = [_mapping(env.get("backends")) for env in environments]
    backends = list(dict.fromkeys(b for found in records for b in found))
    for backend in backends:
        settings = [_read_back(_mapping(found.get(backend))) for found in records]
        names = list(dict.fromkeys(name for found in settings for name in found))
        rows += [
            (f"{backend}: {name}", [str(found.get(name, "")) for found in settings])
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


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` where it is a mapping, else none: an environment.json from elsewhere."""
    return value if isinstance(value, Mapping) else {}


def _read_back(record: Mapping[str, Any]) -> dict[str, Any]:
    """One backend's read-back settings, flat: ``name -> value`` (nested names dotted)."""
    flat: dict[str, Any] = {}
    for part in READ_BACK:
        flat |= _flatten(_mapping(record.get(part)))
    return flat


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= _flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat
