"""Every device type of the stdlib against the real QEMU 7.2 and 10.0 (no mocks).

- Props, per release: for each device type (`compiler.lang.resolve.load_library()`),
  `-device TYPE,help` of that release's QEMU binary of the first machine family (pc-q35's;
  or the next one's when it does not know the type) must list every declared prop and link
  the release has (`since`) and none it lacks, with a QEMU type that holds the declared one
  and, where a default is declared, the default as of that release (`changed`), or the
  value the family's newest machine version of that release sets (`compat`); a type newer
  than the release (`since`) must be unknown to it.
- Trees: one instantiation per type that provides buses, and per pluggable bus-less type
  of the device files, with id `dev0` and what it needs; the
  `info qtree` below that device must match the declaration: bus names with the id
  substituted, bus kinds (through each bus kind's `qtree` name), child device types, their
  addresses where declared, and their buses, recursively; and the device must land on a bus
  kind it plugs into.
- Ranges: on each declared USB, SCSI and IDE bus, a device at the top of the declared
  address ranges is accepted and one just beyond any field is refused.
Known mistakes in stdlib files this test does not own are strict xfails."""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterator
from typing import TypeAlias

import attrs
import pytest
from qemu_support import RELEASES, binary_of, families, release_argv, require_binary

from compiler.base import notations
from compiler.lang import model
from compiler.lang.resolve import load_library
from compiler.qemu import compare, process

LIBRARY = load_library()
DEVICE_TYPES = sorted(LIBRARY.devices)
# QEMU's qtree bus type → the stdlib's bus kind, from the bus kinds' own `qtree` names.
BUS_KINDS = {kind.qtree: kind.name for kind in LIBRARY.buses.values()}

# the binaries of the machines the cases below run on, as their schemas say
X86 = binary_of("pc-q35-7.2")
PPC = binary_of("pseries-7.2")
# every shipped machine's binary, in family order (pc-q35 first): who knows a device type
BINARIES = tuple(dict.fromkeys(binary_of(family) for family in families()))
MACHINE_ARGS = {
    X86: ("-machine", "pc-q35-7.2", "-nodefaults", "-accel", "tcg"),
    PPC: (
        "-machine",
        "pseries-7.2,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off",
        "-nodefaults",
        "-accel",
        "tcg",
        "-m",
        "1G",
    ),
}

# --------------------------------------------------------------------------
# `-device TYPE,help`


@attrs.frozen
class QemuProp:
    name: str
    type: str  # as QEMU prints it: uint32, bool, str, OnOffAuto, link<rng-backend>, ...
    text: str  # the rest of the line: description and `(default: …)`

    @property
    def default(self) -> str | None:
        m = re.search(r"\(default: (.*)\)$", self.text)
        return m.group(1) if m else None


_HELP_LINE = re.compile(r"^ {2}(?P<name>[^=\s]+)=<(?P<type>[^>]+)>\s*(?:- )?(?P<text>.*)$")


# Device types a release's build lacks although an older release has them (docs/releases.md)
ABSENT_IN_RELEASE = {
    ("10.0", "sga"): "the serial graphics adapter is gone from QEMU 10.0",
}


def _help(binary: list[str], type_name: str) -> str | None:
    """`-device TYPE,help` of one binary; None when it does not know the type."""
    done = subprocess.run([*binary, "-device", f"{type_name},help"], capture_output=True,
                          text=True, timeout=30, check=False)
    output = done.stdout + done.stderr
    if "not found" in output or "is not a valid device model name" in output:
        return None
    assert done.returncode == 0, output
    return output


@functools.cache
def device_help(type_name: str, release: str = RELEASES[0]
                ) -> tuple[str, dict[str, QemuProp]] | None:
    """The binary of `release` that knows `type_name` (pc-q35's first) and the props its
    help lists; None when no binary of that release knows it."""
    for binary_name in BINARIES:
        output = _help(release_argv(binary_name, release), type_name)
        if output is None:
            continue
        props = {}
        for line in output.splitlines():
            m = _HELP_LINE.match(line)
            if m:
                props[m["name"]] = QemuProp(m["name"], m["type"], m["text"].strip())
        assert props or "There are no options" in output, output
        return binary_name, props
    return None


def known_help(type_name: str, release: str) -> tuple[str, dict[str, QemuProp]]:
    """`device_help` of a type the release has; skips one its build lacks
    (ABSENT_IN_RELEASE, asserted unknown) and one newer than the release (asserted
    unknown: its `since`)."""
    found = device_help(type_name, release)
    dtype = LIBRARY.devices[type_name]
    if not dtype.exists_in(release) or (release, type_name) in ABSENT_IN_RELEASE:
        assert found is None, (f"QEMU {release} knows `{type_name}` (since "
                               f"{dtype.since or 'always'})")
        pytest.skip(f"QEMU {release} has no `{type_name}`")
    assert found is not None, f"no binary of QEMU {release} knows device type `{type_name}`"
    return found


