"""Text the harness does not control reaches every output escaped for it.

Case names, known-divergence ids, reasons and locations, crash details (an adapter's
exception message) and environment values go to summary.md (Markdown), junit.xml (XML
1.0), report.html and the terminal. Each is written with every control character, a lone
surrogate, a bidi override and the markup of each target (tags, ``]]>``, ``|``, a newline
that would add a table row, backticks, an image link) and read back as its reader would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from adapters import HOSTILE_TEXT
from fake_plugins import register
from support import CASES, ROOT, write_case

from harness import text
from harness.cli import main
from harness.report.markdown import extra_sections
from harness.report.table import format_table
from harness.report.writer import write_report
from harness.run.progress import ProgressDisplay
from harness.verdict.known import KnownDivergence

# What may appear in a text report or on a terminal besides printable text.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e]")
PAIR_COLUMNS = 9  # summary.md's pair table


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def _pair_rows(summary: str) -> list[str]:
    lines = summary.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| case | backend |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


# A table cannot hold a lone surrogate (Arrow strings are UTF-8): runner.outcomes_frame
# replaces one in an adapter's message, and case names cannot have one.
TABLE_TEXT = HOSTILE_TEXT.replace("\ud800", "")


def _hostile_table() -> pd.DataFrame:
    """A real run's rows of seed-1-1-1, with a hostile case name, backend and detail."""
    from support import run_and_compare

    from harness.cases.loader import load_cases

    table = run_and_compare(load_cases([str(CASES / "seed.yaml")]), ["numpy"])
    crashed = table.iloc[:1].assign(
        case="seed" + TABLE_TEXT,
        backend="b" + TABLE_TEXT,
        status="crashed",
        detail="RuntimeError: " + TABLE_TEXT,
    )
    known = table.iloc[
        :1
    ].assign(
        case="known" + TABLE_TEXT,
        status="known",
        detail=f"known divergence k|<i>&]]>` (bounded, not verified: rel err <= 1): {TABLE_TEXT}",  # as a merged report reads it
    )
    return pd.concat([table, crashed, known], ignore_index=True)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    stale = KnownDivergence(
        id="id" + HOSTILE_TEXT,
        backend="*",
        reason=HOSTILE_TEXT,
        source=HOSTILE_TEXT,
        measured=HOSTILE_TEXT,
        location=f"/tmp/{HOSTILE_TEXT}.yaml:3",
    )
    environment = {"python": HOSTILE_TEXT, "versions": {HOSTILE_TEXT: HOSTILE_TEXT}}
    environment["seeds"] = {"case" + HOSTILE_TEXT: HOSTILE_TEXT}
    repro = [f"crossgrad run x.yaml --case '{HOSTILE_TEXT}```\n```'"]
    table = _hostile_table()
    summaries = write_report(
        table, out, [environment], repro, [stale], incomplete="stopped: " + HOSTILE_TEXT
    )
    return out, summaries


def test_junit_xml_is_well_formed_whatever_the_names_and_messages(hostile_report):
    out, summaries = hostile_report
    root = ET.parse(out / "junit.xml").getroot()  # raises on a character XML 1.0 forbids
    cases = root.findall(".//testcase")
    assert len(cases) == len(summaries) == 3
    crashed = next(c for c in cases if c.find("error") is not None)
    assert crashed.get("classname") == text.xml("seed" + TABLE_TEXT)
    assert "\u241b" in crashed.get("classname")  # ESC, shown as ␛ rather than dropped
    message = crashed.find("error").get("message")
    assert "]]><script>" in message  # the markup is text in the document, not structure
    assert not RAW_CONTROL.search(message)
    assert "; known divergence k|<i>&]]>` (bounded" in cases[2].find("system-out").text
    for prop in root.iter("property"):
        assert not RAW_CONTROL.search(prop.get("name") + prop.get("value"))


def test_summary_md_keeps_one_row_per_pair_and_no_markup_from_names(hostile_report):
    out, summaries = hostile_report
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert not RAW_CONTROL.search(summary)
    # A code span shows its content as text: the stale entry's id is one, fenced by more
    # backticks than the id holds.
    span = re.compile(r"(`{2,})( ?id.*? ?)\1")
    assert len(span.findall(summary)) == 1
    # So does a code block (test_a_repro_command_cannot_close_its_code_block).
    before, _, rest = span.sub("", summary).partition("## Reproduce")
    prose = before + rest.partition("## Environment")[2]
    for markup in ("<script", "<img", "](http", "\n| fake"):
        assert markup not in prose
    rows = _pair_rows(summary)
    assert len(rows) == len(summaries)  # the newline in the name added no row
    # Every row has its nine cells: no pipe in a name or detail ends a cell.
    assert all(_unescaped_pipes(row) == PAIR_COLUMNS + 1 for row in rows)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rows[1]
    assert "\\`x\\`" in rows[1]  # a backtick starts no code span
    # Known ids and environment tables keep their shape too.
    for line in summary.splitlines():
        if line.startswith("| ") and "setting" not in line:
            assert _unescaped_pipes(line) >= 2
    known = summary.partition("## Known divergences in this run")[2].splitlines()[4]
    assert known.startswith("| k\\|&lt;i&gt;&amp;]]&gt;\\` | ") and _unescaped_pipes(known) == 8
    stale = [line for line in summary.splitlines() if line.startswith("- ")]
    assert len(stale) == 1 and stale[0].startswith("- ``id")


