"""The limits every text input is held to before a parser sees it, so that a hostile file is a
diagnostic and never a RecursionError or an unbounded amount of work: how deeply arrays,
tables (and TOML's dotted keys) may nest, and how many digits a number may have. The scan is
one linear pass that knows the quoting of TOML and JSON (brackets inside strings and
comments do not count). The schema language holds its parse tree to the same limits
(`lang/parse.py`, E0104).
"""

from __future__ import annotations

from typing import Literal

import attrs

from compiler.base.diagnostics import Diagnostic, error
from compiler.base.source import SourceFile

MAX_DEPTH = 64  # arrays and tables inside each other; real specs and blobs need about 8
MAX_DIGITS = 40  # digits of one number: a 128-bit value has 39

Syntax = Literal["toml", "json"]
What = Literal["depth", "digits"]


@attrs.frozen
class Excess:
    """Where the text first goes past a limit, and which."""

    offset: int
    end: int
    what: What
    limit: int


@attrs.frozen
class _Open:
    """An array or table opened and not closed yet."""

    bracket: str
    outside: int  # the depth before it opened
    inside: int  # the depth of its elements


def first_excess(text: str, syntax: Syntax) -> Excess | None:
    """The first place `text` nests deeper than MAX_DEPTH or writes a number longer than
    MAX_DIGITS digits, or None. Malformed text is left to the parser: this only looks for
    what a parser would choke on before it can say anything useful.

    In TOML a dotted key (`a.b.c = 1`, `[a.b.c]`) nests as deeply as the tables it names, so
    each dot of a key counts as a level, on top of the `[table]` the key is in."""
    toml = syntax == "toml"
    opened: list[_Open] = []
    depth = 0
    table = 0  # TOML: the depth of the current `[table]` or `[[array]]`
    key = toml  # TOML: reading a key (a line's first word, or an inline table's)
    line_start = toml  # TOML: nothing but blanks yet on this line (where a header may be)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
            continue
        if toml and c == "\n":
            if not opened:  # a new statement: a key or a header
                key, depth, line_start = True, table, True
            i += 1
            continue
        first, line_start = line_start, False
        if c == '"' or (c == "'" and toml):
            i = _string_end(text, i, syntax)
        elif toml and c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif toml and first and key and not opened and c == "[":
            i, table = _header(text, i)
            if table > MAX_DEPTH:
                return Excess(i - 1, i, "depth", MAX_DEPTH)
            key, depth = False, table
        elif toml and key and c == ".":
            depth += 1
            if depth > MAX_DEPTH:
                return Excess(i, i + 1, "depth", MAX_DEPTH)
            i += 1
        elif toml and key and c == "=":
            key = False
            i += 1
        elif c in "[{":
            if depth + 1 > MAX_DEPTH:
                return Excess(i, i + 1, "depth", MAX_DEPTH)
            opened.append(_Open(c, depth, depth + 1))
            depth += 1
            key = toml and c == "{"
            i += 1
        elif c in "]}":
            if opened:
                depth = opened.pop().outside
            key = False
            i += 1
        elif toml and c == "," and opened and opened[-1].bracket == "{":
            key, depth = True, opened[-1].inside  # the next key of the inline table
            i += 1
        elif c.isdigit() and not key:
            j, digits = i, 0
            while j < n and (text[j].isdigit() or text[j] == "_"):
                digits += text[j] != "_"
                j += 1
            if digits > MAX_DIGITS:
                return Excess(i, j, "digits", MAX_DIGITS)
            i = j
        else:
            i += 1
    return None


def _header(text: str, start: int) -> tuple[int, int]:
    """A TOML `[a.b]` or `[[a.b]]` header at `start`: the offset after its last key part (on
    its closing bracket), and the depth of the table it declares (its key parts, and the
    element of an array of tables)."""
    array = text.startswith("[[", start)
    depth = 1 + array
    i = start + 1 + array
    while i < len(text) and text[i] not in "]\n#":
        if text[i] in "\"'":
            i = _string_end(text, i, "toml")
            continue
        if text[i] == ".":
            depth += 1
            if depth > MAX_DEPTH:
                return i + 1, depth
        i += 1
    return i, depth


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


def describe(what: What, syntax: Syntax) -> tuple[str, str]:
    """The message and the help for a text past a limit."""
    if what == "depth":
        nests = "arrays, tables or dotted keys" if syntax == "toml" else "arrays and objects"
        return (f"nested too deeply: more than {MAX_DEPTH} levels of {nests} inside each "
                "other", "a spec or blob needs about 8 levels; flatten the structure")
    return (f"number too long: more than {MAX_DIGITS} digits",
            f"mschema reads numbers of up to {MAX_DIGITS} digits (a 128-bit value has 39)")


def check(source: SourceFile, syntax: Syntax) -> Diagnostic | None:
    """E1012 at the first place `source` goes past a limit, or None."""
    found = first_excess(source.text, syntax)
    if found is None:
        return None
    message, help_ = describe(found.what, syntax)
    return error("E1012", message, source.span(found.offset, found.end), help=help_)


def unsendable(text: str) -> str | None:
    """Why `text` cannot reach QEMU's command line as written, or None: a NUL character (an
    argument ends there) or a lone surrogate (not UTF-8: it reaches QEMU as some other bytes,
    or not at all)."""
    if "\0" in text:
        return "has a NUL character, which no command line carries"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not UTF-8 (it has a lone surrogate)"
    return None
