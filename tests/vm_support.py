"""Compare a precise blob with what QEMU built (`info qtree`), device by device.

Shared by the golden VM tests and meant to be borrowed by `mschema verify`: nothing here
depends on pytest. The comparison is on entries `(bus name, bus kind, type, addr, id)`:

- the blob side walks `devices` (every device, `origin: machine` ones included);
- QEMU's side walks the parsed `info qtree`, with the address read from the props QEMU shows
  for the bus kind: PCI `addr`, VIO `reg` (hex), SCSI `channel:scsi-id:lun`, IDE `unit`, USB
  the port the device got (from `info usb`, by id; the `port` prop otherwise);
- ids are compared for the devices the command line creates (every origin but `machine`);
  QEMU gives machine-created devices no id or ids of its own (`nvram@71000000`);
- buses, empty ones included, are compared as `(name, kind, owner type, owner id)`.

Props of emitted devices are compared twice: where `info qtree` shows them (on the device,
or for a virtio PCI function, whose props are aliases, on the device of its `virtio-bus`),
and through QMP `qom-get` on `/machine/peripheral/ID` (`qom_requests`), which also reads
what qtree does not print (`bootindex`) and the backend links (`drive`, `netdev`, …).

Host side: `backing_files` lists the files the blob's blockdevs need, `runnable_argv` makes
an emitted argv start in a scratch directory (relative file and socket paths made absolute,
tap/bridge netdevs, which need privileges and host setup, replaced by user ones: the guest
hardware is the same).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from compiler import qemu

# QEMU's qtree bus type → the CONTRACT's bus kind.
BUS_KINDS = {
    "System": "system",
    "PCIE": "pcie",
    "PCI": "pci",
    "spapr-vio-bus": "vio",
    "SCSI": "scsi",
    "usb-bus": "usb",
    "IDE": "ide",
    "ISA": "isa",
    "i2c-bus": "i2c",
    "virtio-pci-bus": "virtio",
    "virtio-serial-bus": "virtio-serial",
}

Json = Any
Scalar = bool | int | str


class Entry(NamedTuple):
    bus: str
    kind: str
    type: str
    addr: str | None
    id: str | None  # None for devices QEMU creates by itself

    def __str__(self) -> str:
        where = f"{self.bus} ({self.kind})" + (f" @ {self.addr}" if self.addr else "")
        return f"{self.type}{f' id={self.id}' if self.id else ''} on {where}"


# --------------------------------------------------------------------------
# The blob's side


def blob_walk(
    devices: Sequence[Mapping[str, Json]], bus: str = "main-system-bus", kind: str = "system"
) -> Iterator[tuple[str, str, Mapping[str, Json]]]:
    """Every (bus name, bus kind, device) of a blob's `devices`, depth first."""
    for device in devices:
        yield bus, kind, device
        for child in device.get("buses", ()):
            yield from blob_walk(child["devices"], child["name"], child["kind"])


def blob_entries(blob: Mapping[str, Json]) -> list[Entry]:
    entries = []
    for bus, kind, device in blob_walk(blob["devices"]):
        ident = None if device["origin"] == "machine" else str(device["id"])
        entries.append(Entry(bus, kind, str(device["type"]), device.get("addr"), ident))
    return sorted(entries, key=_key)


class BusEntry(NamedTuple):
    name: str
    kind: str
    owner_type: str
    owner_id: str | None  # as in Entry

    def __str__(self) -> str:
        owner = self.owner_type + (f" id={self.owner_id}" if self.owner_id else "")
        return f"bus {self.name} ({self.kind}) of {owner}"


def blob_buses(blob: Mapping[str, Json]) -> list[BusEntry]:
    """Every bus of the blob (empty ones too) with the device providing it."""
    buses = []
    for _, _, device in blob_walk(blob["devices"]):
        ident = None if device["origin"] == "machine" else str(device["id"])
        for bus in device.get("buses", ()):
            buses.append(BusEntry(bus["name"], bus["kind"], str(device["type"]), ident))
    return sorted(buses)


def emitted_ids(blob: Mapping[str, Json]) -> set[str]:
    return {str(d["id"]) for _, _, d in blob_walk(blob["devices"]) if d["origin"] != "machine"}


# --------------------------------------------------------------------------
# QEMU's side


def qtree_value(raw: str) -> Scalar:
    """A qtree property value: `87 (0x57)` → 87, `true` → True, `"usb-bus.0"` → "usb-bus.0"."""
    if raw in ("true", "false"):
        return raw == "true"
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    first = raw.split(" ", 1)[0]
    try:
        return int(first, 0)
    except ValueError:
        return raw


_USB_LINE = re.compile(r"Device \d+\.\d+, Port (?P<port>[\d.]+),.*, ID: (?P<id>\S*)\s*$")


def usb_ports(info_usb: str) -> dict[str, str]:
    """`info usb` → {device id: port} (id-less devices, e.g. an auto hub, are left out)."""
    ports = {}
    for line in info_usb.splitlines():
        m = _USB_LINE.search(line)
        if m and m["id"]:
            ports[m["id"]] = m["port"]
    return ports


