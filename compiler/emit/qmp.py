"""QMP commands that turn one precise machine into another by hot-plug: a pure function of
the two trees. Backends are added before the devices that use them and deleted after the
devices that used them are gone; device arguments are exactly those of `-device`."""

from __future__ import annotations

import json

from compiler.build import tree
from compiler.emit.argv import blockdev_options, device_options, netdev_options, rng_options

Command = dict[str, object]


def _chardev_backend(body: dict[str, tree.PropValue]) -> dict[str, object]:
    kind = str(body["backend"])
    if kind == "file":
        return {"type": "file", "data": {"out": body["path"]}}
    if kind == "socket":
        return {"type": "socket", "data": {"addr": {"type": "unix",
                                                    "data": {"path": body["path"]}},
                                           "server": True, "wait": False}}
    return {"type": kind, "data": {}}


def add_backend(ident: str, body: dict[str, tree.PropValue]) -> Command:
    kind = body["kind"]
    if kind == "blockdev":
        return {"execute": "blockdev-add", "arguments": blockdev_options(ident, body)}
    if kind == "netdev":
        return {"execute": "netdev_add", "arguments": netdev_options(ident, body)}
    if kind == "chardev":
        return {"execute": "chardev-add",
                "arguments": {"id": ident, "backend": _chardev_backend(body)}}
    return {"execute": "object-add", "arguments": rng_options(ident, body)}


def remove_backend(ident: str, body: dict[str, tree.PropValue]) -> Command:
    kind = body["kind"]
    if kind == "blockdev":
        return {"execute": "blockdev-del", "arguments": {"node-name": ident}}
    if kind == "netdev":
        return {"execute": "netdev_del", "arguments": {"id": ident}}
    if kind == "chardev":
        return {"execute": "chardev-remove", "arguments": {"id": ident}}
    return {"execute": "object-del", "arguments": {"id": ident}}


def transition(old: tree.Machine, new: tree.Machine) -> list[Command]:
    """The commands, in order, that take a QEMU running `old` to `new`."""
    old_ids = {d.id for _b, d, _n in tree.walk(old.root)}
    new_ids = {d.id for _b, d, _n in tree.walk(new.root)}
    old_backends, new_backends = dict(old.backends), dict(new.backends)
    commands: list[Command] = []
    for ident in sorted(set(new_backends) - set(old_backends)):
        commands.append(add_backend(ident, dict(new_backends[ident])))
    for bus, d, _n in tree.walk(new.root):
        if d.id not in old_ids and d.origin != "machine":
            commands.append({"execute": "device_add", "arguments": device_options(bus, d)})
    removed = [d for _b, d, _n in tree.walk(old.root) if d.id not in new_ids]
    removed_ids = {d.id for d in removed}
    for d in removed:
        # unplugging a device takes its children with it: name only the top of each subtree
        parent_removed = any(d.id.startswith(f"{r}.") for r in removed_ids)
        if d.origin != "machine" and not parent_removed:
            commands.append({"execute": "device_del", "arguments": {"id": d.id}})
    for ident in sorted(set(old_backends) - set(new_backends)):
        commands.append(remove_backend(ident, dict(old_backends[ident])))
    return commands


def lines(commands: list[Command]) -> str:
    return "".join(json.dumps(c, separators=(",", ":"), ensure_ascii=False) + "\n"
                   for c in commands)
