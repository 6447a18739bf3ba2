"""Hot-plug on a precise machine: a loose fragment added, or a device removed, giving the
next precise blob (origin `hotplug` on what was added) and the QMP commands that get there.

New devices go only where QEMU can hot-plug them: on a machine with ports (q35), into an
empty port — `hotplug-slots` keeps spare ones — never onto the root complex; on one without
(pseries), into a free slot of a host bridge; other kinds (USB, SCSI) onto an existing bus
of their kind. Addresses of what is already there never change. A device whose backend
QEMU cannot create at run time (a sound card's audiodev) is refused (E1807).
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from compiler.base import backends, limits
from compiler.base.diagnostics import Collector, CompileError, Label, error, quote_list
from compiler.base.source import SourceFile
from compiler.build import allocate, expand, plan, precise, tree, validate
from compiler.lang import expr, resolve
from compiler.spec import loose


@attrs.frozen
class Change:
    old: tree.Machine
    new: tree.Machine


def _load(path: Path) -> tuple[precise.Loaded, SourceFile]:
    import json

    source = loose.read_source(path)
    excess = limits.check(source, "json")  # before json's recursion and int() can fail
    if excess is not None:
        raise CompileError([excess])
    try:
        data = json.loads(source.text)
    except ValueError as exc:
        raise CompileError([error("E1801", f"`{path}` is not a precise blob: {exc}",
                                  source.span(0, 0))]) from None
    if not precise.is_blob(data):
        raise CompileError([error("E1801", f"`{path}` is not a precise blob", source.span(0, 0),
                                  help="compile the loose spec first: `mschema compile SPEC "
                                  "--emit json`")])
    return precise.read(source, data, resolve.load_library()), source


def add(blob: Path, fragment: Path) -> Change:
    loaded, source = _load(blob)
    library = resolve.load_library()
    diags = Collector()
    fragment_spec = loose.load(fragment, fragment=True)
    planned = plan.plan(loaded.schema, library, fragment_spec, diags)
    diags.check()
    old = loaded.machine
    taken = {d.id for _b, d, _n in tree.walk(old.root)} | {b for b, _ in old.backends}
    macs = {str(v) for _b, d, _n in tree.walk(old.root) for k, v in d.props if k == "mac"}
    fresh = _renumber(planned, fragment_spec, taken, macs)
    env = expr.Env(loaded.options)
    own = expand.machine_devices(loaded.schema, env)
    alloc = allocate.rebuild(loaded.schema, library, own, loaded.plan, diags)
    diags.check()
    refused = _refused_buses(own)
    for p in fresh.devices:
        target = _hotplug_bus(alloc, p, dict(fresh.backends), diags, refused)
        if target is not None:
            alloc.put(attrs.evolve(p, origin="hotplug"), target)
    diags.check()
    new = attrs.evolve(old, root=expand.apply_compat(loaded.schema, alloc.tree()),
                       backends=tuple(sorted(old.backends + fresh.backends)))
    validate.validate(new, library, source.span(0, 0), diags)
    diags.check()
    return Change(old, new)


def _renumber(planned: plan.Plan, fragment_spec: loose.LooseSpec, taken: set[str],
              macs: set[str]) -> plan.Plan:
    """Generated ids and MACs continue after the blob's (`disk0` exists: the new disk is
    `disk1`); ids and MACs the fragment gives are kept and checked by `validate`."""
    given_ids = {str(it.get("id")) for it in fragment_spec.items if it.get("id")}
    given_macs = {str(it.get("mac")).lower() for it in fragment_spec.items if it.get("mac")}
    rename: dict[str, str] = {}
    used = set(taken)
    devices = []
    for p in planned.devices:
        ident = p.id
        if ident not in given_ids and ident in used:
            m = re.match(r"^(.*?)(\d{1,9})$", ident)  # a bounded count: int() takes it
            prefix, n = (m.group(1), int(m.group(2))) if m else (ident, 0)
            while f"{prefix}{n}" in used:
                n += 1
            ident = f"{prefix}{n}"
            rename[p.id] = ident
        used.add(ident)
        props = dict(p.props)
        mac = props.get("mac")
        if isinstance(mac, str) and mac.lower() not in given_macs and mac in macs:
            last = int(mac.split(":")[-1], 16)
            while f"52:54:00:12:34:{last:02x}" in macs:
                last += 1
            props["mac"] = f"52:54:00:12:34:{last:02x}"
        macs.add(str(props.get("mac", "")))
        backend = tuple((k, rename.get(v, v)) for k, v in p.backend)
        devices.append(attrs.evolve(p, id=ident, props=tuple(sorted(props.items())),
                                    backend=backend))
    backends = tuple((rename.get(b, b), body) for b, body in planned.backends)
    return plan.Plan(tuple(devices), backends)


def _refused_buses(devices: tuple[tree.Device, ...]) -> dict[str, str]:
    """Buses of the machine that its schema closes to hot-plug under these options
    (`hotplug false when …`): name → kind."""
    out: dict[str, str] = {}
    for d in devices:
        for b in d.buses:
            if b.hotplug is False:
                out[b.name] = b.kind
            out.update(_refused_buses(b.devices))
    return out


def _hotplug_bus(alloc: allocate.Allocator, p: plan.Planned,
                 fresh_backends: dict[str, plan.Backend],
                 diags: Collector, refused: dict[str, str]) -> allocate.Bus | None:
    library, schema = alloc.library, alloc.schema
    t = library.devices[p.type]
    if not t.hotplug:
        diags.error("E1802", f"`{t.name}` cannot be hot-plugged", p.span,
                    help="add it to the spec and start the machine again")
        return None
    for _link, ident in p.backend:
        body = dict(fresh_backends.get(ident, ()))
        kind = str(body.get("kind"))
        if kind in backends.REGISTRY and backends.get(kind).qmp_add(ident, body) is None:
            diags.error("E1807", f"`{t.name}` needs an {kind} backend, which QEMU cannot add "
                        "at run time", p.span,
                        notes=[f"QEMU has no QMP command that creates an `-{kind}`"],
                        help="add it to the spec and start the machine again")
            return None
    if p.bus is not None:
        bus = alloc.bus_named(p.bus)
        if bus is None or not alloc.hotpluggable(bus):
            diags.error("E1803", f"`{p.bus}` takes no hot-plugged device", p.span,
                        notes=[f"free hot-plug places: {quote_list(alloc.hotplug_places(t))}"])
            return None
        return bus
    places = alloc.hotplug_places(t)
    if places:
        bus = alloc.bus_named(places[0])
        assert bus is not None
        return bus
    kinds = quote_list(pl.bus for pl in t.plugs)
    how = ("keep spare ports: `hotplug-slots = N` in the spec, then compile and start "
           "again" if schema.placement.port_device else "free a slot first")
    closed = [name for name, kind in refused.items() if t.plugs_into(kind) is not None]
    notes = [f"it plugs into {kinds}"]
    if closed:
        # the schema's `hotplug false when …`: QEMU refuses `device_add` there as well
        notes.append(f"`{schema.name}` takes no hot-plugged device on {quote_list(closed)} "
                     "under this blob's machine options")
        how = "add it to the spec and start the machine again, or change those options"
        if schema.placement.overflow:  # pc-i440fx with acpi=off: places behind a bridge
            how += ", or keep places behind a bridge with `hotplug-slots = N` in the spec"
    diags.error("E1804", f"no free hot-plug place for `{t.name}` in this machine", p.span,
                notes=notes, help=how)
    return None


def remove(blob: Path, ident: str) -> Change:
    loaded, _source = _load(blob)
    library = resolve.load_library()
    old = loaded.machine
    span = SourceFile.from_text("<command line>", ident).span(0, len(ident))
    found = next((d for _b, d, _n in tree.walk(old.root) if d.id == ident), None)
    if found is None:
        ids = [d.id for _b, d, _n in tree.walk(old.root) if d.origin != "machine"]
        raise CompileError([error("E1805", f"no device `{ident}` in this machine", span,
                                  notes=[f"its devices are {quote_list(ids, 40)}"])])
    t = library.devices.get(found.type)
    if found.origin == "machine":
        raise CompileError([error("E1806", f"`{ident}` ({found.type}) is part of the machine: "
                                  "QEMU creates it and cannot unplug it", span)])
    if t is None or not t.hotplug:
        raise CompileError([error("E1806", f"`{ident}` ({found.type}) cannot be hot-unplugged",
                                  span, labels=[Label(found.why.span, "given here")]
                                  if found.why.span else [])])
    gone = {d.id for _b, d, _n in tree.walk(tree.Bus("", "", "", (found,)))}
    root = _without(old.root, gone)
    used = {v for _b, d, _n in tree.walk(root) for _k, v in d.backend}
    backends = tuple((b, body) for b, body in old.backends if b in used)
    return Change(old, attrs.evolve(old, root=root, backends=backends))


def _without(bus: tree.Bus, gone: set[str]) -> tree.Bus:
    devices = tuple(attrs.evolve(d, buses=tuple(_without(b, gone) for b in d.buses))
                    for d in bus.devices if d.id not in gone)
    return attrs.evolve(bus, devices=devices)


def capacity(machine: tree.Machine) -> list[tuple[str, str, int]]:
    """(bus, kind, free places) where devices can still be hot-plugged into `machine`."""
    import json

    from compiler.emit import blob

    text = blob.blob(machine)
    source = SourceFile.from_text("<precise>", text)
    loaded = precise.read(source, json.loads(text), resolve.load_library())
    diags = Collector()
    alloc = allocate.rebuild(loaded.schema, resolve.load_library(),
                            expand.machine_devices(loaded.schema, expr.Env(loaded.options)),
                            loaded.plan, diags)
    diags.check()
    return alloc.capacity()


def describe_capacity(places: list[tuple[str, str, int]]) -> str:
    if not places:
        return ("hot-plug: no free place (keep spare ports with `hotplug-slots = N` in the "
                "spec)\n")
    return "".join(f"hot-plug: {n} free place(s) on `{bus}` ({kind})\n"
                   for bus, kind, n in places)
