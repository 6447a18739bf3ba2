"""The loose spec (TOML, or the same structure as JSON) → `LooseSpec`, every value with the
span of the text it came from. Ends at the spec's own shape: known keys, values of the
right type and range, the values the CONTRACT fixes (disk formats, network and serial
backends, MAC addresses). Whether a value suits the machine is `plan`'s job.

tomllib and json give no positions, so the text is walked a second time, once it is known
to be valid: `_TomlScanner` here, `jsonpos` for JSON. Both map the path of every value
(keys and array indexes from the root) to the spans of its key and of the value.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from compiler.base import backends as backend_kinds
from compiler.base import cpu, limits, numa, settings
from compiler.base.diagnostics import Collector, CompileError, Diagnostic, Label, error, quote_list
from compiler.base.source import SourceFile, Span, whole_file
from compiler.lang import model
from compiler.spec import jsonpos, tomlpos
from compiler.spec.jsonpos import PathKey

ITEM_TABLES = ("disk", "cdrom", "nic", "serial", "usb", "device", "rng", "filesystem",
               "pflash")
SINGLE_TABLES = ("options", "graphics", "cpus", "boot", "rtc", "globals")
# tables of names with a scalar each: the word a message calls an entry, how to write one
SCALAR_TABLES = {
    "options": ("option", "write the options under `[options]`, e.g. `sata = false`"),
    "globals": ("global", 'write it as `[globals]`, e.g. `"ICH9-LPC.disable_s3" = 1`')}
TOP_KEYS = ("machine", "qemu", "name", "cpus", "memory", "hotplug-slots", "uuid", "placement")
# guest NUMA nodes, in node order: `[[numa]]` tables of their own (not devices)
NUMA_TABLE = "numa"
ITEM_KEYS: dict[str, tuple[str, ...]] = {
    # `bus` (a controller's or port's id) with `addr` puts an item behind a given port, as
    # `import-libvirt --precise` writes them; without it `addr` is on the root bus
    "disk": ("file", "format", "interface", "serial", "readonly", "bootindex", "id", "addr",
             "bus"),
    "cdrom": ("file", "format", "interface", "bootindex", "id", "addr", "bus"),
    "nic": ("network", "mac", "model", "bootindex", "id", "addr", "bus"),
    "serial": ("backend", "id", "bus", "addr"),
    "usb": ("device", "file", "format", "id", "bus", "addr"),
    "rng": ("backend", "model", "id", "addr", "bus"),
    # a 9p export: the host directory, the tag the guest mounts it by
    "filesystem": ("path", "tag", "model", "readonly", "security-model", "id", "addr",
                   "bus"),
    # firmware in flash: the first is the machine's pflash0 (UEFI code), the second pflash1
    "pflash": ("file", "format", "readonly", "id"),
    "device": ("type", "id", "bus", "addr", "props"),
    "graphics": ("type", "id", "addr", "bus"),
    "cpus": ("count", "maxcpus", "sockets", "cores", "threads", "model", "features"),
    "boot": settings.BOOT_KEYS,
    "rtc": settings.RTC_KEYS,
    # a guest NUMA node: its cpus (indexes and ranges) and its RAM
    "numa": ("cpus", "memory"),
}
REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "disk": (("file", 'add `file = "/var/lib/vm/disk.qcow2"`, the image on the host'),),
    "device": (("type", 'add `type = "virtio-rng-pci"`, the QEMU type of the device'),),
    "pflash": (("file", 'add `file = "/usr/share/OVMF/OVMF_CODE_4M.fd"`, the image'),),
    "numa": (("memory", 'add `memory = "1G"`, the RAM of the node'),),
    "filesystem": (("path", 'add `path = "/srv/share"`, the directory on the host'),
                   ("tag", 'add `tag = "share"`, the name the guest mounts it by')),
}
# an item in words, where its table's name is not one
ITEM_WORDS = {"numa": "NUMA node"}
DISK_FORMATS = ("qcow2", "raw")
Json = Any  # TOML/JSON values: the loader checks shapes itself


@attrs.frozen
class Value:
    """One value of the spec and where it is written (the value; the key for tables).
    A table's entries (an array's, by index as a string) are in `parts`, each with its own
    spans."""

    value: Json
    span: Span = attrs.field(eq=False, repr=False)
    key_span: Span = attrs.field(eq=False, repr=False)
    parts: Mapping[str, Value] = attrs.field(factory=dict, eq=False, repr=False)


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
    cpus_span: Span | None = attrs.field(default=None, eq=False, repr=False)
    boot: Mapping[str, Value] = attrs.field(factory=dict)  # `[boot]`: QEMU's -boot
    rtc: Mapping[str, Value] = attrs.field(factory=dict)  # `[rtc]`: QEMU's -rtc
    # `[globals]`: QEMU's -global, "TYPE.PROPERTY" → value
    globals: Mapping[str, Value] = attrs.field(factory=dict)
    numa: tuple[Item, ...] = ()  # `[[numa]]`: QEMU's -numa node, node N the N-th

    def fact_span(self, fact: str) -> Span | None:
        """Where the spec sets a spec fact (`cpus.count`, `memory`, …), if it does."""
        if fact.startswith("cpus."):
            key = fact.partition(".")[2]
            if key in self.cpus:
                return self.cpus[key].span
            if key == "count" and "cpus" in self.top:
                return self.top["cpus"].span
            if key == "maxcpus":  # QEMU's default: the count
                return self.fact_span("cpus.count")
            return self.cpus_span
        v = self.top.get(fact)
        return v.span if v is not None else None

    def option_span(self, name: str) -> Span | None:
        v = self.options.get(name)
        return v.span if v is not None else None


# ---- loading -----------------------------------------------------------------------------
def load(path: str | Path, *, fragment: bool = False) -> LooseSpec:
    """Read a `.toml` or `.json` loose spec; raise `CompileError` with every shape problem.
    A `fragment` (for `hotplug --add`) holds only items: the machine is the blob's."""
    path = Path(path)
    source = read_source(path)
    if path.suffix == ".json":
        data, where = _decode_json(source)
    else:
        data, where = _decode_toml(source)
    if not isinstance(data, dict):  # only JSON can say so: a TOML document is a table
        raise CompileError([error("E1002", f"a spec must be a JSON object, not {describe(data)}",
                                  where.get((), (source.span(0, 0),) * 2)[1],
                                  help='start from `{"machine": "pc-q35"}`')])
    return from_data(source, data, where, fragment=fragment)


