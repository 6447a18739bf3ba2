"""The loose spec (TOML, or the same structure as JSON) → `LooseSpec`, every value with the
span of the text it came from. Ends at the spec's own shape: whether a value suits the
machine is `expand`'s job.

tomllib gives no positions, so `_locate` scans the text once for table headers and
`key = value` lines and maps each (table, index, key) to the spans of the key and value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .diagnostics import Collector, CompileError, error, quote_list
from .source import SourceFile, Span, whole_file

ITEM_TABLES = ("disk", "cdrom", "nic", "serial", "usb", "device", "rng")
SINGLE_TABLES = ("options", "graphics", "cpus")
TOP_KEYS = ("machine", "name", "cpus", "memory", "hotplug-slots")
ITEM_KEYS: dict[str, tuple[str, ...]] = {
    "disk": ("file", "format", "interface", "serial", "readonly", "bootindex", "id", "addr"),
    "cdrom": ("file", "interface", "bootindex", "id", "addr"),
    "nic": ("network", "mac", "model", "bootindex", "id", "addr"),
    "serial": ("backend", "id"),
    "usb": ("device", "file", "id"),
    "rng": ("backend", "model", "id", "addr"),
    "device": ("type", "id", "bus", "addr", "props"),
    "graphics": ("type", "id", "addr"),
    "cpus": ("count", "sockets", "cores", "threads", "model"),
}
Json = Any  # TOML/JSON values: the loader checks shapes itself


@attrs.frozen
class Value:
    """One value of the spec and where it is written (the value; the key for tables)."""

    value: Json
    span: Span = attrs.field(eq=False, repr=False)
    key_span: Span = attrs.field(eq=False, repr=False)


@attrs.frozen
class Item:
    """One `[[disk]]`, `[[nic]]`, … (or the `[graphics]` table), in file order."""

    kind: str
    index: int
    fields: Mapping[str, Value]
    span: Span = attrs.field(eq=False, repr=False)

    def get(self, key: str) -> Json:
        v = self.fields.get(key)
        return None if v is None else v.value


@attrs.frozen
class LooseSpec:
    path: str
    top: Mapping[str, Value]
    options: Mapping[str, Value]
    cpus: Mapping[str, Value]
    items: tuple[Item, ...]
    span: Span = attrs.field(eq=False, repr=False)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^\s*("?)([A-Za-z0-9_-]+)\1\s*=\s*')


def _locate(source: SourceFile) -> dict[tuple[str, int, str], tuple[Span, Span]]:
    """(table, index, key) → (key span, value span); the top level is table ''."""
    where: dict[tuple[str, int, str], tuple[Span, Span]] = {}
    counts: dict[str, int] = {}
    table, index = "", 0
    offset = 0
    for line in source.text.splitlines(keepends=True):
        header = _HEADER.match(line)
        if header:
            table = header.group(2)
            if header.group(1) == "[[":
                index = counts.get(table, 0)
                counts[table] = index + 1
            else:
                index = 0
            where[(table, index, "")] = (source.span(offset, offset + len(line.rstrip())),) * 2
        else:
            key = _KEY.match(line)
            if key:
                kstart = offset + key.start(2)
                vstart = offset + key.end()
                value_text = line[key.end():].split(" #")[0].rstrip()
                where[(table, index, key.group(2))] = (
                    source.span(kstart, kstart + len(key.group(2))),
                    source.span(vstart, vstart + max(1, len(value_text))))
        offset += len(line)
    return where


def load(path: str | Path) -> LooseSpec:
    """Read a `.toml` or `.json` loose spec; raise `CompileError` with every shape problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CompileError([error("E1001", f"cannot read `{path}`: {reason.lower()}",
                                  whole_file(str(path)))]) from None
    source = SourceFile.from_text(str(path), text)
    data = _decode(source, path.suffix)
    return from_data(source, data)


