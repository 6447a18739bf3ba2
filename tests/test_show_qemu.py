"""`mschema show` against the real QEMU: the schema must list exactly what QEMU builds.

Each case runs the real CLI (`python -m compiler show MACHINE --option K=V ... --format json`)
and starts the real QEMU once with the same options in `-machine`, then compares both sides
device by device as sorted lists of (bus name, bus kind, device type, addr, props). Props are
those the schema sets (e.g. smbus-eeprom `address`), read from QEMU's `info qtree`. A missing,
extra, moved, retyped or differently configured device fails with a list of the differences.

Machine versions (pc-q35-7.0/7.1, pseries-7.0/7.1) run the same comparison under QEMU's
machine type of that version, and further:
- pseries: the machine compiled from a spec with only those options has QEMU's `dumpdtb`
  device tree, property by property (the FDT emitter through `compiler.qemu.fdt_check`);
- each `compat` line is what QEMU's machine type does by itself (devices started without
  props), and the golden blobs of `tests/vm/*-7.?-virtio` hold QEMU's value for every prop
  of every device, those inside virtio functions included;
- `quirk enforce-amd-1tb-hole` and the SMBIOS version (the machine type's name) are read
  from fw_cfg over qtest, as the firmware reads them.
"""

from __future__ import annotations

import json
import select
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import vm_support
from qemu_support import (
    RELEASES,
    UNSUPPORTED_MACHINE,
    binary_of,
    families,
    has_dumpdtb,
    machine_qemu,
    release_argv,
    release_of,
    releases_of,
    require_binary,
    schema,
    tcg_options,
)

from compiler import driver
from compiler.base import backends
from compiler.emit import argv as argv_emit
from compiler.emit import blob as blob_emit
from compiler.lang import expr, model
from compiler.lang.resolve import load_library
from compiler.qemu import compare, fdt_check, process
from compiler.qemu.compare import qtree_value

ROOT = Path(__file__).resolve().parent.parent

# QEMU's qtree bus type → the CONTRACT's bus kind, from the bus kinds' own `qtree` names.
BUS_KINDS = {kind.qtree: kind.name for kind in load_library().buses.values()}

# Each machine family's versions, newest first, and each machine's QEMU binary, from the
# schemas (tests/qemu_support.py).
VERSIONS = families()
# QEMU arguments these tests give a family besides `-machine` (pseries: 1 GiB, as the
# specs of the dumpdtb test below ask)
EXTRA_ARGS = {"pseries": ("-m", "1G")}


def qemu_of(machine: str) -> tuple[str, tuple[str, ...]]:
    """(QEMU binary, extra QEMU arguments) of an mschema machine name."""
    family = next((f for f, vs in VERSIONS.items() if machine in (f, *vs)), machine)
    return binary_of(machine), EXTRA_ARGS.get(family, ())

CASES = [
    ("pc-q35", ()),
    ("pc-q35", ("sata=off",)),
    ("pc-q35", ("smbus=off",)),
    ("pc-q35", ("pit=off",)),
    ("pc-q35", ("pic=off",)),
    ("pc-q35", ("hpet=off",)),
    ("pc-q35", ("usb=on",)),
    ("pc-q35", ("i8042=off",)),
    ("pc-q35", ("vmport=off",)),
    ("pc-q35", ("graphics=off",)),
    ("pc-q35", ("acpi=off",)),
    ("pc-q35", ("smm=off",)),
    ("pc-q35", ("i8042=off", "vmport=on")),
    ("pc-q35", ("pit=off", "pic=off", "sata=off")),
    ("pc-q35", ("usb=on", "smbus=off", "hpet=off")),
    ("pseries", ()),
    ("pseries", ("ic-mode=xics",)),
    ("pseries", ("ic-mode=xive",)),
    ("pseries", ("ic-mode=dual",)),
    ("pseries", ("usb=on",)),
    ("pseries", ("usb=on", "ic-mode=xics")),
    # the older machine versions: what they create is 7.2's (no compat prop reaches a
    # machine device), under QEMU's own machine type of that version
    ("pc-q35-7.1", ()),
    ("pc-q35-7.1", ("usb=on",)),
    ("pc-q35-7.1", ("sata=off", "smbus=off")),
    ("pc-q35-7.1", ("i8042=off", "vmport=on")),
    ("pc-q35-7.0", ()),
    ("pc-q35-7.0", ("usb=on", "hpet=off")),
    ("pc-q35-7.0", ("pit=off", "pic=off")),
    ("pc-q35-7.0", ("vmport=off",)),
    ("pseries-7.1", ()),
    ("pseries-7.1", ("ic-mode=xics",)),
    ("pseries-7.1", ("usb=on",)),
    ("pseries-7.0", ()),
    ("pseries-7.0", ("ic-mode=xive",)),
    ("pseries-7.0", ("usb=on", "ic-mode=xics")),
]
# every other version of every family, bare (with the options TCG needs: pseries 2.8–2.11's
# HTM off): what it creates is its neighbour's under QEMU's own machine type of that version
# (tests/qemu_support.py reads them from the schemas); the versions QEMU 7.2 lacks
# (pc-q35-8.0 … 10.0) run on QEMU 10.0, and QEMU 7.2 must refuse them, as QEMU 10.0 must
# refuse those it dropped (pseries-2.7 … 2.12). The newest ones also under options.
CASES += [(v, tcg_options(v)) for family, vs in VERSIONS.items() for v in vs
          if v != schema(family).name and not any(m == v for m, _o in CASES)]