def read_source(path: Path) -> SourceFile:
    """The text of an input file (a spec, a blob), CRLF as LF; E1001 when it cannot be read
    or is not UTF-8 (at the first bad byte)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CompileError([error("E1001", f"cannot read `{path}`: "
                                  f"{(exc.strerror or str(exc)).lower()}",
                                  whole_file(str(path)))]) from None
    try:
        text = raw.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        # show the text up to the bad byte, and point at it
        shown = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
        at = len(raw[:exc.start].decode("utf-8").replace("\r\n", "\n"))
        source = SourceFile.from_text(str(path), shown)
        raise CompileError([error("E1001", f"cannot read `{path}`: it is not UTF-8 "
                                  f"(byte 0x{raw[exc.start]:02x})", source.span(at, at + 1),
                                  help="save the file as UTF-8")]) from None
    return SourceFile.from_text(str(path), text)


Where = dict[PathKey, tuple[Span, Span]]


def read_toml(path: Path) -> tuple[SourceFile, Json, Where]:
    """A TOML input file (a spec, a `--policy`): its text, data and the spans of every value,
    with the spec's reading diagnostics (E1001, E1002, E1012)."""
    source = read_source(path)
    data, where = _decode_toml(source)
    return source, data, where


def _spans(source: SourceFile, offsets: Mapping[PathKey, tuple[int, int, int, int]]) -> Where:
    return {p: (source.span(ks, ke), source.span(vs, ve))
            for p, (ks, ke, vs, ve) in offsets.items()}


def _decode_json(source: SourceFile) -> tuple[Json, Where]:
    text = source.text
    if text.startswith("\ufeff"):
        raise CompileError([_bom(source, "JSON")])
    excess = limits.check(source, "json")  # before json's recursion and int() can fail
    if excess is not None:
        raise CompileError([excess])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        message = _JSON_MESSAGES.get(exc.msg, exc.msg[:1].lower() + exc.msg[1:])
        trailing = text[:exc.pos].rstrip().endswith(",") and text[exc.pos:exc.pos + 1] in "]}"
        raise CompileError([error("E1002", f"invalid JSON: {message}",
                                  source.span(exc.pos, min(exc.pos + 1, len(text))),
                                  help="JSON allows no `,` after the last entry"
                                  if trailing else None)]) from None
    offsets, duplicates = jsonpos.locate(text)
    where = _spans(source, offsets)
    if duplicates:
        raise CompileError([
            error("E1002", f"invalid JSON: key `{path[-1]}` is given twice",
                  source.span(second[0], second[1]),
                  labels=[Label(source.span(first[0], first[1]), "first given here")],
                  help="keep one of them")
            for path, first, second in duplicates])
    return data, where


