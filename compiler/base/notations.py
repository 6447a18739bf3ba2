"""Address notations: how an address is written on each kind of bus.

The notation (its syntax and field names) is fixed here; which values are allowed on a bus
(slot ranges, ports, USB2 vs USB3 tags) is data in the stdlib's `bus` declarations.
An address is a tuple of ints; `format` and `parse` convert to the CONTRACT notation.
"""

from __future__ import annotations

import re

import attrs

# notation → field names, in tuple order
NOTATIONS: dict[str, tuple[str, ...]] = {
    "pci": ("slot", "function"),
    "vio": ("reg",),
    "scsi": ("channel", "target", "lun"),
    "usb": ("port",),
    "unit": ("unit",),
    "none": (),
}

_PCI = re.compile(r"^(?:0x)?([0-9a-fA-F]{1,2})(?:\.(?:0x)?([0-7]))?$")
_VIO = re.compile(r"^0x([0-9a-fA-F]{1,8})$")
_SCSI = re.compile(r"^([0-9]+):([0-9]+):([0-9]+)$")
_USB = re.compile(r"^[1-9][0-9]*(\.[1-9][0-9]*)*$")
_UNIT = re.compile(r"^[0-9]+$")

SYNTAX_HELP = {
    "pci": "write PCI addresses as `SLOT.FUNCTION` in hex, e.g. `1f.3` or `02.0`",
    "vio": "write sPAPR VIO addresses as the reg in hex, e.g. `0x71000001`",
    "scsi": "write SCSI addresses as `CHANNEL:TARGET:LUN`, e.g. `0:3:0`",
    "usb": "write USB addresses as the port, e.g. `2`, or `1.2` behind a hub",
    "unit": "write IDE/SATA addresses as the unit number, e.g. `0`",
    "none": "devices on this bus have no address",
}


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
        names = NOTATIONS[self.notation]
        for name, value in zip(names, self._checked_values(addr), strict=False):
            ranges = self.ranges(name)
            if not ranges:
                continue
            allowed = [r for r in ranges if tag is None or r.tag in (None, tag)]
            if not any(value in r for r in allowed):
                spans = ", ".join(_show_range(self.notation, name, r) for r in allowed)
                return f"{name} {_show_value(self.notation, name, value)} is not in {spans}"
        return None

    def _checked_values(self, addr: tuple[int, ...]) -> tuple[int, ...]:
        # USB paths: only the first hop is a port of this bus
        return addr[:1] if self.notation == "usb" else addr


def _show_value(notation: str, field: str, value: int) -> str:
    if notation == "pci":
        return f"{value:02x}" if field == "slot" else str(value)
    if notation == "vio":
        return f"{value:#x}"
    return str(value)


def _show_range(notation: str, field: str, r: FieldRange) -> str:
    lo, hi = _show_value(notation, field, r.lo), _show_value(notation, field, r.hi)
    text = lo if r.lo == r.hi else f"{lo}..{hi}"
    return f"{text} ({r.tag})" if r.tag else text


class AddressSyntaxError(ValueError):
    pass


def parse(notation: str, text: str) -> tuple[int, ...]:
    """CONTRACT notation → tuple; raises AddressSyntaxError with the notation's help."""
    if notation == "pci":
        m = _PCI.match(text)
        if m:
            return (int(m.group(1), 16), int(m.group(2) or "0", 16))
    elif notation == "vio":
        m = _VIO.match(text)
        if m:
            return (int(m.group(1), 16),)
    elif notation == "scsi":
        m = _SCSI.match(text)
        if m:
            return (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    elif notation == "usb" and _USB.match(text):
        return tuple(int(p) for p in text.split("."))
    elif notation == "unit" and _UNIT.match(text):
        return (int(text),)
    raise AddressSyntaxError(SYNTAX_HELP[notation])


def format(notation: str, addr: tuple[int, ...]) -> str:
    if notation == "pci":
        return f"{addr[0]:02x}.{addr[1]:x}"
    if notation == "vio":
        return f"{addr[0]:#x}"
    if notation == "scsi":
        return f"{addr[0]}:{addr[1]}:{addr[2]}"
    if notation == "usb":
        return ".".join(str(p) for p in addr)
    if notation == "unit":
        return str(addr[0])
    raise ValueError(f"notation {notation!r} has no addresses")