def newest_compat(binary_name: str, release: str) -> dict[tuple[str, str], object]:
    """The compat props of the newest machine version of `binary_name`'s families that
    `release` has: what `-device help` shows as the default is that version's (pc-q35-10.0's,
    not pc-i440fx-7.2's, on QEMU 10.0)."""
    newest = max((m for m in LIBRARY.machines.values()
                  if binary_of(m.family) == binary_name and m.runs_on(release)),
                 key=lambda m: (model.release_key(m.since) or (0, 0), m.family))
    return {(c.device, c.prop): c.value for c in newest.compat}


def test_help_parser_reads_types_and_defaults() -> None:
    _, props = known_help("pcie-root-port", RELEASES[0])
    assert props["chassis"] == QemuProp("chassis", "uint8", "(default: 0)")
    assert props["chassis"].default == "0"
    binary, props = known_help("spapr-vty", RELEASES[0])
    assert binary == PPC
    assert props["chardev"].type == "str"


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("type_name", DEVICE_TYPES)
def test_declared_names_exist_in_qemu(type_name: str, release: str) -> None:
    """(a) Every declared prop and link is a property QEMU knows for that type, in each
    release that has it (`since`); a prop newer than the release is one it lacks."""
    dtype = LIBRARY.devices[type_name]
    binary, props = known_help(type_name, release)
    declared = {p.name for p in dtype.props.values() if p.exists_in(release)} | set(dtype.links)
    missing = sorted(declared - set(props))
    assert not missing, f"{binary} {release} -device {type_name},help lists no {missing}"
    newer = sorted(p.name for p in dtype.props.values() if not p.exists_in(release))
    assert not set(newer) & set(props), (
        f"QEMU {release} has {sorted(set(newer) & set(props))} of `{type_name}`, which the "
        "stdlib says are newer")
    for link in dtype.links.values():
        kind = props[link.name].type
        assert kind == "str" or kind.startswith("link<"), (link.name, kind)


@functools.cache
def creatable(binary_name: str) -> frozenset[str]:
    """The types `binary_name -device help` lists: those QEMU lets a user create."""
    done = subprocess.run([require_binary(binary_name), "-device", "help"],
                          capture_output=True, text=True, timeout=30, check=True)
    return frozenset(re.findall(r'^name "([^"]+)"', done.stdout, re.M))


@pytest.mark.parametrize("type_name", [n for n in DEVICE_TYPES
                                       if not LIBRARY.devices[n].internal])
def test_machine_only_is_what_qemu_refuses(type_name: str) -> None:
    """A type is `machine-only` exactly when no family's binary lists it in `-device help`
    (QEMU's user_creatable = false): then a spec asking for it is E1430."""
    listed = any(type_name in creatable(b) for b in BINARIES)
    assert LIBRARY.devices[type_name].machine_only == (not listed), (
        f"`{type_name}`: QEMU {'lists' if listed else 'does not list'} it in -device help")