_JSON_MESSAGES = {
    "Expecting property name enclosed in double quotes": "expected a key in double quotes",
    "Expecting ':' delimiter": "expected `:` after the key",
    "Expecting ',' delimiter": "expected `,` or the end of the object or array",
    "Expecting value": "expected a value",
    "Extra data": "more text after the end of the spec",
}


def _bom(source: SourceFile, language: str) -> Diagnostic:
    return error("E1002", f"invalid {language}: the file starts with a byte order mark "
                 "(U+FEFF)", source.span(0, 1), help="save the file as UTF-8 without a BOM")


def _decode_toml(source: SourceFile) -> tuple[Json, Where]:
    import tomllib

    if source.text.startswith("\ufeff"):
        raise CompileError([_bom(source, "TOML")])
    excess = limits.check(source, "toml")  # before tomllib's recursion and int() can fail
    if excess is not None:
        raise CompileError([excess])
    try:
        data = tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as exc:
        raise CompileError([_toml_error(source, str(exc))]) from None
    return data, _spans(source, tomlpos.locate(source.text))


# tomllib's messages → ours (message, help); the special cases are in `_toml_error`
_TOML_MESSAGES: tuple[tuple[str, str, str | None], ...] = (
    (r"Expected '\]' at the end of a table declaration",
     "expected `]` to close the table header", None),
    (r"Expected '\]\]' at the end of an array declaration",
     "expected `]]` to close the header of the array of tables", None),
    (r"Illegal character '\\n'", "string not closed on its line",
     "close it with the quote it starts with, or use `\"\"\"` for a multi-line string"),
    (r"Cannot declare \((.*)\) twice", "table {0} is declared twice",
     "merge the two, or write `[[…]]` for an array of tables"),
    (r"Cannot mutate immutable namespace \((.*)\)",
     "{0} is an inline table and cannot be extended",
     "put all its keys inside the braces, or write it as a `[table]`"),
    (r"Expected newline or end of document after a statement",
     "expected the end of the line after a value",
     "write one `key = value` per line; strings need quotes"),
    (r"Unclosed array", "expected `,` or `]` after an element of the array", None),
    (r"Unclosed inline table", "expected `,` or `}` after an entry of the inline table",
     "an inline table must fit on one line"),
    (r"Unterminated string", "string not closed", None),
    (r"Invalid initial character for a key part", "expected a key", None),
    (r"Invalid statement", "expected `key = value` or a `[table]` header", None),
    (r"Expected '=' after a key in a key/value pair", "expected `=` after the key", None),
)


