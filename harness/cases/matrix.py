"""Matrix expansion: one case with ``matrix:`` becomes the cartesian product of its variants.

Expansion works on the located YAML tree before checking, so a bad value in a matrix list
is reported at its own line, and each variant is checked exactly as a hand-written case.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from harness.cases.model import OPTIMIZERS
from harness.cases.yaml_nodes import Located
from harness.errors import Problem

# A sweep beyond this many variants is almost surely a typo; each variant is a full case
# (about 2.6 kB once loaded). The loader caps the cases of a whole run at the same number
# (``harness.cases.loader.MAX_CASES``), matrices of every file together.
MAX_VARIANTS = 1_000_000

_OPTIMIZER_ARGS = "|".join(sorted({k for v in OPTIMIZERS.values() for k in v}))
_MATRIX_KEYS = re.compile(
    r"description|steps|dtype|loss|loss\.(name|delta)|optimizer|optimizer\.(name|"
    + _OPTIMIZER_ARGS
    + r")|network\.(sizes|activation|output_activation|params\.[A-Za-z0-9_.]+|init|init\.(seed|scheme|low|high|mean|std))"
    r"|data\.(x|y)|data\.(x|y)\.(seed|batch|low|high)|tolerance|tolerance\.(rtol|atol)"
    r"|expect|expect\.(decimals|output|loss|output_after|params_after\.[A-Za-z0-9_.]+)"
    r"|backends\.(skip|only)"
)
# A variant's name carries its values (``variant_suffix``), and a name reaches file names,
# shell commands, Markdown, XML and the terminal: a value must render with the characters
# of a case name and those of the rendering itself, as ``description: ["a b"]`` would not.
VALUE_PATTERN = re.compile(r"[A-Za-z0-9_.+\-\[\]{}:,]*")
VALUE_CHARACTERS = "letters, digits and _ . - + [ ] { } : ,"
# Under these keys the rest of a dotted path is one parameter name ("layers.0.weight").
_PARAM_MAPPINGS = ("network.params", "expect.params_after")


def expand(
    node: Located, filename: str
) -> Iterator[tuple[Located, dict[str, Any]]] | list[Problem]:
    """The variants of one case mapping with the values applied, or the matrix's problems."""
    if not isinstance(node.value, dict) or "matrix" not in node.value:
        return iter([(node, {})])
    matrix = node.value["matrix"]
    problems = _check_matrix(matrix, filename)
    if problems:
        return problems
    keys = list(matrix.value)
    lists = [matrix.value[k].value for k in keys]
    return _variants(node, keys, lists)


def variant_count(node: Located) -> int:
    """How many cases ``node`` expands to (1 without a usable matrix), without expanding it."""
    matrix = node.value.get("matrix") if isinstance(node.value, dict) else None
    if matrix is None or not isinstance(matrix.value, dict):
        return 1
    lists = [v.value for v in matrix.value.values()]
    return math.prod(len(v) if isinstance(v, list) else 1 for v in lists)


def _variants(
    node: Located, keys: list[str], lists: list[list[Located]]
) -> Iterator[tuple[Located, dict[str, Any]]]:
    for combination in itertools.product(*lists):
        variant = node
        for key, value in zip(keys, combination, strict=True):
            variant = _set_path(variant, _split(key), value)
        yield variant, {key: value.plain() for key, value in zip(keys, combination, strict=True)}


def _check_matrix(matrix: Located, filename: str) -> list[Problem]:
    if not isinstance(matrix.value, dict):
        return [
            Problem(
                filename,
                matrix.line,
                matrix.column,
                "matrix",
                "expected a mapping of key path -> list of values",
            )
        ]
    problems = []
    for key, values in matrix.value.items():
        line, column = matrix.key_positions[key]
        if not _MATRIX_KEYS.fullmatch(key):
            problems.append(
                Problem(
                    filename,
                    line,
                    column,
                    f"matrix.{key}",
                    "not a case key that a matrix can vary (e.g. network.activation, dtype, optimizer.lr)",
                )
            )
        elif not isinstance(values.value, list) or not values.value:
            problems.append(
                Problem(
                    filename,
                    values.line,
                    values.column,
                    f"matrix.{key}",
                    "expected a non-empty list of values",
                )
            )
        else:
            problems += _check_names(values.value, f"matrix.{key}", filename)
    if not problems:
        count = math.prod(len(v.value) for v in matrix.value.values())
        if count > MAX_VARIANTS:
            problems.append(
                Problem(
                    filename,
                    matrix.line,
                    matrix.column,
                    "matrix",
                    f"expands to {count:,} variants; the limit is {MAX_VARIANTS:,} per matrix",
                )
            )
    return problems


def _check_names(values: list[Located], key: str, filename: str) -> list[Problem]:
    """A problem for each value that cannot be written in a variant's name."""
    problems = []
    for i, value in enumerate(values):
        rendered = _format(value.plain())
        if not VALUE_PATTERN.fullmatch(rendered):
            problems.append(
                Problem(
                    filename,
                    value.line,
                    value.column,
                    f"{key}.{i}",
                    f"a matrix value becomes part of each variant's name, which allows "
                    f"{VALUE_CHARACTERS} only; got {rendered!r}",
                )
            )
    return problems


def _split(key: str) -> list[str]:
    for prefix in _PARAM_MAPPINGS:
        if key.startswith(prefix + "."):
            return [*prefix.split("."), key[len(prefix) + 1 :]]
    return key.split(".")


def _set_path(node: Located, path: list[str], value: Located) -> Located:
    """A copy of ``node`` with ``value`` at ``path``; untouched branches are shared."""
    if not path:
        return value
    if isinstance(node.value, str) and path[0] != "name":
        # "optimizer: sgd" varied by "optimizer.lr" becomes {name: sgd, lr: ...}
        node = Located({"name": node}, node.line, node.column, {"name": (node.line, node.column)})
    if not isinstance(node.value, dict):
        node = Located({}, value.line, value.column)
    head = path[0]
    child = node.value.get(head, Located({}, value.line, value.column))
    values = dict(node.value)
    values[head] = _set_path(child, path[1:], value)
    positions = dict(node.key_positions)
    positions.setdefault(head, (value.line, value.column))
    return Located(values, node.line, node.column, positions)


def variant_suffix(variant: dict[str, Any]) -> str:
    """``[network.activation=tanh,dtype=float64]`` for the name of a matrix variant."""
    if not variant:
        return ""
    return "[" + ",".join(f"{k}={_format(v)}" for k, v in variant.items()) + "]"


def _format(value: Any) -> str:
    """Compact, quote-free rendering, so variant names stay easy to match with --case."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_format(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_format(v) for v in value) + "]"
    return json.dumps(value)