# QEMU's integer property types and their ranges.
_INT_RANGES = {
    "uint8": (0, 0xFF),
    "uint16": (0, 0xFFFF),
    "uint32": (0, 0xFFFFFFFF),
    "uint64": (0, 0xFFFFFFFFFFFFFFFF),
    "int32": (-(2**31), 2**31 - 1),
    "int": (-(2**63), 2**63 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "size": (0, 0xFFFFFFFFFFFFFFFF),
}


def type_problem(spec: model.PropSpec, qp: QemuProp) -> str | None:
    """Why the declared type is not one that QEMU's property type holds, or None."""
    t = spec.type
    if t.kind == "bool":
        return None if qp.type == "bool" else f"declared bool, QEMU has {qp.type}"
    if t.kind in ("str", "mac"):
        if qp.type != "str":
            return f"declared {t.kind}, QEMU has {qp.type}"
        if t.kind == "mac" and "MAC Address" not in qp.text:
            return "declared mac, QEMU's str is not a MAC address"
        return None
    if t.kind == "enum":
        m = re.match(r"([\w-]+(?:/[\w-]+)+)", qp.text)
        members = set(m.group(1).split("/")) if m else set()
        extra = set(t.members) - members
        return f"QEMU's {qp.type} has no {sorted(extra)}" if extra else None
    if t.kind == "size" and qp.type != "size":
        return f"declared size, QEMU has {qp.type}"
    if qp.type not in _INT_RANGES:
        return f"declared {t.describe()}, QEMU has {qp.type}"
    lo, hi = _INT_RANGES[qp.type]
    if t.lo is None or t.hi is None:
        # an unbounded `int`: QEMU must take negative numbers too (bootindex is int32)
        return None if lo < 0 else f"declared int, QEMU has {qp.type}"
    if not lo <= t.lo <= t.hi <= hi:
        return f"declared {t.lo}..{t.hi}, QEMU's {qp.type} is {lo}..{hi}"
    return None


def default_problem(spec: model.PropSpec, qp: QemuProp) -> str | None:
    """Why the declared default differs from QEMU's, or None."""
    if spec.default is None:
        return None
    qemu_default = qp.default
    if qemu_default is None:
        return f"declares default {spec.default!r}, QEMU shows none"
    raw = qemu_default.strip('"')
    value: object
    if spec.type.kind == "bool":
        value = raw in ("true", "on")  # QEMU 10.0 prints on/off
    elif spec.type.kind in ("int", "size"):
        value = int(raw, 0)
    else:
        value = raw
    return None if value == spec.default else f"default {spec.default!r}, QEMU's is {raw!r}"


# QOM props whose default `-device help` does not show (object_property_add_*_ptr):
# checked with `qom-get` on the machine's own device (`test_qom_only_defaults_match_qemu`)
QOM_ONLY_DEFAULTS = {("ICH9-LPC", "disable_s3"): "pc-q35-7.2",
                     ("ICH9-LPC", "disable_s4"): "pc-q35-7.2"}


@pytest.mark.parametrize(("type_name", "prop"), sorted(QOM_ONLY_DEFAULTS))
def test_qom_only_defaults_match_qemu(type_name: str, prop: str) -> None:
    """The declared default is what `qom-get` reads on the machine's device (found in
    `info qom-tree`) when nothing sets it, and a `-global` changes it."""
    from compiler.qemu.extract.snapshot import _qom_paths

    machine = QOM_ONLY_DEFAULTS[(type_name, prop)]
    binary = require_binary(binary_of(machine))
    argv = [binary, "-machine", machine, "-nodefaults", "-accel", "tcg"]
    tree = process.query(argv, hmp=("info qom-tree",), timeout=30.0).hmp[0]
    (path,) = _qom_paths(tree)[type_name]
    read = ("qom-get", {"path": path, "property": prop})
    default = LIBRARY.devices[type_name].props[prop].default
    assert process.query(argv, hmp=(), qmp=(read,), timeout=30.0).qmp == (default,)
    changed = [*argv, "-global", f"{type_name}.{prop}=7"]
    assert process.query(changed, hmp=(), qmp=(read,), timeout=30.0).qmp == (7,)


# Known wrong declarations in files this test does not own; strict, so a fix shows up.
TYPE_XFAIL: dict[str, str] = {}


@pytest.mark.parametrize(
    "type_name",
    [
        pytest.param(t, marks=pytest.mark.xfail(strict=True, reason=TYPE_XFAIL[t]))
        if t in TYPE_XFAIL
        else t
        for t in DEVICE_TYPES
    ],
)
@pytest.mark.parametrize("release", RELEASES)
def test_declared_types_and_defaults_match_qemu(type_name: str, release: str) -> None:
    """Every declared prop's type fits QEMU's, and its default is QEMU's in that release:
    the stdlib's as of the release (`changed`), or what the newest machine version the
    release has sets (a `compat` line: pc-q35-10.0's `intel-iommu aw-bits = 48`)."""
    dtype = LIBRARY.devices[type_name]
    binary, props = known_help(type_name, release)
    compat = newest_compat(binary, release)
    problems = []
    for spec in dtype.props.values():
        qp = props.get(spec.name)
        if qp is None or not spec.exists_in(release):
            continue  # reported by test_declared_names_exist_in_qemu
        qom_only = (type_name, spec.name) in QOM_ONLY_DEFAULTS
        default = compat.get((type_name, spec.name), spec.default_in(release))
        expected = attrs.evolve(spec, default=default, changes=())
        for why in (type_problem(spec, qp), None if qom_only else default_problem(expected, qp)):
            if why:
                problems.append(f"{spec.name}: {why}")
    assert not problems, f"{type_name}: " + "; ".join(problems)


# --------------------------------------------------------------------------
# Instantiations: the qtree below a device with id `dev0`


@attrs.frozen
class Case:
    type: str
    binary: str
    args: tuple[str, ...]  # every argument but the machine's; the device's id is `dev0`


def case(type_name: str, binary: str, *args: str) -> Case:
    return Case(type_name, binary, args)


NULL_DISK = ("-blockdev", "driver=null-co,node-name=disk0")
ROOT_PORT = ("-device", "pcie-root-port,id=rp0,chassis=1")
XHCI = ("-device", "qemu-xhci,id=usb0")
USER_NET = ("-netdev", "user,id=net0")
# a 9p export of the QEMU process's working directory
FSDEV = ("-fsdev", "local,id=fs0,path=.,security_model=none")
NULL_CHARDEV = ("-chardev", "null,id=chr0")
VIRTIO_SERIAL = ("-device", "virtio-serial-pci,id=vser0")
VIRTIO_SCSI = ("-device", "virtio-scsi-pci,id=scsi0")
NONE_AUDIO = ("-audiodev", "none,id=snd0")  # a sound card's host side (QEMU 10 needs one)

CASES = [
    case("virtio-blk-pci", X86, *NULL_DISK, "-device", "virtio-blk-pci,id=dev0,drive=disk0"),
    case(
        "virtio-net-pci",
        X86,
        "-netdev",
        "user,id=net0",
        "-device",
        "virtio-net-pci,id=dev0,netdev=net0",
    ),
    case("virtio-scsi-pci", X86, "-device", "virtio-scsi-pci,id=dev0"),
    case(
        "virtio-rng-pci",
        X86,
        "-object",
        "rng-random,id=rng0,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,id=dev0,rng=rng0",
    ),
    case("virtio-gpu-pci", X86, "-device", "virtio-gpu-pci,id=dev0"),
    case("virtio-vga", X86, "-device", "virtio-vga,id=dev0"),
    case("virtio-serial-pci", X86, "-device", "virtio-serial-pci,id=dev0"),
    case("virtio-balloon-pci", X86, "-device", "virtio-balloon-pci,id=dev0"),
    case("pcie-root-port", X86, "-device", "pcie-root-port,id=dev0,chassis=1"),
    case("x3130-upstream", X86, *ROOT_PORT, "-device", "x3130-upstream,id=dev0,bus=rp0"),
    case(
        "xio3130-downstream",
        X86,
        *ROOT_PORT,
        "-device",
        "x3130-upstream,id=up0,bus=rp0",
        "-device",
        "xio3130-downstream,id=dev0,bus=up0,chassis=2",
    ),
    case("pcie-pci-bridge", X86, *ROOT_PORT, "-device", "pcie-pci-bridge,id=dev0,bus=rp0"),
    # QEMU shows the expander's bus under a `pxb-host` on the main system bus (regrafted)
    case("pxb-pcie", X86, "-device", "pxb-pcie,id=dev0,bus_nr=200"),
    case("pci-bridge", X86, "-device", "pci-bridge,id=dev0,chassis_nr=1"),
    case("qemu-xhci", X86, "-device", "qemu-xhci,id=dev0"),
    case(
        "usb-storage",
        X86,
        *XHCI,
        *NULL_DISK,
        "-device",
        "usb-storage,id=dev0,bus=usb0.0,drive=disk0",
    ),
    case("ich9-ahci", X86, "-device", "ich9-ahci,id=dev0"),
    case("ich9-usb-ehci1", X86, "-device", "ich9-usb-ehci1,id=dev0"),
    case("nec-usb-xhci", PPC, "-device", "nec-usb-xhci,id=dev0"),
    case("spapr-pci-host-bridge", PPC, "-device", "spapr-pci-host-bridge,id=dev0,index=1"),
    case("spapr-vscsi", PPC, "-device", "spapr-vscsi,id=dev0"),
    # bridges, USB, storage, IOMMU, virtio variants
    case("i82801b11-bridge", X86, "-device", "i82801b11-bridge,id=dev0"),
    case("ioh3420", X86, "-device", "ioh3420,id=dev0,chassis=1"),
    case("pci-bridge-seat", X86, "-device", "pci-bridge-seat,id=dev0,chassis_nr=1"),
    case("pci-ohci", X86, "-device", "pci-ohci,id=dev0"),
    case("piix3-usb-uhci", X86, "-device", "piix3-usb-uhci,id=dev0"),
    case("piix4-usb-uhci", X86, "-device", "piix4-usb-uhci,id=dev0"),
    case("usb-ehci", X86, "-device", "usb-ehci,id=dev0"),
    case("ich9-usb-ehci2", X86, "-device", "ich9-usb-ehci2,id=dev0"),
    case("lsi53c895a", X86, "-device", "lsi53c895a,id=dev0"),
    case("lsi53c810", X86, "-device", "lsi53c810,id=dev0"),
    case("megasas", X86, "-device", "megasas,id=dev0"),
    case("megasas-gen2", X86, "-device", "megasas-gen2,id=dev0"),
    case("mptsas1068", X86, "-device", "mptsas1068,id=dev0"),
    case("am53c974", X86, "-device", "am53c974,id=dev0"),
    case("dc390", X86, "-device", "dc390,id=dev0"),
    case("pvscsi", X86, "-device", "pvscsi,id=dev0"),
    case("usb-bot", X86, *XHCI, "-device", "usb-bot,id=dev0,bus=usb0.0"),
    case("usb-uas", X86, *XHCI, "-device", "usb-uas,id=dev0,bus=usb0.0"),
    case("nvme", X86, "-device", "nvme,id=dev0,serial=nvme0"),
    case("isa-fdc", X86, "-device", "isa-fdc,id=dev0"),
    case("virtio-iommu-pci", X86, "-device", "virtio-iommu-pci,id=dev0"),
    *(
        case(f"{base}-{variant}", X86, *args, "-device", f"{base}-{variant},id=dev0{props}")
        for base, args, props in (
            ("virtio-blk-pci", NULL_DISK, ",drive=disk0"),
            ("virtio-net-pci", USER_NET, ",netdev=net0"),
            ("virtio-scsi-pci", (), ""),
            ("virtio-rng-pci", (), ""),
            ("virtio-serial-pci", (), ""),
            ("virtio-balloon-pci", (), ""),
        )
        for variant in ("transitional", "non-transitional")
    ),
    # Devices without buses: they land on a bus kind they plug into, and create nothing.
    case("virtconsole", X86, *VIRTIO_SERIAL, "-device", "virtconsole,id=dev0,bus=vser0.0"),
    case("virtserialport", X86, *VIRTIO_SERIAL, "-device", "virtserialport,id=dev0,bus=vser0.0"),
    case("VGA", X86, "-device", "VGA,id=dev0"),
    case("e1000e", X86, *USER_NET, "-device", "e1000e,id=dev0,netdev=net0"),
    case("e1000", X86, *USER_NET, "-device", "e1000,id=dev0,netdev=net0"),
    case("rtl8139", X86, *USER_NET, "-device", "rtl8139,id=dev0,netdev=net0"),
    case("usb-tablet", X86, *XHCI, "-device", "usb-tablet,id=dev0,bus=usb0.0"),
    case("usb-kbd", X86, *XHCI, "-device", "usb-kbd,id=dev0,bus=usb0.0"),
    case("usb-mouse", X86, *XHCI, "-device", "usb-mouse,id=dev0,bus=usb0.0"),
    case("usb-hub", X86, *XHCI, "-device", "usb-hub,id=dev0,bus=usb0.0"),
    case("ide-hd", X86, *NULL_DISK, "-device", "ide-hd,id=dev0,bus=ide.0,drive=disk0"),
    case("ide-cd", X86, "-device", "ide-cd,id=dev0,bus=ide.0"),
    case("scsi-hd", X86, *VIRTIO_SCSI, *NULL_DISK, "-device", "scsi-hd,id=dev0,drive=disk0"),
    case("scsi-cd", PPC, "-device", "spapr-vscsi,id=vscsi0", "-device", "scsi-cd,id=dev0"),
    case("isa-serial", X86, *NULL_CHARDEV, "-device", "isa-serial,id=dev0,chardev=chr0"),
    case("spapr-vlan", PPC, *USER_NET, "-device", "spapr-vlan,id=dev0,netdev=net0"),
    case("spapr-vty", PPC, *NULL_CHARDEV, "-device", "spapr-vty,id=dev0,chardev=chr0"),
    # display, audio, input, watchdog/misc, serial/parallel
    case("ati-vga", X86, "-device", "ati-vga,id=dev0"),
    case("intel-hda", X86, "-device", "intel-hda,id=dev0"),
    case("ich9-intel-hda", X86, "-device", "ich9-intel-hda,id=dev0"),
    case("virtio-keyboard-pci", X86, "-device", "virtio-keyboard-pci,id=dev0"),
    case("virtio-mouse-pci", X86, "-device", "virtio-mouse-pci,id=dev0"),
    case("virtio-tablet-pci", X86, "-device", "virtio-tablet-pci,id=dev0"),
    case("cirrus-vga", X86, "-device", "cirrus-vga,id=dev0"),
    case("qxl-vga", X86, "-device", "qxl-vga,id=dev0"),
    case("qxl", X86, "-device", "qxl,id=dev0"),
    case("bochs-display", X86, "-device", "bochs-display,id=dev0"),
    case("secondary-vga", X86, "-device", "secondary-vga,id=dev0"),
    case("vmware-svga", X86, "-device", "vmware-svga,id=dev0"),
    case("hda-duplex", X86, *NONE_AUDIO, "-device", "intel-hda,id=hda0", "-device",
         "hda-duplex,id=dev0,audiodev=snd0"),
    case("hda-micro", X86, *NONE_AUDIO, "-device", "ich9-intel-hda,id=hda0", "-device",
         "hda-micro,id=dev0,audiodev=snd0"),
    case("hda-output", X86, *NONE_AUDIO, "-device", "intel-hda,id=hda0", "-device",
         "hda-output,id=dev0,audiodev=snd0"),
    case("AC97", X86, *NONE_AUDIO, "-device", "AC97,id=dev0,audiodev=snd0"),
    case("ES1370", X86, *NONE_AUDIO, "-device", "ES1370,id=dev0,audiodev=snd0"),
    case("usb-audio", X86, *XHCI, *NONE_AUDIO, "-device",
         "usb-audio,id=dev0,bus=usb0.0,audiodev=snd0"),
    case("usb-wacom-tablet", X86, *XHCI, "-device", "usb-wacom-tablet,id=dev0,bus=usb0.0"),
    case("i6300esb", X86, "-device", "i6300esb,id=dev0"),
    case("pvpanic", X86, "-device", "pvpanic,id=dev0"),
    case("pvpanic-pci", X86, "-device", "pvpanic-pci,id=dev0"),
    case("edu", X86, "-device", "edu,id=dev0"),
    case("pci-testdev", X86, "-device", "pci-testdev,id=dev0"),
    case("pci-serial", X86, *NULL_CHARDEV, "-device", "pci-serial,id=dev0,chardev=chr0"),
    case("pci-serial-2x", X86, *NULL_CHARDEV, "-device", "pci-serial-2x,id=dev0,chardev1=chr0"),
    case("pci-serial-4x", X86, "-device", "pci-serial-4x,id=dev0"),
    case("isa-parallel", X86, *NULL_CHARDEV, "-device", "isa-parallel,id=dev0,chardev=chr0"),
    case("isa-debugcon", X86, *NULL_CHARDEV, "-device", "isa-debugcon,id=dev0,chardev=chr0"),
    case("usb-serial", X86, *XHCI, *NULL_CHARDEV, "-device",
         "usb-serial,id=dev0,bus=usb0.0,chardev=chr0"),
    case("sm501", PPC, "-device", "sm501,id=dev0"),
    case("tpci200", X86, "-device", "tpci200,id=dev0"),
    case("ipoctal232", X86, "-device", "tpci200,id=ip0", "-device", "ipoctal232,id=dev0"),
    case("usb-braille", X86, *XHCI, *NULL_CHARDEV, "-device",
         "usb-braille,id=dev0,bus=usb0.0,chardev=chr0"),
    case("isa-vga", X86, "-device", "isa-vga,id=dev0"),
    case("isa-cirrus-vga", X86, "-device", "isa-cirrus-vga,id=dev0"),
    case("sga", X86, "-device", "sga,id=dev0"),
    case("ramfb", X86, "-device", "ramfb,id=dev0"),
    case("sb16", X86, *NONE_AUDIO, "-device", "sb16,id=dev0,audiodev=snd0"),
    case("cs4231a", X86, *NONE_AUDIO, "-device", "cs4231a,id=dev0,audiodev=snd0"),
    case("adlib", X86, *NONE_AUDIO, "-device", "adlib,id=dev0,audiodev=snd0"),
    case("gus", X86, *NONE_AUDIO, "-device", "gus,id=dev0,audiodev=snd0"),
    case("ib700", X86, "-device", "ib700,id=dev0"),
    case("isa-debug-exit", X86, "-device", "isa-debug-exit,id=dev0"),
    case("pc-testdev", X86, "-device", "pc-testdev,id=dev0"),
    case("hyperv-testdev", X86, "-device", "hyperv-testdev,id=dev0"),
    case("isa-applesmc", X86, "-device", "isa-applesmc,id=dev0"),
    case("at24c-eeprom", PPC, "-device", "sm501,id=sm0", "-device",
         "at24c-eeprom,id=dev0,bus=sm501.i2c,address=0x51,rom-size=256"),
    case("ds1338", PPC, "-device", "sm501,id=sm0", "-device",
         "ds1338,id=dev0,bus=sm501.i2c,address=0x68"),
    case("m41t80", PPC, "-device", "sm501,id=sm0", "-device",
         "m41t80,id=dev0,bus=sm501.i2c,address=0x69"),
    *(case(t, X86, *FSDEV, "-device", f"{t},id=dev0,fsdev=fs0,mount_tag=share")
      for t in ("virtio-9p-pci", "virtio-9p-pci-transitional", "virtio-9p-pci-non-transitional")),
    case("usb-redir", X86, *XHCI, *NULL_CHARDEV, "-device",
         "usb-redir,id=dev0,bus=usb0.0,chardev=chr0"),
    case("intel-iommu", X86, "-device", "intel-iommu,id=dev0"),
    # a companion, as declared: with `masterbus` its ports join the EHCI's bus
    case(
        "ich9-usb-uhci4",
        X86,
        "-device",
        "ich9-usb-ehci2,id=ehci0,addr=08.7,multifunction=on",
        "-device",
        "ich9-usb-uhci4,id=dev0,addr=08.0,multifunction=on,masterbus=ehci0.0,firstport=0",
    ),
    case("floppy", X86, "-device", "isa-fdc,id=fdc0", "-device", "floppy,id=dev0,bus=fdc0.0"),
    case("rocker", X86, "-device", "rocker,id=dev0"),
    *(
        case(nic, X86, *USER_NET, "-device", f"{nic},id=dev0,netdev=net0")
        for nic in ("e1000-82544gc", "e1000-82545em", "i82550", "i82551", "i82557a", "i82557b",
                    "i82557c", "i82558a", "i82558b", "i82559a", "i82559b", "i82559c",
                    "i82559er", "i82562", "i82801", "ne2k_pci", "pcnet", "tulip", "vmxnet3")
    ),
]

# Created only by the machine itself (`machine-only`, no -device); test_show_qemu compares
# their buses, and those of their bus-less siblings (mch, isa-pit, spapr-nvram, …).
MACHINE_ONLY = {name for name, t in LIBRARY.devices.items() if t.machine_only}


def child_types_of(type_name: str) -> set[str]:
    """The types declared below `type_name`, recursively."""
    out: set[str] = set()
    for template in LIBRARY.devices[type_name].buses:
        for child in template.children:
            out.add(child.type)
            if child.type in LIBRARY.devices:
                out |= child_types_of(child.type)
    return out


def _plain_case(type_name: str) -> Case:
    """A type with buses and no backend link it needs: `-device TYPE,id=dev0` on the first
    family binary whose `-device help` lists it (pc-i440fx's piix3-ide)."""
    binary = next((b for b in BINARIES if type_name in creatable(b)), X86)
    return case(type_name, binary, "-device", f"{type_name},id=dev0")


# every other type with buses that needs no backend: found in the stdlib, no row needed
CASES += [_plain_case(name) for name, t in sorted(LIBRARY.devices.items())
          if t.buses and not t.machine_only and not t.internal
          and not any(not link.optional for link in t.links.values())
          and name not in {c.type for c in CASES}
          and name not in {ct for c in CASES for ct in child_types_of(c.type)}]


def child_types(type_name: str) -> Iterator[str]:
    """Every type QEMU creates below a device of `type_name`, recursively."""
    for template in LIBRARY.devices[type_name].buses:
        for child in template.children:
            yield child.type
            if child.type in LIBRARY.devices:
                yield from child_types(child.type)


def test_every_bus_provider_has_a_case() -> None:
    """Each type with buses is started by a case, or is a child of one."""
    providers = {name for name, t in LIBRARY.devices.items() if t.buses}
    cased = {c.type for c in CASES}
    assert len(cased) == len(CASES)
    assert not MACHINE_ONLY & cased
    covered = cased | {t for c in CASES for t in child_types(c.type)}
    assert providers - MACHINE_ONLY <= covered, sorted(providers - MACHINE_ONLY - covered)


def test_every_child_type_is_declared() -> None:
    """The resolver does not check child types inside device types; do it here."""
    unknown = [
        (name, child.type)
        for name, t in LIBRARY.devices.items()
        for template in t.buses
        for child in template.children
        if child.type not in LIBRARY.devices
    ]
    assert not unknown


# Comparable shapes: a bus is (name, kind, children); a child is (type, address or None,
# its buses). Both sides are sorted, so QEMU's newest-first order does not matter.
BusShape: TypeAlias = tuple[str, str, tuple["ChildShape", ...]]
ChildShape: TypeAlias = tuple[str, str | None, tuple[BusShape, ...]]


def declared_buses(dtype: model.DeviceType, qemu_id: str) -> tuple[BusShape, ...]:
    """The buses a device of `dtype` with QEMU id `qemu_id` provides, with their children.
    Children have no id in QEMU, so `{id}` in their buses is still `qemu_id`."""
    result: list[BusShape] = []
    for template in dtype.buses:
        children = tuple(
            sorted(
                (
                    child.type,
                    None
                    if child.address is None
                    else notations.format(template.address.notation, child.address),
                    declared_buses(LIBRARY.devices[child.type], qemu_id)
                    if child.type in LIBRARY.devices
                    else (),
                )
                for child in template.children
            )
        )
        for name in template.names(qemu_id):
            result.append((name, template.kind, children))
    return tuple(sorted(result))


def built_buses(device: process.QtreeDevice, declared: tuple[BusShape, ...]
                ) -> tuple[BusShape, ...]:
    """The same shape as `declared_buses`, from QEMU's qtree. Addresses are read only where
    the declaration gives one (for a child of that type on a bus of that name)."""
    declared_by_name = {name: (kind, children) for name, kind, children in declared}
    result: list[BusShape] = []
    for bus in device.buses:
        kind = BUS_KINDS.get(bus.type, f"<qtree type {bus.type}>")
        want = declared_by_name.get(bus.name, (kind, ()))[1]
        addressed = {c[0] for c in want if c[1] is not None}
        notation = LIBRARY.buses[kind].address.notation if kind in LIBRARY.buses else "none"
        children: list[ChildShape] = []
        for child in bus.devices:
            want_child = next((c for c in want if c[0] == child.type), None)
            children.append(
                (
                    child.type,
                    compare.qtree_addr(notation, child) if child.type in addressed else None,
                    built_buses(child, want_child[2] if want_child else ()),
                )
            )
        result.append((bus.name, kind, tuple(sorted(children))))
    return tuple(sorted(result))


def subtree(device: process.QtreeDevice) -> Iterator[tuple[process.QtreeBus, process.QtreeDevice]]:
    for bus in device.buses:
        yield from process.walk(bus)


@pytest.mark.parametrize("c", CASES, ids=[c.type for c in CASES])
def test_qtree_below_device_matches_declaration(c: Case) -> None:
    """(b) QEMU builds exactly the declared buses and children below the device."""
    binary = require_binary(c.binary)
    root = process.qtree_devices([binary, *MACHINE_ARGS[c.binary], *c.args], timeout=30.0)
    found = [(bus, d) for bus, d in process.walk(root) if d.id == "dev0"]
    assert len(found) == 1, f"no single device with id dev0 in {root}"
    bus, device = found[0]
    dtype = LIBRARY.devices[c.type]
    assert device.type == c.type

    on_kind = BUS_KINDS.get(bus.type)
    assert dtype.plugs_into(on_kind or "") is not None, (
        f"{c.type} landed on {bus.name} ({bus.type}), not a bus kind it plugs into "
        f"({[p.bus for p in dtype.plugs]})"
    )
    for child_bus, child in subtree(device):
        child_type = LIBRARY.devices.get(child.type)
        assert child_type is not None, f"QEMU created undeclared type {child.type}"
        assert child_type.plugs_into(BUS_KINDS.get(child_bus.type, "")) is not None, (
            f"{child.type} sits on {child_bus.name} ({child_bus.type})"
        )

    declared = declared_buses(dtype, "dev0")
    assert built_buses(device, declared) == declared


# --------------------------------------------------------------------------
# Address ranges: a device at the top of each declared range is accepted, one beyond is not

# notation → (probe device, its address props in field order, QEMU's refusal)
PROBES = {
    "usb": ("usb-kbd", ("port",), r"usb port \d+ \(bus .*\) not found"),
    "scsi": ("scsi-cd", ("channel", "scsi-id", "lun"), r"bad scsi (channel|device) (id|lun)"),
    "unit": ("ide-cd", ("unit",), r"Can't create IDE unit \d+, bus supports only"),
}
# bus kinds that share a notation with another kind but take other devices: their own probe
PROBES_BY_KIND = {
    "floppy": ("floppy", ("unit",), r"Can't create floppy unit \d+, bus supports only"),
}
RANGE_XFAIL: dict[tuple[str, str], str] = {}


@attrs.frozen
class Probe:
    case: Case
    bus: str
    kind: str
    notation: str
    address: tuple[int, ...]
    accepted: bool

    @property
    def id(self) -> str:
        text = notations.format(self.notation, self.address)
        return f"{self.case.type}-{self.bus}-{text}-{'ok' if self.accepted else 'refused'}"


def bus_templates(type_name: str) -> Iterator[model.BusTemplate]:
    """The buses of a device of `type_name` and of the children QEMU creates with it."""
    for template in LIBRARY.devices[type_name].buses:
        yield template
        for child in template.children:
            if child.type in LIBRARY.devices:
                yield from bus_templates(child.type)


def probes() -> Iterator[Probe]:
    for c in CASES:
        for template in bus_templates(c.type):
            notation = template.address.notation
            if notation not in PROBES:
                continue
            bus = template.names("dev0")[0]
            fields = notations.NOTATIONS[notation]
            tops = tuple(max(r.hi for r in template.address.ranges(f)) for f in fields)
            if tops not in {child.address for child in template.children}:
                yield Probe(c, bus, template.kind, notation, tops, True)
            for i in range(len(fields)):
                beyond = tuple(v + 1 if j == i else 0 for j, v in enumerate(tops))
                yield Probe(c, bus, template.kind, notation, beyond, False)


PROBE_LIST = list(probes())


PROBE_PARAMS = [
    pytest.param(p, id=p.id, marks=[pytest.mark.xfail(strict=True, reason=RANGE_XFAIL[key])])
    if (key := (p.case.type, notations.format(p.notation, p.address))) in RANGE_XFAIL
    else pytest.param(p, id=p.id)
    for p in PROBE_LIST
]


def test_range_probes_cover_the_declared_buses() -> None:
    probed = {(p.case.type, p.bus) for p in PROBE_LIST}
    assert {("spapr-vscsi", "dev0.0"), ("virtio-scsi-pci", "dev0.0")} <= probed
    assert {("qemu-xhci", "dev0.0"), ("usb-storage", "dev0.0")} <= probed


@pytest.mark.parametrize("probe", PROBE_PARAMS)
def test_declared_address_range_matches_qemu(probe: Probe) -> None:
    device, props, refusal = PROBES_BY_KIND.get(probe.kind) or PROBES[probe.notation]
    values = ",".join(f"{k}={v}" for k, v in zip(props, probe.address, strict=True))
    binary = require_binary(probe.case.binary)
    argv = [binary, *MACHINE_ARGS[probe.case.binary], *probe.case.args]
    argv += ["-device", f"{device},bus={probe.bus},{values}"]
    if probe.accepted:
        process.query(argv, hmp=(), timeout=30.0)
    else:
        with pytest.raises(process.QemuError) as info:
            process.query(argv, hmp=(), timeout=30.0)
        assert re.search(refusal, info.value.stderr), info.value.stderr


# --------------------------------------------------------------------------
# FDT: sPAPR VIO nodes as `fdt { … }` declares them

FDT_TYPES = sorted(name for name, t in LIBRARY.devices.items() if t.fdt)


def vdevice_nodes(dts: str) -> list[tuple[str, str, str]]:
    """(name, unit address, body) of each node under /vdevice in `dtc -O dts` text."""
    block = re.search(r"^\tvdevice \{\n(.*?)^\t\};", dts, re.M | re.S)
    assert block, "no /vdevice in the device tree"
    return re.findall(r"^\t\t([^@\s]+)@([0-9a-f]+) \{\n(.*?)^\t\t\};", block.group(1), re.M | re.S)


@pytest.mark.parametrize("type_name", FDT_TYPES)
def test_fdt_node_matches_declaration(type_name: str) -> None:
    fdt = dict(LIBRARY.devices[type_name].fdt)
    # A type without a case (spapr-nvram) is one the machine creates by itself.
    args = next((c.args for c in CASES if c.type == type_name), ())
    dtb = process.dump_dtb([require_binary(PPC), *MACHINE_ARGS[PPC], *args], timeout=30.0)
    dts = subprocess.run(
        [require_binary("dtc"), "-I", "dtb", "-O", "dts", "-q"],
        input=dtb,
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout.decode()
    nodes = [(addr, body) for name, addr, body in vdevice_nodes(dts) if name == fdt["name"]]
    assert len(nodes) == 1, f"no single /vdevice/{fdt['name']}@… node in\n{dts}"
    _, body = nodes[0]
    for key, value in fdt.items():
        if key != "name":
            assert f'\t{key} = "{value}";\n' in body, f"{key} = {value!r} not in\n{body}"
