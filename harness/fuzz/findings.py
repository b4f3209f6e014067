"""findings.yaml and findings.md: a campaign's distinct findings, one minimal case each.

findings.yaml is a case file ``crossgrad run`` accepts as it is (copy a case into cases/ to
keep it); findings.md says, per finding, its signature, the first divergence of its minimal
case, which side the oracle says is wrong, how many generated cases hit it, and the command
that reproduces it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from harness.fuzz.casefile import dump_cases
from harness.fuzz.model import Finding, Options
from harness.fuzz.signature import Kind
from harness.report.writer import atomic_write_text
from harness.text import markdown, markdown_code

FINDINGS_YAML = "findings.yaml"
FINDINGS_MD = "findings.md"


def write_findings(
    folder: Path,
    named: Path,
    findings: list[Finding],
    after_overflow: Mapping[Kind, tuple[int, str]],
    options: Options,
    cases: int,
) -> None:
    """Write both files into ``folder`` (the fresh report folder); commands name ``named``."""
    mappings = []
    for finding in findings:
        mapping = dict(finding.case)
        mapping["description"] = (
            f"crossgrad fuzz --seed {options.seed}: {finding.signature.describe()}; "
            f"{finding.hits} generated case{'s' * (finding.hits != 1)} hit it"
        )
        mappings.append(_ordered(mapping))
    header = (
        f"# Minimal cases of the {len(findings)} finding{'s' * (len(findings) != 1)} of "
        f"`crossgrad fuzz --seed {options.seed}` ({cases:,} cases).\n"
        "# Each is a valid case: copy it into cases/ (and triage it in "
        "cases/known_divergences.yaml) to keep it.\n"
    )
    if mappings:  # a case file holds at least one case: no finding, no file
        atomic_write_text(folder / FINDINGS_YAML, header + dump_cases(mappings))
    text = findings_markdown(named, findings, options, cases) + _overflow_markdown(after_overflow)
    atomic_write_text(folder / FINDINGS_MD, text)


def _ordered(mapping: dict) -> dict:
    keys = ("name", "description", "network", "data", "loss", "optimizer", "steps", "dtype")
    return {k: mapping[k] for k in keys if k in mapping}


def _overflow_markdown(after_overflow: Mapping[Kind, tuple[int, str]]) -> str:
    if not after_overflow:
        return ""
    lines = [
        "",
        "## Divergences after the reference overflowed (not findings)",
        "",
        "These cases diverged only where the reference's own values were already inf or NaN: "
        "what a computation gives there is special-value propagation (a matmul that skips "
        "zero operands, a loss that refuses a NaN probability), which differs even between "
        "the reference's per-case and batched paths. Counted, not shrunk; the generated "
        "cases are under cases/.",
        "",
        "| kind | generated cases | first one |",
        "|---|---|---|",
    ]
    for kind, (count, example) in sorted(after_overflow.items(), key=lambda i: -i[1][0]):
        lines.append(f"| {markdown(kind.describe())} | {count} | {markdown(example)} |")
    return "\n".join(lines) + "\n"


def findings_markdown(named: Path, findings: list[Finding], options: Options, cases: int) -> str:
    lines = [
        "# crossgrad fuzz: findings",
        "",
        f"Seed {options.seed}, {cases:,} generated cases on {', '.join(options.backends[1:])} "
        f"(reference: {options.reference}).",
        "",
    ]
    if not findings:
        lines.append(
            "No finding: every divergence before an overflow was explained by a known entry."
        )
        return "\n".join(lines) + "\n"
    lines += [
        f"{len(findings)} distinct finding{'s' * (len(findings) != 1)}, most-hit kind first.",
        "",
        "| # | signature | hits | oracle says wrong | first divergence (minimal case) |",
        "|---|---|---|---|---|",
    ]
    for number, f in enumerate(findings, 1):
        lines.append(
            f"| {number} | {markdown(f.signature.describe())} | {f.hits} | "
            f"{markdown(f.off_oracle or '-')} | {markdown(f.first_divergence or '-')} |"
        )
    lines.append("")
    for number, f in enumerate(findings, 1):
        name = str(f.case["name"])
        command = shlex.join(
            [
                "crossgrad",
                "run",
                str(named / FINDINGS_YAML),
                f"--case={name}",
                f"--backend={f.signature.kind.backend}",
                f"--reference={options.reference}",
            ]
        )
        network = f.case["network"]
        lines += [
            f"## {number}. {markdown(name)}",
            "",
            f"- signature: {markdown(f.signature.describe())}",
            f"- first divergence: {markdown(f.first_divergence or '-')}",
            f"- the oracle says wrong: {markdown(f.off_oracle or '-')}",
            f"- generated cases that hit it: {f.hits}",
            f"- minimal case: sizes {network['sizes']}, {len(f.case['data']['x'])} row(s), "
            f"{f.case['steps']} step(s), {markdown(f.case['dtype'])}; {markdown(f.shrunk)}",
            f"- reproduce: {markdown_code(command)}",
            "",
        ]
    return "\n".join(lines)
