"""Benchmarks: crossgrad against bare framework scripts (run: python -m benchmarks.run)."""
