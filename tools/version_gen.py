#!/usr/bin/env python3
"""Ask QEMU what an older machine version changes, as draft lines of its schema.

A maintainer tool, not part of the package. Given a family's machine version NEWER that the
schemas describe and an older version OLDER of the same QEMU machine family, it starts QEMU
(`-nodefaults`, paused) with both machine types and the same devices, and prints for review:

1. `compat TYPE PROP = VALUE` for every qdev property `info qtree` shows differently on OLDER,
   of the machine's own devices and of one device of each stdlib type the family's scratch
   VM can create (PCI types on the machine's root bus, the others under a parent from the
   stdlib that provides their bus, as `tools/stdlib_gen.py` finds them; a virtio function's
   `virtio-*-device` child comes with it). Props the stdlib does not declare are listed as
   comments: the schema cannot state them until the stdlib declares the prop.
2. `option NAME = VALUE` for every schema option whose value on `/machine` (`qom-get`)
   differs, and the options OLDER's machine type refuses.
3. Devices the bare machine creates on one version only, and, where the family's guest reads
   a device tree (`quirk dumpdtb`), the lines of `dumpdtb` (as DTS) that differ.

Devices go into as few QEMU starts as QEMU accepts: a batch QEMU refuses is split in two until
each refused type stands alone (and is reported with QEMU's message). A whole version takes
well under a minute.

    python3 tools/version_gen.py pc-q35-6.2 --from pc-q35-7.0
    python3 tools/version_gen.py pseries-6.2 --from pseries-7.0 --qemu PATH/qemu-system-ppc64
    python3 tools/version_gen.py pseries-2.10,cap-htm=off --from pseries-2.11

Machine options after OLDER's name go to both starts: a version whose defaults TCG refuses
(pseries-2.8 to 2.11 turn HTM on) needs what its `quirk tcg-options` says.

A newer version than the schemas' goes the same way, with a QEMU that has it: "older" is then
the newer version, and each `compat` line is what it sets unlike the schema named by
`--from` (pc-q35-8.0 … 10.0 were drafted so, against 7.2, by QEMU 10.0):

    python3 tools/version_gen.py pc-q35-10.0 --from pc-q35-7.2 \
        --qemu $MSCHEMA_QEMU_10_0/bin/qemu-system-x86_64

The output is a draft: read QEMU's C source for each line (hw/core/machine.c `hw_compat_X_Y`,
the machine's `*_X_Y_machine_options`) before it goes into `schemas/`. Nothing here is
imported by mschema.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stdlib_gen import BACKENDS, base_argv, device_help

from compiler.lang import model
from compiler.lang.resolve import load_library
from compiler.qemu import compare, process

# The qdev props that name where a device sits or what it is, not how it behaves
PLACE_PROPS = frozenset({"addr", "bus", "id", "chassis", "port", "slot", "unit", "lun",
                         "scsi-id", "channel", "reg", "index", "nr", "drive", "chardev",
                         "netdev", "audiodev", "rng", "mac", "serial"})


@attrs.frozen
class Built:
    """What one QEMU start built: each device (type, id, props) in `info qtree` order."""

    devices: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]


@attrs.frozen
class Difference:
    type: str
    prop: str
    newer: str
    older: str
    declared: model.PropSpec | None


def machine_args(argv: Sequence[str], version: str) -> list[str]:
    """`argv` (a bare machine of the family) with its `-machine` type replaced by `version`."""
    out = list(argv)
    i = out.index("-machine")
    rest = out[i + 1].split(",", 1)
    out[i + 1] = ",".join([version, *rest[1:]])
    return out


def device_args(dtype: model.DeviceType, ident: str) -> tuple[list[str], list[str]]:
    """(backend options, `-device` value) for one device of `dtype`, with a null backend for
    each link it cannot do without."""
    extra: list[str] = []
    opts = [dtype.name, f"id={ident}"]
    for name in dtype.props:  # a bridge's chassis: unique, any number > 0 (from its id)
        if name.startswith("chassis"):
            opts.append(f"{name}={sum(map(ord, ident)) % 250 + 1}")
    if "index" in dtype.props:  # a second PHB's
        opts.append("index=7")
    if "serial" in dtype.props and dtype.props["serial"].type.kind == "str":
        opts.append(f"serial={ident}")  # required by some (nvme)
    for link in dtype.links.values():
        if link.optional or link.name not in BACKENDS:
            continue
        _, option, backend_id = BACKENDS[link.name]
        node = f"{ident}-{backend_id}"
        extra += [option[0], option[1].replace(backend_id, node)]
        opts.append(f"{link.name}={node}")
    return extra, [",".join(opts)]


def parents(library: model.Library, schema: model.MachineSchema,
            present: set[str]) -> dict[str, model.DeviceType]:
    """bus kind → a stdlib type that provides it and plugs into PCI, for the bus kinds the
    bare machine lacks: the schema's `provide` rule first, else the first type by name."""
    out: dict[str, model.DeviceType] = {}
    for provider in schema.providers.values():
        kind = library.buses.get(provider.bus)
        if kind is not None and kind.qtree not in present:
            out[provider.bus] = library.devices[provider.device]
    for dtype in sorted(library.devices.values(), key=lambda d: d.name):
        if dtype.internal or not any(p.bus in ("pci", "pcie") for p in dtype.plugs):
            continue
        for template in dtype.buses:
            kind = library.buses.get(template.kind)
            if (kind is not None and kind.qtree not in present and template.kind
                    not in ("pci", "pcie")):
                out.setdefault(template.kind, dtype)
    return out


