"""`mschema extract`: QEMU's `info qtree` as the other extract steps read it. Every device
is a `Record` (its bus, its owner, its `dev:` line), in walk order; the view answers where
a device sits (its address in the CONTRACT's notation) and in which order QEMU created
them. Reads only; it ends at the records and decides nothing about the blob.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs

from compiler.base import notations
from compiler.base.source import SourceFile, Span
from compiler.qemu import compare, process
from compiler.qemu.extract.snapshot import Snapshot, Value

BusKey = tuple[int | None, str]  # (walk index of the owning device, bus name)


@attrs.frozen
class Record:
    """A device of `info qtree`, with where it is."""

    index: int  # in `qemu.walk` order
    bus: process.QtreeBus
    device: process.QtreeDevice
    owner: int | None  # the device owning `bus`; None on the root bus
    span: Span  # its `dev:` line
    port: str | None  # the USB port QEMU gave it

    @property
    def bus_key(self) -> BusKey:
        return (self.owner, self.bus.name)


@attrs.frozen
class Qtree:
    source: SourceFile  # the `info qtree` text: warnings point into it
    root: process.QtreeBus
    info: compare.BusInfo
    records: tuple[Record, ...]  # in walk order: `records[i].index == i`
    by_owner: Mapping[int | None, tuple[Record, ...]]  # the devices on a device's buses

    @classmethod
    def read(cls, snap: Snapshot) -> Qtree:
        source = SourceFile.from_text(f"<info qtree of {snap.socket}>", snap.qtree)
        root = process.parse_qtree(snap.qtree)
        lines = compare.qtree_lines(snap.qtree)
        records: list[Record] = []

        def visit(bus: process.QtreeBus, owner: int | None) -> None:
            for d in bus.devices:
                i = len(records)
                start, end, port = lines[d.line] if 0 <= d.line < len(lines) else (0, 0, None)
                records.append(Record(i, bus, d, owner, source.span(start, end), port))
                for b in d.buses:
                    visit(b, i)

        visit(root, None)
        by_owner: dict[int | None, list[Record]] = {}
        for r in records:
            by_owner.setdefault(r.owner, []).append(r)
        return cls(source, root, compare.bus_info(), tuple(records),
                   {owner: tuple(members) for owner, members in by_owner.items()})

    @property
    def top(self) -> Span:
        """The place of what has no device line."""
        return self.source.span(0, 0)

    def kind(self, r: Record) -> str:
        return self.info.kind(r.bus.type)

    def notation(self, r: Record) -> str:
        return self.info.notation(self.kind(r))

    def addr(self, r: Record) -> str | None:
        return compare.qtree_addr(self.notation(r), r.device, r.port)

    def creation_order(self) -> Iterator[Record]:
        """Owners before the devices on their buses, each bus oldest first."""
        def visit(owner: int | None) -> Iterator[Record]:
            groups: dict[str, list[Record]] = {}
            for r in self.by_owner.get(owner, ()):
                groups.setdefault(r.bus.name, []).append(r)
            for group in groups.values():
                ordered = list(reversed(group))  # qtree lists the newest first
                if notations.get(self.notation(group[0])).hub_paths:
                    # a device behind a hub port (`4.1`) after the hub (`4`), which QEMU
                    # may have created while placing it
                    ordered.sort(key=lambda r: (self.addr(r) or "").count("."))
                for r in ordered:
                    yield r
                    yield from visit(r.index)

        yield from visit(None)

    def below(self, r: Record) -> Iterator[Record]:
        """Every device on `r`'s buses, and below them."""
        for c in self.by_owner.get(r.index, ()):
            yield c
            yield from self.below(c)


def prop_value(device: process.QtreeDevice, name: str) -> Value | None:
    """A qdev prop as `info qtree` shows it, decoded (None if it does not show it)."""
    raw = device.prop(name)
    return None if raw is None else compare.qtree_value(raw)
