"""Fuzzing the loader: any mutated case file is either accepted or refused with CaseError.

Anything else escaping the loader (a KeyError, a RecursionError, a NumPy error) would be a
traceback in the user's terminal instead of a located message. The examples are
derandomized so CI sees the same inputs on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support import CASES
from test_bad_input import GOOD

from harness.cases.loader import load_cases
from harness.cases.model import Case
from harness.errors import CaseError

# Full tier: Hypothesis drives the loader through thousands of hostile files.
pytestmark = pytest.mark.full

SEEDS = [
    GOOD,
    (CASES / "seed.yaml").read_text(encoding="utf-8"),
    (CASES / "mlp-nonsquare.yaml").read_text(encoding="utf-8"),
]
# Pieces that YAML, the schema or NumPy treat specially.
FRAGMENTS = [
    "\t",
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "!!python/object:os.system",
    "!!binary",
    "!x",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">\n",
    "'",
    '"',
    "#",
    "\n",
    "  ",
    "\x00",
    ".nan",
    ".inf",
    "-.inf",
    "1e999",
    "-0",
    "0x1F",
    "99999999999999999999999",
    "1e-3",
    "null",
    "~",
    "true",
    "yes",
    "2024-01-01",
    "[]",
    "{}",
    "[[]]",
    "[[1, 2], [3]]",
    "é",
    "\u2028",
    "\ufeff",
    "sizes: [1, 4096, 4096, 4096]",
    "matrix: {dtype: [float16, bfloat16]}",
    "cases: []",
    "steps: 0",
    "dtype: float8",
    "loss: {name: huber, delta: -1}",
    "init: {seed: 1, scheme: he_normal}",
]
SETTINGS = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _load(path: Path, data: bytes) -> list[Case] | CaseError:
    path.write_bytes(data)
    try:
        cases = load_cases([path])
    except CaseError as exc:
        assert exc.problems  # a refusal always says what is wrong
        event(f"refused: {exc.problems[0].message[:30]}")
        return exc
    event("accepted")
    return cases


@st.composite
def mutated_text(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        piece = draw(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12), st.just("")))
        text = text[:start] + piece + text[end:]
    data = text.encode("utf-8")
    if draw(st.booleans()) and draw(st.booleans()):  # now and then, bytes that are not UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
    | st.sampled_from(["sigmoid", "relu", "mse", "sgd", "adam", "float64", "layers.0.weight"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


@st.composite
def mutated_case(draw: st.DrawFn) -> bytes:
    """A seed case with one value anywhere in it replaced, or one key added or dropped."""
    case = yaml.safe_load(GOOD)
    path = draw(st.sampled_from(_paths(case)[1:]))
    parent = case
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(YAML_VALUES)
    elif action == "drop":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(YAML_VALUES)
    return yaml.safe_dump(case, allow_unicode=True).encode("utf-8")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "case.yaml"


@SETTINGS
@given(data=mutated_text())
def test_a_mutated_case_file_is_accepted_or_refused_with_case_error(scratch, data):
    result = _load(scratch, data)
    assert isinstance(result, CaseError | list)


@SETTINGS
@given(data=mutated_case())
def test_a_case_with_any_value_anywhere_is_accepted_or_refused_with_case_error(scratch, data):
    result = _load(scratch, data)
    assert isinstance(result, CaseError | list)


def test_the_unmutated_seeds_load(tmp_path):
    """The fuzz starts from valid files, so a refusal is caused by the mutation."""
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    assert len(load_cases([good, CASES / "seed.yaml", CASES / "mlp-nonsquare.yaml"])) == 7
