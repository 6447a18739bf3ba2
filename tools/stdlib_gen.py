#!/usr/bin/env python3
"""Ask QEMU itself which device types exist, and draft stdlib entries for the missing ones.

A maintainer tool (issue 11), not part of the package. For every binary that a shipped machine
schema names, on the newest version of that family:

1. `-device help` lists the user-creatable device types with the bus each plugs into;
2. QMP `device-list-properties` gives each type's properties, their QEMU types and defaults;
3. a scratch VM per type (the family's bare machine as mschema compiles it, `-nodefaults`,
   plus a parent that provides the type's bus when the machine has none, plus null backends
   for the properties QEMU says are required) shows in `info qtree` where the device lands
   and which buses and children it creates; a second VM tries `device_add` onto a
   hot-pluggable bus;
4. the result: a coverage report (types described by the stdlib / types creatable here) and,
   for each creatable type the stdlib lacks, a draft entry in the schema language, for a
   person to review (guest-visible vs backend, hot-plug, notation, FDT) before it moves into
   `stdlib/`.

    python3 tools/stdlib_gen.py --report docs/stdlib-coverage.md --drafts build/stdlib-drafts

What cannot be created here is listed with QEMU's own reason (a host device, a vhost or vfio
back end, a type that needs another machine). Nothing here is imported by mschema.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compiler import driver
from compiler.emit import argv as emit_argv
from compiler.lang import model
from compiler.lang.resolve import load_library
from compiler.qemu import process
from compiler.qemu.verify import runnable_argv

# QEMU property types → the schema language's value types (`prop NAME: TYPE`)
VALUE_TYPES = {
    "bool": "bool", "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "int8": "int", "int16": "int", "int32": "int", "int64": "int", "str": "str",
    "size": "size", "OnOffAuto": "onoffauto", "macaddr": "mac",
}
# Properties that name a host backend (QMP calls most of them `str`; QEMU's convention is the
# name) → the stdlib's backend kind (`link`), and how a scratch VM gives a null one
BACKENDS = {
    "drive": ("blockdev", ["-blockdev", "null-co,node-name=probe-drive"], "probe-drive"),
    "chardev": ("chardev", ["-chardev", "null,id=probe-chr"], "probe-chr"),
    "netdev": ("netdev", ["-netdev", "user,id=probe-net"], "probe-net"),
    "audiodev": ("audiodev", ["-audiodev", "none,id=probe-audio"], "probe-audio"),
    "rng": ("rng", ["-object", "rng-builtin,id=probe-rng"], "probe-rng"),
    "fsdev": ("fsdev", ["-fsdev", "local,id=probe-fs,path=/tmp,security_model=none"],
              "probe-fs"),
}
TYPES_BY_NAME = {"mac": "macaddr"}
HEADER = """# Stdlib coverage

