"""Address notations: how an address is written on each kind of bus, in one registry.

Each notation is one class: it parses and formats the CONTRACT text, shows values for
messages, gives QEMU's `-device` props for an address, reads an address back from QEMU's
props (`info qtree`, QOM), gives the FDT variables, and names the field the allocator scans
for a free address. A new bus notation is one class added to `REGISTRY`.

Which values are allowed on a bus (slot ranges, ports, USB2 vs USB3 tags) is data in the
stdlib's `bus` declarations (`AddressSpace`). An address is a tuple of ints. Where the free
addresses of a bus are kept is the allocator's job (`build/place/`), not this module's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Protocol

import attrs

from compiler.base.limits import MAX_DIGITS

Scalar = bool | int | str  # a prop value as QEMU reports it
# a decimal field, and the digits after a field's first: at most MAX_DIGITS, as every number
_N = f"[0-9]{{1,{MAX_DIGITS}}}"
_MORE = f"[0-9]{{0,{MAX_DIGITS - 1}}}"


_UNBOUNDED = 1 << 64  # past every address


class AddressSyntaxError(ValueError):
    pass


class FreePlaces(Protocol):
    """A bus's free values of its notation's `scan_field` (kept by the allocator)."""

    def first_free(self, lo: int, hi: int) -> int | None:
        """The lowest free value in `lo..hi`, or None."""


class Notation:
    """How addresses of one notation are written, and what QEMU and the FDT call them."""

    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]  # field names, in tuple order
    syntax_help: ClassVar[str]
    qemu_props: ClassVar[tuple[str, ...]] = ()  # QEMU's props for the fields, in order
    scan_field: ClassVar[str | None] = None  # the field the allocator counts free places on
    hub_paths: ClassVar[bool] = False  # addresses are paths through hubs (`4.1` behind `4`)
    # buses form a PCI hierarchy: slots with functions (the multifunction rule), bus numbers
    # as firmware enumerates them, host bridge nodes in the FDT, QEMU's hot-plug rules
    pci_hierarchy: ClassVar[bool] = False
    # device nodes are `NAME@UNIT` right under the bus's node, one for each device whose
    # type names its node (sPAPR VIO); `fdt_check` looks for each
    fdt_named_nodes: ClassVar[bool] = False
    # the allocator's free places never run out in practice: `hotplug` does not count them
    unbounded: ClassVar[bool] = False

    def interrupt(self, addr: tuple[int, ...]) -> int | None:
        """The interrupt number QEMU derives from the address, where it derives one; two
        devices on one bus never share it (validate's `address-interrupts`)."""
        return None

    @property
    def addressed(self) -> bool:
        """Do devices on buses of this notation have addresses at all?"""
        return bool(self.fields)

    def parse(self, text: str) -> tuple[int, ...]:
        """CONTRACT notation → tuple; raises AddressSyntaxError with the notation's help."""
        raise AddressSyntaxError(self.syntax_help)

    def format(self, addr: tuple[int, ...]) -> str:
        raise ValueError(f"notation {self.name!r} has no addresses")

    def show(self, field: str, value: int) -> str:
        """One field's value, as messages write it."""
        return str(value)

    def checked(self, addr: tuple[int, ...]) -> tuple[int, ...]:
        """The part of `addr` a bus's ranges constrain."""
        return addr

    def qemu(self, addr: tuple[int, ...]) -> dict[str, object]:
        """QEMU's `-device` props that put a device at `addr`."""
        return dict(zip(self.qemu_props, addr, strict=True))

    def from_qemu(self, values: Sequence[Scalar], port: str | None = None) -> str | None:
        """QEMU's values of `qemu_props` → the CONTRACT text (None when QEMU has not
        assigned one: `reg`/`unit`/`scsi-id` still at their `-1` "auto"). `port`: the USB
        port QEMU reports elsewhere (`info usb`), for notations that have one."""
        ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        if len(ints) != len(values) or any(v < 0 or v >= 0xFFFFFFFF for v in ints):
            return None
        return self.format(tuple(ints))

    def fdt_unit(self, addr: tuple[int, ...]) -> str:
        """The unit address of a device node (IEEE 1275), "" where the FDT has none."""
        return ""

    def fdt_key(self, addr: tuple[int, ...]) -> tuple[int, ...]:
        """What sorts device nodes by unit address."""
        return addr if self.fdt_unit(addr) else ()

    def fdt_vars(self, addr: tuple[int, ...]) -> dict[str, object]:
        """The variables an FDT template sees for a device at `addr`."""
        return {}

    def scan_value(self, addr: tuple[int, ...]) -> int | None:
        """The value of `scan_field` that `addr` keeps others from, or None."""
        return None

    def at(self, value: int) -> tuple[int, ...]:
        """The address the allocator gives for a free `scan_field` value."""
        return (value,)

    def capacity_value(self, addr: tuple[int, ...]) -> int | None:
        """The `scan_field` value `addr` occupies, as `hotplug` counts free places."""
        return self.scan_value(addr)

    def next_free(self, space: AddressSpace, free: FreePlaces, tag: str | None,
                  base: int | None) -> tuple[int, ...] | None:
        """The first free address of `space` for a plug tagged `tag`, or None when full.
        `base`: where the schema says scans start (`placement { vio-base }`)."""
        if self.scan_field is None:
            return ()
        for r in space.ranges(self.scan_field):
            if tag is not None and r.tag not in (None, tag):
                continue
            value = free.first_free(r.lo, r.hi)
            if value is not None:
                return self.at(value)
        return None

    def capacity(self, space: AddressSpace, taken: Iterable[tuple[int, ...]]) -> int:
        """How many more devices fit, as `hotplug` reports it (0 where it does not count)."""
        if self.scan_field is None or self.unbounded:
            return 0
        used = {self.capacity_value(a) for a in taken}
        return sum(1 for r in space.ranges(self.scan_field) for v in range(r.lo, r.hi + 1)
                   if v not in used)


class PciNotation(Notation):
    name = "pci"
    fields = ("slot", "function")
    syntax_help = "write PCI addresses as `SLOT.FUNCTION` in hex, e.g. `1f.3` or `02.0`"
    qemu_props = ("addr",)
    scan_field = "slot"
    pci_hierarchy = True
    _RE = re.compile(r"^(?:0x)?([0-9a-fA-F]{1,2})(?:\.(?:0x)?([0-7]))?$")

    def parse(self, text: str) -> tuple[int, ...]:
        m = self._RE.match(text)
        if not m:
            raise AddressSyntaxError(self.syntax_help)
        return (int(m.group(1), 16), int(m.group(2) or "0", 16))

    def format(self, addr: tuple[int, ...]) -> str:
        return f"{addr[0]:02x}.{addr[1]:x}"

    def show(self, field: str, value: int) -> str:
        return f"{value:02x}" if field == "slot" else str(value)

    def qemu(self, addr: tuple[int, ...]) -> dict[str, object]:
        return {"addr": f"0x{addr[0]:02x}.0x{addr[1]:x}"}

    def from_qemu(self, values: Sequence[Scalar], port: str | None = None) -> str | None:
        v = values[0]  # qtree prints `04.0`; QOM has the devfn
        if isinstance(v, str):
            return v or None
        return None if v < 0 else self.format((v >> 3, v & 7))

    def fdt_unit(self, addr: tuple[int, ...]) -> str:
        slot, fn = addr
        return f"{slot:x}" if fn == 0 else f"{slot:x},{fn:x}"

    def fdt_vars(self, addr: tuple[int, ...]) -> dict[str, object]:
        slot, fn = addr
        return {"slot": slot, "fn": fn, "devfn": (slot << 3) | fn}

    def scan_value(self, addr: tuple[int, ...]) -> int | None:
        return addr[0]  # a slot with any function taken is not free

    def at(self, value: int) -> tuple[int, ...]:
        return (value, 0)


class VioNotation(Notation):
    name = "vio"
    fields = ("reg",)
    syntax_help = "write sPAPR VIO addresses as the reg in hex, e.g. `0x71000001`"
    qemu_props = ("reg",)
    scan_field = "reg"
    fdt_named_nodes = True
    unbounded = True
    _RE = re.compile(r"^0x([0-9a-fA-F]{1,8})$")
    _QEMU_BASE = 0x71000000  # where QEMU's auto-assigned regs start
    _IRQ_BASE = 0x1100  # SPAPR_IRQ_VIO (include/hw/ppc/spapr_irq.h)

    def parse(self, text: str) -> tuple[int, ...]:
        m = self._RE.match(text)
        if not m:
            raise AddressSyntaxError(self.syntax_help)
        return (int(m.group(1), 16),)

    def format(self, addr: tuple[int, ...]) -> str:
        return f"{addr[0]:#x}"

    def show(self, field: str, value: int) -> str:
        return f"{value:#x}"

    def fdt_unit(self, addr: tuple[int, ...]) -> str:
        return f"{addr[0]:x}"

    def next_free(self, space: AddressSpace, free: FreePlaces, tag: str | None,
                  base: int | None) -> tuple[int, ...] | None:
        # one scan from the schema's base, as far as the regs' interrupts stay distinct
        # (256 regs from 0x71000000: past them they would collide with the first ones)
        start = base or space.ranges("reg")[0].lo
        last = start | 0xff if start >= self._QEMU_BASE else _UNBOUNDED
        reg = free.first_free(start, last)
        if reg is None or space.out_of_range((reg,)) is not None:
            return None
        return (reg,)

    def interrupt(self, addr: tuple[int, ...]) -> int | None:
        """QEMU 7.2's `spapr_vio_reg_to_irq` (hw/ppc/spapr_vio.c): the interrupt a VIO
        device claims, from its reg; two devices with one are refused at realize (`IRQ 4352
        is not free`). The same formula as the `irq` of stdlib/spapr.mschema's FDT."""
        reg = addr[0]
        if reg >= self._QEMU_BASE:  # QEMU's own regs: sequential from 0x71000000
            low = reg & 0xff
        elif reg >= 0x30000000:  # libvirt's vtys
            low = 0xf0 | (reg >> 12 & 0xf)
        else:  # libvirt's 0x1000-step regs
            low = reg >> 12 & 0xff
        return self._IRQ_BASE | low

    def fdt_vars(self, addr: tuple[int, ...]) -> dict[str, object]:
        return {"reg": addr[0]}

    def scan_value(self, addr: tuple[int, ...]) -> int | None:
        return addr[0]


class ScsiNotation(Notation):
    name = "scsi"
    fields = ("channel", "target", "lun")
    syntax_help = "write SCSI addresses as `CHANNEL:TARGET:LUN`, e.g. `0:3:0`"
    qemu_props = ("channel", "scsi-id", "lun")
    scan_field = "target"
    _RE = re.compile(rf"^({_N}):({_N}):({_N})$")

    def parse(self, text: str) -> tuple[int, ...]:
        m = self._RE.match(text)
        if not m:
            raise AddressSyntaxError(self.syntax_help)
        return (int(m.group(1)), int(m.group(2)), int(m.group(3)))

    def format(self, addr: tuple[int, ...]) -> str:
        return f"{addr[0]}:{addr[1]}:{addr[2]}"

    def fdt_vars(self, addr: tuple[int, ...]) -> dict[str, object]:
        return dict(zip(("channel", "target", "lun"), addr, strict=True))

    def scan_value(self, addr: tuple[int, ...]) -> int | None:
        # the allocator hands out LUN 0 of channel 0 of each target
        return addr[1] if addr[0] == 0 and addr[2] == 0 else None

    def at(self, value: int) -> tuple[int, ...]:
        return (0, value, 0)

    def capacity_value(self, addr: tuple[int, ...]) -> int | None:
        return addr[1]


class UsbNotation(Notation):
    name = "usb"
    fields = ("port",)
    syntax_help = "write USB addresses as the port, e.g. `2`, or `1.2` behind a hub"
    qemu_props = ("port",)
    scan_field = "port"
    hub_paths = True
    _RE = re.compile(rf"^[1-9]{_MORE}(\.[1-9]{_MORE})*$")

    def parse(self, text: str) -> tuple[int, ...]:
        if not self._RE.match(text):
            raise AddressSyntaxError(self.syntax_help)
        return tuple(int(p) for p in text.split("."))

    def format(self, addr: tuple[int, ...]) -> str:
        return ".".join(str(p) for p in addr)

    def checked(self, addr: tuple[int, ...]) -> tuple[int, ...]:
        return addr[:1]  # a path: only the first hop is a port of this bus

    def qemu(self, addr: tuple[int, ...]) -> dict[str, object]:
        return {"port": self.format(addr)}  # QEMU's `port` is a string: `1.2` behind a hub

    def from_qemu(self, values: Sequence[Scalar], port: str | None = None) -> str | None:
        # the `port` prop holds the port only when it was set; `info usb` always has it
        return port or str(values[0]) or None

    def fdt_vars(self, addr: tuple[int, ...]) -> dict[str, object]:
        return {"port": self.format(addr)}

    def scan_value(self, addr: tuple[int, ...]) -> int | None:
        return addr[0] if len(addr) == 1 else None

    def capacity_value(self, addr: tuple[int, ...]) -> int | None:
        return addr[0]


class UnitNotation(Notation):
    name = "unit"
    fields = ("unit",)
    syntax_help = "write IDE/SATA addresses as the unit number, e.g. `0`"
    qemu_props = ("unit",)
    scan_field = "unit"
    _RE = re.compile(rf"^{_N}$")

    def parse(self, text: str) -> tuple[int, ...]:
        if not self._RE.match(text):
            raise AddressSyntaxError(self.syntax_help)
        return (int(text),)

    def format(self, addr: tuple[int, ...]) -> str:
        return str(addr[0])

    def fdt_vars(self, addr: tuple[int, ...]) -> dict[str, object]:
        return {"unit-number": addr[0]}

    def scan_value(self, addr: tuple[int, ...]) -> int | None:
        return addr[0] if len(addr) == 1 else None


class NoNotation(Notation):
    name = "none"
    fields = ()
    syntax_help = "devices on this bus have no address"

    def from_qemu(self, values: Sequence[Scalar], port: str | None = None) -> str | None:
        return None


REGISTRY: Mapping[str, Notation] = {n.name: n for n in (
    PciNotation(), VioNotation(), ScsiNotation(), UsbNotation(), UnitNotation(), NoNotation())}

# notation → field names, in tuple order
NOTATIONS: Mapping[str, tuple[str, ...]] = {name: n.fields for name, n in REGISTRY.items()}
SYNTAX_HELP: Mapping[str, str] = {name: n.syntax_help for name, n in REGISTRY.items()}


def get(name: str) -> Notation:
    """The notation called `name`; unknown names (a bus kind the stdlib lacks) have none."""
    return REGISTRY.get(name, REGISTRY["none"])


@attrs.frozen
class Address:
    """A device's address on its bus: the bus's notation and the fields' values.
    `str()` gives the CONTRACT text.

    `written`: the text a precise blob gives where it is not that (another spelling, or
    no address of the notation at all). Such an address equals no address the compiler
    makes, so the blob's check against its rebuilt tree reports it as written."""

    notation: str
    value: tuple[int, ...]
    written: str | None = None

    @classmethod
    def parse(cls, notation: str, text: str) -> Address:
        """CONTRACT text → Address; raises AddressSyntaxError with the notation's help."""
        return cls(notation, REGISTRY[notation].parse(text))

    @classmethod
    def as_written(cls, notation: str, text: str) -> Address:
        """The address a blob writes, kept as written unless it is the CONTRACT text."""
        try:
            addr = cls.parse(notation, text)
        except (AddressSyntaxError, KeyError):
            return cls(notation, (), text)
        return addr if str(addr) == text else cls(notation, addr.value, text)

    @property
    def rules(self) -> Notation:
        return get(self.notation)

    def __str__(self) -> str:
        return self.written if self.written is not None else self.rules.format(self.value)


@attrs.frozen
class FieldRange:
    lo: int
    hi: int
    tag: str | None = None

    def __contains__(self, value: int) -> bool:
        return self.lo <= value <= self.hi


@attrs.frozen
class AddressSpace:
    """The notation of a bus and the values its fields may take (a union of ranges)."""

    notation: str
    fields: tuple[tuple[str, tuple[FieldRange, ...]], ...] = ()

    @property
    def rules(self) -> Notation:
        return get(self.notation)

    def ranges(self, field: str) -> tuple[FieldRange, ...]:
        for name, ranges in self.fields:
            if name == field:
                return ranges
        return ()

    def narrowed(self, overrides: dict[str, tuple[FieldRange, ...]]) -> AddressSpace:
        fields = tuple((name, overrides.get(name, ranges)) for name, ranges in self.fields)
        return AddressSpace(self.notation, fields)

    def out_of_range(self, addr: tuple[int, ...], tag: str | None = None) -> str | None:
        """Why `addr` is not allowed here, or None. `tag` restricts to tagged ranges."""
        rules = self.rules
        for name, value in zip(rules.fields, rules.checked(addr), strict=False):
            ranges = self.ranges(name)
            if not ranges:
                continue
            allowed = [r for r in ranges if tag is None or r.tag in (None, tag)]
            if not any(value in r for r in allowed):
                spans = ", ".join(_show_range(rules, name, r) for r in allowed)
                return f"{name} {rules.show(name, value)} is not in {spans}"
        return None


def _show_range(rules: Notation, field: str, r: FieldRange) -> str:
    lo, hi = rules.show(field, r.lo), rules.show(field, r.hi)
    text = lo if r.lo == r.hi else f"{lo}..{hi}"
    return f"{text} ({r.tag})" if r.tag else text


def parse(notation: str, text: str) -> tuple[int, ...]:
    """CONTRACT notation → tuple; raises AddressSyntaxError with the notation's help."""
    return REGISTRY[notation].parse(text)


def format(notation: str, addr: tuple[int, ...]) -> str:
    return REGISTRY[notation].format(addr)