def _decode(source: SourceFile, suffix: str) -> dict[str, Json]:
    if suffix == ".json":
        try:
            data = json.loads(source.text)
        except json.JSONDecodeError as exc:
            span = source.span(exc.pos, exc.pos + 1)
            raise CompileError([error("E1002", f"invalid JSON: {exc.msg.lower()}", span)]) \
                from None
    else:
        import tomllib

        try:
            data = tomllib.loads(source.text)
        except tomllib.TOMLDecodeError as exc:
            raise CompileError([_toml_error(source, exc)]) from None
    if not isinstance(data, dict):
        raise CompileError([error("E1002", "a spec is a table of keys", source.span(0, 1))])
    return data


def _toml_error(source: SourceFile, exc: Exception) -> Any:
    m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
    message = re.sub(r"\s*\(at line.*\)$", "", str(exc)).lower()
    if m:
        line, col = int(m.group(1)), int(m.group(2))
        line = min(line, source.text.count("\n") + 1)
        start = sum(len(x) + 1 for x in source.text.split("\n")[:line - 1]) + col - 1
        start = min(start, len(source.text))
        span = source.span(start, min(start + 1, len(source.text)))
    else:
        span = source.span(0, 0)
    return error("E1002", f"invalid TOML: {message}", span)


def from_data(source: SourceFile, data: dict[str, Json]) -> LooseSpec:
    where = _locate(source)
    diags = Collector()
    whole = source.span(0, len(source.text))

    def spans(table: str, index: int, key: str) -> tuple[Span, Span]:
        return where.get((table, index, key)) or where.get((table, index, "")) or (whole, whole)

    def value(table: str, index: int, key: str, v: Json) -> Value:
        k, s = spans(table, index, key)
        return Value(v, s, k)

    top: dict[str, Value] = {}
    options: dict[str, Value] = {}
    cpus: dict[str, Value] = {}
    items: list[Item] = []
    for key, v in data.items():
        kspan, _ = spans("", 0, key)
        if key == "options":
            if not isinstance(v, dict):
                diags.error("E1003", "`options` must be a table", kspan)
                continue
            options = {k: value("options", 0, k, x) for k, x in v.items()}
        elif key == "cpus" and isinstance(v, dict):
            cpus = _fields("cpus", 0, v, value, spans, diags)
        elif key in TOP_KEYS:
            top[key] = value("", 0, key, v)
        elif key == "graphics":
            if not isinstance(v, dict):
                diags.error("E1003", "`graphics` must be a table", kspan)
                continue
            items.append(Item("graphics", 0, _fields("graphics", 0, v, value, spans, diags),
                              spans("graphics", 0, "")[0]))
        elif key in ITEM_TABLES:
            if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
                diags.error("E1003", f"`{key}` must be an array of tables", kspan,
                            help=f"write each one as `[[{key}]]`")
                continue
            for i, x in enumerate(v):
                items.append(Item(key, i, _fields(key, i, x, value, spans, diags),
                                  spans(key, i, "")[0]))
        else:
            known = [*TOP_KEYS, *SINGLE_TABLES, *ITEM_TABLES]
            diags.error("E1004", f"unknown key `{key}`", kspan,
                        notes=[f"a spec has {quote_list(known)}"])
    if "machine" not in top:
        diags.error("E1005", "the spec names no machine", source.span(0, 0),
                    help='add `machine = "pc-q35"` (or another machine: `mschema show`)')
    diags.check()
    items.sort(key=lambda it: (it.span.start, it.kind, it.index))
    return LooseSpec(source.path, top, options, cpus, tuple(items), whole)


def _fields(table: str, index: int, x: dict[str, Json], value: Any, spans: Any,
            diags: Collector) -> dict[str, Value]:
    allowed = ITEM_KEYS.get(table, ())
    result = {}
    for k, v in x.items():
        if k not in allowed:
            diags.error("E1004", f"unknown key `{k}` in `{table}`", spans(table, index, k)[0],
                        notes=[f"`{table}` takes {quote_list(allowed)}"])
            continue
        result[k] = value(table, index, k, v)
    return result
