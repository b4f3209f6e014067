"""Adapter classes that fake entry points point at: a working plugin and two unusable ones."""

from __future__ import annotations

from typing import ClassVar

from backends.numpy.eager import NumpyBackend


class EchoPluginBackend(NumpyBackend):
    """A third-party adapter in all but name: the reference maths under another name."""

    name = "echo"
    distribution = "numpy"


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
