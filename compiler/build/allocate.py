"""Address assignment: machine devices + planned devices → the precise tree.

Passes, driven by schema data through one allocator:
1. take the buses and addresses the machine occupies by itself;
2. place every planned device in spec order: on the bus the user named, else behind a new
   port (the schema's `placement { ports … }`, for hot-pluggable endpoints), else on the
   first bus of a kind it plugs into with a free address, else on a bus a `provide`d
   controller adds (created on demand, then reused);
3. add the spare ports the spec asks for (`hotplug-slots`, default `spare-ports`).
Allocation only ever looks at what is already placed, so adding a device at the end of a
spec moves nothing that was there before.

This module places devices; its parts are in `build/place/` (free addresses, the placed
machine, ids, `unique` props, the PCI hot-plug rule). It ends at the precise tree.
"""

from __future__ import annotations

import attrs

from compiler.base import notations
from compiler.base.diagnostics import Collector, Label, quote_list
from compiler.base.source import Span
from compiler.build import tree
from compiler.build.place.ids import IdNamer
from compiler.build.place.ports import Ports, Props
from compiler.build.place.state import ROOT, Bus, Placed
from compiler.build.place.unique import UniqueProps
from compiler.build.plan import Plan, Planned
from compiler.lang import model

__all__ = ["Allocator", "Bus", "assign", "rebuild"]


