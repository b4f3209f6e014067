"""Judging values: comparison with the reference, tolerances, the oracle, triage, localization, known divergences."""
