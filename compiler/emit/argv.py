"""QEMU's command line for a precise machine: a pure function of the tree.

Devices and objects use QEMU 7.2's JSON syntax (`-device {"driver":…}`), so values need no
escaping; `-chardev` has no JSON form in 7.2 and uses key=value with commas doubled.
Every device carries its explicit bus and address; machine-created ones are never emitted.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping

from compiler.base import notations, settings, units
from compiler.build import tree

BusIndex = dict[str, tree.Bus]


def _json(obj: Mapping[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _escape(value: str) -> str:
    return value.replace(",", ",,")


def _machine_arg(m: tree.Machine, defaults: dict[str, tree.PropValue]) -> str:
    parts = [m.info.qemu]
    for k, v in m.info.options:
        if defaults.get(k) == v:
            continue
        text = ("on" if v else "off") if isinstance(v, bool) else str(v)
        parts.append(f"{k}={_escape(text)}")
    return ",".join(parts)


def blockdev_options(ident: str, body: dict[str, tree.PropValue]) -> dict[str, object]:
    """QEMU's `-blockdev` / QMP `blockdev-add` arguments for a blockdev backend."""
    node: dict[str, object] = {"driver": body["driver"], "node-name": ident,
                               "file": {"driver": "file", "filename": body["file"]}}
    if body.get("read-only"):
        node["read-only"] = True
    return node


def netdev_options(ident: str, body: dict[str, tree.PropValue]) -> dict[str, object]:
    """QEMU's `-netdev` / QMP `netdev_add` arguments for a netdev backend."""
    return {"id": ident, **{k: v for k, v in body.items() if k != "kind"}}


def rng_options(ident: str, body: dict[str, tree.PropValue]) -> dict[str, object]:
    """QEMU's `-object` / QMP `object-add` arguments for an rng backend."""
    return {"qom-type": f"rng-{body['backend']}", "id": ident, "filename": body["filename"]}


def device_options(bus: tree.Bus, device: tree.Device) -> dict[str, object]:
    """QEMU's `-device` / QMP `device_add` arguments: explicit bus and address, always."""
    obj: dict[str, object] = {"driver": device.type, "id": device.id}
    if bus.kind != "system":
        obj["bus"] = bus.name
    if device.addr is not None:
        obj.update(_qemu_addr(bus.notation, device.addr))
    obj.update(dict(device.props))
    obj.update(dict(device.backend))
    return obj


def _backend_args(ident: str, body: dict[str, tree.PropValue]) -> list[str]:
    kind = body["kind"]
    if kind == "blockdev":
        return ["-blockdev", _json(blockdev_options(ident, body))]
    if kind == "netdev":
        return ["-netdev", _json(netdev_options(ident, body))]
    if kind == "chardev":
        opts = [str(body["backend"]), f"id={ident}"]
        if body["backend"] == "file":
            opts.append(f"path={_escape(str(body['path']))}")
        elif body["backend"] == "socket":
            opts += [f"path={_escape(str(body['path']))}", "server=on", "wait=off"]
        return ["-chardev", ",".join(opts)]
    if kind == "rng":
        return ["-object", _json(rng_options(ident, body))]
    raise ValueError(f"unknown backend kind {kind!r}")


def _qemu_addr(notation: str, addr: notations.Address) -> dict[str, object]:
    rules = notations.get(notation)
    return rules.qemu(addr.value) if rules.addressed else {}


def argv(m: tree.Machine) -> list[str]:
    # `-vga none`: a `-device VGA` (or virtio-vga, …) must not count as QEMU's default VGA,
    # or pseries with usb=on adds a usb-kbd and a usb-mouse of its own on ports 1 and 2
    args = [m.info.binary, "-machine", _machine_arg(m, dict(m.info.defaults)),
            "-nodefaults", "-no-user-config", "-vga", "none"]
    cpus = dict(m.cpus)
    if "model" in cpus:
        args += ["-cpu", str(cpus["model"])]
    smp = [str(cpus.get("count", 1))]
    for key in ("maxcpus", "sockets", "cores", "threads"):
        if key in cpus:
            smp.append(f"{key}={cpus[key]}")
    args += ["-smp", ",".join(smp)]
    memory = dict(m.memory)
    if "size" in memory:
        args += ["-m", units.ram_size_arg(int(memory["size"]))]
    if m.boot:
        args += ["-boot", settings.boot_arg(dict(m.boot))]
    if m.rtc:
        args += ["-rtc", settings.rtc_arg(dict(m.rtc))]
    if m.uuid:
        args += ["-uuid", m.uuid]
    for ident, body in sorted(m.backends):
        args += _backend_args(ident, dict(body))
    for bus, device, _depth in tree.walk(m.root):
        if device.origin == "machine":
            continue
        args += ["-device", _json(device_options(bus, device))]
    return args


def shell(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
