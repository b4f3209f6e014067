"""summary.md: the verdict line, one table row per pair, known and stale divergences, the legend.

``ReportWriter`` (harness/report/writer.py) writes the file from these pieces as the pairs
stream by: ``summary_head``, a ``summary_row`` per pair, ``summary_tail``, then
``extra_sections`` (repro commands and the environment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.report.summaries import KnownTally, PairSummary, margin_text
from harness.run.fingerprint import markdown as fingerprint_markdown
from harness.text import code_fence, markdown, markdown_code, one_line
from harness.verdict.known import KnownDivergence
from harness.verdict.status import SEVERITY, Status


def known_markdown(tallies: Mapping[str, KnownTally]) -> str:
    """Each known divergence that explained rows in this run: verified (the backend matches
    the reference with the entry's switches) or only bounded, how many values, how large."""
    if not tallies:
        return ""
    lines = [
        "## Known divergences in this run",
        "",
        "| id | explained | backends | pairs | values | max abs err | max rel err |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry_id, t in tallies.items():
        lines.append(
            f"| {markdown(entry_id)} | {t.kind} | {markdown(', '.join(sorted(t.backends)))} | "
            f"{t.pairs} | {t.values} | "
            f"{t.max_abs_err:.3g} | {t.max_rel_err:.3g} |"
        )
    return "\n".join([*lines, ""])


def summary_head(
    failed: bool,
    cases: int,
    backends: int,
    counts: Mapping[Status, int],
    incomplete: str | None,
    reference: str = "",
    reference_counts: Mapping[Status, int] | None = None,
) -> list[str]:
    """summary.md's lines down to the pair table's header.

    ``counts`` are the pairs per status of the backends compared with ``reference``, and
    ``backends`` how many of them there are; ``reference_counts`` the reference's own pairs,
    which compare it with itself: they are told apart, as what the reference ran (and any
    published value it missed or crash it had), never as ``ok`` comparisons.
    """
    verdict = "FAIL" if failed else "PASS"
    return [
        "# crossgrad report",
        "",
        *([f"**INCOMPLETE** — {markdown(incomplete)}.", ""] if incomplete else []),
        f"**{verdict}** — " + verdict_counts(cases, backends, counts, reference, reference_counts),
        "",
        "| case | backend | version | status | mismatched | worst err/tol | first divergence | cause | off the oracle |",
        "|---|---|---|---|---|---|---|---|---|",
    ]


def verdict_counts(
    cases: int,
    backends: int,
    counts: Mapping[Status, int],
    reference: str = "",
    reference_counts: Mapping[Status, int] | None = None,
) -> str:
    """The verdict line's counts: the compared pairs per status, then the reference's own,
    as in "20 cases × 3 backends compared with the reference numpy: 7 known, 53 ok
    (reference numpy: 20 ran)"."""
    tally = ", ".join(f"{counts[s]} {s}" for s in SEVERITY if counts.get(s))
    case_text = f"{cases} case{'s' * (cases != 1)}"
    if not reference:  # a table without a reference row to tell apart
        return f"{case_text} × {backends} backend{'s' * (backends != 1)}: {tally}"
    own = reference_counts or {}
    ran = ", ".join(f"{own[s]} {'ran' if s == Status.OK else s}" for s in SEVERITY if own.get(s))
    name = markdown(reference)
    if backends:
        text = (
            f"{case_text} × {backends} backend{'s' * (backends != 1)} compared with the "
            f"reference {name}: {tally or 'nothing compared'}"
        )
    else:
        text = f"{case_text} on the reference {name} alone"
    return f"{text} (reference {name}: {ran or 'nothing ran'})"


def summary_row(s: PairSummary) -> str:
    """One pair's line in summary.md's table."""
    mismatch = f"{s.mismatched} / {s.compared}" if s.compared else "-"
    cells = (
        s.case,
        s.backend,
        s.version,
        s.status,
        mismatch,
        margin_text(s.worst_margin),
        s.first_divergence,
        s.cause,
        s.off_oracle,
    )
    return "| " + " | ".join(markdown(c) for c in cells) + " |"


def summary_tail(stale: Sequence[KnownDivergence], sections: Sequence[str]) -> list[str]:
    """summary.md's lines after the pair table: stale entries, legend, extra sections."""
    lines = []
    if stale:
        lines += [
            "",
            "## Stale known divergences",
            "",
            "These entries cover cases that ran but matched no divergence; the framework may have changed.",
            "",
        ]
        lines += [
            f"- {markdown_code(entry.id)} ({markdown(entry.location)}): {markdown(entry.measured)}"
            for entry in stale
        ]
    lines += [
        "",
        "worst err/tol: the largest |value − reference| / (atol + rtol·magnitude) of the pair, magnitude being the size of the terms the value was made of; above 1 is a divergence.",
        "first divergence: the first failing value in computation order (activations layer by layer, output, loss, gradients from the last layer back, parameters).",
        "cause: `precision` (the float64 control run agrees), `semantic` (it diverges too), `known` (registry).",
        "off the oracle: the side farther from the float64/50-digit oracle at the first divergence.",
        "",
    ]
    lines += [section for section in sections if section]
    return lines


def extra_sections(environments: list[dict[str, Any]], repro: list[str]) -> str:
    """The Reproduce and Environment sections that follow the summary table."""
    lines = []
    if repro:
        commands = [one_line(command) for command in repro]  # no line may close the fence
        fence = code_fence(commands)
        lines += ["## Reproduce", "", "Each failing pair alone (its case file is in `repro/`):"]
        lines += ["", f"{fence}sh", *commands, fence, ""]
    return "\n".join([*lines, *fingerprint_markdown(environments)])
