"""Where each key and value of a TOML text is written, for the diagnostics of `spec`:
`jsonpos` for TOML. tomllib gives values without positions; `locate` walks the same text
(already accepted by tomllib) once and returns path → offsets of the key and of the value.
"""

from __future__ import annotations

import re

from compiler.base import limits
from compiler.spec.jsonpos import Offsets, PathKey


class Unclosed(Exception):
    """A string, array or inline table that the text never closes."""

    def __init__(self, kind: str, start: int) -> None:
        super().__init__(kind, start)
        self.kind = kind
        self.start = start


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?"
                       r"(?:[Zz]|[+-]\d{2}:\d{2})?)?|\d{2}:\d{2}:\d{2}(?:\.\d+)?")
_SCALAR = re.compile(r"[^\s,\]}#]+")


class TomlScanner:
    """Walks a TOML text that tomllib accepted and records, for every value, its path →
    (key start, key end, value start, value end). Tables declared by a header map to the
    header; array elements and inline tables to themselves; a dotted key's segments each
    to their own name. Multi-line values span all their lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[PathKey, Offsets] = {}
        self.last_index: dict[PathKey, int] = {}  # array of tables → its last element
        # keys given twice (only in text tomllib refuses): path, first, second
        self.duplicates: list[tuple[PathKey, Offsets, Offsets]] = []

    def scan(self, strict: bool = False) -> dict[PathKey, Offsets]:
        """The positions; on text tomllib would refuse, what was found before the problem
        (with `strict`, an unclosed string, array or inline table raises `Unclosed`)."""
        try:
            self.document()
        except Unclosed:
            if strict:
                raise
        except (IndexError, ValueError):
            pass
        return self.found

    def document(self) -> None:
        table: PathKey = ()
        while True:
            self.skip(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.text.startswith("[", self.pos):
                table = self.header()
            else:
                self.keyval(table)

    def skip(self, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t" or (newlines and c in "\r\n"):
                self.pos += 1
            elif c == "#" and newlines:
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def keys(self) -> list[tuple[str, int, int]]:
        """A dotted key: each part with its offsets."""
        parts = []
        while True:
            self.skip(newlines=False)
            start = self.pos
            c = self.text[start]
            if c in "\"'":
                self.string()
                import tomllib

                name = str(tomllib.loads("k = " + self.text[start:self.pos])["k"])
            else:
                m = _BARE_KEY.match(self.text, start)
                if m is None:
                    raise ValueError(f"no key at {start}")
                self.pos = m.end()
                name = m.group()
            parts.append((name, start, self.pos))
            self.skip(newlines=False)
            if not self.text.startswith(".", self.pos):
                return parts
            self.pos += 1

    def header(self) -> PathKey:
        start = self.pos
        array = self.text.startswith("[[", start)
        self.pos += 2 if array else 1
        parts = self.keys()
        self.pos += 2 if array else 1
        end = self.pos
        prefix: PathKey = ()
        for name, ks, ke in parts[:-1]:
            prefix = self._step(prefix, name)
            self.found.setdefault(prefix, (ks, ke, start, end))
        if array:
            path = (*prefix, parts[-1][0])
            index = self.last_index.get(path, -1) + 1
            self.last_index[path] = index
            self.found.setdefault(path, (parts[-1][1], parts[-1][2], start, end))
            table: PathKey = (*path, index)
        else:
            table = (*prefix, parts[-1][0])
        self.found[table] = (start, end, start, end)
        return table

    def _step(self, prefix: PathKey, name: str) -> PathKey:
        """One header key further (through the last element of an array of tables)."""
        path = (*prefix, name)
        return (*path, self.last_index[path]) if path in self.last_index else path

    def keyval(self, table: PathKey) -> None:
        parts = self.keys()
        self.pos += 1  # "="
        self.skip(newlines=False)
        path = table
        for name, _, _ in parts[:-1]:
            path = (*path, name)
        path = (*path, parts[-1][0])
        vstart, vend = self.value(path)
        prefix = table
        for name, ks, _ in parts[:-1]:
            prefix = (*prefix, name)
            self.found.setdefault(prefix, (ks, ks + len(name), ks, vend))
        here = (parts[-1][1], parts[-1][2], vstart, vend)
        if path in self.found:
            self.duplicates.append((path, self.found[path], here))
        self.found[path] = here

    def value(self, path: PathKey) -> tuple[int, int]:
        start = self.pos
        if len(path) > 2 * limits.MAX_DEPTH:  # text tomllib refused: `[`s that open nothing
            raise ValueError(f"nested too deep at {start}")  # valid text is checked before
        c = self.text[start]
        if c in "\"'":
            self.string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            m = _DATETIME.match(self.text, start) or _SCALAR.match(self.text, start)
            if m is None:
                raise ValueError(f"no value at {start}")
            self.pos = m.end()
        return start, self.pos

    def string(self) -> None:
        text, start = self.text, self.pos
        quote = text[start]
        if text.startswith(quote * 3, start):
            i = start + 3
            while True:
                if i >= len(text):
                    raise Unclosed("string", start)
                if quote == '"' and text[i] == "\\":
                    i += 2
                elif text.startswith(quote * 3, i):
                    end = i + 3
                    while end < len(text) and text[end] == quote and end - i < 5:
                        end += 1
                    self.pos = end
                    return
                else:
                    i += 1
        i = start + 1
        while True:
            if i >= len(text) or text[i] == "\n":
                raise Unclosed("string", start)
            if quote == '"' and text[i] == "\\":
                i += 2
            elif text[i] == quote:
                self.pos = i + 1
                return
            else:
                i += 1

    def array(self, path: PathKey) -> None:
        start = self.pos
        self.pos += 1
        index = 0
        while True:
            self.skip(newlines=True)
            if self.pos >= len(self.text):
                raise Unclosed("array", start)
            if self.text[self.pos] == "]":
                self.pos += 1
                return
            vstart, vend = self.value((*path, index))
            self.found[(*path, index)] = (vstart, vend, vstart, vend)
            index += 1
            self.skip(newlines=True)
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1

    def inline_table(self, path: PathKey) -> None:
        start = self.pos
        self.pos += 1
        while True:
            self.skip(newlines=False)
            if self.pos >= len(self.text) or self.text[self.pos] == "\n":
                raise Unclosed("inline table", start)
            if self.text[self.pos] == "}":
                self.pos += 1
                return
            self.keyval(path)
            self.skip(newlines=False)
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1


def locate(text: str) -> dict[PathKey, Offsets]:
    """Path → offsets of the key and the value of everything in a document that tomllib
    accepts (the TOML twin of `jsonpos.locate`)."""
    return TomlScanner(text).scan()