CASES += [
    ("pc-q35-10.0", ("usb=on",)),
    ("pc-q35-10.0", ("sata=off", "smbus=off", "hpet=off")),
    ("pc-q35-10.0", ("pit=off", "pic=off")),
    ("pseries-10.0", ("ic-mode=xics",)),
    ("pseries-10.0", ("ic-mode=xive", "usb=on")),
    ("pseries-8.0", ("usb=on", "ic-mode=xics")),
]


def _option_text(value: object) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def option_cases() -> list[tuple[str, tuple[str, ...]]]:
    """From the schemas, for every family's newest version QEMU 7.2 has and its newest of
    all (pc-i440fx-10.0, which QEMU 10.0 runs): bare, and each value other than the default
    of every option its devices' `when` (or a bus's `hotplug when`) reads and lint can
    enumerate (bool, enum). A new family or version is compared with QEMU this way with no
    edit here; the hand-written cases above add combinations."""
    def read(instances: tuple[model.Instance, ...]) -> Iterator[str]:
        for inst in instances:
            if inst.condition is not None:
                yield from expr.options_in(inst.condition)
            for b in inst.buses:
                if b.hotplug is not None and b.hotplug[1] is not None:
                    yield from expr.options_in(b.hotplug[1])
                yield from read(b.devices)

    out: list[tuple[str, tuple[str, ...]]] = []
    for family, versions in VERSIONS.items():
        for name in dict.fromkeys((family, versions[0])):
            m = load_library().machine(name)
            assert m is not None
            out.append((name, ()))
            for option in sorted(set(read(m.devices))):
                spec = m.options[option]
                for value in spec.type.domain() or ():
                    if value != spec.default:
                        out.append((name, (f"{option}={_option_text(value)}",)))
    return out


CASES += [c for c in option_cases() if c not in CASES]

Scalar = bool | int | str
# Prop values are kept as JSON text, so that `true` never equals `1`.
Entry = tuple[str, str, str, str | None, tuple[tuple[str, str], ...]]
BusEntry = tuple[str, str, str]  # (bus name, bus kind, type of the device providing it)


# --------------------------------------------------------------------------
# mschema's side


def run_show(machine: str, options: Sequence[str]) -> dict[str, object]:
    argv = [sys.executable, "-m", "compiler", "show", machine]
    for option in options:
        argv += ["--option", option]
    argv += ["--format", "json"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(argv[1:])} failed:\n{done.stderr}"
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    return result


def schema_walk(
    devices: list[dict[str, object]], bus: str, kind: str
) -> Iterator[tuple[str, str, dict[str, object]]]:
    for device in devices:
        yield bus, kind, device
        for child in device.get("buses", []):  # type: ignore[attr-defined]
            yield from schema_walk(child["devices"], child["name"], child["kind"])


def schema_entries(shown: dict[str, object]) -> tuple[list[Entry], list[BusEntry]]:
    devices: list[Entry] = []
    buses: list[BusEntry] = []
    top = shown["devices"]
    assert isinstance(top, list)
    for bus, kind, device in schema_walk(top, "main-system-bus", "system"):
        props = device["props"]
        assert isinstance(props, dict)
        addr = device.get("addr")
        assert addr is None or isinstance(addr, str)
        values = tuple(sorted((name, json.dumps(value)) for name, value in props.items()))
        devices.append((bus, kind, str(device["type"]), addr, values))
        for child in device.get("buses", []):  # type: ignore[attr-defined]
            buses.append((child["name"], child["kind"], str(device["type"])))
    return sorted(devices, key=_key), sorted(buses)


