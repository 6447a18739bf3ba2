"""`mschema show` against the real QEMU: the schema must list exactly what QEMU builds.

Each case runs the real CLI (`python -m compiler show MACHINE --option K=V ... --format json`)
and starts the real QEMU once with the same options in `-machine`, then compares both sides
device by device as sorted lists of (bus name, bus kind, device type, addr, props). Props are
those the schema sets (e.g. smbus-eeprom `address`), read from QEMU's `info qtree`. A missing,
extra, moved, retyped or differently configured device fails with a list of the differences.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from qemu_support import require_binary

from compiler import qemu

ROOT = Path(__file__).resolve().parent.parent

# QEMU's qtree bus type → the CONTRACT's bus kind.
BUS_KINDS = {
    "System": "system",
    "PCIE": "pcie",
    "PCI": "pci",
    "spapr-vio-bus": "vio",
    "SCSI": "scsi",
    "usb-bus": "usb",
    "IDE": "ide",
    "ISA": "isa",
    "i2c-bus": "i2c",
    "virtio-pci-bus": "virtio",
}

# mschema machine name → (QEMU binary, extra QEMU arguments).
MACHINES = {
    "pc-q35": ("qemu-system-x86_64", ()),
    "pseries": ("qemu-system-ppc64", ("-m", "1G")),
}

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
]

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


def qtree_value(raw: str) -> Scalar:
    """A qtree property value: `87 (0x57)` → 87, `true` → True, `"usb-bus.0"` → "usb-bus.0"."""
    if raw in ("true", "false"):
        return raw == "true"
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    first = raw.split(" ", 1)[0]
    try:
        return int(first, 0)
    except ValueError:
        return raw


def qtree_addr(kind: str, device: qemu.QtreeDevice) -> str | None:
    """The device's address on its bus, in the CONTRACT's notation for that bus kind."""
    if kind in ("pci", "pcie"):
        return device.addr
    if kind == "vio":
        reg = device.prop("reg")
        return None if reg is None else hex(int(reg.split(" ", 1)[0], 0))
    if kind == "usb":
        port = device.prop("port")
        return None if port is None else str(qtree_value(port))
    if kind == "ide":
        unit = device.prop("unit")
        return None if unit is None else str(qtree_value(unit))
    if kind == "scsi":
        parts = [device.prop(p) for p in ("channel", "scsi-id", "lun")]
        return ":".join(str(qtree_value(p)) for p in parts if p is not None) or None
    return None


def qemu_entries(
    root: qemu.QtreeBus, prop_names: dict[str, set[str]]
) -> tuple[list[Entry], list[BusEntry]]:
    """QEMU's devices, with the props that the schema sets on devices of the same type."""
    devices: list[Entry] = []
    buses: list[BusEntry] = []
    for bus, device in qemu.walk(root):
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


@pytest.mark.parametrize(
    ("machine", "options"),
    CASES,
    ids=[f"{m}-{','.join(o) or 'default'}" for m, o in CASES],
)
def test_show_matches_qemu(machine: str, options: tuple[str, ...]) -> None:
    binary_name, extra = MACHINES[machine]
    binary = require_binary(binary_name)
    shown = run_show(machine, options)
    info = shown["machine"]
    assert isinstance(info, dict)
    qemu_machine = str(info["qemu"])
    predicted, predicted_buses = schema_entries(shown)

    prop_names: dict[str, set[str]] = {}
    for _, _, type_, _, props in predicted:
        prop_names.setdefault(type_, set()).update(name for name, _ in props)

    machine_arg = ",".join([qemu_machine, *options])
    root = qemu.qtree_devices(
        [binary, "-machine", machine_arg, "-nodefaults", "-accel", "tcg", *extra], timeout=30.0
    )
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
