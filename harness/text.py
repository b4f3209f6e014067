"""Text the harness does not control, made safe for where it is written.

Case names, known-divergence ids and reasons, file paths, and the details of a crash (an
adapter's exception message) reach summary.md, junit.xml, report.html and the terminal.
Each target has its own escaping, and every writer of user text calls one of these:

- ``markdown``/``markdown_code``: summary.md (HTML-escaped, ``|`` and backticks escaped,
  one line);
- ``xml``: junit.xml (only characters XML 1.0 allows);
- ``html``: report.html (HTML-escaped, control characters visible);
- ``terminal`` for one field (one line), and ``safe_output`` for everything the command
  line prints: no control character or escape sequence reaches the terminal, and a
  stream that cannot encode a character (``PYTHONIOENCODING=ascii``) writes an escape
  instead of raising.

A control character is replaced visibly, never dropped: C0 controls and DEL by their
Control Pictures (ESC → ␛, NUL → ␀), C1 controls, lone surrogates, the two
noncharacters XML forbids and the bidirectional overrides by U+FFFD.
"""

from __future__ import annotations

import contextlib
import html as _html
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# C0 controls, DEL, C1 controls, the bidirectional marks, overrides and isolates (they
# reorder what a reader sees: "Trojan Source"), and lone surrogates (no encoding has them).
_OTHERS = "\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_CONTROL = re.compile(f"[\x00-\x1f{_OTHERS}]")
# What may not reach a terminal: all of those but newline and tab.
_NOT_PRINTED = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHERS}]")
# Not an XML 1.0 Char (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]),
# and the controls XML allows but a reader of junit.xml should see (C1, bidi, CR).
_NOT_XML = re.compile(
    "[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
    "|[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_LINE_BREAK = re.compile("\r\n|[\r\n\t\x0b\x0c\x85\u2028\u2029]")
_BACKTICKS = re.compile("`+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD: a table (Arrow, UTF-8 files)
    cannot hold one, and an adapter's exception message may."""
    return _SURROGATE.sub("\ufffd", text)


def visible(char: str) -> str:
    """The visible stand-in of one control character (``\\x1b`` → ``␛``)."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def _visible(match: re.Match[str]) -> str:
    return visible(match.group())


def one_line(text: object) -> str:
    """``text`` on one line, every control character visible (line breaks become spaces)."""
    return _CONTROL.sub(_visible, _LINE_BREAK.sub(" ", str(text)))


def terminal(text: object) -> str:
    """One field for the terminal: one line, no control character or escape sequence."""
    return one_line(text)


def markdown(text: object) -> str:
    """Inline Markdown text (a table cell, a list item) that renders as ``text`` itself.

    HTML special characters become entities, so no tag or attribute survives; ``\\``,
    ``|`` and backticks are backslash-escaped, so no cell ends and no code span starts;
    ``](`` is broken, so no link or image is made; line breaks become spaces, so no row
    or block is added.
    """
    line = one_line(text).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    return _html.escape(line, quote=False).replace("](", "]\\(")


def markdown_code(text: object) -> str:
    """``text`` as a Markdown code span, fenced by more backticks than it holds."""
    line = one_line(text)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(line)), default=0) + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{fence}{pad}{line}{pad}{fence}"


def code_fence(lines: list[str]) -> str:
    """A fence for a Markdown code block holding ``lines``: longer than any backtick run."""
    longest = max((len(run) for line in lines for run in _BACKTICKS.findall(line)), default=0)
    return "`" * max(3, longest + 1)


def xml(text: object) -> str:
    """``text`` with every character XML 1.0 forbids (and C1, bidi, CR) made visible.

    ElementTree escapes ``<``, ``&`` and quotes itself; it writes a control character as
    it is, which makes the document not well-formed.
    """
    return _NOT_XML.sub(_visible, str(text))


def html(text: object) -> str:
    """``text`` for an HTML page: escaped, control characters but newline and tab visible."""
    return _html.escape(printable(str(text)))


def printable(text: str) -> str:
    """``text`` as printed: controls other than newline and tab made visible."""
    return _NOT_PRINTED.sub(_visible, text)


class SafeStream:
    """A text stream that makes every control character visible before writing it.

    ``raw`` is the stream below, for the progress display's own cursor movements (it makes
    its user text safe with ``terminal``).
    """

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        safe = printable(text)
        encoding = getattr(self.raw, "encoding", None)
        if encoding:  # a character the stream cannot encode is written as an escape
            safe = safe.encode(encoding, "backslashreplace").decode(encoding, "replace")
        self.raw.write(safe)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def unfiltered(stream: TextIO) -> TextIO:
    """The stream below a ``SafeStream`` (or ``stream`` itself)."""
    return stream.raw if isinstance(stream, SafeStream) else stream


@contextlib.contextmanager
def safe_output() -> Iterator[None]:
    """sys.stdout and sys.stderr as ``SafeStream`` for the duration, then as they were.

    The real streams also escape what they cannot encode (``errors="backslashreplace"``),
    so output written past the wrappers (the progress bars, a worker) cannot raise either.
    """
    saved = sys.stdout, sys.stderr
    for stream in saved:
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):
                reconfigure(errors="backslashreplace")
    sys.stdout, sys.stderr = SafeStream(saved[0]), SafeStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
