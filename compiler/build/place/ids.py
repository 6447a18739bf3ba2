"""The ids the compiler gives the devices it adds, in one place: the allocator names them
and `extract` recognises them by the same rule.

A device the compiler adds is named after the machine's own one of its type (`phb0` →
`phb1`), else by what it is: `rp` a root port, `br` an overflow bridge, the bus kind a
`provide`d controller is for; then the lowest number no placed device has.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

from compiler.build import tree
from compiler.lang import model

PORT_PREFIX = "rp"
BRIDGE_PREFIX = "br"
_NUMBERED = re.compile(r"^([A-Za-z][A-Za-z_-]*?)\d+$")  # `phb0` → `phb`


def prefix_of(ident: str) -> str | None:
    m = _NUMBERED.match(ident)
    return m.group(1) if m else None


def added_by_compiler(schema: model.MachineSchema, machine_devices: Iterable[tree.Device],
                      dtype: str, ident: str) -> bool:
    """Whether the compiler would have added a `dtype` called `ident` by itself: one of
    the types it adds (the schema's port, overflow and `provide` types), named as it
    names them."""
    pl = schema.placement
    prefixes = ({PORT_PREFIX} if dtype == pl.port_device else set()) | \
        ({BRIDGE_PREFIX} if any(c.device == dtype for c in pl.overflow) or
         dtype == pl.bridge else set()) | \
        {p.bus for p in schema.providers.values() if p.device == dtype}
    for d in machine_devices:
        prefix = prefix_of(d.id)
        if d.type == dtype and prefix and prefixes:
            prefixes.add(prefix)
    return any(re.fullmatch(rf"{re.escape(p)}\d+", ident) for p in prefixes)


class IdNamer:
    """Fresh ids for added devices. Only what is already placed counts, so a later spec
    item never changes an id; ids are never taken back, so each search starts where the
    last one for its prefix ended."""

    def __init__(self) -> None:
        self._machine: dict[str, str] = {}  # device type → its machine instance's prefix
        self._next: dict[str, int] = {}  # prefix → below it every number is taken

    def saw(self, device: tree.Device) -> None:
        if device.origin == "machine" and device.type not in self._machine:
            prefix = prefix_of(device.id)
            if prefix:
                self._machine[device.type] = prefix

    def fresh(self, dtype: str, prefix: str, taken: Container[str],
              devices: Iterable[tree.Device] | None) -> str:
        """`devices`: every placed device, when the index cannot be trusted."""
        base = self._machine_prefix(dtype, devices) or prefix
        n = self._next.get(base, 0)
        while f"{base}{n}" in taken:
            n += 1
        self._next[base] = n
        return f"{base}{n}"

    def _machine_prefix(self, dtype: str, devices: Iterable[tree.Device] | None) -> str | None:
        if devices is None:
            return self._machine.get(dtype)
        for d in devices:
            if d.type == dtype and d.origin == "machine":
                prefix = prefix_of(d.id)
                if prefix:
                    return prefix
        return None