class Allocator:
    def __init__(self, *, schema: model.MachineSchema, library: model.Library,
                 diags: Collector) -> None:
        self.schema = schema
        self.library = library
        self.diags = diags
        self.placed = Placed()
        self.ids = IdNamer()
        self.unique = UniqueProps(placed=self.placed, library=library,
                                  schema_name=schema.name, diags=diags)
        self.ports = Ports(placed=self.placed, schema=schema, library=library, diags=diags,
                           create=self._create)
        self.failed_buses: set[str] = set()  # buses of devices that could not be placed
        self.reservations: dict[str, Planned] = {}  # fixed addresses, held before placing
        self._reserved_on: dict[str, str] = {}  # a reservation's id → its bus's key
        self._bus_cursors: dict[tuple[str, str | None], int] = {}  # below: full or a port's

    @property
    def root(self) -> str:
        return ROOT

    # -- pass 1: what the machine builds
    def add_machine(self, devices: tuple[tree.Device, ...], bus: str) -> None:
        for d in devices:
            self._attach(d, bus, None if d.addr is None else d.addr.value)
            for b in d.buses:
                space = _space_of(self.library, d.type, b.kind, b.notation)
                hotplug = (_hotplug_of(self.library, d.type, b.kind) if b.hotplug is None
                           else b.hotplug)
                key = self.placed.add_bus(Bus(b.name, b.kind, space, d.id, hotplug=hotplug,
                                              kept=self.ports.kept(b.name)))
                self.add_machine(b.devices, key)

    def _attach(self, d: tree.Device, bus: str, addr: tuple[int, ...] | None) -> None:
        self.placed.attach(d, bus, addr)
        self.unique.saw(d)
        self.ids.saw(d)

    # -- pass 2: the spec's devices
    def reserve(self, p: Planned) -> None:
        """Hold the address a spec device fixes on a bus that exists already, so devices
        placed before it in spec order cannot take it. Problems are reported by `place`."""
        if p.addr is None:
            return
        t = self.library.devices.get(p.type)
        if t is None:
            return
        if p.bus is not None:
            named = self.placed.named(p.bus)
            candidates = [named] if named else []
        else:
            candidates = [self.placed.buses[k] for pl in t.plugs
                          for k in self.placed.keys_of(pl.bus)]
        for bus in candidates:
            try:
                addr = bus.rules.parse(p.addr)
            except notations.AddressSyntaxError:
                continue
            plug = t.plugs_into(bus.kind)
            if bus.space.out_of_range(addr, plug.tag if plug else None) is None and \
                    addr not in bus.used:
                bus.used.take(addr, p.id)
                self.reservations[p.id] = p
                self._reserved_on.setdefault(p.id, bus.key)
            return

    def place(self, p: Planned) -> None:
        t = self.library.devices[p.type]
        if p.bus in self.failed_buses:
            self._failed(p, t)  # its parent was already reported
            return
        placed = len(self.placed.nodes)
        self._place(p, t)
        if len(self.placed.nodes) == placed:
            self._failed(p, t)

    def _failed(self, p: Planned, t: model.DeviceType) -> None:
        for template in t.buses:
            self.failed_buses.update(template.names(p.id))

    def _place(self, p: Planned, t: model.DeviceType) -> None:
        if p.bus is not None:
            bus = self.placed.named(p.bus)
            if bus is None:
                self.diags.error("E1201", f"no bus `{p.bus}` in this machine", p.span,
                                 notes=[f"its buses are {quote_list(self.placed.by_name)}"])
                return
            if t.plugs_into(bus.kind) is None:
                self.diags.error("E0504", f"`{t.name}` cannot go on `{bus.name}`, a "
                                 f"`{bus.kind}` bus", p.span,
                                 notes=[f"it plugs into {quote_list(pl.bus for pl in t.plugs)}"])
                return
            self._put(p, bus)
            return
        held = self._reserved_on.get(p.id)
        spot = self.ports.bridged_place(t) if held is None and p.addr is None else None
        if spot is not None:
            self._put(p, *spot)
            return
        bus = (self.placed.buses[held] if held is not None else
               self._choose_bus(t, p.addr is not None, p.span, p.id))
        if bus is not None:
            self._put(p, bus)

    def _choose_bus(self, t: model.DeviceType, fixed: bool, span: Span,
                    for_id: str, providing: frozenset[str] = frozenset()) -> Bus | None:
        """Where `t` goes: a new port, a free place on a bus it plugs into, an overflow
        container, else a bus a `provide`d controller adds. `providing`: the bus kinds whose
        providers are being placed (a provider that plugs into the kind it provides, as a
        pci-bridge, cannot make room for itself); then nothing is reported here."""
        if self.ports.wants_port(t) and not fixed:
            port = self.ports.new_port(span, f"for `{for_id}`")
            if port is not None:
                return port
            bridge = self.ports.overflow_bus(t, span, for_id)
            if bridge is not None:
                return bridge
        for plug in t.plugs:
            found = self._first_free(plug.bus, plug.tag)
            if found is not None:
                return found
        if not self.schema.placement.port_device and not fixed:
            bridge = self.ports.overflow_bus(t, span, for_id)
            if bridge is not None:
                return bridge
        cannot: list[str] = []
        for plug in t.plugs:
            provider = self.schema.providers.get(plug.bus)
            if provider is None:
                continue
            if plug.bus in providing:
                continue
            owner = self._create(provider.device, span,
                                 f"`provide {plug.bus} by {provider.device}` in "
                                 f"`{self.schema.name}`, for `{for_id}`", provider.span,
                                 prefix=plug.bus, providing=providing | {plug.bus})
            if owner is None:
                cannot.append(f"`provide {plug.bus} by {provider.device}` cannot add one: "
                              "it finds no free place itself")
                continue
            for name in self.placed.buses_below(owner):
                if self.placed.buses[name].kind == plug.bus:
                    return self.placed.buses[name]
        if providing:
            return None
        full = [b.name for b in self.placed.buses.values() if t.plugs_into(b.kind)]
        self.diags.error("E1202", f"no free place for `{t.name}` in `{self.schema.name}`",
                         span, notes=[f"it plugs into {quote_list(p.bus for p in t.plugs)}"] +
                         ([f"those buses are all taken: {quote_list(full)}"] if full else []) +
                         cannot,
                         help="take a device out, or choose another interface or model")
        return None

    def _first_free(self, kind: str, tag: str | None) -> Bus | None:
        """The first bus of `kind`, in the order buses came, that is no port's or overflow
        bridge's and has a free address for `tag`. Addresses are never given back, so a
        bus found full or a port's stays so: the next scan starts after it."""
        keys = self.placed.keys_of(kind)
        cursor = (kind, tag)
        start = self._bus_cursors.get(cursor, 0) if self.placed.indexes_hold() else 0
        for i in range(start, len(keys)):
            bus = self.placed.buses[keys[i]]
            if not self.ports.is_port_bus(keys[i]) and self._next_free(bus, tag) is not None:
                self._bus_cursors[cursor] = i
                return bus
        self._bus_cursors[cursor] = len(keys)
        return None

    def _next_free(self, bus: Bus, tag: str | None) -> tuple[int, ...] | None:
        return bus.next_free(tag, self.schema.placement.vio_base)

    def _create(self, dtype: str, span: Span, reason: str, rule_span: Span | None, *,
                prefix: str, bus: Bus | None = None, addr: tuple[int, ...] | None = None,
                extra: Props = (), providing: frozenset[str] = frozenset()) -> str | None:
        """A device the compiler adds (port, controller), placed like any other."""
        t = self.library.devices[dtype]
        nodes = self.placed.nodes
        ident = self.ids.fresh(dtype, prefix, nodes, None if self.placed.indexes_hold()
                               else [n.device for n in nodes.values()])
        p = Planned(ident, dtype, "default", tuple(sorted(extra)), (), None, None,
                    tree.Provenance(reason, rule_span, span), span)
        if bus is None:
            bus = self._choose_bus(t, False, span, ident, providing)
            if bus is None:
                return None
        self._put(p, bus, addr)
        return ident if ident in nodes else None

    def _put(self, p: Planned, bus: Bus, addr: tuple[int, ...] | None = None) -> None:
        t = self.library.devices[p.type]
        plug = t.plugs_into(bus.kind)
        if addr is None and p.addr is not None:
            addr = self._fixed_addr(p, bus, plug.tag if plug else None)
            if addr is None:
                return
        if addr is None:
            addr = self._next_free(bus, plug.tag if plug else None)
            if addr is None:
                self.diags.error("E1202", f"bus `{bus.name}` is full", p.span,
                                 notes=[f"it holds {quote_list(bus.devices)}"],
                                 help="leave `bus` out to get a free place, or pick another")
                return
        taken = self.placed.nodes.get(p.id)
        if taken is not None:
            self.diags.error("E1103", f"id `{p.id}` is already taken by `{taken.device.type}`",
                             p.span, notes=[f"`{p.id}`: {taken.device.why.reason}"],
                             help="give this device another id")
            return
        props = self.unique.values(p, t, bus.key)
        if props is None:
            return
        where = notations.Address(bus.space.notation, addr) if bus.rules.addressed else None
        device = tree.Device(p.id, p.type, p.origin, where, props, p.backend, (), p.why)
        self._attach(device, bus.key, addr if where is not None else None)
        self._add_buses(device, t)

    def _fixed_addr(self, p: Planned, bus: Bus, tag: str | None) -> tuple[int, ...] | None:
        """The address `p` fixes, checked on `bus`; None (reported) when it cannot be."""
        assert p.addr is not None
        try:
            addr = bus.rules.parse(p.addr)
        except notations.AddressSyntaxError as exc:
            self.diags.error("E0503", f"`{p.addr}` is not a {bus.space.notation} address",
                             p.span, help=str(exc))
            return None
        why = bus.space.out_of_range(addr, tag)
        if why:
            self.diags.error("E0501", f"address out of range on `{bus.name}`: {why}", p.span)
            return None
        other = bus.used.get(addr)
        if other is None or other == p.id:  # p.id: its own reservation
            return addr
        reserved = self.reservations.get(other)
        if reserved is not None and other not in self.placed.nodes:
            self.diags.error("E0502", f"`{p.id}` and `{other}` both want {p.addr} on "
                             f"`{bus.name}`", p.span,
                             labels=[Label(reserved.span, f"`{other}` asks for it here")])
            return None
        o = self.placed.nodes[other].device
        self.diags.error("E0502", f"`{p.id}` and `{other}` both want "
                         f"{p.addr} on `{bus.name}`", p.span,
                         labels=[Label(o.why.span, f"`{other}` ({o.type}) is "
                                       f"there: {o.why.reason}")]
                         if o.why.span else [],
                         notes=[] if o.why.span else [f"`{other}` ({o.type}) is there: "
                                                      f"{o.why.reason}"])
        return None

    def _add_buses(self, device: tree.Device, t: model.DeviceType,
                   qemu_id: str | None = None) -> None:
        """The buses a new device provides, and the children its type creates on them."""
        inner = self.ports.inner(device)
        for template in t.buses:
            notation = template.address.notation
            hotplug = _hotplug_of(self.library, t.name, template.kind)
            for name in template.names(qemu_id or device.id):
                key = self.placed.add_bus(Bus(name, template.kind, template.address, device.id,
                                              hotplug=hotplug, kept=self.ports.kept(name)))
                if inner is not None:
                    self.placed.buses[key].narrow(*inner)
                for child in template.children:
                    ct = self.library.devices[child.type]
                    cid = f"{device.id}.{child.id}"
                    addr = (None if child.address is None or not template.address.rules.addressed
                            else notations.Address(notation, child.address))
                    # QEMU creates these with their parent: listed, never emitted
                    cd = tree.Device(cid, child.type, "machine", addr, tuple(child.props),
                                     (), (), tree.Provenance(f"created by `{t.name}`",
                                                             child.span))
                    self._attach(cd, key, child.address if addr is not None else None)
                    self._add_buses(cd, ct, qemu_id or device.id)

    # -- hot-plug (continuing from a rebuilt machine)
    def put(self, p: Planned, bus: Bus) -> None:
        """Place `p` on `bus`, at its own address or the next free one."""
        self._put(p, bus)

    def bus_named(self, name: str) -> Bus | None:
        return self.placed.named(name)

    def hotpluggable(self, bus: Bus) -> bool:
        return self.ports.hotpluggable(bus)

    def hotplug_places(self, t: model.DeviceType) -> list[str]:
        return self.ports.hotplug_places(t)

    def capacity(self) -> list[tuple[str, str, int]]:
        return self.ports.capacity()

    # -- pass 3: spare ports
    def spare_ports(self, count: int, span: Span, required: bool) -> None:
        self.ports.spare_ports(count, span, required)

    # -- result
    def tree(self) -> tree.Bus:
        return self.placed.tree()


