"""The plain-text pair table ``crossgrad run`` prints: one line per case × backend pair."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from harness.report.summaries import PairSummary, margin_text
from harness.text import terminal

TABLE_HEADER = ("case", "backend", "status", "cause", "worst err/tol", "first divergence")


def table_cells(s: PairSummary) -> tuple[str, ...]:
    """One pair's cells in the printed table, each on one line without control characters."""
    return (
        terminal(s.case),
        terminal(s.backend),
        terminal(s.status),
        terminal(s.cause),
        margin_text(s.worst_margin),
        _shorten(terminal(s.first_divergence), 90),
    )


def format_table(summaries: list[PairSummary]) -> str:
    """The short plain-text table ``crossgrad run`` prints."""
    lines = [table_cells(s) for s in summaries]
    widths = [max(len(row[i]) for row in [TABLE_HEADER, *lines]) for i in range(len(TABLE_HEADER))]
    return "\n".join(table_lines(lines, widths))


def table_lines(rows: Iterable[tuple[str, ...]], widths: Sequence[int]) -> Iterator[str]:
    """Header, rule and ``rows`` of the printed table, columns padded to ``widths``."""

    def render(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()

    yield render(TABLE_HEADER)
    yield render(tuple("-" * w for w in widths))
    yield from map(render, rows)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
