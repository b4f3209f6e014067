"""junit.xml: one testcase per case × backend, for CI dashboards that read JUnit XML.

``diverged`` and ``expect_failed`` are failures, ``crashed`` an error, ``skipped`` skipped;
``known`` passes with its reason in system-out. The environment goes into properties.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.report import PairSummary

FAILURE_STATUSES = ("diverged", "expect_failed")


def junit_xml(summaries: list[PairSummary], environment: Mapping[str, Any] | None = None) -> str:
    counts = {
        "tests": len(summaries),
        "failures": sum(s.status in FAILURE_STATUSES for s in summaries),
        "errors": sum(s.status == "crashed" for s in summaries),
        "skipped": sum(s.status == "skipped" for s in summaries),
    }
    attributes = {key: str(value) for key, value in counts.items()} | {"time": "0"}
    root = ET.Element("testsuites", {"name": "crossgrad", **attributes})
    suite = ET.SubElement(root, "testsuite", {"name": "crossgrad", **attributes})
    if environment:
        properties = ET.SubElement(suite, "properties")
        for name, value in _flatten(environment):
            ET.SubElement(properties, "property", {"name": name, "value": value})
    for s in summaries:
        case = ET.SubElement(
            suite, "testcase", {"classname": s.case, "name": s.backend, "time": "0"}
        )
        message = _message(s)
        if s.status in FAILURE_STATUSES:
            ET.SubElement(case, "failure", {"message": message, "type": s.status}).text = message
        elif s.status == "crashed":
            ET.SubElement(case, "error", {"message": message, "type": "crashed"}).text = message
        elif s.status == "skipped":
            ET.SubElement(case, "skipped", {"message": s.first_divergence})
        elif s.status == "known":
            ET.SubElement(case, "system-out").text = f"known divergence: {message}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _message(s: PairSummary) -> str:
    parts = [f"{s.status}: {s.first_divergence}"]
    if s.cause:
        parts.append(f"cause: {s.cause}")
    if s.off_oracle:
        parts.append(f"off the oracle: {s.off_oracle}")
    return "; ".join(parts)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        pairs = []
        for key, item in value.items():
            pairs += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    return [(prefix, str(value))]
