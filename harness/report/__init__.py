"""Writing and reading reports: results tables, summaries, HTML, JUnit, coverage, repro, merge, diff."""
