"""junit.xml: one testcase per case × backend, for CI dashboards that read JUnit XML.

``diverged`` and ``expect_failed`` are failures, ``crashed`` an error, ``skipped`` skipped;
``known`` passes with its reason in system-out. The environment goes into properties.
Every name and message goes through ``harness.text.xml``: a control character in a case
name or an adapter's message would make the document not well-formed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from harness.report.summaries import PairSummary
from harness.text import xml
from harness.verdict.status import MISMATCHED, Status


def junit_pieces(
    summaries: Iterable[PairSummary],
    statuses: Mapping[Status, int],
    environment: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    """The document in pieces, one per testcase, so a huge run's file is written as it is read.

    ``statuses`` counts the pairs per status (the suite's totals come first in the file).
    """
    counts = {
        "tests": sum(statuses.values()),
        "failures": sum(statuses.get(s, 0) for s in MISMATCHED),
        "errors": statuses.get(Status.CRASHED, 0),
        "skipped": statuses.get(Status.SKIPPED, 0),
    }
    attributes = {key: str(value) for key, value in counts.items()} | {"time": "0"}
    root = ET.Element("testsuites", {"name": "crossgrad", **attributes})
    suite = ET.SubElement(root, "testsuite", {"name": "crossgrad", **attributes})
    if environment:
        properties = ET.SubElement(suite, "properties")
        for name, value in _flatten(environment):
            ET.SubElement(properties, "property", {"name": xml(name), "value": xml(value)})
    if not counts["tests"]:
        ET.indent(root)
        yield ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
        return
    # The skeleton with a placeholder where the testcases go, indented as ET.indent does it.
    ET.SubElement(suite, _PLACEHOLDER)
    ET.indent(root)
    before, after = ET.tostring(root, encoding="unicode", xml_declaration=True).split(
        f"<{_PLACEHOLDER} />"
    )
    yield before
    for i, s in enumerate(summaries):
        yield ("\n    " if i else "") + _testcase(s)
    yield after + "\n"


_PLACEHOLDER = "crossgrad-testcases"


def _testcase(s: PairSummary) -> str:
    case = ET.Element("testcase", {"classname": xml(s.case), "name": xml(s.backend), "time": "0"})
    message = xml(_message(s))
    status = xml(s.status)
    if s.status in MISMATCHED:
        ET.SubElement(case, "failure", {"message": message, "type": status}).text = message
    elif s.status == Status.CRASHED:
        ET.SubElement(case, "error", {"message": message, "type": status}).text = message
    elif s.status == Status.SKIPPED:
        ET.SubElement(case, "skipped", {"message": xml(s.first_divergence)})
    elif s.status == Status.KNOWN:
        ET.SubElement(case, "system-out").text = f"known divergence: {message}"
    ET.indent(case, level=2)
    return ET.tostring(case, encoding="unicode")


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