def _hotplug_of(library: model.Library, dtype: str, kind: str) -> bool:
    """May devices be hot-plugged onto a `kind` bus of a `dtype`: its bus template's word,
    else its bus kind's."""
    t = library.devices.get(dtype)
    for template in t.buses if t else ():
        if template.kind == kind and template.hotplug is not None:
            return template.hotplug
    bk = library.buses.get(kind)
    return bk.hotplug if bk else False


def _space_of(library: model.Library, dtype: str, kind: str,
              notation: str) -> notations.AddressSpace:
    t = library.devices.get(dtype)
    for template in t.buses if t else ():
        if template.kind == kind:
            return template.address
    bk = library.buses.get(kind)
    return bk.address if bk else notations.AddressSpace(notation)


def assign(schema: model.MachineSchema, library: model.Library,
           machine_devices: tuple[tree.Device, ...], plan: Plan, spares: int, span: Span,
           diags: Collector, *, spares_required: bool = False
           ) -> tree.Bus:
    """Devices are placed in spec (or blob) order; the addresses the spec fixes on buses
    that exist from the start are held first, so no device placed earlier takes them."""
    alloc = rebuild(schema, library, machine_devices, plan, diags)
    alloc.spare_ports(spares, span, spares_required)
    return alloc.tree()


def rebuild(schema: model.MachineSchema, library: model.Library,
            machine_devices: tuple[tree.Device, ...], plan: Plan,
            diags: Collector) -> Allocator:
    """The allocator after placing the machine's devices and `plan`'s, in order (what
    `hotplug` continues from)."""
    alloc = Allocator(schema=schema, library=library, diags=diags)
    alloc.add_machine(machine_devices, alloc.root)
    plan = _put_first(schema.placement, plan)
    for p in plan.devices:
        alloc.reserve(p)
    free = [p for p in plan.devices if p.bus is None and p.addr is None]
    if free:
        alloc.ports.add_shared_bridge([p.type for p in free], free[0].span)
    for p in plan.devices:
        alloc.place(p)
    return alloc


def _put_first(placement: model.Placement, plan: Plan) -> Plan:
    """The placement's `put TYPE, … at ADDR on "BUS"`: the first spec device of those types
    that names no bus or address of its own gets that place, as if the spec fixed it."""
    devices = list(plan.devices)
    for rule in placement.put_first:
        for i, p in enumerate(devices):
            if p.type in rule.devices:
                if p.bus is None and p.addr is None:
                    devices[i] = attrs.evolve(p, bus=rule.bus, addr=rule.addr)
                break
    return attrs.evolve(plan, devices=tuple(devices))
