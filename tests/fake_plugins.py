"""Fake ``crossgrad.backends`` entry points, and adapter classes they point at: a working
plugin, an opt-in one, one with a vectorized implementation, two unusable ones, and ones
that record their own determinism settings.

Adapters are registered only through entry points, so a test adapter is registered as a
plugin is: as pluggy's own tests do, ``importlib.metadata.entry_points`` is replaced, here
by one that adds fake entry points to the installed ones, so nothing has to be installed.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from backends import registry
from backends.numpy.eager import NumpyBackend

if TYPE_CHECKING:  # workers import this module for its adapters: pytest stays out of them
    import pytest

# The distribution the test suite's adapters (tests/adapters.py ...) are registered under.
TEST_DISTRIBUTION = "crossgrad-tests"


@dataclass(frozen=True)
class FakeDistribution:
    name: str


@dataclass(frozen=True)
class FakeEntryPoint:
    name: str
    value: str
    dist: FakeDistribution | None
    group: str = registry.ENTRY_POINT_GROUP


def add_entry_points(
    patch: pytest.MonkeyPatch | None, *points: FakeEntryPoint, only_builtins: bool = False
) -> None:
    """Install ``points`` beside the installed entry points (with ``only_builtins``, beside
    crossgrad's own only, so other installed plugins drop out). ``patch`` undoes it after
    the test; None installs them for good, in a process of their own."""
    installed = importlib.metadata.entry_points

    def kept(point: Any) -> bool:
        return not only_builtins or (
            point.dist is not None and point.dist.name == registry.DISTRIBUTION
        )

    def entry_points(**params: Any) -> Any:
        group = params.get("group")
        if set(params) != {"group"} or group != registry.ENTRY_POINT_GROUP:
            return installed(**params)
        return [p for p in installed(group=group) if kept(p)] + [
            p for p in points if p.group == group
        ]

    _set(patch, entry_points)


def _set(patch: pytest.MonkeyPatch | None, entry_points: Callable[..., Any]) -> None:
    if patch is None:
        importlib.metadata.entry_points = entry_points  # type: ignore[assignment]
    else:
        patch.setattr(importlib.metadata, "entry_points", entry_points)


def register(
    patch: pytest.MonkeyPatch | None,
    targets: Mapping[str, str],
    distribution: str = TEST_DISTRIBUTION,
) -> None:
    """Register test adapters, ``{name: "module:Class"}``, as one distribution's plugins."""
    dist = FakeDistribution(distribution)
    add_entry_points(patch, *(FakeEntryPoint(n, t, dist) for n, t in targets.items()))


class EchoPluginBackend(NumpyBackend):
    """A third-party adapter in all but name: the reference maths under another name."""

    name = "echo"
    distribution = "numpy"


class BatchedPluginBackend(NumpyBackend):
    """A plugin that declares a vectorized implementation (the reference's, here)."""

    name = "batched"
    vectorized = "backends.numpy.vectorized:run_batch"


class MissingFrameworkBackend(NumpyBackend):
    """A plugin whose framework is not installed here."""

    name = "ghost"
    requires: ClassVar[tuple[str, ...]] = ("crossgrad_no_such_framework",)
    distribution = "crossgrad-no-such-framework"


class SeedOnlyBackend(NumpyBackend):
    """An adapter that declares only what the seed case needs."""

    name = "seed_only"
    activations: ClassVar[tuple[str, ...]] = ("sigmoid",)
    losses: ClassVar[tuple[str, ...]] = ("mse",)
    optimizers: ClassVar[tuple[str, ...]] = ("sgd",)
    dtypes: ClassVar[tuple[str, ...]] = ("float32",)


class OptInPluginBackend(NumpyBackend):
    """A plugin's extra mode: listed, but run only when named, as the built-ins' modes."""

    name = "echo:slow"
    mode = "slow"
    opt_in = True


class SettingsPluginBackend(NumpyBackend):
    """A plugin for a framework crossgrad does not know (as a PaddlePaddle adapter would be):
    it records its own determinism settings through ``Backend.determinism_settings``."""

    name = "settings"

    def __init__(self) -> None:
        super().__init__()
        self.threads = 1  # as a framework's thread pool, sized when the adapter is built

    def determinism_settings(self) -> dict[str, object]:
        return {
            "deterministic": True,
            "threads": self.threads,  # set up in __init__: read after it
            "pid": os.getpid(),  # the process the hook ran in
            "pools": {"intra_op": 1, "inter_op": 1},
            "dtype": np.dtype("float32"),  # not a JSON value: recorded as its str
        }


class BatchedSettingsPluginBackend(SettingsPluginBackend):
    """The same, with a vectorized implementation: its batches run in the run's process."""

    name = "batched_settings"
    vectorized = "backends.numpy.vectorized:run_batch"


class BrokenSettingsPluginBackend(NumpyBackend):
    """A plugin whose settings report fails: the run goes on, the failure is recorded."""

    name = "broken_settings"

    def determinism_settings(self) -> dict[str, object]:
        raise RuntimeError("simulated settings failure")
