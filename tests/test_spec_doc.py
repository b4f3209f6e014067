"""docs/spec.md is the contract: it names the whole vocabulary of harness/cases/model.py with
its defaults, every citation of it points at a section that exists, and nothing in the
repository cites a contract that lives outside it."""

from __future__ import annotations

import math
import re
import subprocess
from typing import Any

import pytest
from support import DATA, ROOT

from harness.cases.model import ACTIVATIONS, DTYPES, INIT_SCHEMES, LOSSES, OPTIMIZERS
from harness.verdict.compare import DEFAULT_TOLERANCES, UNIT_ROUNDOFF

CONTRACT = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")

# A citation of a contract outside the repository: the external spec file or its section
# marks, the team's shared folder, the design notes. Written (here and in the examples
# below) so that this file, which is tracked too, does not match itself.
EXTERNAL = re.compile(r"\bS[P]EC(?:\s*§|\.md\b)|\bD[E]SIGN\.md\b|(?<![\w-])shared[/]")
TEXT_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg")


def section(text: str, heading: str) -> str:
    """The body of the section whose heading line matches ``heading`` (a regex), up to the
    next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {heading}[^\n]*$", text, re.MULTILINE)
    if match is None:
        raise AssertionError(f"docs/spec.md has no heading matching {heading!r}")
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, match.end())
    return text[match.end() : end.start() if end else len(text)]


def first_column(body: str) -> list[str]:
    """The backquoted names in the first column of a section's Markdown table rows."""
    return re.findall(r"^\| `([A-Za-z0-9_]+)` \|", body, re.MULTILINE)


def number(text: str) -> float:
    return float(text.strip().strip("`").replace("−", "-"))


def parse_default(cell: str) -> Any:
    """An argument table's default cell as the Python value harness/cases/model.py uses."""
    text = cell.strip().strip("`").strip()
    if text == "required":
        return None
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("[") and text.endswith("]"):
        return tuple(number(item) for item in text[1:-1].split(","))
    return number(text)


def same_default(documented: Any, actual: Any) -> bool:
    if actual is None or isinstance(actual, bool):
        return documented is actual
    if isinstance(actual, tuple):
        return isinstance(documented, tuple) and documented == tuple(map(float, actual))
    return (
        isinstance(documented, float)
        and not isinstance(documented, bool)
        and (math.isclose(documented, float(actual), rel_tol=0, abs_tol=0))
    )


def optimizer_problems(spec: str) -> list[str]:
    """Each optimizer of OPTIMIZERS must have a §5 subsection whose argument table lists
    exactly its arguments, each with the default model.py gives it."""
    problems = []
    optimizers = section(spec, r"5\. Optimizers")
    documented = re.findall(r"^### 5\.\d+ `(\w+)`", optimizers, re.MULTILINE)
    if documented != list(OPTIMIZERS):
        problems.append(
            f"§5 documents optimizers {documented}, the vocabulary is {list(OPTIMIZERS)}"
        )
    for name, defaults in OPTIMIZERS.items():
        if name not in documented:
            continue
        body = section(optimizers, rf"5\.\d+ `{name}`")
        rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", body, re.MULTILINE))
        if list(rows) != list(defaults):
            problems.append(
                f"{name}: arguments documented {list(rows)}, vocabulary {list(defaults)}"
            )
        for argument, default in defaults.items():
            if argument not in rows:
                continue
            try:
                value = parse_default(rows[argument])
            except ValueError:
                value = rows[argument]
            if not same_default(value, default):
                problems.append(
                    f"{name}.{argument}: documented {rows[argument].strip()}, default {default!r}"
                )
    return problems


def test_every_activation_is_in_section_3():
    assert first_column(section(CONTRACT, r"3\. Activations")) == list(ACTIVATIONS)


def test_every_loss_is_in_section_4_with_its_argument_defaults():
    losses = section(CONTRACT, r"4\. Losses")
    assert first_column(losses) == list(LOSSES)
    rows = {name: row for name, row in re.findall(r"^\| `(\w+)` \|(.*)$", losses, re.MULTILINE)}
    for name, arguments in LOSSES.items():
        for argument, default in arguments.items():
            found = re.search(rf"`{argument}`[^|]*?default ([0-9.e+-]+)", rows[name])
            assert found, f"{name}: argument {argument} and its default are not in its row"
            assert number(found.group(1)) == default, f"{name}.{argument}"
        if not arguments:
            assert "| — |" in rows[name], f"{name} takes no arguments: its cell should say —"