def _toml_error(source: SourceFile, text: str) -> Diagnostic:
    """tomllib's error, in our words, at the place that explains it."""
    src = source.text
    raw = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)$", "", text)
    m = re.search(r"\(at line (\d+), column (\d+)\)$", text)
    start = len(src)
    if m:
        line = min(int(m.group(1)), src.count("\n") + 1)
        start = min(len(src), sum(len(x) + 1 for x in src.split("\n")[:line - 1])
                    + int(m.group(2)) - 1)
    labels: list[Label] = []
    message, help_ = raw[:1].lower() + raw[1:], None
    for pattern, ours, hint in _TOML_MESSAGES:
        found = re.fullmatch(pattern, raw)
        if found:
            names = ["`" + ".".join(re.findall(r"[^,' ]+", g)) + "`" for g in found.groups()]
            message, help_ = ours.replace("{0}", names[0]) if names else ours, hint
            break
    else:
        message = re.sub(r"'([^']*)'", r"`\1`", message)
    here = src[start:start + 1]  # what to underline
    scanner = tomlpos.TomlScanner(src)
    unclosed: tomlpos.Unclosed | None = None
    try:
        scanner.scan(strict=True)
    except tomlpos.Unclosed as exc:
        unclosed = exc
    closing = raw in ("Invalid value", "Unclosed array", "Unclosed inline table",
                      "Unterminated string", "Illegal character '\\n'") or (
        raw == "Invalid initial character for a key part" and here in ("\n", ""))
    if closing and unclosed is not None and unclosed.start <= start:
        start = unclosed.start
        here = src[start:].split("\n", 1)[0].rstrip() if unclosed.kind == "string" \
            else src[start]
        message, help_ = {
            "array": ("array not closed: `]` is missing", None),
            "inline table": ("inline table not closed on its line",
                             "an inline table must fit on one line"),
            "string": ("string not closed" + (" on its line" if raw.startswith("Illegal")
                                              else ""), help_),
        }[unclosed.kind]
    elif raw == "Invalid value":
        message = "expected a value"
        help_ = 'strings need quotes: `machine = "pc-q35"`' if here.strip() else None
    elif raw == "Cannot overwrite a value" or raw.startswith("Duplicate inline table key"):
        twice = [d for d in scanner.duplicates if d[1][0] <= start]
        if twice:
            path, first, second = twice[0]
            message, help_ = f"key `{path[-1]}` is given twice", "keep one of them"
            start, here = second[0], src[second[0]:second[1]]
            labels = [Label(source.span(first[0], first[1]), "first given here")]
    elif raw.startswith("Cannot mutate immutable namespace"):
        key = _key_before(src, start)
        if key is not None:
            start, here = key[1], key[0]
    elif raw.startswith("Cannot declare"):
        start = src.rfind("\n", 0, start) + 1
        here = src[start:].split("\n", 1)[0].rstrip()
    elif message == "expected a key" and here == "}" and src[:start].rstrip().endswith(","):
        help_ = "TOML allows no `,` after the last entry of an inline table"
    width = len(here) if here.strip() else 0
    return error("E1002", f"invalid TOML: {message}", source.span(start, start + width),
                 labels=labels, help=help_)


def _key_before(text: str, pos: int) -> tuple[str, int] | None:
    """The key of the `key = value` line that `pos` is on, and where it starts."""
    start = text.rfind("\n", 0, max(pos - 1, 0)) + 1 if pos else 0
    line = text[start:].split("\n", 1)[0]
    m = re.match(r'\s*((?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|'
                 r'"[^"]*"|\'[^\']*\'))*)\s*=', line)
    if m is None:
        return None
    return re.sub(r"\s+", "", m.group(1)), start + m.start(1)


