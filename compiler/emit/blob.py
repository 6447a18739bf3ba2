"""The precise blob (CONTRACT `mschema-precise/1`) and the tree shape `show --format json`
shares with it. Key order is fixed by construction; props are sorted."""

from __future__ import annotations

import json

from compiler.base import numa
from compiler.build import tree

FORMAT = tree.FORMAT
JsonObject = dict[str, object]


def device_json(d: tree.Device) -> JsonObject:
    obj: JsonObject = {"id": d.id, "type": d.type, "origin": d.origin}
    if d.addr is not None:
        obj["addr"] = str(d.addr)
    obj["props"] = dict(sorted(d.props))
    if d.backend:
        obj["backend"] = dict(sorted(d.backend))
    if d.buses:
        obj["buses"] = [bus_json(b) for b in d.buses]
    return obj


def bus_json(b: tree.Bus) -> JsonObject:
    return {"name": b.name, "kind": b.kind, "devices": [device_json(d) for d in b.devices]}


def numa_json(node: tree.NumaNode) -> JsonObject:
    """A guest NUMA node: its cpus (`0-7`, none: no key), RAM backend id and RAM bytes."""
    obj: JsonObject = {"cpus": numa.format_cpus(node.cpus)} if node.cpus else {}
    obj.update(memdev=node.memdev, memory=node.memory)
    return obj


def machine_json(info: tree.MachineInfo) -> JsonObject:
    out: JsonObject = {"schema": info.schema, "qemu": info.qemu, "arch": info.arch,
                       "options": dict(sorted(info.options))}
    if info.release:
        out["qemu-release"] = info.release  # the oldest QEMU release that runs it
    return out


def show_json(m: tree.Machine) -> str:
    """`mschema show --format json`: the machine and its own devices, in the blob's shape."""
    obj = {"machine": machine_json(m.info), "devices": [device_json(d) for d in m.root.devices]}
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def blob(m: tree.Machine) -> str:
    """The precise blob: guest-visible tree in `devices`, host side in `backends`."""
    obj: JsonObject = {"format": FORMAT}
    if m.name:
        obj["name"] = m.name
    obj["machine"] = machine_json(m.info)
    obj["cpus"] = dict(m.cpus)
    obj["memory"] = dict(m.memory)
    if m.numa:
        obj["numa"] = [numa_json(node) for node in m.numa]
    if m.boot:
        obj["boot"] = dict(sorted(m.boot))
    if m.rtc:
        obj["rtc"] = dict(sorted(m.rtc))
    if m.uuid:
        obj["uuid"] = m.uuid
    if m.globals:
        obj["globals"] = dict(m.globals)
    obj["devices"] = [device_json(d) for d in m.root.devices]
    obj["backends"] = {ident: dict(sorted(body)) for ident, body in sorted(m.backends)}
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