def bus_types(bus: process.QtreeBus) -> set[str]:
    """Every bus type in a qtree, empty buses included."""
    out = {bus.type}
    for device in bus.devices:
        for child in device.buses:
            out |= bus_types(child)
    return out


def plan(library: model.Library, schema: model.MachineSchema, present: set[str],
         creatable: set[str]) -> list[tuple[str, list[str]]]:
    """(type, QEMU options) for one device of each creatable stdlib type, a parent first
    where the machine lacks its bus. The parents get ids `vg-parent-KIND`."""
    providing = {kind: dtype for kind, dtype in parents(library, schema, present).items()
                 if dtype.name in creatable}
    qtree = {k.name: k.qtree for k in library.buses.values()}
    out: list[tuple[str, list[str]]] = []
    for i, dtype in enumerate(sorted(library.devices.values(), key=lambda d: d.name)):
        if dtype.internal or not dtype.plugs or dtype.name not in creatable:
            continue  # a machine's own type (its props come with the bare machine)
        plug = next((p for p in dtype.plugs if qtree.get(p.bus) in present), None)
        prefix: list[str] = []
        if plug is None:
            plug = next((p for p in dtype.plugs if p.bus in providing), None)
            if plug is None:
                continue
            parent = providing[plug.bus]
            if parent.name == dtype.name:
                continue
            extra, dev = device_args(parent, f"vg-parent{i}")
            prefix = [*extra, "-device", *dev]
        extra, dev = device_args(dtype, f"vg{i}")
        out.append((dtype.name, [*prefix, *extra, "-device", *dev]))
    return out


def built(result: process.QueryResult) -> Built:
    tree = process.parse_qtree(result.hmp[0])
    return Built(tuple((d.type, d.id, d.props) for _b, d in process.walk(tree)))


def start_pair(base: Sequence[str], older: str, newer: str, extra: Sequence[str],
               qmp: Sequence[tuple[str, dict[str, object]]] = ()
               ) -> tuple[process.QueryResult, process.QueryResult]:
    """The same devices on both machine types; raises QemuError if either refuses."""
    return (process.query([*machine_args(base, older), *extra], qmp=qmp, timeout=60),
            process.query([*machine_args(base, newer), *extra], qmp=qmp, timeout=60))


def batches(base: Sequence[str], older: str, newer: str,
            todo: list[tuple[str, list[str]]], refused: dict[str, str]
            ) -> list[tuple[Built, Built]]:
    """Start QEMU with `todo`'s devices all at once, splitting a refused batch in two until
    each refused type stands alone (recorded in `refused` with QEMU's message)."""
    if not todo:
        return []
    try:
        old, new = start_pair(base, older, newer, [a for _t, args in todo for a in args])
        return [(built(old), built(new))]
    except (process.QemuError, ValueError) as exc:  # ValueError: qtree text unreadable
        if len(todo) == 1:
            stderr = exc.stderr if isinstance(exc, process.QemuError) else ""
            text = (stderr or str(exc)).strip().splitlines()
            refused[todo[0][0]] = text[-1] if text else str(exc)
            return []
    half = len(todo) // 2
    return (batches(base, older, newer, todo[:half], refused)
            + batches(base, older, newer, todo[half:], refused))


