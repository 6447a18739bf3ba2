"""`mschema extract`: the machine-level part of the blob from a `Snapshot`: the schema of
QEMU's machine type, the machine options, `cpus` (with `maxcpus` when QEMU has more
possible cpus than present ones), `memory` and the NUMA nodes. What a blob cannot say
(dies or clusters, hot-plugged memory, a node's RAM backend other than a plain
`memory-backend-ram`) or QEMU does not show is a warning (E1716);
no schema for the machine type (E1713) is an error. Devices are elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from compiler.base import notations, numa, settings
from compiler.base.diagnostics import CompileError, error
from compiler.base.source import SourceFile
from compiler.build import tree
from compiler.lang import expr, model
from compiler.qemu.extract import backends as extract_backends
from compiler.qemu.extract.assemble import Assembly
from compiler.qemu.extract.qtree import Qtree, Record, prop_value
from compiler.qemu.extract.report import Warnings
from compiler.qemu.extract.scene import Scene
from compiler.qemu.extract.snapshot import Snapshot

Pairs = tuple[tuple[str, tree.PropValue], ...]


def find_schema(snap: Snapshot, library: model.Library) -> model.MachineSchema:
    """The schema whose `qemu-machine` is the machine type QEMU runs; raises E1713."""
    qemu_type = snap.machine_type
    for s in library.machines.values():
        if s.qemu_machine == qemu_type:
            return s
    # each family as its oldest … newest version (a list of every version is cut short)
    families: dict[str, list[model.MachineSchema]] = {}
    for s in library.machines.values():
        families.setdefault(s.family, []).append(s)
    known = []
    for _family, versions in sorted(families.items()):
        ordered = sorted(versions, key=lambda s: model.release_key(s.since) or (0, 0))
        known.append(f"`{ordered[0].qemu_machine}` … `{ordered[-1].qemu_machine}`"
                     if len(ordered) > 1 else f"`{ordered[0].qemu_machine}`")
    raise CompileError([error(
        "E1713", f"QEMU runs machine type `{qemu_type}`, which no schema describes",
        SourceFile.from_text(snap.socket, "").span(0, 0),
        notes=[f"the schemas describe {', '.join(known)}"],
        help="add a schema for it (CONTRIBUTING.md: adding a machine version)")])


def options(snap: Snapshot, schema: model.MachineSchema, warnings: Warnings
            ) -> dict[str, expr.Scalar]:
    """The schema's options as QEMU holds them; the schema's default where QEMU does not
    show one of its type."""
    read = dict(snap.options)
    values: dict[str, expr.Scalar] = {}
    for name, spec in schema.options.items():
        value = read.get(name)
        typed = None
        if value is None and spec.type.kind == "backend":
            value = ""  # QEMU deletes the property of an unused flash chip
        if isinstance(value, (bool, int, str)):
            text = ("on" if value else "off") if isinstance(value, bool) else str(value)
            typed = spec.type.parse(text)
        if typed is None:
            warnings.warn("E1716", f"QEMU does not show machine option `{name}` as "
                          f"{spec.type.describe()}" + (f" (it has {value!r})" if value is not None
                                                       else "") +
                          f"; the blob says the schema's default `{spec.default}`")
            typed = spec.default
        values[name] = typed
    return values


def cpus(snap: Snapshot, warnings: Warnings) -> Pairs:
    smp = snap.smp
    found: dict[str, tree.PropValue] = {}
    for key, field in (("count", "cpus"), ("sockets", "sockets"), ("cores", "cores"),
                       ("threads", "threads")):
        v = smp.get(field)
        if isinstance(v, int) and not isinstance(v, bool):
            found[key] = v
    for field in ("dies", "clusters"):
        if smp.get(field) not in (None, 1):
            warnings.warn("E1716", f"QEMU's cpu topology has {smp[field]} {field}, which a "
                          "blob cannot describe")
    maxcpus = smp.get("maxcpus")
    if isinstance(maxcpus, int) and not isinstance(maxcpus, bool) and maxcpus != found.get(
            "count"):
        found["maxcpus"] = maxcpus  # the blob's form: only when not every cpu is present
    cpu, default = snap.cpu_type, snap.default_cpu_type
    if cpu and default and cpu != default:
        # the shortest name QEMU lists for the type (its alias `power8`, not power8_v2.0)
        names = sorted(snap.cpu_names, key=lambda n: (len(n), n))
        found["model"] = names[0] if names else re.sub(r"-[^-]+-cpu$", "", cpu)
    return tuple(sorted(found.items()))


def boot(snap: Snapshot, schema: model.MachineSchema) -> Pairs:
    """-boot as QEMU holds it: what was given (QOM shows only those), and `order` unless it
    is the machine's own (`quirk boot-order`)."""
    default_order = next((q.value for q in schema.quirks if q.name == "boot-order"), None)
    found: dict[str, tree.PropValue] = {}
    for key in settings.BOOT_KEYS:
        value = snap.boot.get(key)
        if isinstance(value, (bool, int, str)) and not (key == "order" and
                                                        value == default_order):
            found[key] = value
    return tuple(sorted(found.items()))