# --------------------------------------------------------------------------
# QEMU's side


def qtree_addr(kind: str, device: process.QtreeDevice) -> str | None:
    """The device's address on its bus, in the CONTRACT's notation for that bus kind."""
    return compare.qtree_addr(compare.bus_info().notation(kind), device)


def qemu_entries(
    root: process.QtreeBus, prop_names: dict[str, set[str]]
) -> tuple[list[Entry], list[BusEntry]]:
    """QEMU's devices, with the props that the schema sets on devices of the same type."""
    devices: list[Entry] = []
    buses: list[BusEntry] = []
    for bus, device in process.walk(root):
        kind = BUS_KINDS.get(bus.type, f"<qtree type {bus.type}>")
        props = []
        for name in sorted(prop_names.get(device.type, ())):
            raw = device.prop(name)
            value = "<absent in qtree>" if raw is None else json.dumps(qtree_value(raw))
            props.append((name, value))
        devices.append((bus.name, kind, device.type, qtree_addr(kind, device), tuple(props)))
        for child in device.buses:
            child_kind = BUS_KINDS.get(child.type, f"<qtree type {child.type}>")
            buses.append((child.name, child_kind, device.type))
    return sorted(devices, key=_key), sorted(buses)


def _key(entry: Entry) -> tuple[str, str, str, str, str]:
    bus, kind, type_, addr, props = entry
    return bus, kind, type_, addr or "", repr(props)