def test_a_repro_command_cannot_close_its_code_block():
    commands = [f"crossgrad run a.yaml --case '{HOSTILE_TEXT}```\n```'", "crossgrad run b.yaml"]
    section = extra_sections([], commands).splitlines()
    opening = next(i for i, line in enumerate(section) if line.endswith("sh"))
    fence = section[opening][:-2]
    assert set(fence) == {"`"} and len(fence) > 3
    closing = section.index(fence, opening + 1)
    assert closing - opening - 1 == len(commands)  # one line per command, no more


def test_report_html_shows_the_names_as_text(hostile_report):
    out, _ = hostile_report
    page = (out / "report.html").read_text(encoding="utf-8")
    # The page's own text, without plotly.js (inlined, it holds control characters itself).
    own = re.sub(r"<script>/\*\*\n\* plotly\.js.*?</script>", "", page, count=1, flags=re.S)
    assert len(own) < len(page) / 10
    assert "<script>alert(1)" not in own and "<img src=x" not in own
    assert not RAW_CONTROL.search(own)


def test_the_printed_table_has_one_line_per_pair_and_no_control_character(hostile_report):
    _, summaries = hostile_report
    lines = format_table(summaries).splitlines()
    assert len(lines) == 2 + len(summaries)
    assert not any(RAW_CONTROL.search(line) for line in lines)


def test_the_progress_bars_move_the_cursor_only_themselves():
    class Stream:
        def __init__(self):
            self.written = ""

        def write(self, data):
            self.written += data

        def flush(self):
            pass

    stream = Stream()
    display = ProgressDisplay(["b" + HOSTILE_TEXT], 2, stream, terminal=True)  # type: ignore[arg-type]
    display("b" + HOSTILE_TEXT, 1, 2, "case" + HOSTILE_TEXT)
    display("b" + HOSTILE_TEXT, 2, 2, "case" + HOSTILE_TEXT)
    own = re.sub(r"\x1b\[(\d+F|2K)", "", stream.written)  # the display's cursor movements
    assert not RAW_CONTROL.search(own) and own.count("\n") == 2


def test_everything_the_command_line_prints_is_made_printable(capsys):
    with text.safe_output():
        print("name: " + HOSTILE_TEXT)
        print(HOSTILE_TEXT, file=sys.stderr)
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert not RAW_CONTROL.search(stream)
        assert "\u241b[2K" in stream  # visible, not acted on
    assert sys.stdout is not None and not isinstance(sys.stdout, text.SafeStream)


def test_a_crash_message_reaches_every_output_escaped(tmp_path, monkeypatch, capsys):
    register(monkeypatch, {"hostile": "adapters:HostileMessageBackend"})
    out = tmp_path / "out"
    args = ["run", str(CASES / "seed.yaml"), "-b", "hostile", "--known", "none"]
    assert main([*args, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert not RAW_CONTROL.search(captured.out + captured.err)
    assert "RuntimeError: \u2400\u2401" in captured.out
    root = ET.parse(out / "junit.xml").getroot()
    error = root.find(".//testcase[@name='hostile']/error")
    assert error is not None and "<script>alert(1)" in error.get("message")
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert not RAW_CONTROL.search(summary) and "<script" not in summary
    rows = _pair_rows(summary)
    assert len(rows) == 2 and all(_unescaped_pipes(r) == PAIR_COLUMNS + 1 for r in rows)
    results = pd.read_parquet(out / "results.parquet")  # the data keeps the message
    assert results.loc[results["backend"] == "hostile", "detail"].str.contains("<script>").all()


@pytest.mark.full
def test_a_run_printing_to_an_ascii_stream_degrades_instead_of_raising(tmp_path):
    environment = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": str(ROOT)}
    args = ["run", str(CASES / "seed.yaml"), "-b", "numpy", "--out", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        cwd=tmp_path,
        env=environment,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    assert b"Traceback" not in done.stderr
    assert b"case \\xd7 backend pairs" in done.stdout  # "×", escaped


# -- case names ----------------------------------------------------------------------


MATRIX_CASE = """\
name: m
network: {{sizes: [1, 1], params: {{layers.0.weight: [[1.0]], layers.0.bias: [0.0]}}}}
data: {{x: [[1.0]], y: [[1.0]]}}
optimizer: {{name: sgd, lr: 0.1}}
description: {description}
matrix:
  description: {values}
"""


def test_a_free_text_description_is_fine_but_not_in_a_variant_name(tmp_path, capsys):
    good = write_case(
        tmp_path, MATRIX_CASE.format(description='"<b>|x|</b>"', values="[a, b-2]"), "good.yaml"
    )
    assert main(["validate", str(good)]) == 0
    values = '["a\\e[31m", "<script>x</script>", "x\\n| fake |", "ok"]'
    bad = write_case(tmp_path, MATRIX_CASE.format(description="d", values=values), "bad.yaml")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    for i in range(3):
        assert f"{bad}:7:" in err and f"matrix.description.{i}: a matrix value" in err
    assert "matrix.description.3" not in err
    assert "\x1b" not in err  # the message quotes the value with its escapes


def test_every_case_name_in_the_library_is_safe_as_it_is():
    from harness.cases.loader import load_cases

    for case in load_cases([str(CASES)]):
        assert text.markdown(case.name) == case.name
        assert text.xml(case.name) == text.terminal(case.name) == case.name


def test_the_check_adapter_table_keeps_one_line_per_check():
    from harness.conformance.checks import FAIL, PASS, CheckResult
    from harness.conformance.formatting import format_results

    results = [CheckResult("c" + HOSTILE_TEXT, FAIL, HOSTILE_TEXT), CheckResult("d", PASS)]
    lines = format_results(results).splitlines()
    assert len(lines) == 2 + len(results) + 2  # header, rule, checks, blank, totals
    assert not any(RAW_CONTROL.search(line) for line in lines)
