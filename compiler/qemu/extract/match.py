"""`mschema extract`: which devices of `info qtree` are whose. `match_users` pairs them
with the `-device`/`device_add` devices QOM lists (which QOM cannot do by itself for
devices without an id); `unpredicted` finds those QEMU created by itself that the schema
does not say it creates. Ends at record indexes: naming and planning come after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from compiler.build import tree
from compiler.qemu import compare, process
from compiler.qemu.extract.qtree import BusKey, Qtree, Record
from compiler.qemu.extract.scene import Scene
from compiler.qemu.extract.snapshot import UserDevice


def match_users(qtree: Qtree, users: Iterable[UserDevice]) -> dict[int, UserDevice]:
    """Record index → the user device QEMU created it for. On each bus (owners first), the
    devices with an id by id; then those without, by QOM's address where they have one,
    in creation order; a device's buses are scoped to the user device that owns them."""
    users = list(users)
    paths = sorted({u.path for u in users}, key=len, reverse=True)
    # a bus QOM hangs on a stand-in (`qtree-parent`: a PCI expander's `pxb-host`), named as
    # its device's id, belongs to that device as `process.regraft` shows it
    hosted = {t for types in process.qtree_parents().values() for t in types}
    regrafted = {u.name: u.path for u in users if not u.anonymous and u.type in hosted}

    def scope(bus_path: str) -> str | None:
        owner = next((p for p in paths if bus_path.startswith(p + "/")), None)
        return owner or regrafted.get(bus_path.rsplit("/", 1)[-1])

    bus_scope = {u.path: scope(u.parent_bus) for u in users}
    matched: dict[int, UserDevice] = {}
    rec_scope: dict[int, str | None] = {}
    named = {u.name for u in users if not u.anonymous}
    buses: dict[BusKey, list[Record]] = {}
    for r in qtree.records:
        buses.setdefault(r.bus_key, []).append(r)
    names = {name for _, name in buses}
    for (owner, name), members in buses.items():  # owners come before their buses
        here = rec_scope.get(owner) if owner is not None else None
        created = list(reversed(members))  # qtree lists the newest first

        def on_bus(u: UserDevice, owner: int | None = owner, name: str = name) -> bool:
            # QOM names the root bus otherwise (`/machine/unattached/sysbus`)
            last = u.parent_bus.rsplit("/", 1)[-1]
            return last == name or (owner is None and last not in names)

        cands = [u for u in users if on_bus(u) and bus_scope[u.path] == here
                 and u not in matched.values()]
        notation = qtree.notation(members[0])

        for u in cands:
            if not u.anonymous:
                _take(created, matched, u, _has_id(u.name))
        anon = sorted((u for u in cands if u.anonymous), key=lambda u: u.index)
        for u in anon:
            where = _qom_addr(notation, u)
            if where is not None:
                _take(created, matched, u, _unnamed_at(qtree, where, named))
        for u in anon:
            if u not in matched.values():
                _take(created, matched, u, _unnamed_at(qtree, None, named))
        for r in members:
            rec_scope[r.index] = matched[r.index].path if r.index in matched else here
    return matched


def _take(created: list[Record], matched: dict[int, UserDevice], u: UserDevice,
          ok: Callable[[Record], bool]) -> None:
    """Match `u` with the first (oldest) unmatched device of its type for which `ok`."""
    for r in created:
        if r.index not in matched and r.device.type == u.type and ok(r):
            matched[r.index] = u
            return


def _has_id(ident: str) -> Callable[[Record], bool]:
    return lambda r: r.device.id == ident


def _unnamed_at(qtree: Qtree, where: str | None, named: set[str]) -> Callable[[Record], bool]:
    """Not a device with an id of its own; at `where`, if given."""
    return lambda r: r.device.id not in named and (where is None or qtree.addr(r) == where)


def _qom_addr(notation: str, u: UserDevice) -> str | None:
    names = compare.QEMU_ADDRESS_PROPS.get(notation)
    values = [u.value(p) for p in names or ()]
    if not names or not all(isinstance(v, (bool, int, str)) for v in values):
        return None
    return compare.address_text(notation, [v for v in values
                                           if isinstance(v, (bool, int, str))])


def unpredicted(scene: Scene, root: tree.Bus, bus_names: Mapping[BusKey, str]
                ) -> list[Record]:
    """The devices QEMU created by itself (no user device) that the machine devices of
    `root` do not account for, where the blob can list them (warning E1715 each)."""
    qtree = scene.qtree
    predicted: Counter[tuple[str, str, str | None]] = Counter()
    for bus, d, _ in tree.walk(root):
        if d.origin == "machine":
            predicted[(bus.name, d.type, None if d.addr is None else str(d.addr))] += 1
    seen: set[int] = set()
    extras = []
    for r in qtree.creation_order():  # what the machine made comes first
        if r.index in scene.users:
            continue
        key = (bus_names.get(r.bus_key, r.bus.name), r.device.type, qtree.addr(r))
        if predicted[key] > 0:
            predicted[key] -= 1
            seen.add(r.index)
            continue
        owner_ok = r.owner is None or r.owner in seen or r.owner in scene.users
        t = scene.library.devices.get(r.device.type)
        if owner_ok and t is not None and not t.internal:
            extras.append(r)
            scene.warnings.warn(
                "E1715", f"QEMU created `{r.device.type}` on `{r.bus.name}` by itself, which "
                f"`{scene.schema.name}` does not predict", r.span,
                notes=["the blob lists it as a device of origin `default`",
                       "QEMU adds devices for legacy options (`-serial`, `-drive if=…`, "
                       "`-vga`, `-usb`), without `-nodefaults`, and a USB hub when a bus has "
                       "one free port left"])
    return extras
