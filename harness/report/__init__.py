"""Writing and reading reports: results tables, pair summaries, the printed table, Markdown, HTML, JUnit, coverage, repro, merge, diff."""