def differences(library: model.Library, pairs: list[tuple[Built, Built]]
                ) -> tuple[list[Difference], list[str]]:
    """The props that differ, one per (type, prop); and types whose instances disagree."""
    found: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for old, new in pairs:
        if [(t, i) for t, i, _ in old.devices] != [(t, i) for t, i, _ in new.devices]:
            continue  # the machines differ: `machine_devices` reports it
        for (dtype, _ident, old_props), (_t, _i, new_props) in zip(old.devices, new.devices,
                                                                  strict=True):
            newer = dict(new_props)
            for name, value in old_props:
                if name in PLACE_PROPS or newer.get(name, value) == value or not all(
                        c.isprintable() for c in value):  # uninitialised memory (applesmc)
                    continue
                found.setdefault((dtype, name), set()).add((newer[name], value))
    out, mixed = [], []
    for (dtype, name), values in sorted(found.items()):
        if len(values) > 1:
            mixed.append(f"{dtype} {name}: {sorted(values)}")
            continue
        (new_value, old_value), = values
        described = library.devices.get(dtype)
        out.append(Difference(dtype, name, new_value, old_value,
                              described.props.get(name) if described else None))
    return out, mixed


def literal(value: str, spec: model.PropSpec | None) -> str:
    """QEMU's `info qtree` text of a value as the schema language writes it."""
    parsed = compare.qtree_value(value)
    if isinstance(parsed, bool):
        return "true" if parsed else "false"
    if isinstance(parsed, int):
        return f"{parsed:#x}" if spec is not None and parsed > 9 and "0x" in value else str(
            parsed)
    if spec is not None and spec.type.kind == "enum":
        return str(parsed)
    return '"' + str(parsed).replace("\\", "\\\\").replace('"', '\\"') + '"'


SCALARS = ("bool", "str", "int", "uint", "OnOffAuto", "size")


def qom_props(base: Sequence[str], older: str, newer: str, library: model.Library
              ) -> tuple[Built, Built] | None:
    """The bare machine's devices of stdlib types through QOM (`info qom-tree`, then
    `qom-get` of every scalar property of their types): what `info qtree` leaves out, the
    properties a device adds outside qdev (ICH9-LPC's ACPI hot-plug switches). Returns
    (older, newer) as one `Built` each, keyed by QOM path."""
    tree = process.query(machine_args(base, newer), hmp=("info qom-tree",), timeout=30).hmp[0]
    paths: list[tuple[str, str]] = []
    stack: list[str] = []
    for line in tree.splitlines():
        m = re.match(r"( *)/(\S.*) \((.+)\)$", line)
        if not m:
            continue
        depth = len(m[1]) // 2
        del stack[depth:]
        stack.append(m[2])
        if m[3] in library.devices:
            paths.append(("/" + "/".join(stack), m[3]))
    if not paths:
        return None
    types = sorted({t for _p, t in paths})
    listed = process.query(machine_args(base, newer), hmp=(), timeout=30, qmp=[
        ("qom-list-properties", {"typename": t}) for t in types]).qmp
    names = {t: [str(p["name"]) for p in answer if isinstance(p, dict)
                 and str(p.get("type", "")).startswith(SCALARS)]
             for t, answer in zip(types, listed, strict=True) if isinstance(answer, list)}
    asks = [(path, t, name) for path, t in paths for name in names.get(t, ())]
    out = []
    for version in (older, newer):
        # HMP's qom-get answers an unreadable property with a message, not a failure
        answers = process.query(machine_args(base, version), timeout=60, hmp=[
            f"qom-get {path} {name}" for path, _t, name in asks]).hmp
        props: dict[str, list[tuple[str, str]]] = {}
        for (path, _t, name), text in zip(asks, answers, strict=True):
            props.setdefault(path, []).append((name, text.strip()))
        out.append(Built(tuple((t, path, tuple(props.get(path, ()))) for path, t in paths)))
    return out[0], out[1]


