"""A plugin module that fails at import, as one with a missing dependency or a bug does."""

raise ImportError("No module named 'frobnicate' (simulated broken plugin)")
