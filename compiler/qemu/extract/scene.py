"""`mschema extract`: what the device steps (naming, planning, assembling, the last
comparison) read once the machine's schema is known and QEMU's devices are matched with
the `-device`s that made them. A frozen value; the warnings are where they all report.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs

from compiler.build import tree
from compiler.lang import model
from compiler.qemu.extract.qtree import Qtree
from compiler.qemu.extract.report import Warnings
from compiler.qemu.extract.snapshot import Snapshot, UserDevice


@attrs.frozen
class Scene:
    snap: Snapshot
    library: model.Library
    schema: model.MachineSchema
    machine_devices: tuple[tree.Device, ...]  # what the schema creates under QEMU's options
    qtree: Qtree
    users: Mapping[int, UserDevice]  # record index → the `-device`/`device_add` behind it
    warnings: Warnings

    def schema_devices(self) -> Iterator[tree.Device]:
        """Every device the schema creates, the children of each included."""
        def walk(devices: tuple[tree.Device, ...]) -> Iterator[tree.Device]:
            for d in devices:
                yield d
                for b in d.buses:
                    yield from walk(b.devices)

        yield from walk(self.machine_devices)
