"""The stdlib feedparser's boundary pattern, without compiling a regular expression per message.

`email.feedparser` compiles `(?P<sep>--BOUNDARY)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>...)?$`
for every multipart it meets. A boundary is unique to its message, so `re`'s cache never
helps and each signed or attached mail paid for a fresh compile (sre's compiler is Python):
about a tenth of analysing a mail with one attachment. The boundary is a literal prefix, so
the same match is `line.startswith(separator)` plus one pattern for the rest, compiled once.

`install()` gives the feedparser module a stand-in for `re` whose `compile` returns that
matcher for exactly the stdlib's boundary pattern (the escaped separator must round-trip
through `re.escape`) and is `re.compile` for anything else, so a different Python whose
pattern differs simply keeps its own. tests/mailparse/test_mp_boundary.py compares the
answers with the stdlib's own pattern.
"""

from __future__ import annotations

import email.feedparser
import re
from typing import Any

_PREFIX = "(?P<sep>"
_SUFFIX = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_TAIL = re.compile(_SUFFIX[1:])
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_GROUPS = {"sep": 1, "end": 2, "ws": 3, "linesep": 4}


class BoundaryMatch:
    """The parts of `re.Match` the feedparser reads: `group(...)` by name or number."""

    __slots__ = ("_line", "_sep", "_tail")

    def __init__(self, line: str, sep: str, tail: re.Match[str]) -> None:
        self._line, self._sep, self._tail = line, sep, tail

    def group(self, *which: int | str) -> Any:
        if len(which) > 1:
            return tuple(self._one(w) for w in which)
        return self._one(which[0] if which else 0)

    def _one(self, which: int | str) -> str | None:
        n = _GROUPS[which] if isinstance(which, str) else which
        if n == 0:
            return self._line[: self._tail.end()]
        if n == 1:
            return self._sep
        return self._tail.group(n - 1)


class BoundaryPattern:
    """Matches what the stdlib's compiled boundary pattern matches, from the line's start."""

    __slots__ = ("separator",)

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> BoundaryMatch | None:
        if not line.startswith(self.separator):
            return None
        tail = _TAIL.match(line, len(self.separator))
        return None if tail is None else BoundaryMatch(line, self.separator, tail)


def boundary_pattern(pattern: str) -> BoundaryPattern | None:
    """The matcher for the stdlib's boundary pattern, or None for any other pattern."""
    if not (pattern.startswith(_PREFIX) and pattern.endswith(_SUFFIX)):
        return None
    escaped = pattern[len(_PREFIX) : -len(_SUFFIX)]
    separator = _ESCAPED.sub(r"\1", escaped)
    return BoundaryPattern(separator) if re.escape(separator) == escaped else None


class _ReForFeedparser:
    """`re`, except that `compile` of a boundary pattern gives a `BoundaryPattern`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    @staticmethod
    def compile(pattern: Any, flags: int = 0) -> Any:
        if flags == 0 and isinstance(pattern, str):
            found = boundary_pattern(pattern)
            if found is not None:
                return found
        return re.compile(pattern, flags)


def install() -> None:
    email.feedparser.re = _ReForFeedparser()  # type: ignore[attr-defined]
