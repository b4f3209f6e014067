"""A strict checker for YAML trees, collecting every problem at once.

Each ``Checker`` method reads one kind of value (a mapping with its allowed and required
keys, a list, a string, a choice, a bounded integer, a number, a boolean, a rectangular
array of finite numbers), appends a ``Problem`` (file, line, column, dotted key path,
"expected ..., got ...") when it is wrong, and returns ``INVALID`` so the walk can go on
and report the rest of the file in the same run. The case schema (harness/cases/schema.py)
and the known-divergences file (harness/verdict/known.py) are both read with it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from harness.cases.yaml_nodes import Located
from harness.errors import Problem


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


def any_invalid(values: Iterable[Any]) -> bool:
    """Whether any value failed its check (identity test: values may be NumPy arrays)."""
    return any(value is INVALID for value in values)


def describe(value: Any) -> str:
    """How a received value is named in messages: its YAML type and a short rendering."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 40 else text[:37] + '...'}"


def did_you_mean(word: Any, choices: Any) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Checker:
    """Reads values out of one file's ``Located`` tree; ``problems`` holds what was wrong."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []

    def fail(self, node: Located | tuple[int, int], key: str, message: str) -> Any:
        line, column = (node.line, node.column) if isinstance(node, Located) else node
        self.problems.append(Problem(self.filename, line, column, key, message))
        return INVALID

    # -- containers ---------------------------------------------------------------------

    def mapping(
        self, node: Located, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Located] | Any:
        if not isinstance(node.value, dict):
            return self.fail(node, key, f"expected a mapping, got {describe(node.value)}")
        for name, (line, column) in node.key_positions.items():
            if name not in allowed:
                hint = did_you_mean(name, allowed)
                self.fail(
                    (line, column),
                    join(key, name),
                    f"unknown key{hint}; expected one of: {', '.join(allowed)}",
                )
        for name in required:
            if name not in node.value:
                self.fail(node, join(key, name), "required key is missing")
        return {k: v for k, v in node.value.items() if k in allowed}

    def sequence(self, node: Located, key: str) -> list[Located] | Any:
        if not isinstance(node.value, list):
            return self.fail(node, key, f"expected a list, got {describe(node.value)}")
        return node.value

    # -- scalars ------------------------------------------------------------------------

    def string(self, node: Located, key: str) -> str | Any:
        if not isinstance(node.value, str):
            return self.fail(node, key, f"expected a string, got {describe(node.value)}")
        return node.value

    def choice(self, node: Located, key: str, choices: Any) -> str | Any:
        value = self.string(node, key)
        if value is INVALID:
            return INVALID
        if value not in choices:
            hint = did_you_mean(value, choices)
            return self.fail(
                node, key, f"unknown value {value!r}{hint}; expected one of: {', '.join(choices)}"
            )
        return value

    def integer(self, node: Located, key: str, low: int, high: int) -> int | Any:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            return self.fail(node, key, f"expected an integer, got {describe(value)}")
        if not low <= value <= high:
            return self.fail(node, key, f"expected an integer in {low}..{high:,}, got {value:,}")
        return value

    def number(self, node: Located, key: str, *, positive: bool = False) -> float | Any:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.fail(node, key, f"expected a number, got {describe(value)}")
        if not math.isfinite(value):
            return self.fail(node, key, f"expected a finite number, got {value}")
        if positive and value <= 0:
            return self.fail(node, key, f"expected a number > 0, got {value}")
        return float(value)

    def boolean(self, node: Located, key: str) -> bool | Any:
        if not isinstance(node.value, bool):
            return self.fail(node, key, f"expected true or false, got {describe(node.value)}")
        return node.value

    def array(self, node: Located, key: str, shape: tuple[int, ...] | None) -> np.ndarray | Any:
        """A nested list of finite numbers; ``shape`` None accepts any rectangular shape."""
        found = self._nested_numbers(node, key)
        if found is INVALID:
            return INVALID
        array = np.asarray(found, dtype=np.float64)
        if shape is not None and array.shape != shape:
            return self.fail(node, key, f"expected shape {shape}, got {array.shape}")
        bad = np.argwhere(~np.isfinite(array))
        if bad.size:
            where = tuple(int(i) for i in bad[0])
            return self.fail(
                node, key, f"expected finite numbers, got {array[where]} at index {list(where)}"
            )
        return array

    def _nested_numbers(self, node: Located, key: str) -> Any:
        value = node.value
        if isinstance(value, list):
            items = [self._nested_numbers(item, join(key, str(i))) for i, item in enumerate(value)]
            if any(item is INVALID for item in items):
                return INVALID
            shapes = {np.shape(item) for item in items}
            if len(shapes) > 1:
                return self.fail(
                    node, key, f"expected a rectangular array, got rows of shapes {sorted(shapes)}"
                )
            return items
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.fail(node, key, f"expected a number, got {describe(value)}")
        return float(value)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
