"""The parts of a machine other than its devices and options: `implement`, `provide`,
`compat`, `quirk` and `placement`, each looked up and typed, each inherited through
`extends` where the machine says nothing. Ends at those parts: `machines` puts them together.
"""

from __future__ import annotations

from collections.abc import Sequence

from compiler.base.diagnostics import Label, quote_list
from compiler.base.source import Span
from compiler.lang import ast, expr, model
from compiler.lang.resolve.instances import provided_bus_kinds, provided_buses_note
from compiler.lang.resolve.scope import Part, Scope
from compiler.lang.resolve.values import Values


class MachineParts(Part):
    def __init__(self, scope: Scope, values: Values) -> None:
        super().__init__(scope)
        self.values = values

    def compat_props(self, body: Sequence[ast.MachineStmt], parent: model.MachineSchema | None
                     ) -> tuple[model.CompatProp, ...]:
        """The parent's compat props, then this machine's; one of this machine's for the
        same device type and property replaces the parent's in place (QEMU applies compat
        properties in order, so the later one wins)."""
        compat = {(c.device, c.prop): c for c in parent.compat} if parent else {}
        own: dict[tuple[str, str], Span] = {}
        for stmt in body:
            if not isinstance(stmt, ast.Compat):
                continue
            key = (stmt.device.text, stmt.prop.text)
            if key in own:
                self.diags.error("E0401", f"`compat {key[0]} {key[1]}` is set twice",
                                 stmt.span, labels=[Label(own[key], "first set here")])
                continue
            own[key] = stmt.span
            c = self.compat(stmt)
            if c:
                compat[key] = c
        return tuple(compat.values())

    def quirks(self, body: Sequence[ast.MachineStmt], parent: model.MachineSchema | None
               ) -> tuple[model.Quirk, ...]:
        """`quirk NAME = VALUE`: a machine without a parent declares its quirks; a version
        that `extends` one may only change their values, keeping each one's kind of value."""
        inherited = {q.name: q for q in parent.quirks} if parent else {}
        quirks = dict(inherited)
        own: dict[str, Span] = {}
        for stmt in body:
            if not isinstance(stmt, ast.Quirk):
                continue
            name = stmt.name.text
            if name in own:
                self.diags.error("E0401", f"quirk `{name}` is set twice", stmt.name.span,
                                 labels=[Label(own[name], "first set here")])
                continue
            own[name] = stmt.name.span
            if parent is not None and name not in inherited:
                self.unknown("E0201", "quirk", stmt.name, inherited,
                             of=f"of `{parent.name}`",
                             empty=f"`{parent.name}` declares no quirks: the first version "
                             "of a machine declares them all")
                continue
            value = stmt.value.value
            before = inherited.get(name)
            if before is not None and _scalar_kind(before.value) != _scalar_kind(value):
                kind = _scalar_kind(before.value)
                self.diags.error("E0301", f"quirk `{name}` must be {kind}, not "
                                 f"`{stmt.value.show()}`", stmt.value.span,
                                 labels=[Label(before.span, f"declared {kind} here")])
                continue
            quirks[name] = model.Quirk(name, value, stmt.span)
        return tuple(quirks.values())


    def implementation(self, s: ast.Implement) -> model.Implementation | None:
        if s.kind.text not in expr.SPEC_KINDS:
            self.unknown("E0201", "loose kind", s.kind, expr.SPEC_KINDS)
            return None
        cases: dict[str, str] = {}
        spans: dict[str, Span] = {}
        firsts: dict[str, Span] = {}
        for c in s.cases:
            if c.value.text in firsts:
                self.diags.error("E0401", f"case `{c.value.text}` is implemented twice",
                                 c.value.span,
                                 labels=[Label(firsts[c.value.text], "first implemented here")])
                continue
            firsts[c.value.text] = c.value.span
            if c.device.text not in self.scope.devices:
                self.unknown("E0202", "device type", c.device, self.scope.devices)
                continue
            cases[c.value.text] = c.device.text
            spans[c.value.text] = c.device.span
        if s.default.text not in firsts:
            self.diags.error("E0802", f"the default `{s.default.text}` is not one of the cases",
                             s.default.span,
                             notes=[f"the cases are {quote_list(firsts)}" if firsts
                                    else "there are no cases"])
        return model.Implementation(kind=s.kind.text, key=s.by.text, default=s.default.text,
                                    cases=cases, case_spans=spans, span=s.kind.span)

    def provider(self, s: ast.Provide) -> model.Provider | None:
        if s.bus.text not in self.scope.buses:
            self.unknown("E0201", "bus kind", s.bus, self.scope.buses)
            return None
        dtype = self.scope.devices.get(s.device.text)
        if dtype is None:
            self.unknown("E0202", "device type", s.device, self.scope.devices)
            return None
        if s.bus.text not in provided_bus_kinds(self.scope.devices, dtype.name):
            self.diags.error("E0505", f"`{dtype.name}` provides no `{s.bus.text}` bus",
                             s.device.span, notes=[provided_buses_note(dtype)])
            return None
        return model.Provider(s.bus.text, s.device.text, s.span)

    def compat(self, s: ast.Compat) -> model.CompatProp | None:
        dtype = self.scope.devices.get(s.device.text)
        if dtype is None:
            self.unknown("E0202", "device type", s.device, self.scope.devices)
            return None
        spec = dtype.props.get(s.prop.text)
        if spec is None:
            if s.prop.text in self.scope.broken_props.get(dtype.name, ()):
                return None
            self.unknown("E0207", "property", s.prop, dtype.props, of=f"of `{dtype.name}`",
                         empty=f"`{dtype.name}` has no properties")
            return None
        v = self.values.typed_value(s.value, spec.type, f"`{s.prop.text}`")
        return None if v is None else model.CompatProp(dtype.name, spec.name, v, s.span)

    def placement(self, p: ast.Placement) -> model.Placement:
        ports = self.single(p.stmts, ast.Ports, "ports")
        spare = self.single(p.stmts, ast.SparePorts, "spare-ports")
        vio = self.single(p.stmts, ast.VioBase, "vio-base")
        # The grammar has them, but no stage ever placed devices by them: rejected rather
        # than silently ignored.
        for stmt in p.stmts:
            if isinstance(stmt, ast.Order):
                self.diags.error("E0902", "`order` is not supported in `placement`",
                                 stmt.span, notes=["nothing places devices by it"],
                                 help="remove it")
            elif isinstance(stmt, ast.PciRoot):
                self.diags.error("E0902", "`pci-root` is not supported in `placement`",
                                 stmt.span, notes=["nothing places devices by it"],
                                 help='remove it: `ports DEVICE on "BUS" slots LO..HI` names '
                                 "the bus where ports go")
        if isinstance(ports, ast.Ports) and ports.device.text not in self.scope.devices:
            self.unknown("E0202", "device type", ports.device, self.scope.devices)
        overflow = []
        for stmt in p.stmts:
            if isinstance(stmt, ast.Overflow):
                if stmt.device.text not in self.scope.devices:
                    self.unknown("E0202", "device type", stmt.device, self.scope.devices)
                    continue
                inner = None if stmt.inner is None else (stmt.inner.lo, stmt.inner.hi)
                overflow.append(model.Container(stmt.device.text, stmt.bus,
                                                (stmt.slots.lo, stmt.slots.hi), inner))
        numbering = self.single(p.stmts, ast.PortNumber, "port-number")
        if isinstance(numbering, ast.PortNumber) and numbering.rule.text != "slot-function":
            self.diags.error("E2150", f"unknown port numbering `{numbering.rule.text}`",
                             numbering.rule.span, help="the one rule is `slot-function`")
        chassis = self.single(p.stmts, ast.ChassisFrom, "chassis-from")
        put_first = []
        for stmt in p.stmts:
            if isinstance(stmt, ast.PutFirst):
                for name in stmt.devices:
                    if name.text not in self.scope.devices:
                        self.unknown("E0202", "device type", name, self.scope.devices)
                put_first.append(model.PutFirst(tuple(n.text for n in stmt.devices),
                                                stmt.addr, stmt.bus))
        bridge = self.single(p.stmts, ast.BridgeFor, "bridge")
        bridged: list[str] = []
        if isinstance(bridge, ast.BridgeFor):
            for name in (bridge.device, *bridge.types):
                if name.text not in self.scope.devices:
                    self.unknown("E0202", "device type", name, self.scope.devices)
            bridged = [n.text for n in bridge.types]
        functions: dict[str, int] = {}
        for stmt in p.stmts:
            if isinstance(stmt, ast.FunctionFor):
                if not 0 <= stmt.function <= 7:
                    self.diags.error("E2153", f"function {stmt.function} is not a PCI "
                                     "function", stmt.span, help="a function is 0..7")
                for name in stmt.types:
                    if name.text not in self.scope.devices:
                        self.unknown("E0202", "device type", name, self.scope.devices)
                    functions[name.text] = stmt.function
        return model.Placement(
            bridge=bridge.device.text if isinstance(bridge, ast.BridgeFor) else None,
            bridged=tuple(bridged),
            functions=tuple(sorted(functions.items())),
            bridge_slots=((bridge.slots.lo, bridge.slots.hi) if isinstance(bridge, ast.BridgeFor)
                          else (0, 31)),
            chassis_from=chassis.first if isinstance(chassis, ast.ChassisFrom) else None,
            port_by_address=isinstance(numbering, ast.PortNumber),
            put_first=tuple(put_first),
            port_device=ports.device.text if isinstance(ports, ast.Ports) else None,
            port_bus=ports.bus if isinstance(ports, ast.Ports) else None,
            port_slots=((ports.slots.lo, ports.slots.hi) if isinstance(ports, ast.Ports)
                        else None),
            spare_ports=spare.count if isinstance(spare, ast.SparePorts) else 0,
            overflow=tuple(overflow),
            vio_base=vio.reg if isinstance(vio, ast.VioBase) else None,
            span=p.span)


def _scalar_kind(value: expr.Scalar) -> str:
    """`a bool`, `a number` or `a string`: what a quirk's value is."""
    if isinstance(value, bool):
        return "a bool"
    return "a number" if isinstance(value, int) else "a string"