def differences(predicted: Sequence[object], built: Sequence[object]) -> str:
    """Readable: what only mschema lists and what only QEMU builds."""
    missing = Counter(built) - Counter(predicted)
    extra = Counter(predicted) - Counter(built)
    lines = ["mschema show and QEMU disagree:"]
    lines += [f"  only in QEMU:    {e}" + (f" x{n}" if n > 1 else "") for e, n in missing.items()]
    lines += [f"  only in mschema: {e}" + (f" x{n}" if n > 1 else "") for e, n in extra.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------


# Where QEMU 10.0 treats an old machine version differently from 7.2 (the release that
# defined it): findings, asserted as QEMU behaves so that any change shows (docs/releases.md).
REFUSED_BY_RELEASE = {
    # 7.2 builds vmport without the i8042 it talks through; 10.0 refuses the combination
    ("10.0", ("i8042=off", "vmport=on")): "vmport requires the i8042 controller to be enabled",
}


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize(
    ("machine", "options"),
    CASES,
    ids=[f"{m}-{','.join(o) or 'default'}" for m, o in CASES],
)
def test_show_matches_qemu(machine: str, options: tuple[str, ...], release: str) -> None:
    """What mschema shows for a machine version is what QEMU builds for it, on QEMU 7.2 and
    on QEMU 10.0 alike: machine types stay the same across releases."""
    binary_name, extra = qemu_of(machine)
    qemu = release_argv(binary_name, release)
    shown = run_show(machine, options)
    info = shown["machine"]
    assert isinstance(info, dict)
    qemu_machine = str(info["qemu"])
    # the blob names QEMU's versioned type: the one asked for, or the family's newest that
    # the default release (7.2) has
    assert qemu_machine == schema(machine).name
    predicted, predicted_buses = schema_entries(shown)

    prop_names: dict[str, set[str]] = {}
    for _, _, type_, _, props in predicted:
        prop_names.setdefault(type_, set()).update(name for name, _ in props)

    machine_arg = ",".join([qemu_machine, *options])
    argv = [*qemu, "-machine", machine_arg, "-nodefaults", "-accel", "tcg", *extra]
    # QEMU lacks the version: not yet (the schema's `since`: pc-q35-10.0 on 7.2) or no longer
    # (qemu_support.GONE_IN_RELEASE: pseries-2.7 on 10.0), and refuses it
    if release not in releases_of(qemu_machine):
        with pytest.raises(process.QemuError) as exc:
            process.qtree_devices(argv, timeout=30.0)
        assert UNSUPPORTED_MACHINE in exc.value.stderr  # 10.0 names the type, 7.2 does not
        return
    refused = REFUSED_BY_RELEASE.get((release, options))
    if refused is not None:
        with pytest.raises(process.QemuError) as exc:
            process.qtree_devices(argv, timeout=30.0)
        assert refused in exc.value.stderr
        return
    root = process.qtree_devices(argv, timeout=30.0)
    assert (root.name, root.type) == ("main-system-bus", "System")
    built, built_buses = qemu_entries(root, prop_names)

    assert predicted, "mschema show listed no devices"
    assert predicted == built, differences(predicted, built)
    assert predicted_buses == built_buses, differences(predicted_buses, built_buses)


def test_props_are_compared() -> None:
    """Guard against a vacuous comparison: the default q35 sets props that QEMU must show."""
    shown = run_show("pc-q35", ())
    predicted, _ = schema_entries(shown)
    eeproms = [props for _, _, type_, _, props in predicted if type_ == "smbus-eeprom"]
    assert sorted(eeproms) == [(("address", str(a)),) for a in range(0x50, 0x58)]
    pics = [props for _, _, type_, _, props in predicted if type_ == "isa-i8259"]
    assert (("iobase", "32"), ("master", "true")) in pics


def test_qtree_value() -> None:
    assert qtree_value("87 (0x57)") == 87
    assert qtree_value("-1 (0xffffffffffffffff)") == -1
    assert qtree_value("true") is True
    assert qtree_value("false") is False
    assert qtree_value('"usb-bus.0"') == "usb-bus.0"
    assert qtree_value('""') == ""


# --------------------------------------------------------------------------
# Machine versions: the device trees of pseries, compat props and quirks against QEMU


# the machines QEMU hands a device tree (`quirk dumpdtb` in their schemas)
DUMPDTB_CASES = [(m, o) for m, o in CASES if has_dumpdtb(m)]


@pytest.mark.parametrize(
    ("machine", "options"),
    DUMPDTB_CASES,
    ids=[f"{m}-{','.join(o) or 'default'}" for m, o in DUMPDTB_CASES],
)
def test_pseries_show_matches_dumpdtb(machine: str, options: tuple[str, ...],
                                      tmp_path: Path) -> None:
    """The machine `show` describes, compiled from a spec with nothing but those options
    (so only the machine's own devices), has QEMU's device tree: the FDT emitter's tree
    against `dumpdtb` of the emitted command line, node by node and property by property
    (`compiler.qemu.fdt_check`), of the oldest release that has the machine version."""
    qemu = machine_qemu(machine)
    values = {k: v for k, _, v in (o.partition("=") for o in options)}
    lines = [f'machine = "{machine}"', 'memory = "1G"', "[options]"]
    lines += [f"{k} = {'true' if v == 'on' else 'false' if v == 'off' else json.dumps(v)}"
              for k, v in values.items()]
    spec = tmp_path / "spec.toml"
    spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
    built = driver.compile_spec(spec)
    shown, _ = schema_entries(run_show(machine, options))
    compiled, _ = schema_entries(json.loads(blob_emit.show_json(built)))
    assert compiled == shown, differences(shown, compiled)
    args = argv_emit.argv(built)
    dtb = process.dump_dtb([*qemu, *args[1:], "-accel", "tcg"])
    blob = json.loads(blob_emit.blob(built))
    problems, whole = fdt_check.fdt_differences(built, blob, dtb, load_library(),
                                                compare.bus_info())
    assert whole, "the FDT emitter did not build this machine's tree"
    assert not problems, [str(p) for p in problems]


def _device_args(type_name: str, ident: str, compared: frozenset[str] = frozenset()
                 ) -> list[str]:
    """`-device TYPE,id=ID` with a null backend for each link the type cannot do without;
    props in `compared` (the compat props under test) are left to QEMU."""
    dtype = load_library().devices[type_name]
    args: list[str] = []
    opts = [type_name, f"id={ident}"]
    serial = dtype.props.get("serial")
    if serial is not None and serial.type.kind == "str" and "serial" not in compared:
        opts.append(f"serial={ident}")  # nvme refuses to start without one
    if "mount_tag" in dtype.props:
        opts.append(f"mount_tag={ident}")  # a 9p export needs one
    for name in dtype.props:  # a bridge's chassis: unique, > 0 (from its id)
        if name.startswith("chassis"):
            opts.append(f"{name}={sum(map(ord, ident)) % 250 + 1}")
    for link in dtype.links.values():
        if link.optional:
            continue
        node = f"{ident}-{link.name}"
        args += backends.get(link.backend).scratch(node)
        opts.append(f"{link.name}={node}")
    return [*args, "-device", ",".join(opts)]


def _host_type(type_name: str) -> str:
    """The device to create for a compat prop of `type_name`: the type itself unless it only
    exists as another device's child (`internal`), else the first (by name) whose buses hold
    it as a child (virtio-*-device)."""
    library = load_library()
    if not library.devices[type_name].internal:
        return type_name
    parents = sorted(t.name for t in library.devices.values() for b in t.buses
                     for c in b.children if c.type == type_name)
    assert parents, f"no stdlib device type creates a {type_name}"
    return parents[0]


def _machine_bus_kinds(instances: Sequence[model.Instance]) -> set[str]:
    """The kinds of the buses a machine's own devices provide."""
    library = load_library()
    kinds: set[str] = set()
    for inst in instances:
        if inst.condition is not None:  # only under some options
            continue
        dtype = library.devices.get(inst.type)
        kinds.update(b.kind for b in (dtype.buses if dtype else ()))
        for binding in inst.buses:
            kinds.add(binding.kind)
            kinds |= _machine_bus_kinds([*binding.children, *binding.devices])
    return kinds


def _bus_for(family: str, type_name: str, ident: str) -> list[str]:
    """A device that provides the bus `type_name` plugs into, where the family's machine has
    none (an HDA codec's controller): the first PCI type by name that provides one. QEMU
    puts the device on it by itself."""
    library = load_library()
    kinds = [p.bus for p in library.devices[type_name].plugs]
    present = {"pci", "pcie", "system",
               *_machine_bus_kinds(library.machines[schema(family).name].devices)}
    if any(k in present for k in kinds):
        return []
    parents = sorted(t.name for t in library.devices.values() if not t.internal
                     and any(p.bus in ("pci", "pcie") for p in t.plugs)
                     and any(b.kind in kinds for b in t.buses))
    assert parents, f"no stdlib PCI type provides a bus for {type_name}"
    return _device_args(parents[0], ident)


def _machine_types(instances: Sequence[model.Instance]) -> set[str]:
    """The device types a machine's instances create, whatever their conditions."""
    out = set()
    for inst in instances:
        out.add(inst.type)
        for bus in inst.buses:
            out |= _machine_types([*bus.children, *bus.devices])
    return out


def _built_in_batches(base: list[str], devices: list[list[str]]
                      ) -> list[tuple[process.QtreeBus, process.QtreeDevice]]:
    """Every (bus, device) QEMU builds for `devices` (each a list of arguments), in as few
    starts as QEMU accepts: a refused batch (two IOMMUs: `QEMU does not support multiple
    vIOMMUs`) is split in two until a single device is refused, which fails the test."""
    try:
        root = process.qtree_devices([*base, *(a for d in devices for a in d)], timeout=30.0)
        return list(process.walk(root))
    except process.QemuError:
        if len(devices) == 1:
            raise
    half = len(devices) // 2
    return _built_in_batches(base, devices[:half]) + _built_in_batches(base, devices[half:])


@pytest.mark.parametrize("family", sorted(VERSIONS))
def test_compat_props_match_qemu(family: str) -> None:
    """Each `compat` line is what QEMU's machine type does by itself: one QEMU per version
    (of the oldest release that has it: QEMU 10.0 for 8.0 and newer), with one device of
    each type a compat line names (or its PCI parent) and no props given; a version with the
    compat shows its value, one without shows the value of the family's base version (the
    one the others extend, on its own release), and that differs (so each line is a real
    change: an older version's undoes a newer default, a newer one's is the newer default)."""
    library = load_library()
    versions = VERSIONS[family]
    base = schema(family).name
    keys = sorted({(c.device, c.prop) for v in versions for c in library.machines[v].compat})
    assert keys, f"no version of {family} has compat props"
    _binary_name, extra = qemu_of(family)
    own = _machine_types(library.machines[base].devices)  # no -device for these (ICH9-LPC)
    # qxl-vga must be the first display device (console 0)
    hosts = sorted({_host_type(device) for device, _ in keys} - own,
                   key=lambda h: (h != "qxl-vga", h))
    args = [[*_bus_for(family, h, f"compat-bus{i}"),
             *_device_args(h, f"compat{i}", frozenset(p for d, p in keys if d == h))]
            for i, h in enumerate(hosts)]

    def exists(key: tuple[str, str], release: str) -> bool:
        return library.devices[key[0]].props[key[1]].exists_in(release)

    def values_of(release: str, version: str) -> dict[tuple[str, str], object]:
        """What QEMU `release` shows for each key under machine type `version` (with the
        options TCG needs to start it: `quirk tcg-options`)."""
        machine_arg = ",".join([version, *tcg_options(version)])
        base_argv = [*release_argv(_binary_name, release), "-machine", machine_arg,
                     "-nodefaults", "-accel", "tcg", *extra]
        values: dict[tuple[str, str], object] = {}
        for _bus, device in _built_in_batches(base_argv, args):
            for key in keys:
                if device.type == key[0] and exists(key, release):
                    raw = device.prop(key[1])
                    assert raw is not None, f"{version}: info qtree shows no {key}"
                    # a virtio-*-device sits in several hosts (virtio-rng-pci and its
                    # -transitional variants each hold a virtio-rng-device): all agree
                    value = qtree_value(raw)
                    assert values.get(key, value) == value, f"{version}: {key[0]} devices differ"
                    values[key] = value
        present = sorted(k for k in keys if exists(k, release))
        assert sorted(values) == present, f"{version}: QEMU built no device for some of {keys}"
        return values

    assert not library.machines[base].compat, f"{base} is the base: it has no compat lines"
    # the base version on every release: its props are the stdlib's defaults as of that
    # release (`changed`: a default QEMU changed for all machine versions alike)
    baselines = {release: values_of(release, base) for release in releases_of(base)}
    for release, found in baselines.items():
        for key, value in found.items():
            default = library.devices[key[0]].props[key[1]].default_in(release)
            assert default is None or value == default, (release, base, key, value)
    for version in versions:
        release = release_of(version)
        seen, baseline = values_of(release, version), baselines[release]
        compat = {(c.device, c.prop): c.value for c in library.machines[version].compat}
        for key, value in seen.items():
            if key in compat:
                assert value == compat[key], (version, key, value)
                # a change from the base, or the undoing of an older one's parent's
                # (hw_compat_2_8 turns pci-bridge's SHPC back on after hw_compat_2_9)
                undone, parent = False, library.machines[version].extends
                while parent is not None and not undone:
                    undone = any((c.device, c.prop) == key and c.value != compat[key]
                                 for c in library.machines[parent].compat)
                    parent = library.machines[parent].extends
                assert baseline[key] != compat[key] or undone, \
                    (version, key, f"no change from {base}")
            else:
                assert value == baseline[key], (version, key, value)


VIRTIO_CASES = ["q35-7.1-virtio", "pseries-7.0-virtio"]


@pytest.mark.parametrize("case", VIRTIO_CASES)
def test_blob_props_match_qemu_with_compat(case: str, tmp_path: Path) -> None:
    """The golden blob of an older version, started from its golden argv: every prop of
    every device, those QEMU creates inside a virtio function included (`queue_reset`), is
    what `info qtree` shows (vm_support compares only the props of emitted devices)."""
    vm = ROOT / "tests" / "vm"
    blob = json.loads((vm / f"{case}.json").read_text(encoding="utf-8"))
    argv = vm_support.read_argv_golden(vm / f"{case}.argv")
    binary = require_binary(argv[0])
    for name, fmt in vm_support.backing_files(blob):
        path = tmp_path / name
        if fmt == "qcow2":
            subprocess.run([require_binary("qemu-img"), "create", "-q", "-f", "qcow2",
                            str(path), "64M"], check=True, timeout=30)
        else:
            path.write_bytes(b"\0" * (1 << 20))
    runnable = vm_support.runnable_argv([binary, *argv[1:]], str(tmp_path))
    root = process.qtree_devices([*runnable, "-accel", "tcg"], timeout=30.0)
    by_id = {d.id: d for _b, d in process.walk(root) if d.id}
    compared: list[tuple[str, str]] = []
    problems = []
    for _bus, _kind, device in vm_support.blob_walk(blob["devices"]):
        if device["origin"] == "machine":
            continue
        built = by_id[device["id"]]
        pairs = [(device, built)]
        for child_bus in device.get("buses", ()):
            if child_bus["kind"] != "virtio":
                continue
            inner = [d for b in built.buses if b.type == "virtio-pci-bus" for d in b.devices]
            for child in child_bus["devices"]:
                match = [d for d in inner if d.type == child["type"]]
                assert len(match) == 1, (child["id"], [d.type for d in inner])
                pairs.append((child, match[0]))
        for ours, theirs in pairs:
            for name, value in sorted(ours["props"].items()):
                raw = theirs.prop(name)
                if raw is None:
                    continue  # not a qdev property (bootindex): vm_support asks QOM
                compared.append((ours["type"], name))
                if qtree_value(raw) != value or isinstance(value, bool) != (raw in (
                        "true", "false")):
                    problems.append(f"{ours['id']}: {name} = {value!r}, QEMU {raw}")
    assert not problems, problems
    assert ("virtio-rng-pci", "vectors") in compared
    assert any(name == "queue_reset" for _t, name in compared)


# -- fw_cfg through qtest: what the firmware (and so the guest) reads from QEMU


def fw_cfg_files(qemu: Sequence[str], machine: str, names: Sequence[str],
                 timeout: float = 30.0) -> dict[str, bytes]:
    """The contents of fw_cfg files of a machine, read over the qtest protocol from the
    I/O ports (0x510 selector, 0x511 data) as the firmware reads them."""
    proc = subprocess.Popen([*qemu, "-machine", machine, "-nodefaults", "-display", "none",
                             "-accel", "tcg", "-S", "-qtest", "stdio"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    deadline = time.monotonic() + timeout

    def command(line: str) -> list[str]:
        stdin.write(line + "\n")
        stdin.flush()
        while True:
            ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
            reply = stdout.readline() if ready else ""
            assert reply, f"qtest: no answer to `{line}` from {machine}"
            if reply.startswith(("OK", "FAIL", "ERR")):
                assert reply.startswith("OK"), reply
                return reply.split()

    def read(selector: int, size: int) -> bytes:
        command(f"outw 0x510 {selector:#x}")
        return bytes(int(command("inb 0x511")[1], 16) for _ in range(size))

    try:
        count = struct.unpack(">I", read(0x19, 4))[0]  # FW_CFG_FILE_DIR
        directory = read(0x19, 4 + 64 * count)[4:]
        files = {}
        for i in range(count):
            size, selector, _, name = struct.unpack(">IHH56s", directory[64 * i:64 * i + 64])
            files[name.rstrip(b"\0").decode()] = (selector, size)
        return {n: read(*files[n]) for n in names}
    finally:
        proc.kill()
        proc.wait(timeout=10)


AMD_HT_HOLE = (0xFD00000000, 0x300000000, 2)  # start, size, E820_RESERVED (hw/i386/pc.c)


@pytest.mark.parametrize("version", VERSIONS["pc-q35"])
def test_amd_1tb_hole_quirk_matches_qemu(version: str) -> None:
    """`quirk enforce-amd-1tb-hole`: with QEMU's default CPU (qemu64, an AMD one, 40
    physical address bits under TCG) the e820 table reserves the HyperTransport hole
    exactly when the quirk is true (7.1, 7.2), not on 7.0."""
    binary = machine_qemu(version)
    quirks = {q.name: q.value for q in load_library().machines[version].quirks}
    e820 = fw_cfg_files(binary, version, ["etc/e820"])["etc/e820"]
    entries = [struct.unpack_from("<QQI", e820, i) for i in range(0, len(e820), 20)]
    assert (0, 128 << 20, 1) in entries, entries  # RAM below 4G: the read works
    assert (AMD_HT_HOLE in entries) is quirks["enforce-amd-1tb-hole"], entries


@pytest.mark.parametrize("version", VERSIONS["pc-q35"])
def test_qemu_machine_is_the_smbios_version(version: str) -> None:
    """Why `schema-diff` lists `qemu-machine`: on q35 the guest reads the machine type's
    name as the SMBIOS system and chassis version (type 1 and 3 strings)."""
    binary = machine_qemu(version)
    name = "etc/smbios/smbios-tables"
    tables = fw_cfg_files(binary, version, [name])[name]
    assert b"\0" + version.encode() + b"\0" in tables, tables
    for other in VERSIONS["pc-q35"]:
        if other != version:
            assert other.encode() not in tables
