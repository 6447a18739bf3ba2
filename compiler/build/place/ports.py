"""The PCI hot-plug rule: where a machine with root ports (q35) puts each hot-pluggable
endpoint behind a port of its own, adds overflow bridges when the ports run out and keeps
spare ports; where a machine without ports (pseries) keeps host-bridge slots free; and
which buses QEMU can hot-plug onto.

Ports and bridges are packed as the functions of a slot, then the next free slot. The
devices themselves are placed by the allocator (`create`); this module decides where.
"""

from __future__ import annotations

from typing import Protocol

from compiler.base.diagnostics import Collector
from compiler.base.source import Span
from compiler.build import tree
from compiler.build.place import ids
from compiler.build.place.state import Bus, Placed
from compiler.lang import model

Props = tuple[tuple[str, tree.PropValue], ...]


class Create(Protocol):
    """The allocator's: add a device of `dtype` (on `bus` at `addr`, else wherever it
    plugs), named with `prefix`; its id, or None when it could not be placed."""

    def __call__(self, dtype: str, span: Span, reason: str, rule_span: Span | None, *,
                 prefix: str, bus: Bus | None = None, addr: tuple[int, ...] | None = None,
                 extra: Props = ()) -> str | None: ...


def _multifunction(addr: tuple[int, ...]) -> Props:
    # fn 0 of a slot of packed ports must say so, or QEMU refuses fn 1..7
    return (("multifunction", True),) if addr[1] == 0 else ()


