"""QEMU's command line for a precise machine: a pure function of the tree.

Devices use QEMU 7.2's JSON syntax (`-device {"driver":…}`), so values need no escaping;
each backend's option is its kind's (`base/backends.py`).
Every device carries its explicit bus and address; machine-created ones are never emitted.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping

from compiler.base import backends, cpu, notations, numa, settings, units
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
        args += ["-cpu", cpu.cpu_arg(str(cpus["model"]), str(cpus.get("features", "")))]
    smp = [str(cpus.get("count", 1))]
    for key in ("maxcpus", "sockets", "cores", "threads"):
        if key in cpus:
            smp.append(f"{key}={cpus[key]}")
    args += ["-smp", ",".join(smp)]
    memory = dict(m.memory)
    if "size" in memory:
        args += ["-m", units.ram_size_arg(int(memory["size"]))]
    for n, node in enumerate(m.numa):  # each node's RAM backend, then the node
        args += numa.argv(n, node.cpus, node.memory, node.memdev)
    if m.boot:
        args += ["-boot", settings.boot_arg(dict(m.boot))]
    if m.rtc:
        args += ["-rtc", settings.rtc_arg(dict(m.rtc))]
    if m.uuid:
        args += ["-uuid", m.uuid]
    for key, value in m.globals:
        type_name, _, prop = key.rpartition(".")
        text = ("on" if value else "off") if isinstance(value, bool) else str(value)
        # the keyval form: `TYPE.PROP=` would split `cfi.pflash01` at its first dot
        args += ["-global", ",".join(f"{k}={_escape(v)}" for k, v in
                                     (("driver", type_name), ("property", prop),
                                      ("value", text)))]
    for ident, body in sorted(m.backends):
        args += backends.get(str(dict(body)["kind"])).argv(ident, dict(body))
    for bus, device, _depth in tree.walk(m.root):
        if device.origin == "machine":
            continue
        args += ["-device", _json(device_options(bus, device))]
    return args


def shell(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
