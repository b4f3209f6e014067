"""Name patterns for --case and known divergences: ``*`` and ``?`` are the only wildcards.

Brackets are literal, unlike fnmatch's character classes, because matrix variant names
contain them: ``optim[dtype=float64]`` must match itself.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def matches(name: str, pattern: str) -> bool:
    """Whether ``name`` matches ``pattern`` as a whole."""
    return _compile(pattern).fullmatch(name) is not None
