"""The machine placed so far: its buses and devices, in the order they came, with the
indexes the allocator's scans use, and the precise tree they make at the end.

`add_bus` and `attach` are the only writers; buses and devices only grow. A reused bus key
or device id turns the indexes off (`indexes_hold`), and the scans then look at everything,
which always finds the same as the indexes would.
"""

from __future__ import annotations

import attrs

from compiler.base import notations
from compiler.build import tree
from compiler.build.place.free import TakenAddresses

ROOT = "main-system-bus"


@attrs.define
class Bus:
    name: str
    kind: str
    space: notations.AddressSpace
    owner: str | None
    hotplug: bool = True  # the bus template's word, else its bus kind's
    devices: list[str] = attrs.Factory(list)
    used: TakenAddresses = attrs.field(
        default=attrs.Factory(lambda self: TakenAddresses(self.space.rules), takes_self=True))
    # values of the scanned field (PCI slots) kept for the placement's overflow containers:
    # no other device gets them from the allocator (a container's address is given to it)
    kept: tuple[tuple[int, int], ...] = ()
    # `space` without the kept values: where the allocator looks for free places
    free_space: notations.AddressSpace = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.free_space = _without(self.space, self.kept)

    @property
    def key(self) -> str:
        """Bus names repeat (`virtio-bus`): the owner's id tells them apart."""
        return f"{self.owner}/{self.name}" if self.owner is not None else self.name

    @property
    def rules(self) -> notations.Notation:
        return self.space.rules

    def next_free(self, tag: str | None, base: int | None) -> tuple[int, ...] | None:
        """The address a device plugged with `tag` gets here, or None when full."""
        return self.rules.next_free(self.free_space, self.used, tag, base)

    def narrow(self, lo: int, hi: int) -> None:
        """Only `lo..hi` of the scanned field for devices placed from now on (an overflow
        container's `inner-slots`)."""
        field = self.rules.scan_field
        if field is None:
            return
        kept = tuple((a, b) for a, b in ((self.space.ranges(field)[0].lo, lo - 1),
                                           (hi + 1, self.space.ranges(field)[-1].hi))
                     if a <= b)
        self.kept = tuple(sorted({*self.kept, *kept}))
        self.free_space = _without(self.space, self.kept)


def _without(space: notations.AddressSpace, kept: tuple[tuple[int, int], ...]
             ) -> notations.AddressSpace:
    """`space` without the `kept` values of its notation's scanned field."""
    field = space.rules.scan_field
    if not kept or field is None:
        return space
    ranges: list[notations.FieldRange] = []
    for r in space.ranges(field):
        pieces = [(r.lo, r.hi)]
        for lo, hi in kept:
            pieces = [p for a, b in pieces
                      for p in ((a, min(b, lo - 1)), (max(a, hi + 1), b)) if p[0] <= p[1]]
        ranges += [notations.FieldRange(a, b, r.tag) for a, b in pieces]
    return space.narrowed({field: tuple(ranges)})


@attrs.define
class Node:
    device: tree.Device
    bus: str | None
    buses: list[str] = attrs.Factory(list)


class Placed:
    """Buses by key, devices by id, and which bus a name or a kind finds first."""

    def __init__(self) -> None:
        root = Bus(ROOT, "system", notations.AddressSpace("none"), None)
        self.buses: dict[str, Bus] = {ROOT: root}
        self.by_name: dict[str, str] = {ROOT: ROOT}  # a bus name → the first of that name
        self.nodes: dict[str, Node] = {}
        self._kind_keys: dict[str, list[str]] = {"system": [ROOT]}  # in bus order
        self._indexed = True

    @property
    def root(self) -> Bus:
        return self.buses[ROOT]

    def indexes_hold(self) -> bool:
        return self._indexed

    def add_bus(self, bus: Bus) -> str:
        key = f"{bus.owner}/{bus.name}"
        if key in self.buses:
            self._indexed = False
        self.buses[key] = bus
        self._kind_keys.setdefault(bus.kind, []).append(key)
        self.by_name.setdefault(bus.name, key)
        if bus.owner is not None:
            self.nodes[bus.owner].buses.append(key)
        return key

    def attach(self, d: tree.Device, bus: str, addr: tuple[int, ...] | None) -> None:
        if d.id in self.nodes:
            self._indexed = False
        self.nodes[d.id] = Node(attrs.evolve(d, buses=()) if d.buses else d, bus)
        b = self.buses[bus]
        b.devices.append(d.id)
        if addr is not None:
            b.used.take(addr, d.id)

    def named(self, name: str) -> Bus | None:
        key = self.by_name.get(name)
        return self.buses[key] if key else None

    def keys_of(self, kind: str) -> list[str]:
        """The keys of the buses of `kind`, in the order they came."""
        if self.indexes_hold():
            return self._kind_keys.get(kind, [])
        return [key for key, bus in self.buses.items() if bus.kind == kind]

    def owner_type(self, bus: Bus) -> str:
        return self.nodes[bus.owner].device.type if bus.owner in self.nodes else ""

    def on_root(self, bus: Bus) -> bool:
        """Is `bus` a bus of a device on the system bus (a host bridge's)?"""
        return bus.owner is not None and self.nodes[bus.owner].bus == ROOT

    def buses_below(self, owner: str) -> list[str]:
        """The buses of a device and of the children its type created, in order."""
        names: list[str] = []
        for name in self.nodes[owner].buses:
            names.append(name)
            for child in self.buses[name].devices:
                if child.startswith(f"{owner}."):
                    names.extend(self.buses_below(child))
        return names

    def first_bus_of(self, ident: str) -> Bus:
        return self.buses[self.nodes[ident].buses[0]]

    def tree(self) -> tree.Bus:
        def bus(key: str) -> tree.Bus:
            b = self.buses[key]
            return tree.Bus(b.name, b.kind, b.space.notation,
                            tuple(device(d) for d in b.devices))

        def device(ident: str) -> tree.Device:
            node = self.nodes[ident]
            buses = tuple(bus(n) for n in node.buses)
            return attrs.evolve(node.device, buses=buses) if buses else node.device

        return bus(ROOT)
