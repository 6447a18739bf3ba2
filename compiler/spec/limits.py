"""The limits every text input is held to before a parser sees it, so that a hostile file is a
diagnostic and never a RecursionError or an unbounded amount of work: how deeply arrays and
tables may nest, and how many digits a number may have. The scan is one linear pass that
knows the quoting of TOML and JSON (brackets inside strings and comments do not count).
"""

from __future__ import annotations

from typing import Literal

import attrs

MAX_DEPTH = 64  # arrays and tables inside each other; real specs and blobs need about 8
MAX_DIGITS = 40  # digits of one number: a 128-bit value has 39

Syntax = Literal["toml", "json"]


@attrs.frozen
class Excess:
    """Where the text first goes past a limit, and which."""

    offset: int
    end: int
    what: Literal["depth", "digits"]
    limit: int


def first_excess(text: str, syntax: Syntax) -> Excess | None:
    """The first place `text` nests deeper than MAX_DEPTH or writes a number longer than
    MAX_DIGITS digits, or None. Malformed text is left to the parser: this only looks for
    what a parser would choke on before it can say anything useful."""
    depth = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return Excess(i, i + 1, "depth", MAX_DEPTH)
            i += 1
        elif c in "]}":
            depth = max(0, depth - 1)
            i += 1
        elif c == '"' or (c == "'" and syntax == "toml"):
            i = _string_end(text, i, syntax)
        elif c == "#" and syntax == "toml":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c.isdigit():
            j = i
            while j < n and (text[j].isdigit() or text[j] == "_"):
                j += 1
            if j - i > MAX_DIGITS:
                return Excess(i, j, "digits", MAX_DIGITS)
            i = max(j, i + 1)
        else:
            i += 1
    return None


def _string_end(text: str, start: int, syntax: Syntax) -> int:
    """The offset just past the string starting at `start` (or the end of the text)."""
    quote = text[start]
    if syntax == "toml" and text.startswith(quote * 3, start):
        end = text.find(quote * 3, start + 3)
        return len(text) if end < 0 else end + 3
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and quote == '"':
            i += 2
            continue
        if c == quote or (c == "\n" and syntax == "toml"):
            return i + 1
        i += 1
    return len(text)
