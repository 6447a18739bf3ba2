"""`mschema extract`'s last look at its result: the blob compiles (`validate`) and
describes what QEMU built (`compare` with `info qtree` once more), but for the devices
already reported as left out. What still differs is a drop (E1717), never hidden.
"""

from __future__ import annotations

import json

import attrs

from compiler.base.diagnostics import Collector
from compiler.base.source import Span
from compiler.build import tree, validate
from compiler.emit import blob as blob_emit
from compiler.qemu import compare, process
from compiler.qemu.extract.assemble import Assembly
from compiler.qemu.extract.scene import Scene


def recheck(machine: tree.Machine, scene: Scene, assembly: Assembly) -> None:
    qtree = scene.qtree
    diags = Collector()
    validate.validate(machine, scene.library, qtree.top, diags)
    scene.warnings.add_as_drops(diags.items)
    blob = json.loads(blob_emit.blob(machine))
    ids = compare.emitted_ids(blob)
    kept = [r for r in qtree.records if r.index not in assembly.left_out]
    by_entry: dict[compare.Entry, Span] = {}
    for r in kept:
        ident = assembly.ids.get(r.index, r.device.id)
        by_entry.setdefault(compare.Entry(
            assembly.bus_names.get(r.bus_key, r.bus.name), qtree.kind(r), r.device.type,
            qtree.addr(r), ident if ident in ids else None), r.span)
    spans = {ident: qtree.records[i].span for i, ident in assembly.ids.items()}
    for diff in compare.compare_all(blob, _renamed(scene, assembly), info=qtree.info,
                                    walk_ports=[r.port for r in kept]):
        at = by_entry.get(diff.built) if diff.built is not None else None
        scene.warnings.warn("E1717", f"the blob differs from what QEMU built: {diff.message}",
                            at or spans.get(diff.device or ""),
                            notes=[f"difference: {diff.kind}"])


def _renamed(scene: Scene, assembly: Assembly) -> process.QtreeBus:
    """QEMU's tree with the blob's ids and bus names, to compare like with like, and
    without the devices left out of the blob (reported already)."""
    counter = iter(range(len(scene.qtree.records)))

    def bus(b: process.QtreeBus, owner: int | None) -> process.QtreeBus:
        devices = []
        for d in b.devices:
            i = next(counter)
            buses = tuple(bus(c, i) for c in d.buses)
            if i not in assembly.left_out:
                devices.append(attrs.evolve(d, id=assembly.ids.get(i, d.id), buses=buses))
        return attrs.evolve(b, name=assembly.bus_names.get((owner, b.name), b.name),
                            devices=tuple(devices))

    return bus(scene.qtree.root, None)
