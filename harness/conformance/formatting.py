"""The pass/fail table ``crossgrad check-adapter`` prints: one line per check, then the totals."""

from __future__ import annotations

from harness.conformance.checks import FAIL, KNOWN, PASS, SKIPPED, CheckResult
from harness.text import terminal


def format_results(results: list[CheckResult]) -> str:
    """The pass/fail table, one line per check, failures with their first problem."""
    rows = [("check", "result", "first problem / note")]
    # One line per check: a detail is often an adapter's exception message, newlines and all.
    rows += [
        (terminal(r.check), r.status.upper() if r.failed else r.status, terminal(r.detail))
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a.ljust(widths[0])}  {b.ljust(widths[1])}  {c}".rstrip() for a, b, c in rows]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 20}")
    counts = {
        status: sum(r.status == status for r in results) for status in (PASS, KNOWN, SKIPPED, FAIL)
    }
    lines.append(
        f"\n{len(results)} checks: {counts[PASS]} passed, {counts[KNOWN]} known divergences, "
        f"{counts[SKIPPED]} skipped, {counts[FAIL]} failed"
    )
    return "\n".join(lines)
