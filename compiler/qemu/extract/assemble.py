"""`mschema extract`: QEMU's devices, with their blob ids, → the tree of the blob. Each
device is planned (`devices`) in the order QEMU created it, then the compiler's own
allocator places them where QEMU has them, adds the machine's devices and the children
each type creates, and says what it finds wrong. Ends at an `Assembly`; the warnings
about the result are the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from compiler.base.diagnostics import Collector, Diagnostic
from compiler.build import allocate, expand, tree
from compiler.build.plan import Backend, Plan, Planned
from compiler.qemu.extract import naming
from compiler.qemu.extract.devices import DevicePlanner
from compiler.qemu.extract.qtree import BusKey
from compiler.qemu.extract.scene import Scene


@attrs.frozen
class Assembly:
    root: tree.Bus  # with the machine version's compat props
    bare: tree.Bus  # without them: where `-global`s go first
    diagnostics: tuple[Diagnostic, ...]  # the allocator's
    ids: Mapping[int, str]  # record index → blob id, for every device the blob lists
    bus_names: Mapping[BusKey, str]  # the buses the blob names otherwise than QEMU
    left_out: frozenset[int]  # records the blob leaves out (E1714), and all below them
    backends: tuple[tuple[str, Backend], ...]


def assemble(scene: Scene, ids: Mapping[int, str]) -> Assembly:
    bus_names = naming.bus_names(scene, ids)
    planner = DevicePlanner(scene, ids, bus_names)
    planned: list[Planned] = []
    left_out: set[int] = set()
    for r in scene.qtree.creation_order():
        if r.owner is not None and r.owner in left_out:
            left_out.add(r.index)
            continue
        if r.index not in ids:
            continue
        p = planner.planned(r, ids[r.index])
        if p is None:
            left_out.add(r.index)
        else:
            planned.append(p)
    diags = Collector()
    made = tuple(sorted(planner.backends.items()))
    root = allocate.assign(scene.schema, scene.library, scene.machine_devices,
                          Plan(tuple(planned), made), 0, scene.qtree.top, diags)
    return Assembly(expand.apply_compat(scene.schema, root), root, tuple(diags.items), ids,
                    bus_names, frozenset(left_out), made)