def machine_devices(old: Built, new: Built) -> list[str]:
    """The bare machines' devices by type, where the two versions differ."""
    a = sorted(t for t, _i, _p in old.devices)
    b = sorted(t for t, _i, _p in new.devices)
    return [line for line in difflib.unified_diff(b, a, "newer", "older", lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def options(base: Sequence[str], older: str, newer: str,
            schema: model.MachineSchema) -> list[str]:
    """Schema options whose value on /machine differs (or that one machine type lacks)."""
    names = list(schema.options)
    out: list[str] = []
    answers: list[list[object]] = []
    for version in (older, newer):
        values: list[object] = []
        for name in names:
            try:
                values.append(process.query(machine_args(base, version), hmp=(), timeout=30,
                                            qmp=[("qom-get", {"path": "/machine",
                                                              "property": name})]).qmp[0])
            except process.QemuError:
                values.append("<no such property>")
        answers.append(values)
    for name, old, new in zip(names, *answers, strict=True):
        if old != new:
            out.append(f"option {name} = {old!r}    # {newer}: {new!r}")
    return out


def fdt_lines(base: Sequence[str], older: str, newer: str) -> list[str]:
    """The DTS lines of `dumpdtb` that differ (rng-seed, random at every boot, left out)."""
    texts = []
    for version in (older, newer):
        dtb = process.dump_dtb([*machine_args(base, version), "-accel", "tcg"])
        with tempfile.NamedTemporaryFile(suffix=".dtb") as f:
            f.write(dtb)
            f.flush()
            dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", f.name],
                                 capture_output=True, text=True, check=True, timeout=30).stdout
        texts.append([line for line in dts.splitlines() if "rng-seed" not in line])
    return [line for line in difflib.unified_diff(texts[1], texts[0], newer, older,
                                                  lineterm="", n=1)][2:]


def report(library: model.Library, schema: model.MachineSchema, older: str, qemu: str,
           one_by_one: bool = False) -> str:
    with tempfile.TemporaryDirectory(prefix="mschema-version-gen-") as tmp:
        base = [qemu, *base_argv(library, schema, Path(tmp))[1:], "-accel", "tcg"]
        bare_old, bare_new = start_pair(base, older, schema.qemu_machine, ())
        present = bus_types(process.parse_qtree(bare_new.hmp[0]))
        if "PCIE" in present:
            present.add("PCI")
        creatable = {t.name for t in device_help(qemu)}
        todo = plan(library, schema, present, creatable)
        refused: dict[str, str] = {}
        if one_by_one:
            pairs = [p for item in todo
                     for p in batches(base, older, schema.qemu_machine, [item], refused)]
        else:
            pairs = batches(base, older, schema.qemu_machine, todo, refused)
        qom = qom_props(base, older, schema.qemu_machine, library)
        found, mixed = differences(library, [(built(bare_old), built(bare_new)), *pairs,
                                             *([qom] if qom else [])])
        lines = [f"# {older} from {schema.name} ({schema.qemu_machine}), asked of {qemu}:",
                 f"# {len(todo) - len(refused)} stdlib types built in {len(pairs)} QEMU "
                 "start(s) per version, and the bare machine", ""]
        lines += [f"compat {d.type} {d.prop} = {literal(d.older, d.declared)}"
                  f"    # {schema.qemu_machine}: {d.newer}" for d in found if d.declared]
        undeclared = [d for d in found if not d.declared]
        if undeclared:
            lines += ["", "# props the stdlib does not declare (QEMU's compat props all the "
                      "same; declare the prop to state it):"]
            lines += [f"#   {d.type} {d.prop} = {d.older}    ({schema.qemu_machine}: "
                      f"{d.newer})" for d in undeclared]
        lines += [f"# instances disagree: {m}" for m in mixed]
        lines += ["", "# options (qom-get /machine):"]
        lines += options(base, older, schema.qemu_machine, schema) or ["#   no difference"]
        lines += ["", "# devices of the bare machine (- newer only, + older only):"]
        lines += [f"#   {line}" for line in machine_devices(built(bare_old), built(bare_new))
                  ] or ["#   no difference"]
        if {q.name: q.value for q in schema.quirks}.get("dumpdtb") is True:
            lines += ["", "# dumpdtb of the bare machine (- newer, + older):"]
            lines += [f"#   {line}" for line in fdt_lines(base, older, schema.qemu_machine)
                      ] or ["#   no difference"]
        if refused:
            lines += ["", "# types QEMU refused here (not compared):"]
            lines += [f"#   {t}: {why}" for t, why in sorted(refused.items())]
    return "\n".join(lines) + "\n"


def main(args: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("older", help="the older QEMU machine type, e.g. pc-q35-6.2")
    ap.add_argument("--from", dest="newer", required=True,
                    help="the schema it extends, e.g. pc-q35-7.0")
    ap.add_argument("--qemu", help="the QEMU binary (default: the schema's, from PATH)")
    ap.add_argument("--one-by-one", action="store_true",
                    help="one QEMU start per device type (slow; to check the batching)")
    opts = ap.parse_args(args)
    library = load_library()
    schema = library.machine(opts.newer)
    if schema is None:
        ap.error(f"no schema `{opts.newer}`")
    qemu = opts.qemu or process.find_binary(schema.binary)
    if qemu is None:
        ap.error(f"{schema.binary} is not installed")
    sys.stdout.write(report(library, schema, opts.older, qemu, opts.one_by_one))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