# ---- shapes ------------------------------------------------------------------------------
def from_data(source: SourceFile, data: dict[str, Json], where: Where | None = None, *,
              fragment: bool = False) -> LooseSpec:
    """Check the shape of decoded spec `data`; `where` maps each value's path to its spans
    (from the scanners above; without it, the file as a whole)."""
    where = where if where is not None else {}
    diags = Collector()
    whole = source.span(0, len(source.text))

    def spans(path: PathKey) -> tuple[Span, Span]:
        while path not in where and path:
            path = path[:-1]
        return where.get(path, (whole, whole))

    def value(path: PathKey, v: Json) -> Value:
        k, s = spans(path)
        parts = ({str(key): value((*path, key), x) for key, x in v.items()}
                 if isinstance(v, dict) else
                 {str(i): value((*path, i), x) for i, x in enumerate(v)}
                 if isinstance(v, list) else {})
        return Value(v, s, k, parts)

    top: dict[str, Value] = {}
    options: dict[str, Value] = {}
    cpus: dict[str, Value] = {}
    cpus_span: Span | None = None
    boot: dict[str, Value] = {}
    rtc: dict[str, Value] = {}
    globals_: dict[str, Value] = {}
    items: list[Item] = []
    nodes: list[Item] = []
    for key, v in data.items():
        kspan, vspan = spans((key,))
        if fragment and key not in ITEM_TABLES:
            diags.error("E1011", f"a hot-plug fragment holds devices only, not `{key}`", kspan,
                        notes=[f"it takes {quote_list(ITEM_TABLES)}"],
                        help="the machine, cpus, memory and options are the blob's")
            continue
        if key in SCALAR_TABLES:  # `[options]`, `[globals]`: names → scalars
            word, how = SCALAR_TABLES[key]
            if not isinstance(v, dict):
                diags.error("E1003", f"`{key}` must be a table, not {describe(v)}", vspan,
                            help=how)
                continue
            table = {k: value((key, k), x) for k, x in v.items()}
            for k, x in table.items():
                _scalar(f"{word} `{k}`", x, diags)
            if key == "options":
                options = table
            else:
                globals_ = table
        elif key == "cpus" and isinstance(v, dict):
            cpus = _fields("cpus", value(("cpus",), v), diags)
            cpus_span = vspan
        elif key in ("boot", "rtc"):
            if not isinstance(v, dict):
                diags.error("E1003", f"`{key}` must be a table, not {describe(v)}", vspan,
                            help=f"write it as `[{key}]`, e.g. with "
                            + ("`menu = true`" if key == "boot" else '`base = "localtime"`'))
                continue
            fields = _fields(key, value((key,), v), diags)
            if key == "boot":
                boot = fields
            else:
                rtc = fields
        elif key in TOP_KEYS:
            top[key] = value((key,), v)
            _check(key, top[key], TOP_CHECKS[key], diags)
        elif key == "graphics":
            if not isinstance(v, dict):
                diags.error("E1003", f"`graphics` must be a table, not {describe(v)}", vspan,
                            help="write it as one `[graphics]` table: a machine has one")
                continue
            items.append(Item("graphics", 0, _fields("graphics", value((key,), v), diags),
                              vspan))
        elif key in (*ITEM_TABLES, NUMA_TABLE):
            if not isinstance(v, list):
                diags.error("E1003", f"`{key}` must be an array of tables, not {describe(v)}",
                            vspan, help=f"write each one as `[[{key}]]`")
                continue
            for i, x in enumerate(v):
                ispan = spans((key, i))[1]
                if not isinstance(x, dict):
                    diags.error("E1003", f"each `{key}` must be a table, not {describe(x)}",
                                ispan, help=f"write each one as `[[{key}]]`")
                    continue
                fields = _fields(key, value((key, i), x), diags)
                (nodes if key == NUMA_TABLE else items).append(Item(key, i, fields, ispan))
                for required, how in REQUIRED.get(key, ()):
                    if required not in x:
                        diags.error("E1009", f"this {ITEM_WORDS.get(key, key)} has no "
                                    f"`{required}`", ispan, help=how)
        else:
            _unknown(key, kspan, [*TOP_KEYS, *SINGLE_TABLES, *ITEM_TABLES, NUMA_TABLE],
                     "a spec", diags)
    for diagnostic in unsendable(source, data, {p: vs for p, (_ks, vs) in where.items()}):
        diags.add(diagnostic)
    if "machine" not in top and not fragment:
        diags.error("E1005", "the spec names no machine", source.span(0, 0),
                    help='add `machine = "pc-q35"` (or another machine: `mschema show`)')
    diags.check()
    items.sort(key=lambda it: (it.span.start, it.kind, it.index))
    return LooseSpec(source.path, top, options, cpus, tuple(items), whole, cpus_span, boot,
                     rtc, globals_, tuple(nodes))