Written by `tools/stdlib_gen.py` from QEMU itself (`python3 tools/stdlib_gen.py --report
docs/stdlib-coverage.md --drafts build/stdlib-drafts`): the user-creatable device types of each
binary that a shipped machine family runs on, which of them a scratch VM of that family can
create without host resources, and how many of those the stdlib describes. Drafts for the rest
go to `build/stdlib-drafts/` for review.
"""
# Categories of `-device help` that are never guest devices we describe
SKIP_CATEGORIES = ("CPU devices",)
HOST_RESOURCE = re.compile(r"vfio|vhost|host|passthrough|ivshmem|xen|kvm|sev|tpm|nvdimm|"
                           r"pc-dimm|virtio-mem|virtio-pmem|cxl|u2f|spapr-tpm|ccid-card-passthru|"
                           r"usb-redir|usb-mtp|vmbus", re.I)


@attrs.frozen
class QemuType:
    name: str
    bus: str | None  # the bus `-device help` names, None for a bus-less type
    category: str
    desc: str


@attrs.frozen
class QemuProp:
    name: str
    type: str
    default: object
    desc: str


@attrs.frozen
class Probe:
    """What a scratch VM showed for one type."""

    type: QemuType
    props: tuple[QemuProp, ...]
    created: bool
    reason: str  # QEMU's message when not created
    bus_type: str | None = None  # the qtree bus type it landed on
    buses: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (qtree type, name, children)
    hotplug: bool | None = None
    hotplug_reason: str = ""
    nested: tuple[str, ...] = ()  # every bus type below it, however deep


def device_help(binary: str) -> list[QemuType]:
    import subprocess

    text = subprocess.run([binary, "-device", "help"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    types, category = [], ""
    for line in text.splitlines():
        if line.endswith(":"):
            category = line[:-1]
            continue
        m = re.match(r'name "([^"]+)"(?:, bus ([^,]+))?(?:, alias "[^"]*")?(?:, desc "(.*)")?',
                     line)
        if m and category not in SKIP_CATEGORIES:
            types.append(QemuType(m[1], m[2], category, m[3] or ""))
    return types


def list_properties(base: Sequence[str], names: Iterable[str]) -> dict[str, tuple[QemuProp, ...]]:
    """`device-list-properties` for each type; one QEMU start for all, one more per failure."""
    names = list(names)
    out: dict[str, tuple[QemuProp, ...]] = {}

    def decode(answer: object) -> tuple[QemuProp, ...]:
        assert isinstance(answer, list)
        return tuple(sorted((QemuProp(str(p["name"]),
                                      TYPES_BY_NAME.get(str(p["name"]), str(p.get("type", ""))),
                                      p.get("default-value"), str(p.get("description", "")))
                             for p in answer), key=lambda p: p.name))

    try:
        result = process.query(base, hmp=(), timeout=120, qmp=[
            ("device-list-properties", {"typename": n}) for n in names])
        return {n: decode(a) for n, a in zip(names, result.qmp, strict=True)}
    except process.QemuError:
        pass
    for n in names:
        try:
            result = process.query(base, hmp=(), timeout=30,
                                   qmp=[("device-list-properties", {"typename": n})])
            out[n] = decode(result.qmp[0])
        except process.QemuError:
            out[n] = ()
    return out


def base_argv(library: model.Library, schema: model.MachineSchema, tmp: Path) -> list[str]:
    """The family's bare machine, as mschema compiles `machine = NAME` alone."""
    spec = tmp / f"{schema.name}.toml"
    text = f'machine = "{schema.name}"\nhotplug-slots = 0\n'
    # the options a start under TCG needs (`quirk tcg-options`: pseries-2.7 to 2.11's HTM)
    tcg = str({q.name: q.value for q in schema.quirks}.get("tcg-options", ""))
    if tcg:
        text += "[options]\n" + "".join(
            f"{k} = {'true' if v == 'on' else 'false' if v == 'off' else json.dumps(v)}\n"
            for k, _, v in (o.partition("=") for o in tcg.split(",")))
    spec.write_text(text, encoding="utf-8")
    machine = driver.compile_input(spec)
    return runnable_argv(emit_argv.argv(machine), str(tmp))


def providers(library: model.Library, schema: model.MachineSchema, creatable: set[str],
              present: set[str]) -> dict[str, str]:
    """qtree bus type → a described, user-creatable PCI device type that provides such a bus,
    for the bus types the bare machine does not have already: the machine's own `provide`
    rule first, else the first such type by name."""
    out: dict[str, str] = {}
    for provider in schema.providers.values():
        kind = library.buses.get(provider.bus)
        if kind is not None and kind.qtree not in present:
            out[kind.qtree] = provider.device
    for dtype in sorted(library.devices.values(), key=lambda d: d.name):
        if dtype.name not in creatable or not any(p.bus in ("pci", "pcie") for p in dtype.plugs):
            continue
        if any(b.kind in ("pci", "pcie") for b in dtype.buses):
            continue  # bridges and ports need a chassis; PCI devices plug into the root bus
        for template in dtype.buses:
            kind = library.buses.get(template.kind)
            if kind is not None and kind.qtree not in present:
                out.setdefault(kind.qtree, dtype.name)
    return out


def generic_props(types: list[QemuType], props: dict[str, tuple[QemuProp, ...]]) -> set[str]:
    """Props that every type of one `-device help` bus has (`addr`, `romfile`, …): the bus's,
    not the type's, so drafts leave them out."""
    by_bus: dict[str | None, list[set[str]]] = {}
    for t in types:
        if props.get(t.name):
            by_bus.setdefault(t.bus, []).append({p.name for p in props[t.name]})
    out: set[str] = set()
    for names in by_bus.values():
        if len(names) > 3:
            out |= set.intersection(*names)
    return out