def qtree_addr(kind: str, device: qemu.QtreeDevice, ports: Mapping[str, str]) -> str | None:
    """The device's address on its bus, in the CONTRACT's notation for that bus kind."""
    if kind in ("pci", "pcie"):
        return device.addr
    if kind == "vio":
        reg = device.prop("reg")
        return None if reg is None else hex(int(reg.split(" ", 1)[0], 0))
    if kind == "usb":
        if device.id in ports:
            return ports[device.id]
        port = device.prop("port")
        return None if port is None else str(qtree_value(port)) or None
    if kind == "ide":
        unit = device.prop("unit")
        return None if unit is None else str(qtree_value(unit))
    if kind == "scsi":
        parts = [device.prop(p) for p in ("channel", "scsi-id", "lun")]
        if any(p is None for p in parts):
            return None
        return ":".join(str(qtree_value(p)) for p in parts if p is not None)
    return None


def qtree_entries(
    root: qemu.QtreeBus, ids: set[str], ports: Mapping[str, str] | None = None
) -> list[Entry]:
    """QEMU's devices; a device's id counts only if the blob emitted it (`ids`)."""
    entries = []
    for bus, device in qemu.walk(root):
        kind = BUS_KINDS.get(bus.type, f"<qtree type {bus.type}>")
        ident = device.id if device.id in ids else None
        entries.append(Entry(bus.name, kind, device.type, qtree_addr(kind, device, ports or {}),
                             ident))
    return sorted(entries, key=_key)


def qtree_buses(root: qemu.QtreeBus, ids: set[str]) -> list[BusEntry]:
    buses = []
    for _, device in qemu.walk(root):
        ident = device.id if device.id in ids else None
        for bus in device.buses:
            kind = BUS_KINDS.get(bus.type, f"<qtree type {bus.type}>")
            buses.append(BusEntry(bus.name, kind, device.type, ident))
    return sorted(buses)


def _key(e: Entry) -> tuple[str, str, str, str, str]:
    return e.bus, e.kind, e.type, e.addr or "", e.id or ""


# --------------------------------------------------------------------------
# Comparing


def differences(predicted: Sequence[Entry | BusEntry], built: Sequence[Entry | BusEntry]
                ) -> list[str]:
    """What only the blob lists and what only QEMU built, one line each; [] if they agree."""
    missing = Counter(built) - Counter(predicted)
    extra = Counter(predicted) - Counter(built)
    lines = [f"only in QEMU: {e}" + (f" x{n}" if n > 1 else "") for e, n in missing.items()]
    lines += [f"only in blob: {e}" + (f" x{n}" if n > 1 else "") for e, n in extra.items()]
    return sorted(lines)


def _same(value: Json, shown: Json) -> bool:
    if isinstance(value, str) and isinstance(shown, str):
        return value.lower() == shown.lower()
    return bool(shown == value and isinstance(shown, bool) == isinstance(value, bool))


def prop_differences(blob: Mapping[str, Json], root: qemu.QtreeBus) -> list[str]:
    """Props of emitted devices that `info qtree` shows with another value (by id)."""
    by_id = {d.id: d for _, d in qemu.walk(root) if d.id}
    lines = []
    for _, _, device in blob_walk(blob["devices"]):
        if device["origin"] == "machine":
            continue
        built = by_id.get(str(device["id"]))
        if built is None:
            continue  # reported by `differences`
        inner = [d for b in built.buses if b.type == "virtio-pci-bus" for d in b.devices]
        for name, value in sorted(device.get("props", {}).items()):
            raw = next((r for d in (built, *inner) if (r := d.prop(name)) is not None), None)
            if raw is None:
                continue  # not a qdev property qtree prints (bootindex): see `qom_requests`
            if not _same(value, qtree_value(raw)):
                lines.append(f"{device['id']} ({device['type']}): {name} = {value!r} in the "
                             f"blob, {raw} in info qtree")
    return lines


def qom_requests(blob: Mapping[str, Json]) -> list[tuple[str, Mapping[str, object]]]:
    """QMP `qom-get`s reading back every prop and backend link of every emitted device
    (`/machine/peripheral/ID`), in the order `qom_differences` expects the answers."""
    requests: list[tuple[str, Mapping[str, object]]] = []
    for _, _, device in blob_walk(blob["devices"]):
        if device["origin"] == "machine":
            continue
        path = f"/machine/peripheral/{device['id']}"
        for name in [*sorted(device.get("props", {})), *sorted(device.get("backend", {}))]:
            requests.append(("qom-get", {"path": path, "property": name}))
    return requests


