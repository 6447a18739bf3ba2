"""Where each key and value of a JSON text is written, for the diagnostics of `spec`.

`json.loads` gives values without positions; `locate` walks the same text (already accepted
by `json.loads`) once and returns, for every value, its path from the root (object keys and
array indexes) → the offsets of its key and of the value. Offsets, not spans: this module
knows nothing of source files. Duplicate keys, which `json.loads` silently collapses to the
last one, are returned so the caller can refuse them.
"""

from __future__ import annotations

import json
import re

PathKey = tuple[str | int, ...]
# key start, key end, value start, value end (half-open character offsets); for array
# elements and the root, the "key" is the value itself
Offsets = tuple[int, int, int, int]

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(r"-?(?:Infinity|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|true|false|null|NaN")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[PathKey, Offsets] = {}
        self.duplicates: list[tuple[PathKey, Offsets, Offsets]] = []

    def skip(self) -> None:
        m = _WS.match(self.text, self.pos)
        self.pos = m.end() if m else self.pos

    def value(self, path: PathKey) -> tuple[int, int]:
        self.skip()
        start = self.pos
        c = self.text[start]
        if c == "{":
            self.members(path)
        elif c == "[":
            self.elements(path)
        elif c == '"':
            self.string()
        else:
            m = _SCALAR.match(self.text, start)
            if m is None:
                raise ValueError(f"unexpected {c!r} at {start}")
            self.pos = m.end()
        return start, self.pos

    def string(self) -> str:
        m = _STRING.match(self.text, self.pos)
        if m is None:
            raise ValueError(f"unterminated string at {self.pos}")
        self.pos = m.end()
        text: str = json.loads(m.group())
        return text

    def expect(self, char: str) -> None:
        self.skip()
        if self.text[self.pos] != char:
            raise ValueError(f"expected {char!r} at {self.pos}")
        self.pos += 1

    def members(self, path: PathKey) -> None:
        self.expect("{")
        self.skip()
        if self.text[self.pos] == "}":
            self.pos += 1
            return
        while True:
            self.skip()
            kstart = self.pos
            key = self.string()
            kend = self.pos
            self.expect(":")
            vstart, vend = self.value((*path, key))
            here = (kstart, kend, vstart, vend)
            first = self.found.get((*path, key))
            if first is not None:
                self.duplicates.append(((*path, key), first, here))
            else:
                self.found[(*path, key)] = here
            self.skip()
            c = self.text[self.pos]
            self.pos += 1
            if c == "}":
                return
            if c != ",":
                raise ValueError(f"expected ',' or '}}' at {self.pos - 1}")

    def elements(self, path: PathKey) -> None:
        self.expect("[")
        self.skip()
        if self.text[self.pos] == "]":
            self.pos += 1
            return
        index = 0
        while True:
            start, end = self.value((*path, index))
            self.found[(*path, index)] = (start, end, start, end)
            index += 1
            self.skip()
            c = self.text[self.pos]
            self.pos += 1
            if c == "]":
                return
            if c != ",":
                raise ValueError(f"expected ',' or ']' at {self.pos - 1}")


def locate(text: str) -> tuple[dict[PathKey, Offsets], list[tuple[PathKey, Offsets, Offsets]]]:
    """(path → offsets of every value, and the keys given twice: path, first, second).

    `text` must be JSON that `json.loads` accepts; on anything else the result holds what
    was found before the problem (positions are a help for diagnostics, never a parser)."""
    scanner = _Scanner(text)
    try:
        start, end = scanner.value(())
        scanner.found[()] = (start, end, start, end)
    except (ValueError, IndexError):
        pass
    return scanner.found, scanner.duplicates