def start(base: Sequence[str], extra: list[str], device: list[str],
          props: tuple[QemuProp, ...]) -> tuple[process.QueryResult | None, str]:
    """Start the machine with `device`, adding what QEMU says it lacks (a required number, a
    null backend) and trying again; `extra` and `device` keep what was added."""
    reason = ""
    for _ in range(3):
        try:
            return process.query([*base, *extra, "-device", ",".join(device)], timeout=30), ""
        except process.QemuError as exc:
            reason = _reason(exc)
            if not _add_backends(props, reason, extra, device):
                break
    return None, reason


def working_parents(base: Sequence[str], wanted: dict[str, str],
                    props: dict[str, tuple[QemuProp, ...]]) -> dict[str, list[str]]:
    """qtree bus type → the options that create a parent providing it (with what it needs)."""
    out: dict[str, list[str]] = {}
    for bus, name in sorted(wanted.items()):
        extra: list[str] = []
        device = [name, "id=probe-parent"]
        result, _ = start(base, extra, device, props.get(name, ()))
        if result is not None:
            out[bus] = [*extra, "-device", ",".join(device)]
    return out


def probe(base: Sequence[str], qtype: QemuType, props: tuple[QemuProp, ...],
          parent: dict[str, list[str]], hot_bus: tuple[list[str], str | None]) -> Probe:
    extra: list[str] = list(parent.get(qtype.bus or "", []))
    device = [qtype.name, "id=probe0"]
    result, reason = start(base, extra, device, props)
    if result is None:
        return Probe(qtype, props, False, reason)
    tree = process.parse_qtree(result.hmp[0])
    for bus, dev in process.walk(tree):
        if dev.id == "probe0":
            buses = tuple((b.type, b.name, tuple(d.type for d in b.devices)) for b in dev.buses)
            hot, why = _hotplug(base, extra, device, hot_bus, qtype)
            nested = tuple(sorted(_bus_types(dev)))
            return Probe(qtype, props, True, "", bus.type, buses, hot, why, nested)
    return Probe(qtype, props, False, "created, but not found in `info qtree`")


def _bus_types(device: process.QtreeDevice) -> set[str]:
    """Every bus type below `device`, empty buses included."""
    out = set()
    for bus in device.buses:
        out.add(bus.type)
        for child in bus.devices:
            out |= _bus_types(child)
    return out


def _reason(exc: process.QemuError) -> str:
    text = (exc.stderr or str(exc)).strip().splitlines()
    line = next((t for t in text if "qemu-system" in t or "Error" in t or "error" in t),
                text[-1] if text else str(exc))
    return re.sub(r"^\S*qemu-system-\S+: (-device \S+: )?", "", line)[:200]


def _add_backends(props: tuple[QemuProp, ...], reason: str, extra: list[str],
                  device: list[str]) -> bool:
    """Null backends for the backend props QEMU may need; False when there is none to add."""
    added = False
    named = set(re.findall(r'"([A-Za-z0-9_-]+)"', reason))
    if "chassis not specified" in reason:
        named |= {p.name for p in props if p.name.startswith("chassis")}
    for p in props:
        if p.name in named and p.type.startswith(("uint", "int")) and f"{p.name}=" not in \
                ",".join(device):
            device.append(f"{p.name}=1")  # a required number (a bridge's chassis): any > 0
            added = True
        elif (p.type == "str" and p.name not in BACKENDS and f"{p.name}=" not in ",".join(device)
              and re.search(rf"\b{re.escape(p.name)}\b", reason)):
            device.append(f"{p.name}=probe")  # a required string (an NVMe serial)
            added = True
        elif p.name in BACKENDS and re.search(
                r"drive|chardev|char device|netdev|audiodev|rng|fsdev|propert", reason, re.I):
            _, option, ident = BACKENDS[p.name]
            if option[1] not in extra:
                extra += option
            device.append(f"{p.name}={ident}")
            added = True
    return added


