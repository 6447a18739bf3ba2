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

Props declared `unique` (a port's chassis, a PHB's index) are checked on every device and,
where left out, set to the lowest value no device of the same group uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from compiler.base import notations
from compiler.base.diagnostics import Collector, Label, quote_list
from compiler.base.source import Span
from compiler.build import tree
from compiler.build.plan import Plan, Planned
from compiler.lang import model

_PREFIX = re.compile(r"^([A-Za-z][A-Za-z_-]*?)\d+$")  # `phb0` → `phb`


class _Used(dict[tuple[int, ...], str]):
    """A bus's taken addresses → the id holding each, indexed for the scans of the
    allocator: how many addresses each first field (a PCI slot) has, and `floors`, where a
    scan for a free address may start because everything below is taken. Every change goes
    through the methods below, so the index stays right; a removal forgets the floors."""

    generation = 0  # counts removals on any bus: the allocator's own floors check it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.firsts: dict[int, int] = {}
        self.floors: dict[tuple[object, ...], int] = {}
        for addr in self:
            self._count(addr, 1)

    def _count(self, addr: tuple[int, ...], step: int) -> None:
        if addr:
            self.firsts[addr[0]] = self.firsts.get(addr[0], 0) + step

    def _removed(self) -> None:
        self.floors.clear()
        _Used.generation += 1

    def slot_taken(self, first: int) -> bool:
        """Does any address start with `first` (a PCI slot with any function taken)?"""
        return self.firsts.get(first, 0) > 0

    def __setitem__(self, addr: tuple[int, ...], ident: str) -> None:
        if addr not in self:
            self._count(addr, 1)
        super().__setitem__(addr, ident)

    def __delitem__(self, addr: tuple[int, ...]) -> None:
        super().__delitem__(addr)
        self._count(addr, -1)
        self._removed()

    def pop(self, addr: tuple[int, ...], *default: Any) -> Any:
        if addr not in self:
            return super().pop(addr, *default)
        ident = super().pop(addr)
        self._count(addr, -1)
        self._removed()
        return ident

    def popitem(self) -> tuple[tuple[int, ...], str]:
        addr, ident = super().popitem()
        self._count(addr, -1)
        self._removed()
        return addr, ident

    def clear(self) -> None:
        super().clear()
        self.firsts.clear()
        self._removed()

    def setdefault(self, addr: tuple[int, ...], ident: str) -> str:
        if addr not in self:
            self[addr] = ident
        return self[addr]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for addr, ident in dict(*args, **kwargs).items():
            self[addr] = ident

    def __ior__(self, other: Any) -> _Used:  # type: ignore[override,misc]
        self.update(other)
        return self


def _as_used(value: dict[tuple[int, ...], str]) -> _Used:
    return value if isinstance(value, _Used) else _Used(value)


@attrs.define
class _Bus:
    name: str
    kind: str
    space: notations.AddressSpace
    owner: str | None
    used: _Used = attrs.field(factory=_Used, converter=_as_used)
    hotplug: bool = True  # the bus template's word, else its bus kind's
    devices: list[str] = attrs.Factory(list)


@attrs.define
class _Node:
    device: tree.Device
    bus: str | None
    buses: list[str] = attrs.Factory(list)


Bus = _Bus  # for stages that continue placing on a rebuilt machine (hotplug)


