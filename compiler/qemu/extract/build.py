"""`mschema extract`, second half: a `Snapshot` of a running QEMU → the precise machine.

The blob is built the way a compiled one is: the machine schema whose `qemu-machine` is
QEMU's machine type gives, under the options QEMU holds, the devices the machine creates
(`origin: machine`); every device created with `-device` or `device_add` becomes a device
placed exactly where QEMU has it, and `address` (the compiler's allocator) adds the
children its type creates and checks it all. Then the result is compared with QEMU's
`info qtree` once more (`compare`): what still differs is reported, never hidden.

Rules, where QEMU does not say everything:
- origin: `hotplug` if QOM's `hotplugged` is true; else `default` for a type the compiler
  adds by itself (the schema's port, overflow and `provide` types) with an id as the
  compiler names them (`rp0`, `scsi0`, `phb1`), `spec` for the rest (QEMU cannot tell which
  were asked for); devices QEMU created by itself that the schema does not predict (a legacy
  option, no `-nodefaults`) are listed as `default`, with a warning;
- ids: the qdev id; a device without one gets `TYPE` + a number, and its buses the names
  QEMU gives with that id (bus names are not guest-visible);
- props: those the stdlib declares for the type, as QEMU holds them, left out where they
  equal the stdlib's default or are QEMU's "unset" (`""`, `-1`); props QEMU derives at
  realize (`disable-legacy`, an IDE `serial`, a SCSI `vendor`) come back explicit;
- backends: only those a device links to, as far as QEMU reveals them (`extract_backends`).
Diagnostics are warnings pointing into the `info qtree` text, at the device: E1714–E1716,
and what `address` and `validate` find in the result (the blob would not compile as it is).
Errors (no schema for QEMU's machine type, E1713) stop it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

import attrs

from compiler.base import notations
from compiler.base.diagnostics import Collector, CompileError, Diagnostic, error, quote_list
from compiler.base.source import SourceFile, Span
from compiler.build import allocate, expand, tree
from compiler.build.place import ids as place_ids
from compiler.build.plan import Backend, Plan, Planned
from compiler.lang import expr, model
from compiler.qemu import compare, process
from compiler.qemu.extract import backends
from compiler.qemu.extract.snapshot import Snapshot, UserDevice, Value

BusKey = tuple[int | None, str]  # (walk index of the owning device, bus name)


@attrs.frozen
class Result:
    machine: tree.Machine
    warnings: tuple[Diagnostic, ...]


@attrs.frozen
class _Rec:
    """A device of `info qtree`, with where it is."""

    index: int  # in `qemu.walk` order
    bus: process.QtreeBus
    device: process.QtreeDevice
    owner: int | None  # the device owning `bus`; None on the root bus
    span: Span  # its `dev:` line
    port: str | None  # the USB port QEMU gave it

    @property
    def bus_key(self) -> BusKey:
        return (self.owner, self.bus.name)


def build(snap: Snapshot, library: model.Library) -> Result:
    return _Builder(snap, library).run()


class _Builder:
    def __init__(self, snap: Snapshot, library: model.Library) -> None:
        self.snap = snap
        self.library = library
        self.source = SourceFile.from_text(f"<info qtree of {snap.socket}>", snap.qtree)
        self.top = self.source.span(0, 0)
        self.warnings = Collector()
        self.info = compare.bus_info()
        self.root = process.parse_qtree(snap.qtree)
        self.recs = self._records()
        self.by_owner: dict[int | None, list[_Rec]] = {}
        for r in self.recs:
            self.by_owner.setdefault(r.owner, []).append(r)

    def warn(self, code: str, message: str, span: Span | None = None, **kw: object) -> None:
        d = error(code, message, span or self.top, **kw)  # type: ignore[arg-type]
        self.warnings.add(attrs.evolve(d, severity="warning"))

    # -- the qtree
    def _records(self) -> list[_Rec]:
        lines = compare.qtree_lines(self.snap.qtree)
        recs: list[_Rec] = []

        def visit(bus: process.QtreeBus, owner: int | None) -> None:
            for d in bus.devices:
                i = len(recs)
                start, end, port = lines[i] if i < len(lines) else (0, 0, None)
                recs.append(_Rec(i, bus, d, owner, self.source.span(start, end), port))
                for b in d.buses:
                    visit(b, i)

        visit(self.root, None)
        return recs

    def notation(self, r: _Rec) -> str:
        return self.info.notation(self.info.kind(r.bus.type))

    def addr(self, r: _Rec) -> str | None:
        return compare.qtree_addr(self.notation(r), r.device, r.port)

    # -- the whole
    def run(self) -> Result:
        schema = self._schema()
        options = self._options(schema)
        self.machine_devices = expand.machine_devices(schema, expr.Env(options))
        self.schema = schema
        self.users = self._match_users()
        self.ids = self._user_ids()
        self.backends: dict[str, Backend] = {}
        extras: list[_Rec] = []
        root, diags = self._assemble(extras)
        extras = self._extras(root)
        if extras:
            root, diags = self._assemble(extras)
        for d in diags:
            self.warnings.add(attrs.evolve(d, severity="warning"))
        machine = tree.Machine(expand.machine_info(schema, options), root, self._cpus(),
                               self._memory(), tuple(sorted(self.backends.items())),
                               self.snap.name)
        self._check(machine)
        return Result(machine, tuple(sorted(self.warnings.items, key=Diagnostic.sort_key)))

    def _schema(self) -> model.MachineSchema:
        qemu_type = self.snap.machine_type
        for s in self.library.machines.values():
            if s.qemu_machine == qemu_type:
                return s
        known = [s.qemu_machine for s in self.library.machines.values()]
        raise CompileError([error(
            "E1713", f"QEMU runs machine type `{qemu_type}`, which no schema describes",
            SourceFile.from_text(self.snap.socket, "").span(0, 0),
            notes=[f"the schemas describe {quote_list(known)}"],
            help="add a schema for it (CONTRIBUTING.md: adding a machine version)")])

    def _options(self, schema: model.MachineSchema) -> dict[str, expr.Scalar]:
        read = dict(self.snap.options)
        values: dict[str, expr.Scalar] = {}
        for name, spec in schema.options.items():
            value = read.get(name)
            typed = None
            if isinstance(value, (bool, int, str)):
                text = ("on" if value else "off") if isinstance(value, bool) else str(value)
                typed = expand.parse_option(spec.type, text)
            if typed is None:
                self.warn("E1716", f"QEMU does not show machine option `{name}` as "
                          f"{spec.type.describe()}" + (f" (it has {value!r})" if value is not None
                                                       else "") +
                          f"; the blob says the schema's default `{spec.default}`")
                typed = spec.default
            values[name] = typed
        return values

    # -- which qtree devices were created with -device / device_add
    def _match_users(self) -> dict[int, UserDevice]:
        users = list(self.snap.users)
        paths = sorted({u.path for u in users}, key=len, reverse=True)

        def scope(bus_path: str) -> str | None:
            return next((p for p in paths if bus_path.startswith(p + "/")), None)

        bus_scope = {u.path: scope(u.parent_bus) for u in users}
        matched: dict[int, UserDevice] = {}
        rec_scope: dict[int, str | None] = {}
        named = {u.name for u in users if not u.anonymous}
        buses: dict[BusKey, list[_Rec]] = {}
        for r in self.recs:
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
            notation = self.info.notation(self.info.kind(members[0].bus.type))

            for u in cands:
                if not u.anonymous:
                    _take(created, matched, u, self._has_id(u.name))
            anon = sorted((u for u in cands if u.anonymous), key=lambda u: u.index)
            for u in anon:
                where = self._qom_addr(notation, u)
                if where is not None:
                    _take(created, matched, u, self._unnamed_at(where, named))
            for u in anon:
                if u not in matched.values():
                    _take(created, matched, u, self._unnamed_at(None, named))
            for r in members:
                rec_scope[r.index] = matched[r.index].path if r.index in matched else here
        return matched

    @staticmethod
    def _has_id(ident: str) -> Callable[[_Rec], bool]:
        return lambda r: r.device.id == ident

    def _unnamed_at(self, where: str | None, named: set[str]) -> Callable[[_Rec], bool]:
        """Not a device with an id of its own; at `where`, if given."""
        return lambda r: r.device.id not in named and (where is None or self.addr(r) == where)

    @staticmethod
    def _qom_addr(notation: str, u: UserDevice) -> str | None:
        names = compare.QEMU_ADDRESS_PROPS.get(notation)
        values = [u.value(p) for p in names or ()]
        if not names or not all(isinstance(v, (bool, int, str)) for v in values):
            return None
        return compare.address_text(notation, [v for v in values
                                               if isinstance(v, (bool, int, str))])

    # -- ids and bus names
    def _user_ids(self) -> dict[int, str]:
        self.taken = {d.id for d in _walk(self.machine_devices)}
        self.taken |= {u.name for u in self.users.values() if not u.anonymous}
        ids: dict[int, str] = {}
        clashes = {d.id for d in _walk(self.machine_devices)}
        for index in (r.index for r in self._creation_order() if r.index in self.users):
            u = self.users[index]
            if not u.anonymous and u.name not in clashes:
                ids[index] = u.name
                continue
            ids[index] = self.fresh(u.type)
            if not u.anonymous:
                self.warn("E1715", f"`{u.name}` ({u.type}) has the id of a device "
                          f"`{self.schema.name}` creates by itself: the blob calls it "
                          f"`{ids[index]}`", self.recs[index].span)
        return ids

    def fresh(self, dtype: str) -> str:
        base = dtype + ("-" if dtype[-1:].isdigit() else "")
        n = 0
        while f"{base}{n}" in self.taken:
            n += 1
        self.taken.add(f"{base}{n}")
        return f"{base}{n}"

    def _bus_names(self, ids: Mapping[int, str]) -> dict[BusKey, str]:
        """For each emitted device whose blob id is not QEMU's, its buses (and those of
        the children its type creates) as QEMU names them with the blob id."""
        names: dict[BusKey, str] = {}
        for index, ident in ids.items():
            r = self.recs[index]
            if ident == r.device.id:
                continue
            have: dict[str, list[BusKey]] = {}
            for key, kind in self._subtree_buses(r):
                have.setdefault(kind, []).append(key)
            want: dict[str, list[str]] = {}
            for kind, name in _template_buses(self.library, r.device.type, ident):
                want.setdefault(kind, []).append(name)
            for kind, keys in have.items():
                targets = want.get(kind, [])
                if len(targets) == len(keys):
                    keys.sort(key=lambda k: _natural(k[1]))
                    names.update(zip(keys, targets, strict=True))
        return names

    def _subtree_buses(self, r: _Rec) -> Iterator[tuple[BusKey, str]]:
        for b in r.device.buses:
            yield (r.index, b.name), self.info.kind(b.type)
        for child in self.by_owner.get(r.index, []):
            if child.index not in self.users:
                yield from self._subtree_buses(child)

    # -- building
    def _assemble(self, extras: list[_Rec]) -> tuple[tree.Bus, list[Diagnostic]]:
        ids = dict(self.ids)
        self.extra_ids = {}
        for r in extras:
            ids[r.index] = self.extra_ids[r.index] = self.fresh(r.device.type)
        self.emitted = ids
        self.bus_names = self._bus_names(ids)
        self.backends = {}
        planned = []
        self.left_out = left_out = set[int]()
        for r in self._creation_order():
            if r.owner is not None and r.owner in left_out:
                left_out.add(r.index)
                continue
            if r.index not in ids:
                continue
            p = self._planned(r, ids[r.index])
            if p is None:
                left_out.add(r.index)
            else:
                planned.append(p)
        diags = Collector()
        root = allocate.assign(self.schema, self.library, self.machine_devices,
                              Plan(tuple(planned), tuple(sorted(self.backends.items()))), 0,
                              self.top, diags)
        return expand.apply_compat(self.schema, root), diags.items

    def _creation_order(self) -> Iterator[_Rec]:
        def visit(owner: int | None) -> Iterator[_Rec]:
            members = self.by_owner.get(owner, [])
            groups: dict[str, list[_Rec]] = {}
            for r in members:
                groups.setdefault(r.bus.name, []).append(r)
            for group in groups.values():
                ordered = list(reversed(group))  # qtree lists the newest first
                if notations.get(self.notation(group[0])).hub_paths:
                    # a device behind a hub port (`4.1`) after the hub (`4`), which QEMU
                    # may have created while placing it
                    ordered.sort(key=lambda r: (self.addr(r) or "").count("."))
                for r in ordered:
                    yield r
                    yield from visit(r.index)

        yield from visit(None)

    def _planned(self, r: _Rec, ident: str) -> Planned | None:
        t = self.library.devices.get(r.device.type)
        user = self.users.get(r.index)
        if t is None or t.internal:
            below = sum(1 for _ in self._below(r))
            self.warn("E1714", f"`{r.device.type}` is not a device type of the stdlib"
                      if t is None else f"`{r.device.type}` is only ever created inside "
                      "another device", r.span,
                      notes=[f"the blob leaves out `{ident}`" +
                             (f" and the {below} device(s) on its buses" if below else "")],
                      help="declare it in `stdlib/` (CONTRIBUTING.md: adding a device type)"
                      if t is None else None)
            return None
        origin: tree.Origin
        if user is not None and user.hotplugged:
            origin = "hotplug"
        elif user is None or self._added(t.name, ident):
            origin = "default"
        else:
            origin = "spec"
        notation = self.notation(r)
        skip = set(compare.QEMU_ADDRESS_PROPS.get(notation, ()))
        props: dict[str, tree.PropValue] = {}
        for name, spec in t.props.items():
            if name in skip:
                continue
            raw = user.value(name) if user else _qtree_prop(r.device, name)
            value = self._typed(spec, raw, r, ident)
            if value is not None:
                props[name] = value
        links = {}
        for name, link in t.links.items():
            target = user.value(name) if user else _qtree_prop(r.device, name)
            if target in ("", None):
                target = next((v for c in self._below(r) if c.index not in self.emitted
                               and (v := _qtree_prop(c.device, name)) not in ("", None)), None)
            if link.backend == "rng" and isinstance(target, str) and \
                    not target.startswith("/objects/"):
                target = None  # the device's own default backend, not an `-object`
            if isinstance(target, str) and target:
                made = self._backend(link.backend, target, r)
                if made is not None:
                    links[name] = made
        bus = self.bus_names.get(r.bus_key, r.bus.name)
        why = (f"extracted from QEMU: `{user.path}`" if user else
               "extracted from QEMU: created by QEMU itself, not predicted by the schema")
        return Planned(ident, t.name, origin, tuple(sorted(props.items())),
                       tuple(sorted(links.items())), bus, self.addr(r),
                       tree.Provenance(why, r.span), r.span)

    def _below(self, r: _Rec) -> Iterator[_Rec]:
        for c in self.by_owner.get(r.index, []):
            yield c
            yield from self._below(c)

    def _added(self, dtype: str, ident: str) -> bool:
        """Whether the compiler would have added this device by itself (`build/place/ids`)."""
        return place_ids.added_by_compiler(self.schema, _walk(self.machine_devices), dtype, ident)

    def _typed(self, spec: model.PropSpec, raw: Value | None, r: _Rec,
               ident: str) -> tree.PropValue | None:
        if raw is None or raw == "" or (raw == -1 and spec.default is None):
            return None
        kind = spec.type.kind
        value: tree.PropValue | None = None
        if kind == "bool" and isinstance(raw, bool):
            value = raw
        elif kind in ("int", "size") and isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
            lo, hi = spec.type.lo, spec.type.hi
            if (lo is not None and raw < lo) or (hi is not None and raw > hi):
                value = None
        elif kind in ("str", "mac", "enum") and isinstance(raw, str):
            value = raw.lower() if kind == "mac" else raw
            if kind == "enum" and raw not in spec.type.members:
                value = None
        if value is None:
            self.warn("E1716", f"`{ident}`'s `{spec.name}` is {raw!r} in QEMU, which is not "
                      f"{spec.type.describe()}", r.span,
                      notes=["the blob leaves it out (the stdlib's type is narrower than "
                             "QEMU's)"])
            return None
        return None if value == spec.default else value

    # -- backends
    def _backend(self, kind: str, target: str, r: _Rec) -> str | None:
        def warn(message: str, notes: list[str]) -> None:
            self.warn("E1716", message, r.span, notes=notes)

        made = backends.backend(self.snap, kind, target, warn)
        if made is None:
            return None
        ident, body = made
        self.backends[ident] = tuple(sorted(body.items()))
        return ident

    # -- what QEMU created that the schema does not predict
    def _extras(self, root: tree.Bus) -> list[_Rec]:
        predicted: Counter[tuple[str, str, str | None]] = Counter()
        for bus, d, _ in tree.walk(root):
            if d.origin == "machine":
                predicted[(bus.name, d.type, None if d.addr is None else str(d.addr))] += 1
        seen: set[int] = set()
        extras = []
        for r in self._creation_order():  # what the machine made comes first
            if r.index in self.users:
                continue
            key = (self.bus_names.get(r.bus_key, r.bus.name), r.device.type, self.addr(r))
            if predicted[key] > 0:
                predicted[key] -= 1
                seen.add(r.index)
                continue
            owner_ok = r.owner is None or r.owner in seen or r.owner in self.users
            t = self.library.devices.get(r.device.type)
            if owner_ok and t is not None and not t.internal:
                extras.append(r)
                self.warn("E1715", f"QEMU created `{r.device.type}` on `{r.bus.name}` by "
                          f"itself, which `{self.schema.name}` does not predict", r.span,
                          notes=["the blob lists it as a device of origin `default`",
                                 "QEMU adds devices for legacy options (`-serial`, `-drive "
                                 "if=…`, `-vga`, `-usb`), without `-nodefaults`, and a USB "
                                 "hub when a bus has one free port left"])
        return extras

    # -- cpus, memory, and the last look
    def _cpus(self) -> tuple[tuple[str, tree.PropValue], ...]:
        smp = self.snap.smp
        cpus: dict[str, tree.PropValue] = {}
        for key, field in (("count", "cpus"), ("sockets", "sockets"), ("cores", "cores"),
                           ("threads", "threads")):
            v = smp.get(field)
            if isinstance(v, int) and not isinstance(v, bool):
                cpus[key] = v
        for field in ("dies", "clusters"):
            if smp.get(field) not in (None, 1):
                self.warn("E1716", f"QEMU's cpu topology has {smp[field]} {field}, which a "
                          "blob cannot describe")
        if smp.get("maxcpus") not in (None, smp.get("cpus")):
            self.warn("E1716", f"QEMU has {smp.get('maxcpus')} possible cpus (`maxcpus`) for "
                      f"{smp.get('cpus')} present ones, which a blob cannot describe")
        cpu, default = self.snap.cpu_type, self.snap.default_cpu_type
        if cpu and default and cpu != default:
            cpus["model"] = re.sub(r"-[^-]+-cpu$", "", cpu)
        return tuple(sorted(cpus.items()))

    def _memory(self) -> tuple[tuple[str, tree.PropValue], ...]:
        base, plugged = self.snap.memory.get("base-memory"), self.snap.memory.get("plugged-memory")
        if isinstance(plugged, int) and plugged:
            self.warn("E1716", f"QEMU has {plugged} bytes of hot-plugged memory, which a blob "
                      "cannot describe")
        return (("size", base),) if isinstance(base, int) else ()

    def _check(self, machine: tree.Machine) -> None:
        """The blob compiles (validate), and describes what QEMU built (compare), but for
        the devices already reported as left out."""
        import json

        from compiler.build import validate
        from compiler.emit import blob as blob_emit

        diags = Collector()
        validate.validate(machine, self.library, self.top, diags)
        for d in diags.items:
            self.warnings.add(attrs.evolve(d, severity="warning"))
        blob = json.loads(blob_emit.blob(machine))
        ids = compare.emitted_ids(blob)
        kept = [r for r in self.recs if r.index not in self.left_out]
        by_entry: dict[compare.Entry, Span] = {}
        for r in kept:
            kind = self.info.kind(r.bus.type)
            ident = self.emitted.get(r.index, r.device.id)
            by_entry.setdefault(compare.Entry(
                self.bus_names.get(r.bus_key, r.bus.name), kind, r.device.type, self.addr(r),
                ident if ident in ids else None), r.span)
        spans = {ident: self.recs[i].span for i, ident in self.emitted.items()}
        for diff in compare.compare_all(blob, self._renamed(), info=self.info,
                                        walk_ports=[r.port for r in kept]):
            at = by_entry.get(diff.built) if diff.built is not None else None
            self.warn("E1715", f"the blob differs from what QEMU built: {diff.message}",
                      at or spans.get(diff.device or ""), notes=[f"difference: {diff.kind}"])

    def _renamed(self) -> process.QtreeBus:
        """QEMU's tree with the blob's ids and bus names, to compare like with like, and
        without the devices left out of the blob (reported already)."""
        counter = iter(range(len(self.recs)))

        def bus(b: process.QtreeBus, owner: int | None) -> process.QtreeBus:
            devices = []
            for d in b.devices:
                i = next(counter)
                buses = tuple(bus(c, i) for c in d.buses)
                if i not in self.left_out:
                    devices.append(attrs.evolve(d, id=self.emitted.get(i, d.id), buses=buses))
            return attrs.evolve(b, name=self.bus_names.get((owner, b.name), b.name),
                                devices=tuple(devices))

        return bus(self.root, None)


def _take(created: list[_Rec], matched: dict[int, UserDevice], u: UserDevice,
          ok: Callable[[_Rec], bool]) -> None:
    """Match `u` with the first (oldest) unmatched device of its type for which `ok`."""
    for r in created:
        if r.index not in matched and r.device.type == u.type and ok(r):
            matched[r.index] = u
            return


def _walk(devices: tuple[tree.Device, ...]) -> Iterator[tree.Device]:
    for d in devices:
        yield d
        for b in d.buses:
            yield from _walk(b.devices)


def _template_buses(library: model.Library, dtype: str, qemu_id: str
                    ) -> Iterator[tuple[str, str]]:
    """(kind, name) of the buses a device of `dtype` with id `qemu_id` provides, and of
    those of the children its type creates (named after the same id), as `address` does."""
    t = library.devices.get(dtype)
    for template in t.buses if t else ():
        for name in template.names(qemu_id):
            yield template.kind, name
        for child in template.children:
            yield from _template_buses(library, child.type, qemu_id)


def _natural(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p]


def _qtree_prop(device: process.QtreeDevice, name: str) -> Value | None:
    raw = device.prop(name)
    return None if raw is None else compare.qtree_value(raw)
