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
# Values written in one file (scalars, lists, mappings, aliases), counted before any Python
# object is built. The largest hand-written case holds a few hundred; PyYAML's pure-Python
# composer takes about 4 s per 200,000 values, so a file of plain values far past any case
# would cost minutes and gigabytes before anything else could refuse it.
MAX_FILE_VALUES = 100_000
# Deeper than any case file needs (the deepest is about 8), shallow enough for recursion.
MAX_DEPTH = 32
# Collections may carry only the plain YAML tags; scalar tags are checked by the safe loader.
ALLOWED_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _TooManyValues(Exception):
    def __init__(self, mark: yaml.Mark | None) -> None:
        self.mark = mark


class _CaseYamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-3`` (YAML 1.1 says string),
    and stops composing once a file has more than ``MAX_FILE_VALUES`` values."""

    composed = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        self.composed += 1
        if self.composed > MAX_FILE_VALUES:
            raise _TooManyValues(self.peek_event().start_mark)
        return super().compose_node(parent, index)


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
    roots, problems = parse_documents_leniently(text, filename)
    if problems:
        raise YamlProblems(problems)
    return roots


def parse_documents_leniently(text: str, filename: str) -> tuple[list[Located], list[Problem]]:
    """The documents, and the problems that still leave them readable (duplicate keys).

    A duplicate or non-string key is reported and left out, so the caller can go on
    checking the rest of the file and report every problem at once. Problems that make
    the text unreadable raise ``YamlProblems``.
    """
    _count_values(text, filename)
    try:
        loader = _CaseYamlLoader(text)  # checks every character up front
    except yaml.YAMLError as exc:
        raise YamlProblems([_yaml_problem(exc, text, filename)]) from None
    try:
        roots = []
        builder = _Builder(loader, filename)
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                _check_shape(node, filename)
                roots.append(builder.build(node, ""))
        return roots, builder.problems
    except yaml.YAMLError as exc:
        raise YamlProblems([_yaml_problem(exc, text, filename)]) from None
    except _TooManyValues as exc:
        raise YamlProblems([_too_many_values(exc.mark, filename)]) from None
    except RecursionError:
        mark = loader.get_mark()
        message = f"invalid YAML: nested more than {MAX_DEPTH} levels deep"
        raise YamlProblems(
            [Problem(filename, mark.line + 1, mark.column + 1, "", message)]
        ) from None
    finally:
        loader.dispose()


def _count_values(text: str, filename: str) -> None:
    """Refuse a file with more than ``MAX_FILE_VALUES`` values, counted with libyaml's parser
    (about 0.15 s per million values) before the pure-Python composer sees it.

    The composer counts too (``_CaseYamlLoader.compose_node``), where libyaml is missing;
    malformed text is left to it, which reports the problem with its own messages.
    """
    if not yaml.__with_libyaml__:
        return
    parser = yaml.CSafeLoader(text)
    counted = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.NodeEvent):
                counted += 1
                if counted > MAX_FILE_VALUES:
                    raise YamlProblems([_too_many_values(event.start_mark, filename)])
    except yaml.YAMLError:
        return
    finally:
        parser.dispose()


def _too_many_values(mark: yaml.Mark | None, filename: str) -> Problem:
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    message = (
        f"file holds more than {MAX_FILE_VALUES:,} YAML values, the limit for one file; "
        "large arrays belong in data: {seed, batch} and network.init"
    )
    return Problem(filename, line, column, "", message)


def _yaml_problem(exc: yaml.YAMLError, text: str, filename: str) -> Problem:
    """PyYAML's error as a located problem."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = exc.problem or exc.context or "invalid YAML"
        if "\\t" in reason or "'\\t'" in str(exc):
            reason += " (tabs are not allowed for indentation in YAML; use spaces)"
        return Problem(filename, line, column, "", f"invalid YAML: {reason}")
    if isinstance(exc, yaml.reader.ReaderError):
        start = text.rfind("\n", 0, exc.position) + 1
        line, column = text.count("\n", 0, exc.position) + 1, exc.position - start + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"invalid YAML: control character U+{code:04X} is not allowed in YAML text"
        return Problem(filename, line, column, "", message)
    return Problem(filename, 0, 0, "", f"invalid YAML: {exc}")


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node, path: str, message: str) -> None:
        self.node = node
        self.path = path
        self.message = message


def _check_shape(root: yaml.Node, filename: str) -> None:
    """Refuse object tags, recursive or exponential aliases and deep nesting before building.

    Aliases make the node graph a DAG (or, with a recursive anchor, a cycle); sizes are
    counted once per distinct node, so a "billion laughs" document is refused in
    microseconds instead of being expanded.
    """
    try:
        size, _ = _measure(root, "", 1, {}, set())
    except _TooLarge as exc:
        mark = exc.node.start_mark
        raise YamlProblems(
            [Problem(filename, mark.line + 1, mark.column + 1, exc.path, exc.message)]
        ) from None
    if size > MAX_NODES:
        mark = root.start_mark
        message = (
            f"document expands to more than {MAX_NODES:,} values through its aliases "
            "(a 'billion laughs' document?); refusing to load it"
        )
        raise YamlProblems([Problem(filename, mark.line + 1, mark.column + 1, "", message)])


def _measure(
    node: yaml.Node, path: str, level: int, memo: dict[int, tuple[int, int]], active: set[int]
) -> tuple[int, int]:
    """(values after alias expansion, nesting depth) of ``node``, found at ``level``."""
    if level > MAX_DEPTH:
        raise _TooLarge(node, path, f"invalid YAML: nested more than {MAX_DEPTH} levels deep")
    if node.tag not in ALLOWED_TAGS and not isinstance(node, yaml.ScalarNode):
        raise _TooLarge(node, path, _tag_refused(node.tag))
    key = id(node)
    if key in active:
        raise _TooLarge(node, path, "invalid YAML: an alias refers to a value that contains it")
    if key in memo:
        size, depth = memo[key]
        if level + depth - 1 > MAX_DEPTH:
            raise _TooLarge(node, path, f"invalid YAML: nested more than {MAX_DEPTH} levels deep")
        return memo[key]
    children: list[tuple[yaml.Node, str]] = []
    if isinstance(node, yaml.SequenceNode):
        children = [(item, _join(path, str(i))) for i, item in enumerate(node.value)]
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            children += [(key_node, path), (value_node, _join(path, str(name)))]
    active.add(key)
    size, depth = 1, 1
    for child, child_path in children:
        child_size, child_depth = _measure(child, child_path, level + 1, memo, active)
        size += child_size
        depth = max(depth, child_depth + 1)
        if size > MAX_NODES:
            break  # already refused: no need to count the rest
    active.discard(key)
    memo[key] = (size, depth)
    return size, depth


def _tag_refused(tag: str) -> str:
    shown = tag.replace("tag:yaml.org,2002:", "!!")
    return f"YAML tag {shown!r} is not allowed: case files hold plain data, never objects"


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
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            self.problems.append(Problem(self.filename, line, column, path, _tag_refused(node.tag)))
            value = None
        return Located(value, line, column)

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
