"""Which adapters exist: the built-ins by "module:Class" string, plus entry-point plugins.

Nothing here imports a framework: adapter modules import theirs only when a backend is
built. A plugin whose entry point fails to load is a warning, never a crash (as xarray's
backend plugins); two different adapters claiming one name are an error naming both.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import BackendUnavailable, CrossgradError, UnknownBackend

if TYPE_CHECKING:
    from backends.base import Backend

ENTRY_POINT_GROUP = "crossgrad.backends"

BUILTINS: dict[str, str] = {
    "numpy": "backends.numpy.eager:NumpyBackend",
    "torch": "backends.torch.eager:TorchBackend",
    "jax": "backends.jax.compiled:JaxJitBackend",
    "tensorflow": "backends.tensorflow.compiled:TensorflowFunctionBackend",
}

# Other execution modes of the built-ins, run only when named ("--backend jax:eager"): the
# default run compares each framework's usual mode with the reference.
MODES: dict[str, str] = {
    "jax:eager": "backends.jax.eager:JaxEagerBackend",
    "tensorflow:eager": "backends.tensorflow.eager:TensorflowEagerBackend",
    "torch:compile": "backends.torch.compiled:TorchCompileBackend",
}


@dataclass(frozen=True)
class AdapterEntry:
    name: str
    target: str  # "module:Class"
    source: str  # "built-in" or "plugin <distribution>"


def entries() -> dict[str, AdapterEntry]:
    """Every known adapter by name: built-ins first, then plugins in name order."""
    builtins = {**BUILTINS, **MODES}
    found = {name: AdapterEntry(name, target, "built-in") for name, target in builtins.items()}
    for entry in _plugin_entries():
        known = found.get(entry.name)
        if known is None:
            found[entry.name] = entry
        elif known.target != entry.target:
            raise CrossgradError(
                f"two adapters are named {entry.name!r}: {known.target} ({known.source}) and "
                f"{entry.target} ({entry.source}); uninstall one or rename its entry point"
            )
    return found


# Reading every installed distribution's metadata costs tens of milliseconds and a run asks
# many times; keyed by the lookup function so a test that replaces it sees its own plugins.
_SCANNED: dict[object, list[AdapterEntry]] = {}


def _plugin_entries() -> list[AdapterEntry]:
    """The installed ``crossgrad.backends`` entry points by name, read once per process."""
    lookup = importlib.metadata.entry_points
    if lookup not in _SCANNED:
        points = sorted(lookup(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        _SCANNED.clear()
        _SCANNED[lookup] = [
            AdapterEntry(
                ep.name,
                ep.value,
                f"plugin {ep.dist.name if ep.dist is not None else 'unknown distribution'}",
            )
            for ep in points
        ]
    return _SCANNED[lookup]


def load_class(name: str) -> type[Backend]:
    """The adapter class for ``name``; raises ``UnknownBackend`` or ``BackendUnavailable``."""
    known = entries()
    if name not in known:
        raise UnknownBackend(name, list(known))
    entry = known[name]
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls: type[Backend] = getattr(module, class_name)
    except Exception as exc:  # a broken plugin must not take the run down
        if entry.source != "built-in":
            warnings.warn(f"adapter {name!r} ({entry.source}) failed to load: {exc}", stacklevel=2)
        raise BackendUnavailable(name, f"{entry.target} failed to load: {exc}") from exc
    return cls


def create(name: str) -> Backend:
    """An adapter instance ready to run; raises ``BackendUnavailable`` if its framework is missing."""
    cls = load_class(name)
    reason = cls.unavailable_reason()
    if reason:
        raise BackendUnavailable(name, reason)
    return cls()


@functools.cache
def mode_of(name: str) -> str:
    """The execution mode of adapter ``name`` (its class's ``mode``), without importing a framework."""
    try:
        return str(getattr(load_class(name), "mode", ""))
    except (BackendUnavailable, UnknownBackend):
        return ""


def available_names() -> list[str]:
    """Names of the adapters that can run here, built-ins first; extra modes only when named."""
    names = []
    for name in entries():
        if name in MODES:
            continue
        try:
            cls = load_class(name)
        except BackendUnavailable:
            continue
        if cls.unavailable_reason() is None:
            names.append(name)
    return names
