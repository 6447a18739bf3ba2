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
- backends: only those a device links to, as far as QEMU reveals them (`backends`).
Diagnostics point into the `info qtree` text, at the device: E1714–E1717, and what
`address` and `validate` find in the result (the blob would not compile as it is). What
the blob cannot describe is an error, a note a warning (`report`); the blob is built all
the same and the caller decides (`--partial`). No schema for QEMU's machine type (E1713)
stops it.

The steps, one module each: `qtree` (QEMU's devices as records), `machine` (schema,
options, cpus, memory), `match` (which devices are the user's, which QEMU added
unpredicted), `naming` (blob ids and bus names), `devices` (one device → `Planned`),
`assemble` (the allocator builds the tree), `recheck` (validate and compare the result).
"""

from __future__ import annotations

import attrs

from compiler.base import settings
from compiler.base.diagnostics import Diagnostic
from compiler.build import expand, tree
from compiler.lang import expr, model
from compiler.qemu.extract import machine, match, naming
from compiler.qemu.extract.assemble import assemble
from compiler.qemu.extract.qtree import Qtree
from compiler.qemu.extract.recheck import recheck
from compiler.qemu.extract.report import Warnings
from compiler.qemu.extract.scene import Scene
from compiler.qemu.extract.snapshot import Snapshot


@attrs.frozen
class Result:
    machine: tree.Machine
    diagnostics: tuple[Diagnostic, ...]  # errors: what the blob cannot describe (`report`)

    @property
    def complete(self) -> bool:
        """Whether the blob describes all of QEMU's machine (no drop)."""
        return not any(d.severity == "error" for d in self.diagnostics)


def build(snap: Snapshot, library: model.Library) -> Result:
    qtree = Qtree.read(snap)
    warnings = Warnings(qtree.top)
    schema = machine.find_schema(snap, library)
    options = machine.options(snap, schema, warnings)
    schema = schema.placed_under(options)  # its `placement when` under QEMU's options
    scene = Scene(snap, library, schema, expand.machine_devices(schema, expr.Env(options)),
                  qtree, match.match_users(qtree, snap.users), warnings)
    moves = machine.address_globals(scene)
    if moves:  # a machine device QEMU has elsewhere, by a -global: the schema's moves too
        by_type: dict[str, dict[str, tree.PropValue]] = {}
        for key, value in moves:
            type_name, _, prop = key.rpartition(".")
            by_type.setdefault(type_name, {})[prop] = value
        root = tree.Bus("main-system-bus", "system", "none", scene.machine_devices)
        scene = attrs.evolve(scene, machine_devices=expand.moved(root, by_type).devices)
    fresh = naming.FreshIds(scene)
    ids = naming.user_ids(scene, fresh)
    assembly = assemble(scene, ids)
    extras = match.unpredicted(scene, assembly.root, assembly.bus_names)
    if extras:  # listed as devices of origin `default`, with ids of their own
        assembly = assemble(scene, {**ids, **{r.index: fresh.fresh(r.device.type)
                                              for r in extras}})
    warnings.add_as_drops(assembly.diagnostics)
    found_globals = tuple(sorted({*moves, *machine.globals_(scene, assembly)}))
    root = expand.apply_compat(schema, expand.apply_globals(found_globals, assembly.bare)) \
        if found_globals else assembly.root
    result = tree.Machine(expand.machine_info(schema, options), root,
                          machine.cpus(snap, warnings), machine.memory(snap, warnings),
                          tuple(sorted({*assembly.backends, *machine.option_backends(
                              snap, schema, options, warnings)})),
                          snap.name, machine.boot(snap, schema),
                          machine.rtc(qtree, schema),
                          uuid="" if snap.uuid == settings.NO_UUID else snap.uuid,
                          globals=found_globals,
                          numa=machine.numa_nodes(snap, schema, options, warnings))
    recheck(result, scene, assembly)
    return Result(result, warnings.in_order())