class Ports:
    def __init__(self, *, placed: Placed, schema: model.MachineSchema,
                 library: model.Library, diags: Collector, create: Create) -> None:
        self.placed = placed
        self.schema = schema
        self.library = library
        self.diags = diags
        self.create = create
        self.ports: list[str] = []
        self.bridges: dict[str, list[str]] = {}  # overflow type → those added, in order
        self._bridge_cursors: dict[tuple[str, str], int] = {}  # below: bridges found full
        self._port_buses: set[str] = set()
        self.numbered = 0  # ports and bridges that took a number (`chassis-from`)
        self.shared_bridge: str | None = None  # the placement's `bridge … for …`
        self._bridge_numbered = False

    # -- placing endpoints
    def wants_port(self, t: model.DeviceType) -> bool:
        """Does `t` go behind a port of its own (when no address is fixed)?"""
        return bool(self.schema.placement.port_device and t.hotplug
                    and t.plugs_into(self._port_child_kind()) is not None)

    def is_port_bus(self, key: str) -> bool:
        """Is `key` a bus of a port or an overflow bridge added (kept for hot-plug)?"""
        return key in self._port_buses

    def new_port(self, span: Span, purpose: str) -> Bus | None:
        pl = self.schema.placement
        assert pl.port_device and pl.port_bus
        root = self.placed.named(pl.port_bus)
        if root is None:
            return None
        addr = self._next_packed_addr(root, pl.port_slots or (0, 31), self.ports)
        if addr is None:
            return None
        owner = self.create(pl.port_device, span, f"`placement {{ ports … }}` of "
                            f"`{self.schema.name}`: a root port {purpose}",
                            pl.span, bus=root, addr=addr, prefix=ids.PORT_PREFIX,
                            extra=_multifunction(addr) + self._numbers(addr))
        if owner is None:
            return None
        self.numbered += 1
        self.ports.append(owner)
        self._port_buses.update(self.placed.nodes[owner].buses)
        return self.placed.first_bus_of(owner)

    def overflow_bus(self, t: model.DeviceType, span: Span, for_id: str) -> Bus | None:
        """A bridge of the schema's `overflow` with room, or a new one, for `t`: where no
        port is left (q35), or no free place on the buses `t` plugs into (pc-i440fx's pci.0).
        The bridges take the container's slots of its bus, kept for them."""
        for container in self.schema.placement.overflow:
            made = self.bridges.setdefault(container.device, [])
            cursor = (container.device, t.name)
            start = self._bridge_cursors.get(cursor, 0) if self.placed.indexes_hold() else 0
            for i in range(start, len(made)):
                for key in self.placed.nodes[made[i]].buses:
                    bus = self.placed.buses[key]
                    plug = t.plugs_into(bus.kind)
                    if plug is not None and bus.next_free(plug.tag, self._base) is not None:
                        self._bridge_cursors[cursor] = i
                        return bus
            self._bridge_cursors[cursor] = len(made)
            ct = self.library.devices[container.device]
            if not any(t.plugs_into(b.kind) for b in ct.buses):
                continue
            why = ("no root port is left" if self.schema.placement.port_device else
                   "no free place is left")
            created = self._new_container(container, span, f"{why}, for `{for_id}`")
            if created is not None:
                return self.placed.first_bus_of(created)
        return None

    def _new_container(self, container: model.Container, span: Span, why: str) -> str | None:
        """A new overflow container on its bus (its next packed place), or None."""
        made = self.bridges.setdefault(container.device, [])
        parent = self.placed.named(container.bus)
        if parent is None:
            return None
        addr = self._next_packed_addr(parent, container.slots, made)
        if addr is None:
            return None
        created = self.create(container.device, span, f"`placement {{ overflow … }}` of "
                              f"`{self.schema.name}`: {why}", self.schema.placement.span,
                              bus=parent, addr=addr, prefix=ids.BRIDGE_PREFIX,
                              extra=_multifunction(addr))
        if created is not None:
            self.numbered += 1
            made.append(created)
            self._port_buses.update(self.placed.nodes[created].buses)
        return created

    def _numbers(self, addr: tuple[int, ...]) -> Props:
        """A port's `chassis` and `port` where the placement numbers them (`chassis-from`:
        one number per port or bridge added, in the order they come; `port-number
        slot-function`: 8 × slot + function), else nothing (`unique` gives them)."""
        pl = self.schema.placement
        numbers: Props = ()
        if pl.chassis_from is not None:
            numbers += (("chassis", pl.chassis_from + self.numbered),)
        if pl.port_by_address:
            numbers += (("port", addr[0] * 8 + addr[1]),)
        return numbers

    def kept(self, bus_name: str) -> tuple[tuple[int, int], ...]:
        """The slots of bus `bus_name` that the placement's overflow containers keep."""
        return tuple(c.slots for c in self.schema.placement.overflow if c.bus == bus_name)

    def inner(self, device: tree.Device) -> tuple[int, int] | None:
        """The `inner-slots` of the overflow container `device` is, if it is one."""
        container = self.container(device)
        return container.inner if container else None

    def container(self, device: tree.Device) -> model.Container | None:
        """The overflow container `device` is: one of that type on the container's bus, in
        its slots (added by the placement, or read back from a blob)."""
        node = self.placed.nodes.get(device.id)
        bus = self.placed.buses.get(node.bus) if node and node.bus else None
        if bus is None or device.addr is None:
            return None
        value = bus.rules.scan_value(device.addr.value)
        for c in self.schema.placement.overflow:
            if (c.device == device.type and bus.name == c.bus
                    and value is not None and c.slots[0] <= value <= c.slots[1]):
                return c
        return None

    # -- the shared bridge (`bridge DEVICE for TYPE, …`)
    def add_shared_bridge(self, types: list[str], span: Span) -> None:
        """Before any endpoint: when the spec has a device the placement's `bridge` is for,
        a port and the bridge behind it (libvirt adds its pcie-pci-bridge first, on the
        first port)."""
        pl = self.schema.placement
        if pl.bridge is None or not any(t in pl.bridged for t in types):
            return
        port = self.new_port(span, f"for the `{pl.bridge}` of `placement {{ bridge … }}`")
        if port is None:
            return
        made = self.create(pl.bridge, span, f"`placement {{ bridge {pl.bridge} for … }}` of "
                           f"`{self.schema.name}`", pl.span, bus=port, prefix=ids.BRIDGE_PREFIX)
        if made is not None:
            self.shared_bridge = made
            self._port_buses.update(self.placed.nodes[made].buses)

    def bridged_place(self, t: model.DeviceType) -> tuple[Bus, tuple[int, ...]] | None:
        """A place on the shared bridge (its first free slot of the placement's `slots`)
        when `t` is a type it is for. The first such endpoint gives the bridge its number
        (libvirt numbers the bridge where the first device that needs it comes)."""
        pl = self.schema.placement
        if self.shared_bridge is None or t.name not in pl.bridged:
            return None
        for key in self.placed.nodes[self.shared_bridge].buses:
            bus = self.placed.buses[key]
            if t.plugs_into(bus.kind) is None:
                continue
            free = bus.used.first_free(*pl.bridge_slots)
            if free is not None:
                if not self._bridge_numbered:
                    self._bridge_numbered = True
                    self.numbered += 1
                addr = bus.rules.at(free)
                function = dict(pl.functions).get(t.name)
                return bus, addr if function is None else (addr[0], function)
        return None

    @property
    def _base(self) -> int | None:
        return self.schema.placement.vio_base

    def _port_child_kind(self) -> str:
        t = self.library.devices.get(self.schema.placement.port_device or "")
        return t.buses[0].kind if t and t.buses else ""

    def _next_packed_addr(self, bus: Bus, slots: tuple[int, int],
                          previous: list[str]) -> tuple[int, ...] | None:
        """Containers are packed as the functions of one slot, then the next free slot."""
        rules = bus.rules
        if previous:
            last = self.placed.nodes[previous[-1]]
            slot, fn = last.device.addr.value if last.device.addr else (0, 0)
            if last.bus == bus.key and fn < 7 and (slot, fn + 1) not in bus.used:
                return (slot, fn + 1)
        free = bus.used.first_free(*slots)
        return None if free is None else rules.at(free)

    # -- hot-plug
    def hotpluggable(self, bus: Bus) -> bool:
        """Can QEMU hot-plug onto `bus`? PCI: behind a port or an overflow bridge where the
        machine has ports (never its root complex), else a host bridge's bus or an overflow
        container's (where the placement put it: its `inner-slots` hold; a spec's own bridge
        may need an SHPC's slot 1 up, pc-i440fx without ACPI); other kinds: any bus of
        theirs."""
        if not bus.hotplug:
            return False
        if not bus.rules.pci_hierarchy:
            return True
        owner = self.placed.owner_type(bus)
        pl = self.schema.placement
        if pl.port_device:
            return owner == pl.port_device or owner in {c.device for c in pl.overflow}
        node = self.placed.nodes.get(bus.owner or "")
        return self.placed.on_root(bus) or (node is not None
                                            and self.container(node.device) is not None)

    def hotplug_places(self, t: model.DeviceType) -> list[str]:
        """Names of the buses where `t` can be hot-plugged now, in the order they came."""
        names = []
        for bus in self.placed.buses.values():
            plug = t.plugs_into(bus.kind)
            if plug is not None and self.hotpluggable(bus) and \
                    bus.next_free(plug.tag, self._base) is not None:
                names.append(bus.name)
        return names

    def capacity(self) -> list[tuple[str, str, int]]:
        """(bus, kind, free places) of every hot-pluggable bus with room: what `hotplug`
        can still use. VIO is left out: its regs do not run out."""
        result = []
        for bus in self.placed.buses.values():
            if not self.hotpluggable(bus):
                continue
            free = bus.rules.capacity(bus.free_space, bus.used)
            if free:
                result.append((bus.name, bus.kind, free))
        return result

    # -- spare ports
    def spare_ports(self, count: int, span: Span, required: bool) -> None:
        """`required`: the spec asked for them (else the schema's default: best effort)."""
        if not self.schema.placement.port_device:
            if required:
                self._spare_root_slots(count, span)
            return
        for made in range(count):
            if self.new_port(span, "kept free for hot-plug (`hotplug-slots`)") is None:
                if required:
                    self.diags.error("E1204", f"no room for {count - made} more hot-plug "
                                     f"port(s): all {self._port_positions()} port positions "
                                     "are taken", span,
                                     help="ask for fewer `hotplug-slots`, or take devices out")
                return

    def _hotplug_pci_buses(self) -> list[Bus]:
        """The PCI buses QEMU hot-plugs onto under the machine's options, where a machine
        without ports hot-plugs its endpoints: host bridges' (on the system bus) and the
        placement's overflow bridges'."""
        return [b for b in self.placed.buses.values()
                if b.rules.pci_hierarchy and self.hotpluggable(b)]

    def _spare_root_slots(self, count: int, span: Span) -> None:
        """Keep `count` slots free where QEMU hot-plugs, adding host bridges the schema
        provides (a `provide` of a type on the system bus, as pseries' PHBs), else the
        placement's overflow bridges (pc-i440fx with acpi=off: QEMU hot-plugs behind a
        bridge only)."""
        def free() -> int:
            return sum(b.rules.capacity(b.free_space, b.used)
                       for b in self._hotplug_pci_buses())

        kinds = {b.kind for b in self.placed.buses.values()
                 if b.rules.pci_hierarchy and self.placed.on_root(b)}
        system = self.placed.root.kind
        provider = next((p for k in sorted(kinds) if (p := self.schema.providers.get(k))
                         and self.library.devices[p.device].plugs_into(system)), None)
        containers = self.schema.placement.overflow
        while free() < count:
            reason = "more free slots for `hotplug-slots`"
            if provider is not None:
                added = self.create(provider.device, span, f"`provide {provider.bus} by "
                                    f"{provider.device}` in `{self.schema.name}`: {reason}",
                                    provider.span, prefix=provider.bus, bus=self.placed.root)
            else:
                added = next((made for c in containers
                              if (made := self._new_container(c, span, reason))), None)
            if added is None:
                self.diags.error("E1204", f"only {free()} hot-pluggable slot(s) are free, not "
                                 f"{count}", span, help="ask for fewer `hotplug-slots`")
                return

    def _port_positions(self) -> int:
        lo, hi = self.schema.placement.port_slots or (0, 31)
        return (hi - lo + 1) * 8
