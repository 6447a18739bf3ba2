"""`mschema extract`: the machine-level part of the blob from a `Snapshot`: the schema of
QEMU's machine type, the machine options, `cpus` (with `maxcpus` when QEMU has more
possible cpus than present ones) and `memory`. What a blob cannot say (dies or clusters,
hot-plugged memory) or QEMU does not show is a warning (E1716);
no schema for the machine type (E1713) is an error. Devices are elsewhere.
"""

from __future__ import annotations

import re

from compiler.base import settings
from compiler.base.diagnostics import CompileError, error, quote_list
from compiler.base.source import SourceFile
from compiler.build import tree
from compiler.lang import expr, model
from compiler.qemu.extract.qtree import Qtree
from compiler.qemu.extract.report import Warnings
from compiler.qemu.extract.snapshot import Snapshot

Pairs = tuple[tuple[str, tree.PropValue], ...]


def find_schema(snap: Snapshot, library: model.Library) -> model.MachineSchema:
    """The schema whose `qemu-machine` is the machine type QEMU runs; raises E1713."""
    qemu_type = snap.machine_type
    for s in library.machines.values():
        if s.qemu_machine == qemu_type:
            return s
    known = [s.qemu_machine for s in library.machines.values()]
    raise CompileError([error(
        "E1713", f"QEMU runs machine type `{qemu_type}`, which no schema describes",
        SourceFile.from_text(snap.socket, "").span(0, 0),
        notes=[f"the schemas describe {quote_list(known)}"],
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
        found["model"] = re.sub(r"-[^-]+-cpu$", "", cpu)
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


def memory(snap: Snapshot, warnings: Warnings) -> Pairs:
    base, plugged = snap.memory.get("base-memory"), snap.memory.get("plugged-memory")
    if isinstance(plugged, int) and plugged:
        warnings.warn("E1716", f"QEMU has {plugged} bytes of hot-plugged memory, which a blob "
                      "cannot describe")
    return (("size", base),) if isinstance(base, int) else ()
