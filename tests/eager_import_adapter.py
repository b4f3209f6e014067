"""An adapter module that imports its framework at module level, as the conformance kit's
lazy-import check must refuse: listing adapters would import the framework every time."""

from __future__ import annotations

from typing import ClassVar

import stand_in_framework  # the planted mistake: belongs in __init__

from backends.numpy.eager import NumpyBackend


class EagerImportBackend(NumpyBackend):
    """The reference maths, with its framework imported when the module is."""

    name = "eager_import"
    requires: ClassVar[tuple[str, ...]] = ("numpy", "stand_in_framework")
    framework_loaded = stand_in_framework.LOADED