def qom_differences(blob: Mapping[str, Json], answers: Sequence[object],
                    root: qemu.QtreeBus | None = None) -> list[str]:
    """Props and backend links that QEMU's QOM holds with another value. A link that reads
    back empty counts if QEMU handed the backend to a device below (usb-storage's drive
    goes to its internal scsi-hd, which `info qtree` shows in `root`)."""
    by_id = {d.id: d for _, d in qemu.walk(root)} if root is not None else {}
    answers = list(answers)
    lines = []
    for _, _, device in blob_walk(blob["devices"]):
        if device["origin"] == "machine":
            continue
        ident = str(device["id"])
        for name, value in sorted(device.get("props", {}).items()):
            shown = answers.pop(0)
            if not _same(value, shown):
                lines.append(f"{ident} ({device['type']}): {name} = {value!r} in the blob, "
                             f"{shown!r} in QOM")
        for name, target in sorted(device.get("backend", {}).items()):
            shown = answers.pop(0)
            if shown == target or (isinstance(shown, str) and shown.endswith(f"/{target}")):
                continue
            below = by_id.get(ident)
            handed = shown == "" and below is not None and any(
                d.prop(name) == f'"{target}"' for b in below.buses
                for _, d in qemu.walk(b))
            if not handed:
                lines.append(f"{ident} ({device['type']}): backend {name} = {target!r} in "
                             f"the blob, {shown!r} in QOM")
    return lines


MACHINE_REQUESTS: tuple[tuple[str, Mapping[str, object]], ...] = (
    ("query-cpus-fast", {}),
    ("query-memory-size-summary", {}),
)


def machine_differences(blob: Mapping[str, Json], answers: Sequence[Json]) -> list[str]:
    """The blob's `cpus` and `memory` against the answers to `MACHINE_REQUESTS`: the CPU
    count, the topology where QEMU reports it (x86: socket/core/thread ids; pseries only
    core ids), and the base memory."""
    cpus, summary = answers
    want = blob["cpus"]
    lines = []
    if len(cpus) != want["count"]:
        lines.append(f"cpus: {want['count']} in the blob, {len(cpus)} in QEMU")
    props = [c["props"] for c in cpus]
    for key, field in (("sockets", "socket-id"), ("threads", "thread-id")):
        if key in want and props and all(field in p for p in props):
            n = len({p[field] for p in props})
            if n != want[key]:
                lines.append(f"cpus.{key}: {want[key]} in the blob, {n} in QEMU")
    if "cores" in want and props and all("socket-id" in p for p in props):
        n = len({p["core-id"] for p in props if p["socket-id"] == props[0]["socket-id"]})
        if n != want["cores"]:
            lines.append(f"cpus.cores: {want['cores']} in the blob, {n} in QEMU")
    size = blob["memory"].get("size")
    if size is not None and summary["base-memory"] != size:
        lines.append(f"memory: {size} in the blob, {summary['base-memory']} in QEMU")
    return lines


def compare(blob: Mapping[str, Json], root: qemu.QtreeBus, info_usb: str = "",
            qom: Sequence[object] | None = None,
            machine: Sequence[Json] | None = None) -> list[str]:
    """Every disagreement between the blob and what QEMU built; [] if none. `qom` holds
    the answers to `qom_requests(blob)` and `machine` those to `MACHINE_REQUESTS`, when
    asked."""
    ids = emitted_ids(blob)
    lines = differences(blob_entries(blob), qtree_entries(root, ids, usb_ports(info_usb)))
    lines += differences(blob_buses(blob), qtree_buses(root, ids))
    lines += prop_differences(blob, root)
    if qom is not None:
        lines += qom_differences(blob, qom, root)
    if machine is not None:
        lines += machine_differences(blob, machine)
    return lines


# --------------------------------------------------------------------------
# Running an emitted argv


def backing_files(blob: Mapping[str, Json]) -> list[tuple[str, str]]:
    """(file name, image format) of every blockdev backend."""
    return [(str(b["file"]), str(b["driver"])) for b in blob["backends"].values()
            if b.get("kind") == "blockdev"]


def _absolute(path: str, directory: str) -> str:
    return path if os.path.isabs(path) else os.path.join(directory, path)


def runnable_argv(argv: Sequence[str], directory: str) -> list[str]:
    """`argv` with relative host paths under `directory` and tap/bridge netdevs made `user`."""
    out = list(argv)
    for i in range(len(out) - 1):
        opt, value = out[i], out[i + 1]
        if opt == "-blockdev" and value.startswith("{"):
            node = json.loads(value)
            file = node.get("file")
            if isinstance(file, dict) and "filename" in file:
                file["filename"] = _absolute(file["filename"], directory)
            out[i + 1] = json.dumps(node, separators=(",", ":"))
        elif opt == "-netdev" and value.startswith("{"):
            net = json.loads(value)
            if net.get("type") in ("tap", "bridge"):
                out[i + 1] = json.dumps({"id": net["id"], "type": "user"},
                                        separators=(",", ":"))
        elif opt == "-chardev":
            out[i + 1] = re.sub(r"(?<=,)path=((?:[^,]|,,)*)",
                                lambda m: "path=" + _absolute(m[1], directory.replace(",", ",,")),
                                value)
    return out
