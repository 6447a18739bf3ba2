"""The precise machine: a tree of devices and buses with every address filled in (an
`Address`, whose `str()` is the CONTRACT text), plus backends. Produced by `expand` (then
`allocate` for spec devices), read by the emitters.
This is the in-memory form of the CONTRACT's precise blob.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Union

import attrs

from compiler.base.notations import Address
from compiler.base.source import Span

# the CONTRACT's name for the blob of this tree: what `emit/blob` writes, `precise` reads
FORMAT = "mschema-precise/1"

Origin = Literal["machine", "default", "spec", "hotplug"]
PropValue = Union[bool, int, str]


@attrs.frozen
class Provenance:
    """Why a device exists: the rule or statement that brought it, and where that is."""

    reason: str
    span: Span | None = attrs.field(default=None, eq=False, repr=False)
    # the spec entry (or device) that asked for it, where that is not `span` itself
    cause: Span | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Bus:
    name: str
    kind: str
    notation: str
    devices: tuple[Device, ...] = ()
    # the machine's word, under its options, on hot-plug onto this bus (its schema's
    # `hotplug V when COND`); None: as the device type and bus kind say. Not part of the
    # blob: it follows from the machine and its options, which the blob holds
    hotplug: bool | None = attrs.field(default=None, eq=False, kw_only=True)


@attrs.frozen
class Device:
    id: str
    type: str
    origin: Origin
    addr: Address | None = None  # None: on a bus without addresses, or not yet placed
    props: tuple[tuple[str, PropValue], ...] = ()
    backend: tuple[tuple[str, str], ...] = ()
    buses: tuple[Bus, ...] = ()
    why: Provenance = attrs.field(default=Provenance(""), eq=False, repr=False)


@attrs.frozen
class MachineInfo:
    schema: str
    qemu: str
    arch: str
    binary: str
    options: tuple[tuple[str, PropValue], ...]
    # the schema's defaults: QEMU's own, so `-machine` can leave them out
    defaults: tuple[tuple[str, PropValue], ...] = ()
    # the oldest QEMU release the machine is compiled for ("10.0", the blob's
    # `machine.qemu-release`); "" for `model.DEFAULT_RELEASE`, which the blob leaves out
    release: str = ""


@attrs.frozen
class NumaNode:
    """A guest NUMA node (QEMU's `-numa node`): node N is the N-th of `Machine.numa`."""

    cpus: tuple[int, ...]  # cpu indexes (possible cpus in -smp's order), sorted
    memory: int  # bytes of RAM, in a `memory-backend-ram` of its own
    memdev: str  # that backend's id, which also names its RAM block for migration


@attrs.frozen
class Machine:
    """The root: devices on the root (system) bus, and the host backends they link to."""

    info: MachineInfo
    root: Bus
    cpus: tuple[tuple[str, PropValue], ...] = ()
    memory: tuple[tuple[str, PropValue], ...] = ()
    backends: tuple[tuple[str, tuple[tuple[str, PropValue], ...]], ...] = ()
    name: str = ""
    boot: tuple[tuple[str, PropValue], ...] = ()  # QEMU's -boot (base/settings.BOOT_KEYS)
    rtc: tuple[tuple[str, PropValue], ...] = ()  # QEMU's -rtc (base/settings.RTC_KEYS)
    uuid: str = ""  # QEMU's -uuid, lower-case; "" leaves QEMU's (all zeros)
    globals: tuple[tuple[str, PropValue], ...] = ()  # QEMU's -global: "TYPE.PROP" → value
    numa: tuple[NumaNode, ...] = ()  # QEMU's -numa node: none without


def walk(bus: Bus, depth: int = 0) -> Iterator[tuple[Bus, Device, int]]:
    """Every (bus, device, depth) in tree order."""
    for device in bus.devices:
        yield bus, device, depth
        for child in device.buses:
            yield from walk(child, depth + 1)
