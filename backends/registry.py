"""Which adapters exist: the ``crossgrad.backends`` entry points, built-ins and plugins alike.

crossgrad registers its own adapters in that group too (pyproject.toml), so an adapter is
built-in when its entry point belongs to the ``crossgrad`` distribution, a plugin otherwise.
What an adapter is, beyond its name, its class says: its mode, whether it runs only when
named (``opt_in``), where a built-in is listed (``rank``), its vectorized implementation.

Nothing here imports a framework: adapter modules import theirs only when a backend is
built. A plugin whose entry point fails to load is a warning, never a crash (as xarray's
backend plugins); two different adapters claiming one name are an error naming both.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import BackendUnavailable, CrossgradError, UnknownBackend

if TYPE_CHECKING:
    from backends.base import Backend

ENTRY_POINT_GROUP = "crossgrad.backends"
# The distribution whose entry points are the built-in adapters.
DISTRIBUTION = "crossgrad"
BUILT_IN = "built-in"


@dataclass(frozen=True)
class AdapterEntry:
    name: str
    target: str  # "module:Class"
    source: str  # "built-in" or "plugin <distribution>"
    # The distribution that registered it ("crossgrad" for a built-in; "" when unknown).
    distribution: str = field(default="", compare=False)


def entries() -> dict[str, AdapterEntry]:
    """Every known adapter by name, in listing order: the built-ins' usual modes by rank (the
    reference first), the built-ins' opt-in modes by name, then plugins by name."""
    found: dict[str, AdapterEntry] = {}
    for entry in _scanned():
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


def _scanned() -> list[AdapterEntry]:
    """The installed ``crossgrad.backends`` entry points in listing order, read once per process."""
    lookup = importlib.metadata.entry_points
    if lookup not in _SCANNED:
        points = list(lookup(group=ENTRY_POINT_GROUP))
        found = [
            AdapterEntry(
                ep.name,
                ep.value,
                _source(ep.dist.name if ep.dist else None),
                ep.dist.name if ep.dist else "",
            )
            for ep in points
        ]
        builtins = sorted((e for e in found if e.source == BUILT_IN), key=_builtin_order)
        plugins = sorted((e for e in found if e.source != BUILT_IN), key=lambda e: e.name)
        if not builtins:
            raise CrossgradError(
                f"no built-in adapter is registered: the {DISTRIBUTION!r} distribution's "
                f"{ENTRY_POINT_GROUP!r} entry points are missing; install crossgrad "
                "(pip install -e . in a source checkout)"
            )
        _SCANNED.clear()
        _SCANNED[lookup] = [*builtins, *plugins]
    return _SCANNED[lookup]


def _source(distribution: str | None) -> str:
    if distribution is None:
        return "plugin unknown distribution"
    if re.sub(r"[-_.]+", "-", distribution).lower() == DISTRIBUTION:
        return BUILT_IN
    return f"plugin {distribution}"


def _builtin_order(entry: AdapterEntry) -> tuple[bool, float, str]:
    """Usual modes by their class's ``rank``, then opt-in modes, by name.

    A built-in's class is imported for it (no framework: adapters import theirs when built);
    one that fails to import is listed last, and ``load_class`` reports why.
    """
    try:
        cls = _import(entry.target)
    except Exception:
        return True, math.inf, entry.name
    if cls.opt_in:
        return True, 0, entry.name
    return False, cls.rank, entry.name


def _import(target: str) -> type[Backend]:
    module_name, _, class_name = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load_class(name: str) -> type[Backend]:
    """The adapter class for ``name``; raises ``UnknownBackend`` or ``BackendUnavailable``."""
    known = entries()
    if name not in known:
        raise UnknownBackend(name, list(known))
    entry = known[name]
    try:
        return _import(entry.target)
    except Exception as exc:  # a broken plugin must not take the run down
        if entry.source != BUILT_IN:
            warnings.warn(f"adapter {name!r} ({entry.source}) failed to load: {exc}", stacklevel=2)
        raise BackendUnavailable(name, f"{entry.target} failed to load: {exc}") from exc


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


def known_file(name: str) -> Path | None:
    """The known-divergences file adapter ``name``'s package ships (``Backend.known_divergences``,
    relative to the adapter's module), or None. Imports no framework."""
    try:
        cls = load_class(name)
    except (BackendUnavailable, UnknownBackend):
        return None
    relative = getattr(cls, "known_divergences", "")
    if not relative:
        return None
    module = sys.modules[cls.__module__]
    return Path(module.__file__ or ".").resolve().parent / relative


def vectorized(name: str) -> str:
    """The "module:function" of adapter ``name``'s vectorized implementation, or "" for none
    (an unknown or unloadable adapter has none). Imports no framework."""
    try:
        return str(getattr(load_class(name), "vectorized", ""))
    except (BackendUnavailable, UnknownBackend):
        return ""


def available_names() -> list[str]:
    """Names of the adapters that can run here, in listing order; opt-in modes only when named."""
    names = []
    for name in entries():
        try:
            cls = load_class(name)
        except BackendUnavailable:
            continue
        if cls.opt_in:
            continue
        if cls.unavailable_reason() is None:
            names.append(name)
    return names