def option_backends(snap: Snapshot, schema: model.MachineSchema,
                    options: Mapping[str, expr.Scalar], warnings: Warnings
                    ) -> tuple[tuple[str, tuple[tuple[str, tree.PropValue], ...]], ...]:
    """The backends machine options name (`pflash0=NODE`): read back as devices' links are."""
    def warn(message: str, notes: list[str]) -> None:
        warnings.warn("E1716", message, notes=notes)

    found = []
    for name, spec in schema.options.items():
        value = options.get(name)
        if spec.type.kind == "backend" and isinstance(value, str) and value:
            made = extract_backends.backend(snap, spec.type.members[0], value, warn)
            if made is not None:
                found.append((made[0], tuple(sorted(made[1].items()))))
    return tuple(found)


def rtc(qtree: Qtree, schema: model.MachineSchema) -> Pairs:
    """-rtc as far as the guest's devices show it: `driftfix=slew` from the prop QEMU sets
    for it (`quirk rtc-driftfix`, TYPE.PROP); QEMU keeps no record of `base` or `clock`."""
    where = next((str(q.value) for q in schema.quirks if q.name == "rtc-driftfix"), None)
    if where is None:
        return ()
    type_, _, prop = where.partition(".")
    slewing = any(r.device.type == type_ and r.device.prop(prop) == '"slew"'
                  for r in qtree.records)
    return (("driftfix", "slew"),) if slewing else ()


def address_globals(scene: Scene) -> Pairs:
    """The -globals that moved a machine device (`-global spapr-nvram.reg=0x4000`): a
    device the schema creates, of a type that declares the prop its bus's notation takes
    the address from (VIO `reg`), which QEMU (its one device of the type that no `-device`
    made) has at another address. `expand.moved` puts the schema's device there."""
    found: dict[str, tree.PropValue] = {}
    root = tree.Bus("main-system-bus", "system", "none", scene.machine_devices)
    for bus, d, _n in tree.walk(root):
        rules = notations.get(bus.notation)
        dtype = scene.library.devices.get(d.type)
        if d.origin != "machine" or dtype is None or len(rules.qemu_props) != 1 or \
                rules.qemu_props[0] not in dtype.props:
            continue
        prop = rules.qemu_props[0]
        built = [r for r in scene.qtree.records
                 if r.device.type == d.type and r.index not in scene.users]
        shown = prop_value(built[0].device, prop) if len(built) == 1 else None
        if not isinstance(shown, int) or isinstance(shown, bool):
            continue
        text = rules.from_qemu([shown])
        if text is not None and text != str(d.addr):
            found[f"{d.type}.{prop}"] = shown
    return tuple(sorted(found.items()))


def globals_(scene: Scene, assembly: Assembly) -> Pairs:
    """QEMU's -global, as far as `info qtree` and QOM show (a prop qtree does not print
    is read with `qom-get`, where QEMU has one device of the type): a declared prop of a
    machine device that the machine version leaves to QEMU's default or a compat value, and
    QEMU shows otherwise. A prop the schema sets on the device itself is the board code's, which a
    -global cannot change. Machine devices are matched as `match.unpredicted` does: by
    bus, type and address, in creation order."""
    def machine_devices(bus: tree.Bus) -> dict[tuple[str, str, str | None], list[tree.Device]]:
        found: dict[tuple[str, str, str | None], list[tree.Device]] = {}
        for b, d, _n in tree.walk(bus):
            if d.origin == "machine":
                key = (b.name, d.type, None if d.addr is None else str(d.addr))
                found.setdefault(key, []).append(d)
        return found

    with_compat, own = machine_devices(assembly.root), machine_devices(assembly.bare)
    hidden = {(type_, prop): value for type_, prop, value in scene.snap.hidden}
    qtree = scene.qtree
    taken: dict[tuple[str, str, str | None], int] = {}
    found: dict[str, tree.PropValue] = {}
    for r in qtree.creation_order():
        if r.index in scene.users or _below_user(scene, r):
            continue  # a user device's children: their props are its code's
        key = (assembly.bus_names.get(r.bus_key, r.bus.name), r.device.type, qtree.addr(r))
        n = taken.get(key, 0)
        if n >= len(with_compat.get(key, ())):
            continue
        taken[key] = n + 1
        device, explicit = with_compat[key][n], dict(own[key][n].props)
        dtype = scene.library.devices.get(device.type)
        have = dict(device.props)
        at = notations.get(qtree.notation(r)).qemu_props
        for name, spec in dtype.props.items() if dtype else ():
            if at == (name,):
                continue  # the device's address: `address_globals`
            expected, shown = have.get(name, spec.default), prop_value(r.device, name)
            if shown is None:  # a QOM-only prop (ICH9-LPC's disable_s3): `qom-get`'s value
                shown = hidden.get((device.type, name))
            # a `multifunction` type's board code sets the flag itself
            board = name == "multifunction" and dtype is not None and dtype.multifunction
            if name in explicit or board or expected is None or \
                    not isinstance(shown, (bool, int, str)):
                continue
            if spec.type.check(shown) and shown != expected:
                found[f"{device.type}.{name}"] = shown
    return tuple(sorted(found.items()))