def _hotplug(base: Sequence[str], extra: list[str], device: list[str],
             hot_bus: tuple[list[str], str | None], qtype: QemuType) -> tuple[bool | None, str]:
    """Try `device_add` of the same device; for PCI types onto the machine's hot-plug port."""
    args: dict[str, object] = {"driver": device[0], "id": "probe0"}
    for item in device[2:]:
        key, _, value = item.partition("=")
        args[key] = value
    more: list[str] = []
    if qtype.bus == "PCI":
        more, bus = hot_bus
        if bus:
            args["bus"] = bus
    elif any(e.startswith(f"{qtype.name},") for e in extra):
        return None, ""
    try:
        process.query([*base, *extra, *more], hmp=(), qmp=[("device_add", args)], timeout=30)
        return True, ""
    except process.QemuError as exc:
        return False, _reason(exc)


def draft(p: Probe, library: model.Library, generic: set[str]) -> str:
    kinds = {k.qtree: k.name for k in library.buses.values()}
    plugs = kinds.get(p.bus_type or "", f"UNKNOWN-{p.bus_type}") if p.bus_type else None
    doc = p.type.desc or f"{p.type.name} ({p.type.category.lower()})"
    lines = [f"device {p.type.name} {{", f'    doc "{doc}"']
    if plugs and p.bus_type != "System":
        lines.append(f"    plugs {plugs}" + (", pci" if plugs == "pcie" else ""))
    elif p.bus_type == "System":
        lines.append("    plugs system")
    if p.hotplug is not None:
        note = f"    # REVIEW: {p.hotplug_reason}" if p.hotplug_reason else ""
        lines.append(f"    hotplug {'true' if p.hotplug else 'false'}{note}")
    for prop in p.props:
        if prop.name in generic or prop.name.startswith("x-") or "<" in prop.type:
            continue  # the bus's props, compat knobs, QOM links and children
        if prop.name in BACKENDS:
            lines.append(f"    link {prop.name} -> {BACKENDS[prop.name][0]} optional"
                         "    # REVIEW: optional?")
            continue
        vtype = VALUE_TYPES.get(prop.type)
        if vtype is None:
            lines.append(f"    # prop {prop.name}: QEMU type `{prop.type}` has no value type")
            continue
        default = _default(prop.default, vtype)
        lines.append(f"    prop {prop.name}: {vtype}" + (f" = {default}" if default else ""))
    for qtype, name, children in p.buses:
        kind = kinds.get(qtype, f"UNKNOWN-{qtype}")
        name = name.replace("probe0", "{id}")
        body = " ".join(children)
        lines.append(f'    bus {kind} "{name}"' + (f" {{ {body} }}" if body else ""))
    lines.append("}")
    return "\n".join(lines)


