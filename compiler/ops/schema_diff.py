"""Two resolved machine schemas → what differs guest-visibly between them, item by item.

Ends at a sorted list of `Difference`s (`mschema schema-diff A B` prints them). Compared:
what the machine is (QEMU machine type, arch, binary, RAM without `-m`), its quirks,
options with their types and defaults, the devices it creates (type, bus, address,
condition, props, buses), `compat` props, the `implement` rules (default device types),
`provide`d controllers, `placement`, `check` conditions and the machine's fdt template.
Aliases, `family` and `doc` are names, not hardware, and are left out.

Each difference carries the schema statement that states it: the one only one side has,
else the one of the side that `extends` the other (where a version overrides its parent),
else B's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import attrs

from compiler.base import notations
from compiler.base.source import Span
from compiler.lang import ast, expr, model

# The order of categories in the output.
CATEGORIES = ("machine", "quirk", "option", "device", "compat", "implement", "provide",
              "placement", "check", "fdt")
NONE = "(none)"
T = TypeVar("T")


@attrs.frozen
class Difference:
    category: str
    subject: str
    a: str  # the value in A, as the schema language writes it; NONE when A has none
    b: str
    span: Span | None = attrs.field(eq=False)

    def message(self) -> str:
        return f"{self.category} {self.subject}: {self.a} → {self.b}"

    def text(self) -> str:
        where = f"{self.span}: " if self.span is not None else ""
        return where + self.message()

    def as_json(self) -> dict[str, object]:
        span = self.span
        return {"path": span.path if span else None, "line": span.line if span else None,
                "col": span.col if span else None, "category": self.category,
                "subject": self.subject, "a": self.a, "b": self.b, "message": self.message()}


def diff(library: model.Library, a: model.MachineSchema, b: model.MachineSchema
         ) -> list[Difference]:
    """Every guest-visible difference from `a` to `b`, in a stable order."""
    d = _Differ(library, a, b)
    d.machine()
    d.keyed("quirk", _quirks(a), _quirks(b), lambda q: _literal(q.value), lambda q: q.span)
    d.keyed("option", dict(a.options), dict(b.options), _option_text, lambda o: o.span)
    d.devices()
    d.compat()
    d.implementations()
    d.keyed("provide", dict(a.providers), dict(b.providers), lambda p: f"by {p.device}",
            lambda p: p.span)
    d.placement()
    d.keyed("check", {c.name: c for c in a.checks}, {c.name: c for c in b.checks},
            lambda c: _expr_text(c.condition), lambda c: c.span)
    d.fdt()
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(d.found, key=lambda x: (order[x.category], x.subject, x.a, x.b))


class _Differ:
    def __init__(self, library: model.Library, a: model.MachineSchema,
                 b: model.MachineSchema) -> None:
        self.library = library
        self.a, self.b = a, b
        self.found: list[Difference] = []
        # the side whose statements state a difference when both sides have one
        if b.name in _ancestors(library, a):
            self.derived = "a"
        elif a.name in _ancestors(library, b):
            self.derived = "b"
        else:
            self.derived = "b"

    def add(self, category: str, subject: str, a: str, b: str,
            span_a: Span | None, span_b: Span | None) -> None:
        if a == NONE:
            span = span_b
        elif b == NONE:
            span = span_a
        else:
            span = span_a if self.derived == "a" else span_b
        self.found.append(Difference(category, subject, a, b, span or span_a or span_b))

    def keyed(self, category: str, a: Mapping[str, T], b: Mapping[str, T],
              show: Callable[[T], str], span: Callable[[T], Span | None]) -> None:
        """Items of one kind by name; a difference where the shown values differ."""
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            tx = NONE if x is None else show(x)
            ty = NONE if y is None else show(y)
            if tx != ty:
                self.add(category, key, tx, ty, None if x is None else span(x),
                         None if y is None else span(y))

    # -- the machine itself
    def machine(self) -> None:
        a, b = self.a, self.b
        for what, x, y in (("qemu-machine", _literal(a.qemu_machine), _literal(b.qemu_machine)),
                           ("arch", a.arch, b.arch),
                           ("binary", _literal(a.binary), _literal(b.binary)),
                           ("default-memory", _size(a.default_memory),
                            _size(b.default_memory))):
            if x != y:
                self.add("machine", what, x, y, a.span, b.span)

    # -- devices
    def devices(self) -> None:
        a, b = _device_entries(self.a), _device_entries(self.b)
        for ident in sorted(set(a) | set(b)):
            xs, ys = a.get(ident, []), b.get(ident, [])
            if [e.fields for e in xs] == [e.fields for e in ys]:
                continue
            subject = ident
            if len(xs) == len(ys) == 1:
                x, y = xs[0], ys[0]
                for name, fx, fy in zip(_DeviceEntry.NAMES, x.fields, y.fields, strict=True):
                    if fx != fy:
                        self.add("device", f"{subject} {name}", fx, fy, x.span, y.span)
                continue
            # the same id with other variants (exclusive conditions): whole devices
            ty = {e.fields for e in ys}
            tx = {e.fields for e in xs}
            for x in xs:
                if x.fields not in ty:
                    self.add("device", subject, x.text(), NONE, x.span, None)
            for y in ys:
                if y.fields not in tx:
                    self.add("device", subject, NONE, y.text(), None, y.span)

    # -- compat props
    def compat(self) -> None:
        a = {(c.device, c.prop): c for c in self.a.compat}
        b = {(c.device, c.prop): c for c in self.b.compat}
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            tx = self.compat_value(key, x)
            ty = self.compat_value(key, y)
            if tx != ty:
                self.add("compat", f"{key[0]} {key[1]}", tx, ty, x.span if x else None,
                         y.span if y else None)

    def compat_value(self, key: tuple[str, str], c: model.CompatProp | None) -> str:
        dtype = self.library.devices.get(key[0])
        spec = dtype.props.get(key[1]) if dtype else None
        if c is not None:
            return _value(c.value, spec.type if spec else None)
        if spec is not None and spec.default is not None:
            return f"(QEMU's default: {_value(spec.default, spec.type)})"
        return "(QEMU's default)"

    # -- implement rules
    def implementations(self) -> None:
        a, b = self.a.implementations, self.b.implementations
        for kind in sorted(set(a) | set(b)):
            x, y = a.get(kind), b.get(kind)
            if x is None or y is None:
                self.add("implement", kind, NONE if x is None else _impl_text(x),
                         NONE if y is None else _impl_text(y), x.span if x else None,
                         y.span if y else None)
                continue
            if (x.key, x.default) != (y.key, y.default):
                self.add("implement", kind, f"by {x.key} default {x.default}",
                         f"by {y.key} default {y.default}", x.span, y.span)
            for case in sorted(set(x.cases) | set(y.cases)):
                cx, cy = x.cases.get(case, NONE), y.cases.get(case, NONE)
                if cx != cy:
                    self.add("implement", f"{kind} {case}", cx, cy,
                             x.case_spans.get(case, x.span), y.case_spans.get(case, y.span))

    # -- placement
    def placement(self) -> None:
        self.placement_fields("", self.a.placement, self.b.placement)
        # `placement when COND`: by the condition's text
        ca = {_expr_text(c.condition): c for c in getattr(self.a, "placement_cases", ())}
        cb = {_expr_text(c.condition): c for c in getattr(self.b, "placement_cases", ())}
        for text in [*ca, *(t for t in cb if t not in ca)]:
            x, y = ca.get(text), cb.get(text)
            if x is not None and y is not None:
                self.placement_fields(f"when {text}: ", x.placement, y.placement)
            else:
                self.add("placement", f"when {text}", "given" if x else NONE,
                         "given" if y else NONE, x.span if x else None,
                         y.span if y else None)

    def placement_fields(self, prefix: str, pa: model.Placement, pb: model.Placement
                         ) -> None:
        for field in attrs.fields(model.Placement):
            if field.name == "span":
                continue
            x, y = getattr(pa, field.name), getattr(pb, field.name)
            if x != y:
                quoted = field.name in ("port_bus", "pci_root")  # bus names are strings
                self.add("placement", prefix + field.name.replace("_", "-"),
                         _placement_value(x, quoted), _placement_value(y, quoted),
                         pa.span or self.a.span, pb.span or self.b.span)

    # -- the machine's device tree template
    def fdt(self) -> None:
        x, y = getattr(self.a, "fdt", ()), getattr(self.b, "fdt", ())
        self.fdt_items("the root node", x, y)
        da, db = dict(getattr(self.a, "device_fdt", ())), dict(getattr(self.b, "device_fdt", ()))
        for name in sorted({*da, *db}):  # `fdt edit TYPE` on one machine
            self.fdt_items(f"the node of a `{name}`",
                           da.get(name, self.library_items(name)),
                           db.get(name, self.library_items(name)))

    def library_items(self, name: str) -> tuple[ast.FdtItem, ...]:
        dtype = self.library.devices.get(name)
        return dtype.fdt_items if dtype else ()

    def fdt_items(self, where: str, x: Sequence[ast.FdtItem], y: Sequence[ast.FdtItem]
                  ) -> None:
        """One line per item name (`prop NAME`, `node NAME`, `let NAME`) whose items differ;
        an item without a name (`own`, `each`) under `where` itself."""
        from compiler.lang.resolve.fdt_edit import key

        def by_key(items: Sequence[ast.FdtItem]) -> dict[str, list[ast.FdtItem]]:
            out: dict[str, list[ast.FdtItem]] = {}
            for item in items:
                k = key(item)
                out.setdefault(f"{k[0]} `{k[1]}`" if k else "", []).append(item)
            return out

        kx, ky = by_key(x), by_key(y)
        for name in sorted({*kx, *ky}):
            a, b = kx.get(name, []), ky.get(name, [])
            if a != b:
                self.add("fdt", f"{where}: {name}" if name else where,
                         _count(a, "item") if a else NONE, _count(b, "item") if b else NONE,
                         self.a.span, self.b.span)


def _ancestors(library: model.Library, m: model.MachineSchema) -> list[str]:
    names = []
    parent = m.extends
    while parent is not None and parent not in names:
        names.append(parent)
        found = library.machines.get(parent)
        parent = found.extends if found else None
    return names


def _quirks(m: model.MachineSchema) -> dict[str, model.Quirk]:
    return {q.name: q for q in getattr(m, "quirks", ())}


# ---- devices -------------------------------------------------------------------------------
@attrs.frozen
class _DeviceEntry:
    NAMES = ("type", "bus", "address", "condition", "props", "buses")
    fields: tuple[str, str, str, str, str, str]
    span: Span = attrs.field(eq=False)

    def text(self) -> str:
        type_, bus, addr, cond, props, buses = self.fields
        out = f"{type_} on {bus}"
        if addr != NONE:
            out += f" at {addr}"
        if cond != "always":
            out += f" when {cond}"
        if props != "{}":
            out += f" {props}"
        if buses != "[]":
            out += f" buses {buses}"
        return out


def _device_entries(m: model.MachineSchema) -> dict[str, list[_DeviceEntry]]:
    """Every device the machine places itself, by id, with its enclosing conditions."""
    found: dict[str, list[_DeviceEntry]] = {}

    def walk(instances: Sequence[model.Instance], bus: str, notation: str,
             cond: expr.Expr | None) -> None:
        for inst in instances:
            here = expr.conjoin(cond, inst.condition)
            addr = (NONE if inst.address is None or not notations.get(notation).addressed
                    else notations.format(notation, inst.address))
            props = "{" + ", ".join(f"{k} = {_literal(v)}" for k, v in sorted(inst.props)) + "}"
            buses = "[" + ", ".join(f"{b.kind} {_literal(b.name)}" for b in inst.buses) + "]"
            fields = (inst.type, bus, addr, "always" if here is None else _expr_text(here),
                      props, buses)
            found.setdefault(inst.id, []).append(_DeviceEntry(fields, inst.span))
            for b in inst.buses:
                walk(b.devices, b.name, b.address.notation, here)

    walk(m.devices, "main-system-bus", "none", None)
    return found


# ---- rendering values as the schema language writes them ---------------------------------
def _literal(v: expr.Scalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return hex(v) if v > 9 else str(v)
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v: expr.Scalar, t: model.ValueType | None) -> str:
    if t is not None and t.kind == "enum" and isinstance(v, str):
        return v
    return _literal(v)


def _type_text(t: model.ValueType) -> str:
    if t.kind == "enum":
        return f"enum({', '.join(t.members)})"
    if t.kind == "int" and t.lo is not None:
        return f"int({t.lo}..{t.hi})"
    return t.kind


def _option_text(o: model.OptionSpec) -> str:
    return f"{_type_text(o.type)} = {_value(o.default, o.type)}"


def _impl_text(i: model.Implementation) -> str:
    cases = "  ".join(f"{k} -> {v}" for k, v in sorted(i.cases.items()))
    return f"by {i.key} default {i.default} {{ {cases} }}"


def _size(n: int) -> str:
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return f'"{n >> shift}{unit}"'
    return f'"{n}"'


def _placement_value(v: object, quoted: bool) -> str:
    if v is None or v == ():
        return NONE
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return f"{v[0]:#x}..{v[1]:#x}"
    if isinstance(v, tuple) and all(isinstance(x, model.Container) for x in v):
        return ", ".join(f"{c.device} on {_literal(c.bus)} slots {c.slots[0]:#x}..{c.slots[1]:#x}"
                         + (f" inner-slots {c.inner[0]:#x}..{c.inner[1]:#x}" if c.inner else "")
                         for c in v)
    if isinstance(v, tuple):
        return ", ".join(str(x) for x in v)
    if isinstance(v, int) and not isinstance(v, bool):
        return hex(v) if v > 9 else str(v)
    return _literal(v) if isinstance(v, str) and quoted else str(v)


def _count(items: Sequence[object], what: str) -> str:
    return f"{len(items)} {what}{'' if len(items) == 1 else 's'}"


def _expr_text(e: expr.Expr, outer: int = 0) -> str:
    """A condition as the schema language writes it (parenthesised where needed)."""
    def wrap(text: str, level: int) -> str:
        return f"({text})" if level < outer else text

    if isinstance(e, expr.Const):  # numbers as a condition writes them: decimal
        return str(e.value) if type(e.value) is int else _literal(e.value)
    if isinstance(e, expr.Option | expr.Fact):
        return e.name
    if isinstance(e, expr.Count):
        return f"count({e.kind})"
    if isinstance(e, expr.Not):
        return wrap(f"not {_expr_text(e.operand, 3)}", 3)
    if isinstance(e, expr.And):
        return wrap(" and ".join(_expr_text(o, 2) for o in _flat(e, expr.And)), 2)
    if isinstance(e, expr.Or):
        return wrap(" or ".join(_expr_text(o, 1) for o in _flat(e, expr.Or)), 1)
    right = e.right
    shown = right.value if isinstance(right, expr.Const) and isinstance(right.value, str) \
        and right.value.isidentifier() else None
    rtext = shown if shown is not None else _expr_text(right, 4)
    return wrap(f"{_expr_text(e.left, 4)} {e.op} {rtext}", 4)


def _flat(e: expr.And | expr.Or, cls: type) -> Iterator[expr.Expr]:
    for o in e.operands:
        if isinstance(o, cls):
            yield from _flat(o, cls)  # type: ignore[arg-type]
        else:
            yield o
