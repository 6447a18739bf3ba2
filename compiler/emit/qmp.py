"""QMP commands that turn one precise machine into another by hot-plug: a pure function of
the two trees. Backends are added before the devices that use them and deleted after the
devices that used them are gone (a kind QEMU cannot delete at run time, an audiodev, stays);
device arguments are exactly those of `-device`."""

from __future__ import annotations

import json

from compiler.base import backends
from compiler.build import tree
from compiler.emit.argv import device_options

Command = dict[str, object]


def add_backend(ident: str, body: dict[str, tree.PropValue]) -> Command | None:
    """The command that creates a backend at run time; None where QEMU has none (an
    audiodev): `ops/hotplug.py` refuses such a change before it gets here."""
    return backends.get(str(body["kind"])).qmp_add(ident, body)


def remove_backend(ident: str, body: dict[str, tree.PropValue]) -> Command | None:
    """The command that deletes a backend at run time; None where QEMU has none (an
    audiodev stays, unused, until QEMU exits)."""
    return backends.get(str(body["kind"])).qmp_remove(ident, body)


def transition(old: tree.Machine, new: tree.Machine) -> list[Command]:
    """The commands, in order, that take a QEMU running `old` to `new`."""
    old_ids = {d.id for _b, d, _n in tree.walk(old.root)}
    new_ids = {d.id for _b, d, _n in tree.walk(new.root)}
    old_backends, new_backends = dict(old.backends), dict(new.backends)
    commands: list[Command] = []
    for ident in sorted(set(new_backends) - set(old_backends)):
        add = add_backend(ident, dict(new_backends[ident]))
        if add is None:
            raise ValueError(f"QEMU cannot add backend {ident!r} at run time")
        commands.append(add)
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
        remove = remove_backend(ident, dict(old_backends[ident]))
        if remove is not None:
            commands.append(remove)
    return commands


def lines(commands: list[Command]) -> str:
    return "".join(json.dumps(c, separators=(",", ":"), ensure_ascii=False) + "\n"
                   for c in commands)
