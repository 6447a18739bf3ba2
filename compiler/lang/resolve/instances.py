"""Instances: a device the schema places itself (a machine's devices, the children of a
device type's bus) → `model.Instance`, with its address parsed in its bus's notation, its
properties typed, its condition typed and the buses it provides bound. Ends at instances:
whether they collide or fit their bus is `schema_checks`' job.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from compiler.base import notations
from compiler.base.diagnostics import quote_list
from compiler.lang import ast, expr, model
from compiler.lang.resolve.buses import BusKinds
from compiler.lang.resolve.conditions import NO_OPTIONS, Conditions, Options
from compiler.lang.resolve.scope import Part, Scope
from compiler.lang.resolve.values import Values

# the kinds of value an expression gives, and the prop types each may set
SETS: Mapping[str, tuple[str, ...]] = {
    "bool": ("bool",), "int": ("int", "size"), "str": ("str", "enum", "mac")}


# the most instances one `for` stands for
LOOP_LIMIT = 256


class Instances(Part):
    def __init__(self, scope: Scope, values: Values, conditions: Conditions,
                 buses: BusKinds) -> None:
        super().__init__(scope)
        self.values, self.conditions, self.bus_kinds = values, conditions, buses

    def instance(self, i: ast.Instance, bus_kind: str, space: notations.AddressSpace,
                 options: Options,
                 ids: set[str]) -> model.Instance | None:
        dtype = self.scope.devices.get(i.type.text) if self.scope.devices else None
        if self.scope.devices and dtype is None:
            self.unknown("E0202", "device type", i.type, self.scope.devices)
        iid = i.id.text if i.id else i.type.text
        address: tuple[int, ...] | None = None
        if i.address is not None:
            if not space.rules.addressed:
                self.diags.error("E0503", f"devices on `{bus_kind}` buses have no address",
                                 i.address.span, help="remove `at …`")
            else:
                try:
                    address = notations.parse(space.notation, i.address.text)
                except notations.AddressSyntaxError as exc:
                    self.diags.error("E0503", f"`{i.address.text}` is not a "
                                     f"{space.notation} address", i.address.span,
                                     help=str(exc))
        condition = None if i.condition is None else self.conditions.condition(i.condition, options)
        props: list[tuple[str, expr.Scalar]] = []
        computed: list[tuple[str, expr.Expr]] = []
        buses: list[model.BusBinding] = []
        for stmt in i.body:
            if isinstance(stmt, ast.PropSet):
                spec = dtype.props.get(stmt.name.text) if dtype else None
                if dtype is not None and spec is None and (
                        stmt.name.text not in self.scope.broken_props.get(dtype.name, ())):
                    self.unknown("E0207", "property", stmt.name, dtype.props,
                                 of=f"of `{dtype.name}`",
                                 empty=f"`{dtype.name}` has no properties")
                elif spec is not None and not isinstance(stmt.value, ast.Value):
                    e = self.computed(stmt, spec, options)
                    if e is not None:
                        computed.append((stmt.name.text, e))
                elif spec is not None and isinstance(stmt.value, ast.Value):
                    v = self.values.typed_value(stmt.value, spec.type, f"`{stmt.name.text}`")
                    if v is not None:
                        props.append((stmt.name.text, v))
            else:
                binding = self.bus_binding(stmt, dtype, iid, options, ids)
                if binding:
                    buses.extend(binding)
        if dtype is not None:
            bound = {b.kind for b in buses}
            for t in dtype.buses:
                if t.kind not in bound:
                    buses.extend(self.template_buses(t, iid))
        return model.Instance(id=iid, type=i.type.text, address=address, condition=condition,
                              props=tuple(props), buses=tuple(buses), span=i.span,
                              computed=tuple(computed))

    def computed(self, stmt: ast.PropSet, spec: model.PropSpec,
                 options: Options) -> expr.Expr | None:
        """`NAME = (EXPR)`: typed over the machine's options and facts; its kind must be one
        the prop takes (E0173). A device type's child has no options to read."""
        assert not isinstance(stmt.value, ast.Value)
        e, rtype = self.conditions.typed_expr(stmt.value, options)
        if rtype is None:
            return None  # an unknown name, reported
        kind = "str" if rtype.kind == "enum" else rtype.kind
        if spec.type.kind not in SETS.get(kind, ()):
            self.diags.error("E0173", f"`{stmt.name.text}` is {spec.type.describe()}, but "
                             f"this expression gives {rtype.describe()}", stmt.value.span,
                             notes=[f"`({'…'})` is computed from the machine's options and "
                                    "the spec's facts when the machine is built"],
                             help="compute a value of the prop's type, e.g. `(cpus.count)` "
                             "for an integer, `(secure)` for a bool option")
            return None
        return e

    def unrolled(self, i: ast.Instance) -> list[ast.Instance]:
        """`ID: TYPE for I in LO..HI { … }` as the instances it stands for: ids ID{LO}…ID{HI},
        `{I}` in their bus names replaced by the value; E0174 for a loop that cannot be."""
        if i.loop is None:
            return [i]
        loop = i.loop
        bad = None
        if i.address is not None:
            bad = "an instance with a fixed address (`at …`) cannot be repeated"
        elif not 1 <= loop.hi - loop.lo + 1 <= LOOP_LIMIT:
            bad = f"a loop takes 1 to {LOOP_LIMIT} values, not {loop.lo}..{loop.hi}"
        if bad is not None:
            self.diags.error("E0174", bad, loop.span,
                             help="give each instance its own address, or loop over a "
                             "range such as `for i in 0..31`")
            return [attrs.evolve(i, loop=None)]
        base = i.id.text if i.id is not None else i.type.text
        hole = "{" + loop.var.text + "}"
        out = []
        for k in range(loop.lo, loop.hi + 1):
            body = tuple(attrs.evolve(s, name=s.name.replace(hole, str(k)))
                         if isinstance(s, ast.BusBlock) and s.name is not None else s
                         for s in i.body)
            out.append(attrs.evolve(i, id=ast.Name(f"{base}{k}", (i.id or i.type).span),
                                    body=body, loop=None))
        return out

    def template_buses(self, t: model.BusTemplate, qemu_id: str) -> list[model.BusBinding]:
        return [model.BusBinding(kind=t.kind, name=name, address=t.address,
                                 children=t.children, devices=(), span=t.span)
                for name in t.names(qemu_id)]

    def bus_binding(self, b: ast.BusBlock, dtype: model.DeviceType | None, qemu_id: str,
                    options: Options,
                    ids: set[str]) -> list[model.BusBinding]:
        if dtype is None:
            return []
        template = next((t for t in dtype.buses if t.kind == b.kind.text), None)
        if template is None:
            self.diags.error("E0505", f"`{dtype.name}` provides no `{b.kind.text}` bus",
                             b.kind.span, notes=[provided_buses_note(dtype)])
            return []
        hotplug = None
        # machines resolve their instances with their own `Options`; device types' children
        # with NO_OPTIONS, and their buses' hot-plug is the type's word
        in_machine = options is not NO_OPTIONS
        said = self.single(b.items, ast.Hotplug, "hotplug") if in_machine else None
        if said is not None:
            # a machine's bus block: `hotplug V [when COND]` over the machine's options
            hotplug = (said.value, None if said.condition is None else
                       self.conditions.condition(said.condition, options))
        for stmt in b.items:
            if isinstance(stmt, ast.Hotplug) and not in_machine:
                # the allocator reads `hotplug` from the device type's bus and the bus kind
                # only; a device's own bus block cannot change it
                self.diags.error("E0902", "`hotplug` is not supported in a device's `bus` "
                                 "block", stmt.span,
                                 notes=[f"whether devices can be hot-plugged onto `{b.kind.text}` "
                                        f"buses of `{dtype.name}` is set by the device type or "
                                        "the bus kind"],
                                 help=f"remove it, or set it in the `bus {b.kind.text}` block "
                                 f"of `device {dtype.name}`")
        name = template.name
        if b.name is not None:
            name = self.bus_kinds.bus_name(b.name, b.name_span or b.span) or ""
        count = b.count or template.count
        space = self.bus_kinds.narrowed(template.address, b.items, b.kind.text)
        devices = tuple(x for x in (self.instance(u, b.kind.text, space, options, ids)
                                    for i in b.items if isinstance(i, ast.Instance)
                                    for u in self.unrolled(i)) if x)
        names = [name.format(n=n, id=qemu_id) for n in range(count)]
        return [model.BusBinding(kind=b.kind.text, name=n, address=space,
                                 children=template.children,
                                 devices=devices if k == 0 else (), span=b.span,
                                 hotplug=hotplug)
                for k, n in enumerate(names)]


def provided_buses_note(dtype: model.DeviceType) -> str:
    if not dtype.buses:
        return f"`{dtype.name}` provides no bus at all"
    return f"it provides {quote_list(t.kind for t in dtype.buses)}"


def provided_bus_kinds(devices: Mapping[str, model.DeviceType], name: str) -> set[str]:
    """Bus kinds a device type brings, its children's included (virtio-scsi-pci's SCSI bus
    hangs under its virtio-scsi-device)."""
    t = devices.get(name)
    kinds: set[str] = set()
    for template in t.buses if t else ():
        kinds.add(template.kind)
        for child in template.children:
            kinds |= provided_bus_kinds(devices, child.type)
    return kinds

