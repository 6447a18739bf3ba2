"""`mschema extract`: one device of `info qtree` → the `Planned` device the allocator
places exactly where QEMU has it: its origin, the props the stdlib declares for its type
as QEMU holds them, and its links with the backends they name. What the stdlib cannot say
is a drop (`report`): an unknown or internal type leaves the device out (E1714), a value
outside the stdlib's type leaves the prop out (E1716). Placing and checking are `allocate`'s.
"""

from __future__ import annotations

from collections.abc import Mapping

from compiler.base import backends as backend_kinds
from compiler.build import tree
from compiler.build.place import ids as place_ids
from compiler.build.plan import Backend, Planned
from compiler.lang import model
from compiler.qemu import compare
from compiler.qemu.extract import backends
from compiler.qemu.extract.qtree import BusKey, Record, prop_value
from compiler.qemu.extract.scene import Scene
from compiler.qemu.extract.snapshot import UserDevice, Value


class DevicePlanner:
    """Plans the devices of one assembly; collects the backends their links name."""

    def __init__(self, scene: Scene, ids: Mapping[int, str],
                 bus_names: Mapping[BusKey, str]) -> None:
        self.scene = scene
        self.ids = ids  # record index → blob id, of every device the blob lists
        self.bus_names = bus_names
        self.backends: dict[str, Backend] = {}

    def planned(self, r: Record, ident: str) -> Planned | None:
        """`r` with blob id `ident`, or None if the blob leaves it out (E1714)."""
        scene = self.scene
        t = scene.library.devices.get(r.device.type)
        user = scene.users.get(r.index)
        if t is None or t.internal:
            below = sum(1 for _ in scene.qtree.below(r))
            scene.warnings.warn(
                "E1714", f"`{r.device.type}` is not a device type of the stdlib"
                if t is None else f"`{r.device.type}` is only ever created inside "
                "another device", r.span,
                notes=[f"the blob leaves out `{ident}`" +
                       (f" and the {below} device(s) on its buses" if below else "")],
                help="declare it in `stdlib/` (CONTRIBUTING.md: adding a device type)"
                if t is None else None)
            return None
        origin = self._origin(t, user, ident)
        props = self._props(t, user, r, ident)
        links = self._links(t, user, r)
        bus = self.bus_names.get(r.bus_key, r.bus.name)
        why = (f"extracted from QEMU: `{user.path}`" if user else
               "extracted from QEMU: created by QEMU itself, not predicted by the schema")
        return Planned(ident, t.name, origin, tuple(sorted(props.items())),
                       tuple(sorted(links.items())), bus, scene.qtree.addr(r),
                       tree.Provenance(why, r.span), r.span)

    def _origin(self, t: model.DeviceType, user: UserDevice | None, ident: str) -> tree.Origin:
        if user is not None and user.hotplugged:
            return "hotplug"
        if user is None or self._added(t.name, ident):
            return "default"
        return "spec"

    def _props(self, t: model.DeviceType, user: UserDevice | None, r: Record, ident: str
               ) -> dict[str, tree.PropValue]:
        """The props the stdlib declares, but the address: from QOM for a user device,
        else from `info qtree`."""
        skip = set(compare.QEMU_ADDRESS_PROPS.get(self.scene.qtree.notation(r), ()))
        props: dict[str, tree.PropValue] = {}
        for name, spec in t.props.items():
            if name in skip:
                continue
            raw = user.value(name) if user else prop_value(r.device, name)
            value = self._typed(spec, raw, r, ident)
            if value is not None:
                props[name] = value
        return props

    def _links(self, t: model.DeviceType, user: UserDevice | None, r: Record
               ) -> dict[str, str]:
        """Link → backend id; a link the device leaves to a child it created (one the blob
        does not list) is read from that child."""
        links = {}
        for name, link in t.links.items():
            target = user.value(name) if user else prop_value(r.device, name)
            if target in ("", None):
                target = next((v for c in self.scene.qtree.below(r) if c.index not in self.ids
                               and (v := prop_value(c.device, name)) not in ("", None)), None)
            # None: unset, or an rng device's own default backend, not an `-object`
            target = backend_kinds.get(link.backend).target(target)
            if target is not None:
                made = self._backend(link.backend, target, r)
                if made is not None:
                    links[name] = made
        return links

    def _added(self, dtype: str, ident: str) -> bool:
        """Whether the compiler would have added this device by itself (`build/place/ids`)."""
        return place_ids.added_by_compiler(self.scene.schema, self.scene.schema_devices(),
                                           dtype, ident)

    def _typed(self, spec: model.PropSpec, raw: Value | None, r: Record,
               ident: str) -> tree.PropValue | None:
        """The prop's value as the blob says it: None where it is unset, the stdlib's
        default, or outside the stdlib's type (E1716)."""
        if raw is None or raw == "" or (raw == -1 and spec.default is None):
            return None
        value: tree.PropValue | None = None
        if isinstance(raw, (bool, int, str)) and spec.type.check(raw):
            value = raw.lower() if spec.type.kind == "mac" and isinstance(raw, str) else raw
        if value is None:
            self.scene.warnings.warn(
                "E1716", f"`{ident}`'s `{spec.name}` is {raw!r} in QEMU, which is not "
                f"{spec.type.describe()}", r.span,
                notes=["the blob leaves it out (the stdlib's type is narrower than QEMU's)"])
            return None
        return None if value == spec.default else value

    def _backend(self, kind: str, target: str, r: Record) -> str | None:
        def warn(message: str, notes: list[str]) -> None:
            self.scene.warnings.warn("E1716", message, r.span, notes=notes)

        made = backends.backend(self.scene.snap, kind, target, warn)
        if made is None:
            return None
        ident, body = made
        self.backends[ident] = tuple(sorted(body.items()))
        return ident