def _default(value: object, vtype: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if vtype in ("u8", "u16", "u32", "u64", "int", "size") and isinstance(value, int):
        return str(value)
    if vtype == "onoffauto" and value in ("on", "off", "auto"):
        return str(value)
    if vtype == "str" and isinstance(value, str) and value:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ""


def main(args: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", type=Path, help="write the coverage report (Markdown) here")
    ap.add_argument("--drafts", type=Path, help="write draft stdlib entries into this folder")
    ap.add_argument("--only", nargs="*", default=(), help="probe only these types")
    ap.add_argument("-j", type=int, default=2, help="scratch VMs at once")
    opts = ap.parse_args(args)
    library = load_library()
    newest: dict[str, model.MachineSchema] = {}
    for schema in library.machines.values():
        if schema.extends is None:  # the family's newest version: the others extend it
            newest.setdefault(schema.binary, schema)
    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mschema-gen-") as tmp:
        for binary, schema in sorted(newest.items()):
            found = process.find_binary(binary)
            if found is None:
                print(f"{binary}: not installed, skipped", file=sys.stderr)
                continue
            base = [found, *base_argv(library, schema, Path(tmp))[1:]]
            types = [t for t in device_help(found) if not opts.only or t.name in opts.only]
            every = device_help(found)
            props = list_properties(base, (t.name for t in every))
            present = {b.type for b, _ in process.walk(process.parse_qtree(
                process.query(base).hmp[0]))} | {"System"}
            if "PCIE" in present:
                present.add("PCI")  # conventional PCI devices plug into PCI Express buses
            parent = working_parents(base, providers(library, schema, {t.name for t in every},
                                                     present), props)
            generic = generic_props(every, props)
            hot_bus = _hot_bus(library, schema)
            todo = [t for t in types if not HOST_RESOURCE.search(t.name)]
            with ThreadPoolExecutor(opts.j) as pool:
                probes = list(pool.map(functools.partial(_probe_one, base, props, parent, hot_bus),
                                       todo))
            probes = _second_pass(base, probes, props, parent, hot_bus, present)
            skipped = [t for t in types if HOST_RESOURCE.search(t.name)]
            sections.append(_report(binary, schema, library, types, probes, skipped))
            if opts.drafts:
                opts.drafts.mkdir(parents=True, exist_ok=True)
                missing = [p for p in probes if p.created and p.type.name not in library.devices]
                (opts.drafts / f"{binary}.mschema").write_text(
                    f"# drafts from {binary} for {schema.qemu_machine}: review each before it "
                    "moves into stdlib/\n\n"
                    + "\n\n".join(draft(p, library, generic) for p in missing) + "\n",
                    encoding="utf-8")
    text = "\n".join([HEADER, *sections])
    if opts.report:
        opts.report.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


def _probe_one(base: Sequence[str], props: dict[str, tuple[QemuProp, ...]],
               parent: dict[str, list[str]], hot_bus: tuple[list[str], str | None],
               qtype: QemuType) -> Probe:
    return probe(base, qtype, props[qtype.name], parent, hot_bus)


def _second_pass(base: Sequence[str], probes: list[Probe],
                 props: dict[str, tuple[QemuProp, ...]], parent: dict[str, list[str]],
                 hot_bus: tuple[list[str], str | None], present: set[str]) -> list[Probe]:
    """Retry the types whose bus the machine lacked, with a parent that the first pass found
    to provide it (a type the stdlib does not describe yet, e.g. intel-hda for hda-duplex)."""
    found: dict[str, str] = {}
    for p in probes:
        if p.created and p.bus_type in present and not any(
                b[0] in ("PCI", "PCIE") for b in p.buses):
            for bus_type in p.nested:
                found.setdefault(bus_type, p.type.name)
    out = []
    for p in probes:
        m = re.search(r"No '([^']+)' bus found", p.reason)
        if not p.created and m and m[1] in found and m[1] not in parent:
            more = working_parents(base, {m[1]: found[m[1]]}, props)
            p = probe(base, p.type, props[p.type.name], more, hot_bus)
        out.append(p)
    return out


def _hot_bus(library: model.Library, schema: model.MachineSchema) -> tuple[list[str], str | None]:
    """A hot-pluggable PCI bus on the bare machine: the schema's port device, if it has one."""
    port = schema.placement.port_device
    if port is None:
        return [], None
    return ["-device", f"{port},id=probe-port,chassis=200"], "probe-port"


def _report(binary: str, schema: model.MachineSchema, library: model.Library,
            types: list[QemuType], probes: list[Probe], skipped: list[QemuType]) -> str:
    created = [p for p in probes if p.created]
    described = [p for p in created if p.type.name in library.devices]
    missing = [p for p in created if p.type.name not in library.devices]
    failed = [p for p in probes if not p.created]
    pct = 100 * len(described) / len(created) if created else 0.0
    out = [f"## {binary} ({schema.qemu_machine})", "",
           f"- user-creatable device types: {len(types)}",
           f"- creatable here in a scratch VM: {len(created)}",
           f"- described by the stdlib: **{len(described)} / {len(created)} ({pct:.0f}%)**",
           f"- left out, host resources by name: {len(skipped)}; "
           f"refused by QEMU here: {len(failed)}", ""]
    if missing:
        out += ["Creatable here, not yet described:", "",
                ", ".join(f"`{p.type.name}`" for p in missing), ""]
    if failed:
        out += ["Refused by QEMU in a scratch VM (its message):", "", "| type | reason |",
                "|---|---|"]
        out += [f"| `{p.type.name}` | {p.reason.replace('|', '/')} |" for p in failed]
        out.append("")
    if skipped:
        out += ["Left out as host resources (passthrough, vhost, vfio, host devices):", "",
                ", ".join(f"`{t.name}`" for t in skipped), ""]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