def unsendable(source: SourceFile, data: Json, where: Mapping[PathKey, Span]
               ) -> list[Diagnostic]:
    """E2033 for each string (key or value) of a spec, fragment or blob that no command line
    carries as written: a NUL (exec cuts the argument there) or a lone surrogate (a `\\udc80`
    from JSON: not UTF-8, so the shell output and the argv would differ)."""
    found: list[Diagnostic] = []
    whole = source.span(0, len(source.text))

    def walk(v: Json, path: PathKey) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(k, (*path, k))
                walk(x, (*path, k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, (*path, i))
        elif isinstance(v, str) and len(found) < 50:
            problem = limits.unsendable(v)
            if problem:
                at = path
                while at not in where and at:
                    at = at[:-1]
                found.append(error("E2033", f"string {json.dumps(v)[:60]} {problem}",
                                   where.get(at, whole),
                                   help="QEMU's command line carries UTF-8 text without NUL "
                                   "characters only"))

    walk(data, ())
    return found


def suggest(name: str, known: list[str]) -> str | None:
    """`did you mean …?` for an unknown name: a known name inside it (`mac` in `macaddr`)
    or the other way round, else the closest spelling."""
    def rank(k: str) -> tuple[int, int, str]:
        return (0 if name.startswith(k) or k.startswith(name) else 1, -len(k), k)

    inside = [k for k in known if len(k) >= 3 and (k in name or name in k)]
    close = sorted(inside, key=rank)[:1] or difflib.get_close_matches(name, known, n=1)
    return f"did you mean `{close[0]}`?" if close else None


def _unknown(key: str, span: Span, known: list[str], where: str, diags: Collector) -> None:
    diags.error("E1004", f"unknown key `{key}`" + ("" if where == "a spec" else f" in {where}"),
                span, notes=[f"{where} takes {quote_list(known, limit=20)}"],
                help=suggest(key, known))


def _fields(table: str, x: Value, diags: Collector) -> dict[str, Value]:
    allowed = ITEM_KEYS.get(table, ())
    result = {}
    for k, v in x.parts.items():
        if k not in allowed:
            _unknown(k, v.key_span, list(allowed), f"`{table}`", diags)
            continue
        result[k] = v
        _check(f"{table}.{k}" if table in ("cpus", "boot", "rtc", NUMA_TABLE) else k, v,
               ITEM_CHECKS.get((table, k), _string), diags)
    return result


# The checks of single values. Each reports on `v` and returns nothing; `what` names the key.
Check = Callable[[str, Value, Collector], None]


def describe(v: Json) -> str:
    """A TOML/JSON value in words, for 'must be X, not Y'."""
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if isinstance(v, (int, float)):
        return f"`{v}`"
    if isinstance(v, str):
        return f"the string `{json.dumps(v, ensure_ascii=False)}`"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    if v is None:
        return "`null`"
    return f"a {type(v).__name__}"  # TOML's dates and times


def _is_int(v: Json) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _unquote_help(what: str, v: Json) -> str | None:
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return f"write the number without quotes: `{what.rpartition('.')[2]} = {v.strip()}`"
    return None


def _string(what: str, v: Value, diags: Collector) -> None:
    if not isinstance(v.value, str):
        quoted = f'put it in quotes: `{what} = "{v.value}"`' if _is_int(v.value) else None
        diags.error("E1003", f"`{what}` must be a string, not {describe(v.value)}", v.span,
                    help='name a machine in quotes: `machine = "pc-q35"`'
                    if what == "machine" else quoted)
    elif not v.value.strip():
        diags.error("E1006", f"`{what}` is empty", v.span)


def _release(what: str, v: Value, diags: Collector) -> None:
    """`qemu = "10.0"`: the QEMU release the spec targets, MAJOR.MINOR (E1091)."""
    from compiler.lang import model

    if not isinstance(v.value, str) or model.release_key(v.value) is None:
        diags.error("E1091", f"`{what}` must name a QEMU release, not {describe(v.value)}",
                    v.span, help='write MAJOR.MINOR in quotes: `qemu = "10.0"`')


def _bool(what: str, v: Value, diags: Collector) -> None:
    if not isinstance(v.value, bool):
        diags.error("E1003", f"`{what}` must be `true` or `false`, not {describe(v.value)}",
                    v.span)


def _integer(lowest: int) -> Check:
    def check(what: str, v: Value, diags: Collector) -> None:
        if not _is_int(v.value):
            extra = " or a table" if what == "cpus" else ""
            diags.error("E1003", f"`{what}` must be an integer{extra}, not "
                        f"{describe(v.value)}", v.span, help=_unquote_help(what, v.value))
        elif v.value < lowest:
            diags.error("E1006", f"`{what}` must be {'positive' if lowest == 1 else '0 or more'}"
                        f", not `{v.value}`", v.span)
    return check


_SIZE = re.compile(r"\s*(-?)([0-9]+)\s*([A-Za-z]*)\s*")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(what: str, v: Value, diags: Collector) -> None:
    size_help = 'write bytes, or a number with K, M, G or T (powers of 1024): `memory = "4G"`'
    x = v.value
    if _is_int(x):
        sign, size = ("-" if x < 0 else ""), abs(x)
    elif isinstance(x, str) and (m := _SIZE.fullmatch(x)):
        unit = m.group(3).upper()
        if len(m.group(2)) > limits.MAX_DIGITS:
            message, help_ = limits.describe("digits", "toml")
            diags.error("E1012", f"`{what}`: {message}", v.span, help=help_)
            return
        if unit not in _UNITS:
            diags.error("E1003", f"`{what}` has an unknown unit `{m.group(3)}`", v.span,
                        help=size_help)
            return
        sign, size = m.group(1), int(m.group(2)) * _UNITS[unit]
    else:
        diags.error("E1003", f"`{what}` must be a size, not {describe(x)}", v.span,
                    help=size_help)
        return
    if sign or size == 0:
        diags.error("E1006", f"`{what}` must be more than 0 bytes, not `{x}`", v.span,
                    help=size_help)


def _mac(what: str, v: Value, diags: Collector) -> None:
    if not isinstance(v.value, str) or not model.is_mac(v.value):
        shown = describe(v.value) if not isinstance(v.value, str) else f"`{v.value}`"
        diags.error("E1007", f"{shown} is not a MAC address", v.span,
                    help="write six hex bytes with colons, e.g. `52:54:00:12:34:56`, or leave "
                    "`mac` out to get one")
    elif model.is_multicast_mac(v.value):
        diags.error("E1007", f"`{v.value}` is a multicast MAC address", v.span,
                    notes=["the lowest bit of its first byte is set: a NIC with this address "
                           "never receives the frames sent to it"],
                    help="use a unicast address (an even first byte), e.g. "
                    "`52:54:00:12:34:56`, or leave `mac` out to get one")


def _one_of(kind: str, choices: tuple[str, ...], named: tuple[str, ...] = ()) -> Check:
    """A value from a fixed set: `choices` as such, `named` as `NAME:…` with a name."""
    expected = [f"`{c}`" for c in choices] + [f"`{n}:{_PLACEHOLDER[n]}`" for n in named]
    listed = ", ".join(expected[:-1]) + f" or {expected[-1]}"

    def check(what: str, v: Value, diags: Collector) -> None:
        if not isinstance(v.value, str):
            diags.error("E1003", f"`{what}` must be a string, not {describe(v.value)}",
                        v.span, notes=[f"expected {listed}"])
            return
        head, _, rest = v.value.partition(":")
        if v.value in choices or (head in named and rest):
            return
        if head in named:
            diags.error("E1008", f"{kind} `{v.value}` has no {_MISSING[head]}", v.span,
                        help=f"write `{head}:{_PLACEHOLDER[head]}`, e.g. "
                        f"`{head}:{_EXAMPLE[head]}`")
            return
        diags.error("E1008", f"unknown {kind} `{v.value}`", v.span, notes=[f"expected {listed}"])
    return check


_PLACEHOLDER = {"tap": "NAME", "bridge": "NAME", "file": "PATH", "socket": "PATH",
                "random": "PATH"}
_MISSING = {"tap": "tap device name", "bridge": "bridge name", "file": "file path",
            "socket": "socket path", "random": "device path"}
_EXAMPLE = {"tap": "tap0", "bridge": "br0", "file": "serial.log", "socket": "serial.sock",
            "random": "/dev/hwrng"}


def _props(what: str, v: Value, diags: Collector) -> None:
    if not isinstance(v.value, dict):
        diags.error("E1003", f"`{what}` must be a table, not {describe(v.value)}", v.span,
                    help="write `props = { name = value }`")
        return
    for k, p in v.parts.items():
        _scalar(f"property `{k}`", p, diags)


def _scalar(what: str, v: Value, diags: Collector) -> None:
    if not (isinstance(v.value, (bool, str)) or _is_int(v.value)):
        diags.error("E1003", f"{what} must be a boolean, an integer or a string, not "
                    f"{describe(v.value)}", v.span)


def _boot(what: str, v: Value, diags: Collector) -> None:
    problem = settings.boot_problem(what.partition(".")[2], v.value)
    if problem is not None:
        kind = "E1003" if problem.startswith("must be") and "between" not in problem \
            else "E1006"
        shown = f", not {describe(v.value)}" if kind == "E1003" else ""
        diags.error(kind, f"`{what}` {problem}{shown}", v.span,
                    help='drive letters in order, as QEMU\'s -boot takes them: `order = "dc"`'
                    if what == "boot.order" else None)


def _rtc(what: str, v: Value, diags: Collector) -> None:
    problem = settings.rtc_problem(what.partition(".")[2], v.value)
    if problem == "must be a string":
        diags.error("E1003", f"`{what}` must be a string, not {describe(v.value)}", v.span)
    elif problem is not None:
        diags.error("E1008", f"`{what}` {problem}, not `{v.value}`", v.span)


def _name(what: str, v: Value, diags: Collector) -> None:
    _string(what, v, diags)
    if isinstance(v.value, str) and (v.value in (".", "..") or any(c in v.value for c in "/\0")):
        diags.error("E1006", f"`{what}` must be a file name, not `{v.value}`", v.span,
                    notes=["`compile` writes its outputs to `build/NAME/`"],
                    help="leave out `/`")


def _uuid(what: str, v: Value, diags: Collector) -> None:
    problem = settings.uuid_problem(v.value)
    if problem is not None:
        diags.error("E1003", f"`{what}` {problem}, not {describe(v.value)}", v.span)


def _check(what: str, v: Value, check: Check, diags: Collector) -> None:
    if what == "cpus" and isinstance(v.value, dict):
        return
    check(what, v, diags)


TOP_CHECKS: dict[str, Check] = {
    "machine": _string,
    "qemu": _release,
    "name": _name,
    "cpus": _integer(1),
    "memory": _size,
    "hotplug-slots": _integer(0),
    "uuid": _uuid,
    "placement": _string,
}
def _cpu_model(what: str, v: Value, diags: Collector) -> None:
    problem = cpu.model_problem(v.value)
    if problem:
        shown = f"`{v.value}`" if isinstance(v.value, str) else describe(v.value)
        diags.error("E2030", f"`{what}` {shown}: {problem}", v.span,
                    help=cpu.MODEL_HELP)


def _cpu_features(what: str, v: Value, diags: Collector) -> None:
    if not isinstance(v.value, list):
        diags.error("E2031", f"`{what}` must be an array of strings, not {describe(v.value)}",
                    v.span, help='write `features = ["-hypervisor", "+pdpe1gb"]`')
        return
    for i, problem in cpu.feature_problems(v.value):
        part = v.parts.get(str(i))
        diags.error("E2031", f"`{what}`: {problem}", part.span if part else v.span,
                    help=cpu.MODEL_HELP)


def _numa_cpus(what: str, v: Value, diags: Collector) -> None:
    """A node's `cpus`: cpu indexes and ranges, `"0-3,8"` (E1040)."""
    problem = numa.parse_cpus(v.value)
    if isinstance(problem, str):
        shown = describe(v.value) if not isinstance(v.value, str) else f"`{v.value}`"
        diags.error("E1040", f"`{what}` {shown} {problem}", v.span, help=numa.CPU_LIST_HELP)


def _network(what: str, v: Value, diags: Collector) -> None:
    _one_of("network", ("user",), ("tap", "bridge"))(what, v, diags)
    head, _, name = str(v.value).partition(":")
    problem = backend_kinds.ifname_problem(name) if head in ("tap", "bridge") and name else None
    if problem:
        diags.error("E2032", f"`{v.value}`: {problem}", v.span,
                    help="Linux names interfaces with 1 to 15 bytes, without `/`, `:` or "
                    "spaces: `tap:vm01-nic0`")


ITEM_CHECKS: dict[tuple[str, str], Check] = {
    **{("cpus", k): _integer(1) for k in ("count", "maxcpus", "sockets", "cores",
                                                     "threads")},
    ("cpus", "model"): _cpu_model,
    ("cpus", "features"): _cpu_features,
    **{(t, "bootindex"): _integer(0) for t in ("disk", "cdrom", "nic")},
    ("disk", "readonly"): _bool,
    **{(t, "format"): _one_of(f"{t} format", DISK_FORMATS)
       for t in ("disk", "cdrom", "usb", "pflash")},
    # the host's entropy: /dev/urandom, or `random:PATH` for another source
    ("rng", "backend"): _one_of("rng backend", ("random",), ("random",)),
    ("filesystem", "readonly"): _bool,
    ("pflash", "readonly"): _bool,
    ("filesystem", "security-model"): _one_of("security model",
                                              backend_kinds.FSDEV_SECURITY_MODELS),
    ("nic", "network"): _network,
    ("nic", "mac"): _mac,
    ("serial", "backend"): _one_of("serial backend", ("pty", "null"), ("file", "socket")),
    ("device", "props"): _props,
    ("numa", "cpus"): _numa_cpus,
    ("numa", "memory"): _size,
    **{("boot", k): _boot for k in settings.BOOT_KEYS},
    **{("rtc", k): _rtc for k in settings.RTC_KEYS},
}
