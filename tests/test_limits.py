"""`compiler/base/limits.py`: the scan that finds where a TOML or JSON text goes past
mschema's limits (nesting, digits) before a parser can recurse or `int()` refuse."""

from __future__ import annotations

import pytest

from compiler.base.limits import MAX_DEPTH, MAX_DIGITS, first_excess


def deep(n: int) -> str:
    return "[" * n + "]" * n


def dotted(n: int) -> str:
    return ".".join(["a"] * n)


CASES = [
    # (syntax, text, what is past a limit, or None)
    ("toml", "machine = 'pc-q35'\n", None),
    ("toml", f"x = {deep(MAX_DEPTH)}\n", None),
    ("toml", f"x = {deep(MAX_DEPTH + 1)}\n", "depth"),
    ("toml", f"x = [\n{'[' * MAX_DEPTH}\n{']' * MAX_DEPTH}\n]\ny = 1\n", "depth"),
    # a dotted key nests as deeply as the tables it names: each dot is a level
    ("toml", f"{dotted(MAX_DEPTH + 1)} = 1\n", None),
    ("toml", f"{dotted(MAX_DEPTH + 2)} = 1\n", "depth"),
    ("toml", f"[{dotted(MAX_DEPTH)}]\nb = 1\n", None),
    ("toml", f"[{dotted(MAX_DEPTH + 1)}]\nb = 1\n", "depth"),
    ("toml", f"[{dotted(MAX_DEPTH)}]\nb.c = 1\n", "depth"),
    ("toml", f"[{dotted(60)}]\nb = 1\n[x]\n{dotted(60)} = 1\n", None),  # a header resets
    ("toml", "x = {" + "a." * (MAX_DEPTH + 1) + "b = 1}\n", "depth"),
    ("toml", "x = {" + ", ".join(f"a{i}.b.c = 1" for i in range(70)) + "}\n", None),
    ("toml", f"m{deep(MAX_DEPTH + 1)}\n", "depth"),  # not a header: mid-line, still nests
    # brackets in strings and comments do not count
    ("toml", f"x = \"{'[' * 100}\"\n", None),
    ("toml", f"x = '{'[' * 100}'\n", None),
    ("toml", f"x = '''\n{'[' * 100}'''\n", None),
    ("toml", f"# {'[' * 100}\nx = 1\n", None),
    ("toml", f"x = {'9' * MAX_DIGITS}\n", None),
    ("toml", f"x = {'9' * (MAX_DIGITS + 1)}\n", "digits"),
    ("toml", f"x = 1_{'9' * (MAX_DIGITS - 1)}\n", None),  # underscores are no digits
    ("toml", f"a{'9' * 50} = 1\n", None),  # a key, not a number
    ("json", f'{{"a": {deep(MAX_DEPTH - 1)}}}', None),
    ("json", f'{{"a": {deep(MAX_DEPTH)}}}', "depth"),
    ("json", f'{{"a": "{"[" * 100}"}}', None),
    ("json", f'{{"a": "\\"{"[" * 100}"}}', None),
    ("json", f'{{"a": {"9" * (MAX_DIGITS + 1)}}}', "digits"),
    ("json", f'{{"{"9" * (MAX_DIGITS + 1)}": 1}}', None),
]


@pytest.mark.parametrize(("syntax", "text", "what"), CASES)
def test_first_excess(syntax: str, text: str, what: str | None) -> None:
    found = first_excess(text, syntax)  # type: ignore[arg-type]
    assert (found.what if found else None) == what


def test_the_place_is_the_first_bracket_past_the_limit() -> None:
    text = '{"a": ' + deep(100) + "}"
    found = first_excess(text, "json")
    assert found is not None
    assert (found.offset, found.end) == (6 + MAX_DEPTH - 1, 6 + MAX_DEPTH)


def test_the_scan_is_linear() -> None:
    # a megabyte of nesting and of digits is scanned, not parsed
    assert first_excess("x = " + "[" * 1_000_000, "toml") is not None
    assert first_excess("[" + "1," * 500_000 + "1]", "json") is None