class Allocator:
    def __init__(self, schema: model.MachineSchema, library: model.Library,
                 diags: Collector) -> None:
        self.schema = schema
        self.library = library
        self.diags = diags
        self.buses: dict[str, _Bus] = {}  # by key: "OWNER/NAME" (names repeat: virtio-bus)
        self.by_name: dict[str, str] = {}  # a bus name → the first bus of that name
        self.nodes: dict[str, _Node] = {}
        self.failed_buses: set[str] = set()  # buses of devices that could not be placed
        self.reservations: dict[str, Planned] = {}  # fixed addresses, held before placing
        self.root = "main-system-bus"
        self.buses[self.root] = _Bus(self.root, "system", notations.AddressSpace("none"), None)
        self.by_name[self.root] = self.root
        self.ports: list[str] = []
        self.containers: dict[str, list[str]] = {}  # overflow type → those added, in order
        # Indexes, so that no scan looks at every bus or device again for each new device.
        # `_add_bus` and `_attach` are the only writers of `buses` and `nodes`, which only
        # grow; a reused key or id turns the indexes off (`_indexes_hold`) and the scans
        # then look at everything, as they always see the same as a scan of all would.
        self._kind_keys: dict[str, list[str]] = {"system": [self.root]}  # in bus order
        self._groups: dict[str, dict[tree.PropValue, str]] = {}  # `unique` group → value → id
        self._prefixes: dict[str, str] = {}  # device type → its machine instance's id prefix
        self._fresh: dict[str, int] = {}  # id prefix → below it every number is taken
        # (scan, …) → (index, `_Used.generation`): the scan's candidates before the index
        # were all full (or a port's), and nothing was freed since
        self._floors: dict[tuple[object, ...], tuple[int, int]] = {}
        self._port_cache: tuple[tuple[int, int, int], set[str]] | None = None
        self._indexed = True
        self._seen = (1, 0)  # (buses, nodes) the indexes know

    # -- pass 1: what the machine builds
    def add_machine(self, devices: tuple[tree.Device, ...], bus: str) -> None:
        for d in devices:
            self._attach(d, bus, None if d.addr is None else
                         notations.parse(self.buses[bus].space.notation, d.addr))
            for b in d.buses:
                space = self._space_of(d.type, b.kind, b.notation)
                key = self._add_bus(_Bus(b.name, b.kind, space, d.id,
                                         hotplug=self._hotplug_of(d.type, b.kind)))
                self.add_machine(b.devices, key)

    def _add_bus(self, bus: _Bus) -> str:
        key = f"{bus.owner}/{bus.name}"
        if key in self.buses:
            self._indexed = False
        self.buses[key] = bus
        self._kind_keys.setdefault(bus.kind, []).append(key)
        self._seen = (len(self.buses), self._seen[1])
        self.by_name.setdefault(bus.name, key)
        if bus.owner is not None:
            self.nodes[bus.owner].buses.append(key)
        return key

    def _hotplug_of(self, dtype: str, kind: str) -> bool:
        t = self.library.devices.get(dtype)
        for template in t.buses if t else ():
            if template.kind == kind and template.hotplug is not None:
                return template.hotplug
        bk = self.library.buses.get(kind)
        return bk.hotplug if bk else False

    def _space_of(self, dtype: str, kind: str, notation: str) -> notations.AddressSpace:
        t = self.library.devices.get(dtype)
        for template in t.buses if t else ():
            if template.kind == kind:
                return template.address
        bk = self.library.buses.get(kind)
        return bk.address if bk else notations.AddressSpace(notation)

    def _attach(self, d: tree.Device, bus: str, addr: tuple[int, ...] | None) -> None:
        if d.id in self.nodes:
            self._indexed = False
        self.nodes[d.id] = _Node(attrs.evolve(d, buses=()) if d.buses else d, bus)
        self._seen = (self._seen[0], len(self.nodes))
        b = self.buses[bus]
        b.devices.append(d.id)
        if addr is not None:
            b.used[addr] = d.id
        t = self.library.devices.get(d.type)
        for spec in t.props.values() if t else ():
            if spec.unique is not None:
                for k, v in d.props:
                    if k == spec.name:
                        self._groups.setdefault(spec.unique, {}).setdefault(v, d.id)
        if d.origin == "machine" and d.type not in self._prefixes:
            m = _PREFIX.match(d.id)
            if m:
                self._prefixes[d.type] = m.group(1)

    def _indexes_hold(self) -> bool:
        return self._indexed and self._seen == (len(self.buses), len(self.nodes))

    def _keys_of(self, kind: str) -> list[str]:
        """The keys of the buses of `kind`, in the order they came."""
        if self._indexes_hold():
            return self._kind_keys.get(kind, [])
        return [key for key, bus in self.buses.items() if bus.kind == kind]

    def _floor(self, scan: tuple[object, ...]) -> int:
        floor = self._floors.get(scan)
        if floor is None or floor[1] != _Used.generation or not self._indexes_hold():
            return 0
        return floor[0]

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
            key = self.by_name.get(p.bus)
            candidates = [self.buses[key]] if key else []
        else:
            candidates = [self.buses[k] for pl in t.plugs for k in self._keys_of(pl.bus)]
        for bus in candidates:
            try:
                addr = notations.parse(bus.space.notation, p.addr)
            except notations.AddressSyntaxError:
                continue
            plug = t.plugs_into(bus.kind)
            if bus.space.out_of_range(addr, plug.tag if plug else None) is None and \
                    addr not in bus.used:
                bus.used[addr] = p.id
                self.reservations[p.id] = p
            return

    def place(self, p: Planned) -> None:
        t = self.library.devices[p.type]
        if p.bus in self.failed_buses:
            self._failed(p, t)  # its parent was already reported
            return
        placed = len(self.nodes)
        self._place(p, t)
        if len(self.nodes) == placed:
            self._failed(p, t)

    def _failed(self, p: Planned, t: model.DeviceType) -> None:
        for template in t.buses:
            self.failed_buses.update(template.names(p.id))

    def _place(self, p: Planned, t: model.DeviceType) -> None:
        if p.bus is not None:
            key = self.by_name.get(p.bus)
            bus = self.buses[key] if key else None
            if bus is None:
                self.diags.error("E1201", f"no bus `{p.bus}` in this machine", p.span,
                                 notes=[f"its buses are {quote_list(self.by_name)}"])
                return
            if t.plugs_into(bus.kind) is None:
                self.diags.error("E0504", f"`{t.name}` cannot go on `{bus.name}`, a "
                                 f"`{bus.kind}` bus", p.span,
                                 notes=[f"it plugs into {quote_list(pl.bus for pl in t.plugs)}"])
                return
            self._put(p, bus)
            return
        held = None if p.id not in self.reservations else next(
            (b for b in self.buses.values() if p.id in b.used.values()), None)
        bus = held or self._choose_bus(t, p.addr is not None, p.span, p.id)
        if bus is not None:
            self._put(p, bus)

    def _choose_bus(self, t: model.DeviceType, fixed: bool, span: Span,
                    for_id: str) -> _Bus | None:
        pl = self.schema.placement
        if (pl.port_device and t.hotplug and t.plugs_into(self._port_child_kind()) is not None
                and not fixed):
            port = self._new_port(span, f"for `{for_id}`")
            if port is not None:
                return port
            bridge = self._overflow_bus(t, span, for_id)
            if bridge is not None:
                return bridge
        for plug in t.plugs:
            found = self._first_free(plug.bus, plug.tag)
            if found is not None:
                return found
        for plug in t.plugs:
            provider = self.schema.providers.get(plug.bus)
            if provider is not None:
                owner = self._create(provider.device, span,
                                     f"`provide {plug.bus} by {provider.device}` in "
                                     f"`{self.schema.name}`, for `{for_id}`", provider.span,
                                     prefix=plug.bus)
                if owner is not None:
                    for name in self._buses_below(owner):
                        if self.buses[name].kind == plug.bus:
                            return self.buses[name]
        full = [b.name for b in self.buses.values() if t.plugs_into(b.kind)]
        self.diags.error("E1202", f"no free place for `{t.name}` in `{self.schema.name}`",
                         span, notes=[f"it plugs into {quote_list(p.bus for p in t.plugs)}"] +
                         ([f"those buses are all taken: {quote_list(full)}"] if full else []),
                         help="take a device out, or choose another interface or model")
        return None

    def _buses_below(self, owner: str) -> list[str]:
        """The buses of a device and of the children its type created, in order."""
        names: list[str] = []
        for name in self.nodes[owner].buses:
            names.append(name)
            for child in self.buses[name].devices:
                if child.startswith(f"{owner}."):
                    names.extend(self._buses_below(child))
        return names

    def _port_child_kind(self) -> str:
        t = self.library.devices.get(self.schema.placement.port_device or "")
        return t.buses[0].kind if t and t.buses else ""

    def _first_free(self, kind: str, tag: str | None) -> _Bus | None:
        """The first bus of `kind`, in the order buses came, that is no port's or overflow
        bridge's and has a free address for `tag`. Buses found full or a port's stay so
        (until an address is freed), so the next scan starts after them."""
        ports = self._port_buses()
        keys = self._keys_of(kind)
        scan = ("bus", kind, tag)
        for i in range(self._floor(scan), len(keys)):
            if keys[i] not in ports and self._next_free(self.buses[keys[i]], tag) is not None:
                self._floors[scan] = (i, _Used.generation)
                return self.buses[keys[i]]
        self._floors[scan] = (len(keys), _Used.generation)
        return None

    def _port_buses(self) -> set[str]:
        """The buses of the ports and overflow bridges added (lists that only grow)."""
        state = (len(self.ports), sum(len(made) for made in self.containers.values()),
                 len(self.buses))
        if self._port_cache is None or self._port_cache[0] != state:
            added = self.ports + [c for made in self.containers.values() for c in made]
            self._port_cache = (state, {b for p in added for b in self.nodes[p].buses})
        return self._port_cache[1]

    def _new_port(self, span: Span, purpose: str) -> _Bus | None:
        pl = self.schema.placement
        assert pl.port_device and pl.port_bus
        root_key = self.by_name.get(pl.port_bus)
        root = self.buses[root_key] if root_key else None
        if root is None:
            return None
        lo, hi = pl.port_slots or (0, 31)
        addr = self._next_packed_addr(root, (lo, hi), self.ports)
        if addr is None:
            return None
        # fn 0 of a slot of packed ports must say so, or QEMU refuses fn 1..7
        extra = (("multifunction", True),) if addr[1] == 0 else ()
        owner = self._create(pl.port_device, span, f"`placement {{ ports … }}` of "
                             f"`{self.schema.name}`: a root port {purpose}",
                             pl.span, bus=root, addr=addr, prefix="rp", extra=extra)
        if owner is None:
            return None
        self.ports.append(owner)
        return self.buses[self.nodes[owner].buses[0]]

    def _next_packed_addr(self, bus: _Bus, slots: tuple[int, int],
                          previous: list[str]) -> tuple[int, ...] | None:
        """Containers are packed as the functions of one slot, then the next free slot."""
        if previous:
            last = self.nodes[previous[-1]]
            slot, fn = notations.parse("pci", last.device.addr or "0.0")
            if last.bus == self._key(bus) and fn < 7 and (slot, fn + 1) not in bus.used:
                return (slot, fn + 1)
        scan, floors = ("slot", slots[0], slots[1]), bus.used.floors  # as in `_next_free`
        for slot in range(max(slots[0], floors.get(scan, slots[0])), slots[1] + 1):
            if not bus.used.slot_taken(slot):
                floors[scan] = slot
                return (slot, 0)
        floors[scan] = slots[1] + 1
        return None

    def _overflow_bus(self, t: model.DeviceType, span: Span, for_id: str) -> _Bus | None:
        """A bridge of the schema's `overflow` with room, or a new one, for `t`."""
        for container in self.schema.placement.overflow:
            made = self.containers.setdefault(container.device, [])
            scan = ("overflow", container.device, t.name)
            for i in range(self._floor(scan), len(made)):
                for key in self.nodes[made[i]].buses:
                    bus = self.buses[key]
                    plug = t.plugs_into(bus.kind)
                    if plug is not None and self._next_free(bus, plug.tag) is not None:
                        self._floors[scan] = (i, _Used.generation)
                        return bus
            self._floors[scan] = (len(made), _Used.generation)
            parent_key = self.by_name.get(container.bus)
            parent = self.buses[parent_key] if parent_key else None
            if parent is None:
                continue
            addr = self._next_packed_addr(parent, container.slots, made)
            if addr is None:
                continue
            ct = self.library.devices[container.device]
            if not any(t.plugs_into(b.kind) for b in ct.buses):
                continue
            extra = (("multifunction", True),) if addr[1] == 0 else ()
            created = self._create(container.device, span, f"`placement {{ overflow … }}` of "
                                   f"`{self.schema.name}`: no root port is left, for "
                                   f"`{for_id}`", self.schema.placement.span, bus=parent,
                                   addr=addr, prefix="br", extra=extra)
            if created is not None:
                made.append(created)
                return self.buses[self.nodes[created].buses[0]]
        return None

    def _create(self, dtype: str, span: Span, reason: str, rule_span: Span | None, *,
                bus: _Bus | None = None, addr: tuple[int, ...] | None = None,
                prefix: str, extra: tuple[tuple[str, tree.PropValue], ...] = ()
                ) -> str | None:
        """A device the compiler adds (port, controller), placed like any other."""
        t = self.library.devices[dtype]
        ident = self._fresh_id(self._machine_prefix(dtype) or prefix)
        props = list(extra)
        p = Planned(ident, dtype, "default", tuple(sorted(props)), (), None, None,
                    tree.Provenance(reason, rule_span, span), span)
        if bus is None:
            bus = self._choose_bus(t, False, span, ident)
            if bus is None:
                return None
        self._put(p, bus, addr)
        return ident if ident in self.nodes else None

    def _key(self, bus: _Bus) -> str:
        return f"{bus.owner}/{bus.name}" if bus.owner is not None else bus.name

    def _machine_prefix(self, dtype: str) -> str | None:
        """Name a device after the machine's own one of its type (`phb0` → `phb1`)."""
        if self._indexes_hold():
            return self._prefixes.get(dtype)
        for node in self.nodes.values():
            if node.device.type == dtype and node.device.origin == "machine":
                m = _PREFIX.match(node.device.id)
                if m:
                    return m.group(1)
        return None

    def _fresh_id(self, prefix: str) -> str:
        # only what is already placed counts, so a later spec item never changes this id;
        # ids are never taken back, so the search starts where the last one ended
        n = self._fresh.get(prefix, 0)
        while f"{prefix}{n}" in self.nodes:
            n += 1
        self._fresh[prefix] = n
        return f"{prefix}{n}"

    def _unique_values(self, p: Planned, t: model.DeviceType
                       ) -> tuple[tuple[str, tree.PropValue], ...] | None:
        """`p`'s props with every `unique` prop checked or filled in; None on a clash."""
        props = dict(p.props)
        for spec in t.props.values():
            if spec.unique is None:
                continue
            used = self._used_in_group(spec.unique)
            value = props.get(spec.name)
            if value is None:
                assert spec.type.lo is not None and spec.type.hi is not None
                scan = ("unique", spec.unique, spec.type.lo)
                free = next((v for v in range(max(spec.type.lo, self._floor(scan)),
                                              spec.type.hi + 1) if v not in used), None)
                if free is not None:
                    self._floors[scan] = (free, _Used.generation)
                if free is None:
                    self.diags.error("E1203", f"no free `{spec.name}` for `{p.id}`: all of "
                                     f"{spec.type.lo}..{spec.type.hi} are taken", p.span,
                                     notes=[f"`{t.name}` `{spec.name}` is unique in group "
                                            f"`{spec.unique}`"],
                                     help=f"`{self.schema.name}` takes at most "
                                     f"{spec.type.hi - spec.type.lo + 1} of these")
                    return None
                props[spec.name] = free
            elif isinstance(value, int) and value in used:
                other = self.nodes[used[value]].device
                where = other.why.cause or other.why.span
                self.diags.error("E1105", f"`{spec.name}` {value} of `{p.id}` is already used "
                                 f"by `{other.id}` ({other.type})", p.span,
                                 labels=[Label(where, f"`{other.id}` has it")] if where else [],
                                 notes=[f"`{spec.name}` is unique in group `{spec.unique}`"],
                                 help=f"leave `{spec.name}` out to get a free one")
                return None
        return tuple(sorted(props.items()))

    def _used_in_group(self, group: str) -> Mapping[tree.PropValue, str]:
        """Value → the first device having it, of the props in `unique` group `group`."""
        if self._indexes_hold():
            return self._groups.get(group, {})
        used: dict[tree.PropValue, str] = {}
        for ident, node in self.nodes.items():
            t = self.library.devices.get(node.device.type)
            for spec in t.props.values() if t else ():
                if spec.unique == group:
                    for k, v in node.device.props:
                        if k == spec.name:
                            used.setdefault(v, ident)
        return used

    def _next_free(self, bus: _Bus, tag: str | None) -> tuple[int, ...] | None:
        space = bus.space
        n = space.notation
        if n == "none":
            return ()
        # each scan starts at its floor: below it everything was taken (`_Used.floors`)
        used, floors = bus.used, bus.used.floors
        scan: tuple[object, ...]
        if n == "pci":
            for r in space.ranges("slot"):
                scan = ("slot", r.lo, r.hi)
                for slot in range(max(r.lo, floors.get(scan, r.lo)), r.hi + 1):
                    if not used.slot_taken(slot):
                        floors[scan] = slot
                        return (slot, 0)
                floors[scan] = r.hi + 1
            return None
        if n == "vio":
            start = self.schema.placement.vio_base or space.ranges("reg")[0].lo
            scan = ("reg", start)
            reg = max(start, floors.get(scan, start))
            while (reg,) in used:
                reg += 1
            floors[scan] = reg
            if space.out_of_range((reg,)) is not None:
                return None  # the bus's regs ran out (pseries: VIO interrupts would collide)
            return (reg,)
        if n == "scsi":
            for r in space.ranges("target"):
                scan = ("target", r.lo, r.hi)
                for target in range(max(r.lo, floors.get(scan, r.lo)), r.hi + 1):
                    if (0, target, 0) not in used:
                        floors[scan] = target
                        return (0, target, 0)
                floors[scan] = r.hi + 1
            return None
        if n in ("usb", "unit"):
            field = "port" if n == "usb" else "unit"
            for r in space.ranges(field):
                if tag is not None and r.tag not in (None, tag):
                    continue
                scan = (field, r.lo, r.hi)
                for v in range(max(r.lo, floors.get(scan, r.lo)), r.hi + 1):
                    if (v,) not in used:
                        floors[scan] = v
                        return (v,)
                floors[scan] = r.hi + 1
            return None
        return None

    def _put(self, p: Planned, bus: _Bus, addr: tuple[int, ...] | None = None) -> None:
        t = self.library.devices[p.type]
        plug = t.plugs_into(bus.kind)
        if addr is None and p.addr is not None:
            try:
                addr = notations.parse(bus.space.notation, p.addr)
            except notations.AddressSyntaxError as exc:
                self.diags.error("E0503", f"`{p.addr}` is not a {bus.space.notation} address",
                                 p.span, help=str(exc))
                return
            why = bus.space.out_of_range(addr, plug.tag if plug else None)
            if why:
                self.diags.error("E0501", f"address out of range on `{bus.name}`: {why}", p.span)
                return
            other = bus.used.get(addr)
            if other is not None and other != p.id:  # p.id: its own reservation
                reserved = self.reservations.get(other)
                if reserved is not None and other not in self.nodes:
                    self.diags.error("E0502", f"`{p.id}` and `{other}` both want {p.addr} on "
                                     f"`{bus.name}`", p.span,
                                     labels=[Label(reserved.span, f"`{other}` asks for it here")])
                    return
                o = self.nodes[other].device
                self.diags.error("E0502", f"`{p.id}` and `{other}` both want "
                                 f"{p.addr} on `{bus.name}`", p.span,
                                 labels=[Label(o.why.span, f"`{other}` ({o.type}) is "
                                               f"there: {o.why.reason}")]
                                 if o.why.span else [],
                                 notes=[] if o.why.span else [f"`{other}` ({o.type}) is there: "
                                                              f"{o.why.reason}"])
                return
        if addr is None:
            addr = self._next_free(bus, plug.tag if plug else None)
            if addr is None:
                self.diags.error("E1202", f"bus `{bus.name}` is full", p.span,
                                 notes=[f"it holds {quote_list(bus.devices)}"],
                                 help="leave `bus` out to get a free place, or pick another")
                return
        taken = self.nodes.get(p.id)
        if taken is not None:
            self.diags.error("E1103", f"id `{p.id}` is already taken by `{taken.device.type}`",
                             p.span, notes=[f"`{p.id}`: {taken.device.why.reason}"],
                             help="give this device another id")
            return
        props = self._unique_values(p, t)
        if props is None:
            return
        notation = bus.space.notation
        text = None if notation == "none" else notations.format(notation, addr)
        device = tree.Device(p.id, p.type, p.origin, text, props, p.backend, (), p.why)
        self._attach(device, self._key(bus), addr if notation != "none" else None)
        self._add_buses(device, t)

    def _add_buses(self, device: tree.Device, t: model.DeviceType,
                   qemu_id: str | None = None) -> None:
        """The buses a new device provides, and the children its type creates on them."""
        for template in t.buses:
            for name in template.names(qemu_id or device.id):
                key = self._add_bus(_Bus(name, template.kind, template.address, device.id,
                                         hotplug=self._hotplug_of(t.name, template.kind)))
                for child in template.children:
                    ct = self.library.devices[child.type]
                    cid = f"{device.id}.{child.id}"
                    notation = template.address.notation
                    addr = (None if child.address is None or notation == "none"
                            else notations.format(notation, child.address))
                    # QEMU creates these with their parent: listed, never emitted
                    cd = tree.Device(cid, child.type, "machine", addr, tuple(child.props),
                                     (), (), tree.Provenance(f"created by `{t.name}`",
                                                             child.span))
                    self._attach(cd, key, child.address if addr is not None else None)
                    self._add_buses(cd, ct, qemu_id or device.id)

    # -- hot-plug (continuing from a rebuilt machine)
    def put(self, p: Planned, bus: _Bus) -> None:
        """Place `p` on `bus`, at its own address or the next free one."""
        self._put(p, bus)

    def bus_named(self, name: str) -> _Bus | None:
        key = self.by_name.get(name)
        return self.buses[key] if key else None

    def hotpluggable(self, bus: _Bus) -> bool:
        """Can QEMU hot-plug onto `bus`? PCI: behind a port or an overflow bridge where the
        machine has ports (never its root complex), else a host bridge's bus; other kinds:
        any bus of theirs."""
        if not bus.hotplug:
            return False
        if bus.space.notation != "pci":
            return True
        owner = self.nodes[bus.owner].device.type if bus.owner in self.nodes else ""
        pl = self.schema.placement
        if pl.port_device:
            return owner == pl.port_device or owner in {c.device for c in pl.overflow}
        return bus.owner is not None and self.nodes[bus.owner].bus == self.root

    def hotplug_places(self, t: model.DeviceType) -> list[str]:
        """Names of the buses where `t` can be hot-plugged now, in the order they came."""
        names = []
        for bus in self.buses.values():
            plug = t.plugs_into(bus.kind)
            if plug is not None and self.hotpluggable(bus) and \
                    self._next_free(bus, plug.tag) is not None:
                names.append(bus.name)
        return names

    def capacity(self) -> list[tuple[str, str, int]]:
        """(bus, kind, free places) of every hot-pluggable bus with room: what `hotplug`
        can still use. VIO is left out: its regs do not run out."""
        result = []
        for bus in self.buses.values():
            if not self.hotpluggable(bus) or bus.space.notation in ("none", "vio"):
                continue
            if bus.space.notation == "pci":
                free = sum(1 for r in bus.space.ranges("slot") for slot in range(r.lo, r.hi + 1)
                           if not any(a[0] == slot for a in bus.used))
            else:
                field = notations.NOTATIONS[bus.space.notation][-2 if bus.space.notation ==
                                                                 "scsi" else 0]
                free = sum(1 for r in bus.space.ranges(field) for v in range(r.lo, r.hi + 1)
                           if not any(a[-2 if bus.space.notation == "scsi" else 0] == v
                                      for a in bus.used))
            if free:
                result.append((bus.name, bus.kind, free))
        return result

    # -- pass 3: spare ports
    def spare_ports(self, count: int, span: Span, required: bool) -> None:
        """`required`: the spec asked for them (else the schema's default: best effort)."""
        if not self.schema.placement.port_device:
            if required:
                self._spare_root_slots(count, span)
            return
        for made in range(count):
            if self._new_port(span, "kept free for hot-plug (`hotplug-slots`)") is None:
                if required:
                    self.diags.error("E1204", f"no room for {count - made} more hot-plug "
                                     f"port(s): all {self._port_positions()} port positions "
                                     "are taken", span,
                                     help="ask for fewer `hotplug-slots`, or take devices out")
                return

    def _root_pci_buses(self) -> list[_Bus]:
        """PCI buses of host bridges (on the system bus): where a machine without ports
        hot-plugs its endpoints."""
        return [b for b in self.buses.values() if b.space.notation == "pci"
                and b.owner is not None and self.nodes[b.owner].bus == self.root]

    def _spare_root_slots(self, count: int, span: Span) -> None:
        """Keep `count` slots free on the host bridges, adding bridges the schema provides."""
        def free() -> int:
            return sum(1 for b in self._root_pci_buses() for r in b.space.ranges("slot")
                       for slot in range(r.lo, r.hi + 1)
                       if not b.used.slot_taken(slot))

        kinds = {b.kind for b in self._root_pci_buses()}
        provider = next((self.schema.providers[k] for k in sorted(kinds)
                         if k in self.schema.providers), None)
        while free() < count:
            if provider is None or self._create(
                    provider.device, span, f"`provide {provider.bus} by {provider.device}` in "
                    f"`{self.schema.name}`: more free slots for `hotplug-slots`",
                    provider.span, prefix=provider.bus, bus=self.buses[self.root]) is None:
                self.diags.error("E1204", f"only {free()} hot-pluggable slot(s) are free, not "
                                 f"{count}", span, help="ask for fewer `hotplug-slots`")
                return

    def _port_positions(self) -> int:
        lo, hi = self.schema.placement.port_slots or (0, 31)
        return (hi - lo + 1) * 8

    # -- result
    def tree(self) -> tree.Bus:
        def bus(key: str) -> tree.Bus:
            b = self.buses[key]
            return tree.Bus(b.name, b.kind, b.space.notation,
                            tuple(device(d) for d in b.devices))

        def device(ident: str) -> tree.Device:
            node = self.nodes[ident]
            buses = tuple(bus(n) for n in node.buses)
            return attrs.evolve(node.device, buses=buses) if buses else node.device

        return bus(self.root)


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
    alloc = Allocator(schema, library, diags)
    alloc.add_machine(machine_devices, alloc.root)
    for p in plan.devices:
        alloc.reserve(p)
    for p in plan.devices:
        alloc.place(p)
    return alloc
