"""Name patterns for --case and known divergences: ``*`` and ``?`` are the only wildcards.

Brackets are literal, unlike fnmatch's character classes, because matrix variant names
contain them: ``optim[dtype=float64]`` must match itself.

A pattern is matched without backtracking, in time linear in the name for each piece
between stars: the pieces have fixed lengths, so placing each at its leftmost
occurrence after the previous one is always right. (A regular expression ``.*a.*a...b``
backtracks: ``*a*a*a*a*a*a*a*a*a*b`` against 50 ``a`` took a minute, with signals held.)
"""

from __future__ import annotations

import re
from functools import lru_cache


def matches(name: str, pattern: str) -> bool:
    """Whether ``name`` matches ``pattern`` as a whole."""
    first, *rest = pattern.split("*")
    if not rest:  # no star: the lengths agree and every character matches
        return len(name) == len(first) and _at(name, 0, first)
    *middle, last = rest
    end = len(name) - len(last)
    if end < len(first) or not (_at(name, 0, first) and _at(name, end, last)):
        return False
    position = len(first)
    for piece in middle:
        if piece:
            found = _find(name, piece, position, end)
            if found < 0:
                return False
            position = found + len(piece)
    return True


def _at(name: str, start: int, piece: str) -> bool:
    """Whether ``piece`` (``?`` matching any one character) is at ``start`` of ``name``."""
    if "?" not in piece:
        return name.startswith(piece, start)
    return start + len(piece) <= len(name) and all(
        p in ("?", c) for p, c in zip(piece, name[start : start + len(piece)], strict=True)
    )


def _find(name: str, piece: str, start: int, end: int) -> int:
    """The leftmost index >= ``start`` where ``piece`` occurs ending by ``end``; -1 if none."""
    if "?" not in piece:
        return name.find(piece, start, end)
    found = _piece_regex(piece).search(name, start, end)  # literals and dots: no backtracking
    return found.start() if found else -1


@lru_cache(maxsize=1024)
def _piece_regex(piece: str) -> re.Pattern[str]:
    return re.compile("".join("." if c == "?" else re.escape(c) for c in piece), re.DOTALL)
