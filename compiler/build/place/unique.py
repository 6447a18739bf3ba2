"""Props declared `unique` (a port's chassis, a PHB's index): checked on every device and,
where left out, set to the lowest value no device of the same group uses — of the same
group on the same bus, for those declared `unique … per-bus` (a switch's downstream
ports)."""

from __future__ import annotations

from collections.abc import Mapping

from compiler.base.diagnostics import Collector, Label
from compiler.build import tree
from compiler.build.place.state import Placed
from compiler.build.plan import Planned
from compiler.lang import model


class UniqueProps:
    def __init__(self, *, placed: Placed, library: model.Library, schema_name: str,
                 diags: Collector) -> None:
        self.placed = placed
        self.library = library
        self.schema_name = schema_name
        self.diags = diags
        self._groups: dict[str, dict[tree.PropValue, str]] = {}  # group → value → first id
        # (group, lo) → below it every value is taken: values are never given back
        self._cursors: dict[tuple[str, int], int] = {}

    def saw(self, d: tree.Device) -> None:
        """Index the `unique` props of a device just placed."""
        t = self.library.devices.get(d.type)
        node = self.placed.nodes.get(d.id)
        bus = node.bus if node else None
        for spec in t.props.values() if t else ():
            if spec.unique is not None:
                for k, v in d.props:
                    if k == spec.name:
                        self._groups.setdefault(_scoped(spec, bus), {}).setdefault(v, d.id)

    def values(self, p: Planned, t: model.DeviceType, bus: str
               ) -> tuple[tuple[str, tree.PropValue], ...] | None:
        """`p`'s props, `p` going onto bus `bus` (its key), with every `unique` prop checked
        or filled in; None on a clash."""
        props = dict(p.props)
        for spec in t.props.values():
            if spec.unique is None:
                continue
            group = _scoped(spec, bus)
            used = self._used_in_group(group)
            value = props.get(spec.name)
            if value is None:
                assert spec.type.lo is not None and spec.type.hi is not None
                free = self._first_free(group, spec.type.lo, spec.type.hi, used)
                if free is None:
                    self.diags.error("E1203", f"no free `{spec.name}` for `{p.id}`: all of "
                                     f"{spec.type.lo}..{spec.type.hi} are taken", p.span,
                                     notes=[f"`{t.name}` `{spec.name}` is unique in group "
                                            f"`{spec.unique}`" + _on_bus(spec, bus)],
                                     help=f"`{self.schema_name}` takes at most "
                                     f"{spec.type.hi - spec.type.lo + 1} of these")
                    return None
                props[spec.name] = free
            elif isinstance(value, int) and value in used:
                other = self.placed.nodes[used[value]].device
                where = other.why.cause or other.why.span
                self.diags.error("E1105", f"`{spec.name}` {value} of `{p.id}` is already used "
                                 f"by `{other.id}` ({other.type})", p.span,
                                 labels=[Label(where, f"`{other.id}` has it")] if where else [],
                                 notes=[f"`{spec.name}` is unique in group `{spec.unique}`" +
                                        _on_bus(spec, bus)],
                                 help=f"leave `{spec.name}` out to get a free one")
                return None
        return tuple(sorted(props.items()))

    def _first_free(self, group: str, lo: int, hi: int,
                    used: Mapping[tree.PropValue, str]) -> int | None:
        cursor = (group, lo)
        start = max(lo, self._cursors.get(cursor, lo)) if self.placed.indexes_hold() else lo
        free = next((v for v in range(start, hi + 1) if v not in used), None)
        if free is not None:
            self._cursors[cursor] = free
        return free

    def _used_in_group(self, group: str) -> Mapping[tree.PropValue, str]:
        """Value → the first device having it, of the props in `unique` group `group`
        (scoped by `_scoped`)."""
        if self.placed.indexes_hold():
            return self._groups.get(group, {})
        used: dict[tree.PropValue, str] = {}
        for ident, node in self.placed.nodes.items():
            t = self.library.devices.get(node.device.type)
            for spec in t.props.values() if t else ():
                if spec.unique is not None and _scoped(spec, node.bus) == group:
                    for k, v in node.device.props:
                        if k == spec.name:
                            used.setdefault(v, ident)
        return used


def _scoped(spec: model.PropSpec, bus: str | None) -> str:
    """The key of `spec`'s group: per bus (by its key) for `unique … per-bus`."""
    return f"{spec.unique}\0{bus}" if spec.unique_per_bus else str(spec.unique)


def _on_bus(spec: model.PropSpec, bus: str | None) -> str:
    return f" on one bus (`{bus}`)" if spec.unique_per_bus and bus else ""