def _below_user(scene: Scene, r: Record) -> bool:
    owner = r.owner
    while owner is not None:
        if owner in scene.users:
            return True
        owner = scene.qtree.records[owner].owner
    return False


def memory(snap: Snapshot, warnings: Warnings) -> Pairs:
    base, plugged = snap.memory.get("base-memory"), snap.memory.get("plugged-memory")
    if isinstance(plugged, int) and plugged:
        warnings.warn("E1716", f"QEMU has {plugged} bytes of hot-plugged memory, which a blob "
                      "cannot describe")
    return (("size", base),) if isinstance(base, int) else ()


def _quirk(schema: model.MachineSchema, name: str) -> int:
    value = next((q.value for q in schema.quirks if q.name == name), 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def numa_nodes(snap: Snapshot, schema: model.MachineSchema,
               options: Mapping[str, expr.Scalar], warnings: Warnings
               ) -> tuple[tree.NumaNode, ...]:
    """QEMU's `-numa node`s: each node's RAM backend is the one whose memory region sits
    at the node's place in the machine's RAM (QEMU lays them out in node order), its cpus
    those whose `node-id` is the node's. The nodes QEMU makes by itself (the schema's
    `quirk numa-nodes`: pseries' one) are no `-numa` nodes. What the blob cannot say is
    E1716, and the blob has no nodes then (or, for a backend's props, plain RAM)."""
    regions = sorted(((str(m.get("container")), m.get("addr"), m) for m in snap.memdevs
                      if isinstance(m.get("container"), str) and m.get("container")
                      and isinstance(m.get("addr"), int)), key=lambda x: (x[0], x[1]))
    count = snap.numa_nodes
    if count == 0 or (count <= _quirk(schema, "numa-nodes") and not regions):
        return ()

    def drop(message: str, notes: tuple[str, ...] = ()) -> tuple[tree.NumaNode, ...]:
        warnings.warn("E1716", f"QEMU has {count} NUMA node{'s' if count > 1 else ''} "
                      f"(`-numa`): {message}; the blob leaves them out",
                      notes=[*notes, "devices on a node (`numa_node`) are refused by QEMU "
                             "without them"])
        return ()

    if count > _quirk(schema, "numa-max-nodes"):
        return drop(f"`{schema.name}` takes {_quirk(schema, 'numa-max-nodes') or 'no'} "
                    "NUMA nodes (its `quirk numa-max-nodes`)")
    owners = numa.cpu_nodes(snap.hotpluggable, snap.smp)
    if isinstance(owners, str):
        return drop(f"`query-hotpluggable-cpus` has {owners}")
    if len(regions) != count or len({c for c, _a, _m in regions}) != 1:
        return drop("they are not each a RAM backend of their own in the machine's RAM "
                    "(`-numa node,memdev=`), which is all a blob can say",
                    ("QEMU 7.2 refuses `-numa node,mem=` on its 5.1 and later machines",))
    sizes = numa.node_sizes(snap.info_numa)
    nodes = []
    for n, (_container, _addr, backend) in enumerate(regions):
        size, ident = backend.get("size"), str(backend.get("id"))
        if not isinstance(size, int) or sizes.get(n) != size >> 20:
            return drop(f"node {n}'s memory ({sizes.get(n)} MiB) is not RAM backend "
                        f"`{ident}`'s ({size!r} bytes)")
        _backend_props(n, ident, backend, options, warnings)
        nodes.append(tree.NumaNode(tuple(sorted(c for c, o in owners.items() if o == n)),
                                   size, ident))
    return tuple(nodes)


def _backend_props(n: int, ident: str, backend: Mapping[str, object],
                   options: Mapping[str, expr.Scalar], warnings: Warnings) -> None:
    """E1716 for each way a node's RAM backend differs from a plain `memory-backend-ram`
    with QEMU's defaults (`merge` and `dump` follow the machine's `mem-merge` and
    `dump-guest-core`), which is what the blob's `numa` says."""
    kind = backend.get("qom-type")
    if kind != numa.BACKEND_TYPE:  # its props have that type's defaults
        warnings.warn("E1716", f"NUMA node {n}'s RAM backend `{ident}` is a `{kind}`, which "
                      f"a blob cannot describe; it says a `{numa.BACKEND_TYPE}`")
        return
    expected = dict(numa.BACKEND_DEFAULTS)
    for prop, option in numa.BACKEND_MACHINE_DEFAULTS:
        expected[prop] = options.get(option, True)
    for prop, value in sorted(expected.items()):
        shown = backend.get(prop)
        if prop in backend and shown != value:
            warnings.warn("E1716", f"NUMA node {n}'s RAM backend `{ident}` has `{prop}` "
                          f"{json.dumps(shown)}, which a blob cannot describe; it says QEMU's "
                          f"default {json.dumps(value)}")
