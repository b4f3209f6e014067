"""Judging values: the status vocabulary, comparison with the reference, tolerances, the oracle, triage, localization, known divergences."""