def test_every_optimizer_argument_and_default_is_in_its_section_5_table():
    assert optimizer_problems(CONTRACT) == []


@pytest.mark.parametrize(
    "old, new",
    [
        ("| `eps` | `1e-10` |", "| `eps` | `1e-8` |"),  # a wrong default (adagrad)
        ("| `nesterov` | `false` |", "| `nesterov` | `0` |"),  # a bool written as a number
        ("| `lr` | required |", "| `lr` | `0.001` |"),  # sgd's lr given a default
        ("| `centered` | `false` | |\n", ""),  # an argument left out
        ("| `betas` | `[0.9, 0.999]` |", "| `betas` | `[0.9, 0.99]` |"),  # one beta wrong (adam)
    ],
)
def test_the_optimizer_check_catches_a_wrong_table(old, new):
    assert old in CONTRACT
    assert optimizer_problems(CONTRACT.replace(old, new, 1)) != []


def test_every_init_scheme_is_in_section_2_5_with_its_defaults():
    body = section(CONTRACT, r"2\.5 ")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", body, re.MULTILINE))
    assert list(rows) == list(INIT_SCHEMES)
    for scheme, arguments in INIT_SCHEMES.items():
        documented = dict(re.findall(r"`(\w+)` \(([^)]+)\)", rows[scheme]))
        assert {k: number(v) for k, v in documented.items()} == dict(arguments), scheme


def test_every_dtype_is_in_section_6_with_its_default_tolerance():
    body = section(CONTRACT, r"6\.4 ")
    rows = re.findall(r"^\| `(\w+)` \| 2\^(-\d+) \| ([^|]+) \| ([^|]+) \|", body, re.MULTILINE)
    assert sorted(name for name, *_ in rows) == sorted(DTYPES)
    for name, exponent, rtol, atol in rows:
        assert 2.0 ** int(exponent) == UNIT_ROUNDOFF[name], name
        assert (number(rtol), number(atol)) == (
            DEFAULT_TOLERANCES[name].rtol,
            DEFAULT_TOLERANCES[name].atol,
        ), name
    for name in DTYPES:
        assert f"`{name}`" in section(CONTRACT, r"6\.1 "), name


def test_the_example_of_section_2_2_is_the_one_the_suite_runs():
    example = (DATA / "spec_example.yaml").read_text(encoding="utf-8")
    body = example.split("\n", 1)[1]  # after its first line, the comment saying where it is from
    assert f"```yaml\n{body}```" in section(CONTRACT, r"2\.2 ")


def _tracked_text_files() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [name for name in listed.split("\0") if name.endswith(TEXT_SUFFIXES)]


def _spec_sections() -> set[str]:
    numbers = re.findall(r"^##+ (\d+(?:\.\d+)?)\.? ", CONTRACT, re.MULTILINE)
    return set(numbers)


def test_no_tracked_file_cites_a_contract_outside_the_repository():
    found = []
    for name in _tracked_text_files():
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        for number_, line in enumerate(text.splitlines(), 1):
            if EXTERNAL.search(line):
                found.append(f"{name}:{number_}: {line.strip()}")
    assert not found, "cite docs/spec.md instead:\n" + "\n".join(found)


def test_the_external_citation_pattern_catches_what_it_should():
    spec, shared, design = "S" + "PEC", "shared", "DE" + "SIGN"
    for line in (
        f"Exit status ({spec} §3)",
        f"see {spec}.md",
        f"({shared}/seeds/a.txt)",
        f"{design}.md",
    ):
        assert EXTERNAL.search(line), line
    for line in ("docs/spec.md §3", "see spec.md#s5-optimizers", "InitSpec", "a shared_memory/"):
        assert not EXTERNAL.search(line), line


def test_every_citation_of_the_spec_names_a_section_that_exists():
    sections = _spec_sections()
    anchors = set(re.findall(r'<a id="([\w-]+)"></a>', CONTRACT))
    bad = []
    for name in _tracked_text_files():
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        cited = re.findall(r"spec\.md §(\d+(?:\.\d+)?)", text)
        if name == "docs/spec.md":
            cited += re.findall(r"§(\d+(?:\.\d+)?)", text)
        bad += [f"{name}: §{n}" for n in cited if n not in sections]
        links = re.findall(r"spec\.md#([\w-]+)", text)
        if name == "docs/spec.md":
            links += re.findall(r"\]\(#([\w-]+)\)", text)
        bad += [f"{name}: #{a}" for a in links if a not in anchors]
    missing = "\n".join(bad)
    assert not bad, f"citations of sections or anchors docs/spec.md does not have:\n{missing}"
