"""`mschema extract`: the blob's ids and bus names for QEMU's devices. A user device keeps
its qdev id unless a device the schema creates holds it (E1715); a device without one gets
`TYPE` + a number. Where a device's blob id is not QEMU's, its buses take the names QEMU
would give them with the blob id (bus names are not guest-visible).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from compiler.lang import model
from compiler.qemu.extract.qtree import BusKey, Record
from compiler.qemu.extract.scene import Scene


class FreshIds:
    """Numbered ids no device holds yet."""

    def __init__(self, scene: Scene) -> None:
        self.taken = {d.id for d in scene.schema_devices()}
        self.taken |= {u.name for u in scene.users.values() if not u.anonymous}

    def fresh(self, dtype: str) -> str:
        """`TYPE` + the first free number (`TYPE-` + it where the type ends in a digit)."""
        base = dtype + ("-" if dtype[-1:].isdigit() else "")
        n = 0
        while f"{base}{n}" in self.taken:
            n += 1
        self.taken.add(f"{base}{n}")
        return f"{base}{n}"


def user_ids(scene: Scene, ids: FreshIds) -> dict[int, str]:
    """Record index → blob id, for every user device, in creation order."""
    found: dict[int, str] = {}
    clashes = {d.id for d in scene.schema_devices()}
    for index in (r.index for r in scene.qtree.creation_order() if r.index in scene.users):
        u = scene.users[index]
        if not u.anonymous and u.name not in clashes:
            found[index] = u.name
            continue
        found[index] = ids.fresh(u.type)
        if not u.anonymous:
            scene.warnings.warn(
                "E1715", f"`{u.name}` ({u.type}) has the id of a device `{scene.schema.name}` "
                f"creates by itself: the blob calls it `{found[index]}`",
                scene.qtree.records[index].span)
    return found


def bus_names(scene: Scene, ids: Mapping[int, str]) -> dict[BusKey, str]:
    """For each emitted device whose blob id is not QEMU's, its buses (and those of
    the children its type creates) as QEMU names them with the blob id."""
    names: dict[BusKey, str] = {}
    for index, ident in ids.items():
        r = scene.qtree.records[index]
        if ident == r.device.id:
            continue
        have: dict[str, list[BusKey]] = {}
        for key, kind in _subtree_buses(scene, r):
            have.setdefault(kind, []).append(key)
        want: dict[str, list[str]] = {}
        for kind, name in _template_buses(scene.library, r.device.type, ident):
            want.setdefault(kind, []).append(name)
        for kind, keys in have.items():
            targets = want.get(kind, [])
            if len(targets) == len(keys):
                keys.sort(key=lambda k: _natural(k[1]))
                names.update(zip(keys, targets, strict=True))
    return names


def _subtree_buses(scene: Scene, r: Record) -> Iterator[tuple[BusKey, str]]:
    """(key, kind) of `r`'s buses and of those of the devices below it its type created."""
    for b in r.device.buses:
        yield (r.index, b.name), scene.qtree.info.kind(b.type)
    for child in scene.qtree.by_owner.get(r.index, ()):
        if child.index not in scene.users:
            yield from _subtree_buses(scene, child)


def _template_buses(library: model.Library, dtype: str, qemu_id: str
                    ) -> Iterator[tuple[str, str]]:
    """(kind, name) of the buses a device of `dtype` with id `qemu_id` provides, and of
    those of the children its type creates (named after the same id), as `allocate` does."""
    t = library.devices.get(dtype)
    for template in t.buses if t else ():
        for name in template.names(qemu_id):
            yield template.kind, name
        for child in template.children:
            yield from _template_buses(library, child.type, qemu_id)


def _natural(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p]
