"""Safe YAML parsing that keeps every value's line and column.

PyYAML's safe loader builds plain values and forgets where they came from; the case
validator needs the position of every key and value to point at the exact character. We
compose the node graph with a safe loader, then build a tree of ``Located`` values
ourselves, rejecting duplicate keys, non-string keys and exponential alias expansion
(a "billion laughs" document) on the way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from harness.errors import Problem

# A document whose aliases expand past this many values is refused before it eats memory.
MAX_NODES = 2_000_000


class _CaseYamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-3`` (YAML 1.1 says string)."""


_CaseYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class Located:
    """A YAML value with the 1-based position where it starts.

    ``value`` is a scalar, a ``dict[str, Located]`` or a ``list[Located]``; mappings also
    keep where each key starts, so an unknown key can be pointed at.
    """

    value: Any
    line: int
    column: int
    key_positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def plain(self) -> Any:
        """The value with every position stripped (for scalars, lists and mappings)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class YamlProblems(Exception):
    """Raised with the problems that make a document unreadable as a whole."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


def parse_documents(text: str, filename: str) -> list[Located]:
    """Every YAML document in ``text`` as a ``Located`` tree; raises ``YamlProblems``."""
    loader = _CaseYamlLoader(text)
    try:
        roots = []
        builder = _Builder(loader, filename)
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                roots.append(builder.build(node, ""))
        if builder.problems:
            raise YamlProblems(builder.problems)
        return roots
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = exc.problem or exc.context or "invalid YAML"
        if "\\t" in reason or "'\\t'" in str(exc):
            reason += " (tabs are not allowed for indentation in YAML; use spaces)"
        raise YamlProblems(
            [Problem(filename, line, column, "", f"invalid YAML: {reason}")]
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblems([Problem(filename, 0, 0, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, filename: str) -> None:
        self.loader = loader
        self.filename = filename
        self.count = 0
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: str) -> Located:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlProblems(
                [
                    Problem(
                        self.filename,
                        node.start_mark.line + 1,
                        node.start_mark.column + 1,
                        "",
                        f"document expands to more than {MAX_NODES:,} values "
                        "(nested YAML aliases?); refusing to load it",
                    )
                ]
            )
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, line, column)
        if isinstance(node, yaml.SequenceNode):
            items = [self.build(item, _join(path, str(i))) for i, item in enumerate(node.value)]
            return Located(items, line, column)
        return Located(self.loader.construct_object(node, deep=True), line, column)

    def _mapping(self, node: yaml.MappingNode, path: str, line: int, column: int) -> Located:
        self.loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        values: dict[str, Located] = {}
        positions: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key, str):
                message = f"keys must be strings, got {type(key).__name__} {key!r}"
                self.problems.append(Problem(self.filename, *where, path, message))
                continue
            if key in values:
                message = f"duplicate key (first defined at line {positions[key][0]})"
                self.problems.append(Problem(self.filename, *where, _join(path, key), message))
                continue
            values[key] = self.build(value_node, _join(path, key))
            positions[key] = where
        return Located(values, line, column, positions)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
