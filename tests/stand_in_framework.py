"""A stand-in for a framework (torch, jax, ...) that tests/eager_import_adapter.py imports at
module level: as deterministic as a framework is slow, and found by ``requires``."""

LOADED = True
