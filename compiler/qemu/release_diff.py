"""`mschema qemu-diff`: does a machine version build the same guest on two QEMU binaries?

"Machine types have to stay the same forever": `pc-q35-7.1` on QEMU 10.0 must be
`pc-q35-7.1` on QEMU 7.2. Both binaries build the machine as `mschema show` describes it
(`-nodefaults`, the options given); what they built is compared device by device (bus, type,
address), prop by prop (every qdev prop `info qtree` shows), and, for machines whose guest
reads a device tree (`quirk dumpdtb`), node by node. Each difference points at the schema
line that states the value (a `compat` line of the version, the stdlib's `prop`, the
machine's device) or, for a prop the stdlib does not declare, at the device type.

A prop only one binary has is a new (or removed) knob, listed apart: QEMU keeps old machine
versions stable by compat props, so a new prop is not a difference by itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import attrs

from compiler.base.source import Span
from compiler.build import tree
from compiler.lang import model
from compiler.qemu import compare, process

NONE = "(none)"


@attrs.frozen
class Difference:
    category: str  # device, prop, undeclared-prop, new-prop, fdt
    subject: str
    a: str
    b: str
    span: Span | None = attrs.field(eq=False)

    @property
    def counts(self) -> bool:
        """A difference the guest can see (a knob that only one binary has is not)."""
        return self.category != "new-prop"

    def message(self) -> str:
        return f"{self.category} {self.subject}: {self.a} → {self.b}"

    def text(self) -> str:
        return (f"{self.span}: " if self.span is not None else "") + self.message()

    def as_json(self) -> dict[str, object]:
        span = self.span
        return {"path": span.path if span else None, "line": span.line if span else None,
                "col": span.col if span else None, "category": self.category,
                "subject": self.subject, "a": self.a, "b": self.b,
                "counts": self.counts, "message": self.message()}


@attrs.frozen
class Built:
    """What one binary built: its version, devices by place, and its device tree."""

    version: str
    devices: Mapping[tuple[str, str, str], process.QtreeDevice]  # (bus, type, address)
    dtb: bytes | None


def build(argv: Sequence[str], notations: compare.BusInfo, dumpdtb: bool,
          timeout: float) -> Built:
    """Start `argv` paused and read what it built."""
    result = process.query(argv, hmp=("info qtree",), qmp=[("query-version", {})],
                           timeout=timeout)
    version = result.qmp[0]
    qemu = version.get("qemu", {}) if isinstance(version, dict) else {}
    text = ".".join(str(qemu.get(k, "?")) for k in ("major", "minor", "micro"))
    devices: dict[tuple[str, str, str], process.QtreeDevice] = {}
    for bus, device in process.walk(process.parse_qtree(result.hmp[0])):
        addr = compare.qtree_addr(notations.notation(notations.kind(bus.type)), device)
        key = (bus.name, device.type, addr or "")
        n = 1
        while key in devices:  # two alike on a bus without addresses
            n += 1
            key = (bus.name, device.type, f"#{n}")
        devices[key] = device
    dtb = process.dump_dtb(argv, timeout=timeout) if dumpdtb else None
    return Built(text, devices, dtb)


def diff(schema: model.MachineSchema, library: model.Library, machine: tree.Machine,
         a: Built, b: Built) -> list[Difference]:
    """Every difference from what binary A built to what binary B built."""
    spans = _SpanFinder(schema, library, machine)
    out: list[Difference] = []
    for key in sorted(a.devices.keys() | b.devices.keys()):
        bus, dtype, addr = key
        where = f"`{dtype}` on `{bus}`" + (f" at {addr}" if addr else "")
        da, db = a.devices.get(key), b.devices.get(key)
        if da is None or db is None:
            out.append(Difference("device", where, "built" if da else NONE,
                                  "built" if db else NONE, spans.device(dtype)))
            continue
        out.extend(_props(where, dtype, da, db, spans))
    if a.dtb is not None and b.dtb is not None:
        from compiler.qemu import fdt_check

        for c in fdt_check.tree_changes(fdt_check.read_dtb(a.dtb), fdt_check.read_dtb(b.dtb),
                                        fdt_check.random_props(schema)):
            subject = f"`{c.path}`" + (f" `{c.prop}`" if c.prop else f" {c.what}")
            va = NONE if c.a is None else fdt_check.show(c.a) if c.a else "present"
            vb = NONE if c.b is None else fdt_check.show(c.b) if c.b else "present"
            out.append(Difference("fdt", subject, va, vb, schema.span))
    return out


def _props(where: str, dtype: str, a: process.QtreeDevice, b: process.QtreeDevice,
           spans: _SpanFinder) -> Iterator[Difference]:
    pa, pb = dict(a.props), dict(b.props)
    declared = spans.declared(dtype)
    for name in sorted(pa.keys() | pb.keys()):
        va, vb = pa.get(name), pb.get(name)
        if va is not None and vb is not None and compare.qtree_value(va) == \
                compare.qtree_value(vb):
            continue
        subject = f"{where} `{name}`"
        if va is None or vb is None:
            yield Difference("new-prop", subject, va or NONE, vb or NONE, spans.type_(dtype))
        elif name in declared:
            yield Difference("prop", subject, va, vb, spans.prop(dtype, name))
        else:
            yield Difference("undeclared-prop", subject, va, vb, spans.type_(dtype))


class _SpanFinder:
    """The schema line behind a device or a prop of this machine version."""

    def __init__(self, schema: model.MachineSchema, library: model.Library,
                 machine: tree.Machine) -> None:
        self.schema = schema
        self.library = library
        self.compat = {(c.device, c.prop): c.span for c in schema.compat}
        self.made = {d.type: d.why.span for _b, d, _n in tree.walk(machine.root)}

    def declared(self, dtype: str) -> set[str]:
        found = self.library.devices.get(dtype)
        return set(found.props) if found else set()

    def device(self, dtype: str) -> Span | None:
        return self.made.get(dtype) or self.type_(dtype) or self.schema.span

    def type_(self, dtype: str) -> Span | None:
        found = self.library.devices.get(dtype)
        return found.span if found else self.schema.span

    def prop(self, dtype: str, name: str) -> Span | None:
        if (dtype, name) in self.compat:
            return self.compat[(dtype, name)]
        found = self.library.devices.get(dtype)
        spec = found.props.get(name) if found else None
        return spec.span if spec else self.type_(dtype)
