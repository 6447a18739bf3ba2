"""The validation registry on hand-built precise trees: each check fires on a tree that
breaks its rule and stays silent on one that keeps it. Most of these problems are caught
earlier from specs and blobs; validation is the last guard before anything is emitted."""

from __future__ import annotations

import attrs
import pytest

from compiler.base import notations
from compiler.base.diagnostics import Collector
from compiler.base.source import SourceFile
from compiler.build import tree, validate
from compiler.lang import resolve

SPAN = SourceFile.from_text("<test>", "x").span(0, 1)
LIB = resolve.load_library()
INFO = tree.MachineInfo("pc-q35", "pc-q35-7.2", "x86_64", "qemu-system-x86_64", ())


def dev(ident: str, dtype: str, addr: str | None = None, *, props: dict[str, object] | None
        = None, backend: dict[str, str] | None = None, buses: tuple[tree.Bus, ...] = (),
        origin: tree.Origin = "spec", notation: str = "pci") -> tree.Device:
    where = None if addr is None else notations.Address.parse(notation, addr)
    return tree.Device(ident, dtype, origin, where, tuple(sorted((props or {}).items())),  # type: ignore[arg-type]
                       tuple(sorted((backend or {}).items())), buses)


def machine(*on_pcie: tree.Device, isa: tuple[tree.Device, ...] = (),
            backends: dict[str, dict[str, object]] | None = None) -> tree.Machine:
    lpc = dev("lpc", "ICH9-LPC", "1f.0", origin="machine",
              buses=(tree.Bus("isa.0", "isa", "none", isa),))
    host = dev("q35", "q35-pcihost", origin="machine",
               buses=(tree.Bus("pcie.0", "pcie", "pci",
                               (dev("mch", "mch", "00.0", origin="machine"), lpc, *on_pcie)),))
    ioapic = dev("ioapic", "ioapic", origin="machine")
    return tree.Machine(INFO, tree.Bus("main-system-bus", "system", "none", (host, ioapic)),
                        backends=tuple((k, tuple(sorted(v.items())))  # type: ignore[misc]
                                       for k, v in sorted((backends or {}).items())))


def codes(m: tree.Machine) -> list[str]:
    diags = Collector()
    validate.validate(m, LIB, SPAN, diags)
    return [d.code for d in diags.items]


RNG = {"r0": {"kind": "rng", "backend": "random", "filename": "/dev/urandom"}}
BLK = {"b0": {"kind": "blockdev", "driver": "raw", "file": "a.raw"}}


def rng(ident: str = "rng0", addr: str = "05.0", backend: str = "r0") -> tree.Device:
    return dev(ident, "virtio-rng-pci", addr, backend={"rng": backend})


def test_a_good_tree_passes_every_check() -> None:
    assert codes(machine(rng(), backends=RNG)) == []


def diagnostics(m: tree.Machine) -> list[tuple[str, str]]:
    diags = Collector()
    validate.validate(m, LIB, SPAN, diags)
    return [(d.code, d.message) for d in diags.items]


@pytest.mark.parametrize("m, expected", [
    (machine(dev("x", "no-such-device", "05.0")),
     [("E1401", "unknown device type `no-such-device`")]),
    (machine(rng("a", "05.0"), rng("a", "06.0", "r1"), backends={**RNG, "r1": RNG["r0"]}),
     [("E1402", "device id `a` is used twice")]),
    (machine(isa=(rng(addr=None),), backends=RNG),
     [("E1403", "`rng0` (virtio-rng-pci) cannot go on `isa.0`, a `isa` bus")]),
    (machine(rng(addr="25.0"), backends=RNG),
     [("E1404", "`rng0` is out of range on `pcie.0`: slot 25 is not in 00..1f")]),
    (machine(rng(addr="1f.0"), backends=RNG),
     [("E1404", "`rng0` and `lpc` are both at 1f.0 on `pcie.0`")]),
    (machine(rng(addr=None), backends=RNG), [("E1404", "`rng0` on `pcie.0` has no address")]),
    (machine(dev("p0", "pcie-root-port", "04.0", props={"chassis": 1}),
             dev("p1", "pcie-root-port", "04.1", props={"chassis": 2})),
     [("E1405", "`p1` is at 04.1 but `p0` at function 0 is not multifunction")]),
    (machine(dev("r", "virtio-rng-pci", "05.0", backend={"rng": "r0", "tx": "r0"}),
             backends=RNG), [("E1411", "`virtio-rng-pci` has no backend link `tx`")]),
    # the backend it leaves unused is the same mistake: no E1417 beside it
    (machine(rng(backend="nope"), backends=RNG),
     [("E1412", "`rng0` links `rng` to `nope`, which is not a backend")]),
    (machine(dev("d", "ide-hd", backend={"drive": "r0"}), backends=RNG),
     [("E1403", "`d` (ide-hd) cannot go on `pcie.0`, a `pcie` bus"),
      ("E1404", "`d` on `pcie.0` has no address"),
      ("E1413", "`d`'s `drive` needs a blockdev, but `r0` is a rng")]),
    (machine(rng("a", "05.0"), rng("b", "06.0"), backends=RNG),
     [("E1415", "backend `r0` is used twice")]),
    (machine(dev("d", "virtio-blk-pci", "05.0"), backends={}),
     [("E1416", "`d` (virtio-blk-pci) needs its `drive` link to a blockdev")]),
    (machine(rng(), backends={**RNG, **BLK}),
     [("E1417", "backend `b0` is not used by any device")]),
])
def test_each_check_fires(m: tree.Machine, expected: list[tuple[str, str]]) -> None:
    assert diagnostics(m) == expected


def test_a_failed_prerequisite_keeps_its_dependants_quiet() -> None:
    # an unknown type: its address, bus and links cannot be judged, so only E1401
    unknown = dev("x", "no-such-device", "25.0", backend={"rng": "nope"})
    assert codes(machine(unknown, isa=(rng("r", addr=None),), backends=RNG)) == ["E1401"]
    # an address out of range hides the multifunction rule that reads the addresses
    ports = machine(dev("p0", "pcie-root-port", "04.0", props={"chassis": 1}),
                    dev("p1", "pcie-root-port", "04.1", props={"chassis": 2}),
                    rng(addr="25.0"), backends=RNG)
    assert codes(ports) == ["E1404"]
    hidden = machine(dev("p0", "pcie-root-port", "04.0", props={"chassis": 1}),
                     dev("p1", "pcie-root-port", "04.1", props={"chassis": 2}),
                     rng(), backends=RNG)
    assert codes(hidden) == ["E1405"]  # what the bad address hid


def test_the_table_lists_every_check_after_what_it_needs() -> None:
    rows = validate.TABLE.rows()
    names = [r.name for r in rows]
    assert len(set(names)) == len(names)
    for i, row in enumerate(rows):
        assert set(row.needs) <= set(names[:i]), row
    assert sorted(code for r in rows for code in r.codes) == [
        *(f"E104{n}" for n in range(1, 8)),  # the guest NUMA rules (validate_numa.py)
        "E1093", *(f"E14{n:02}" for n in range(1, 6)), *(f"E14{n:02}" for n in range(7, 20)),
        "E1430",
        "E2040"]


def test_a_prop_the_stdlib_does_not_declare_is_refused() -> None:
    port = machine(dev("p0", "pcie-root-port", "04.0",
                       props={"chassis": 1, "x-evil": "on"}))
    assert codes(port) == ["E2040"]
    wrong = machine(dev("p0", "pcie-root-port", "04.0", props={"chassis": "1,x=y"}))
    assert codes(wrong) == ["E2040"]


def test_a_machine_only_type_from_a_spec_is_refused() -> None:
    """`mch` is created by pc-q35's board code; QEMU refuses `-device mch` (E1430); the
    machine's own one passes."""
    spec = dev("m2", "mch", "05.0")
    assert codes(machine(spec)) == ["E1430"]
    assert codes(machine(dev("m2", "mch", "05.0", origin="machine"))) == []


def test_a_prop_the_target_release_lacks() -> None:
    """Rule `release`: e1000's `autonegotiation` is gone from QEMU 10.0 (`removed`): fine
    for 7.2 (the default), refused for a machine compiled for 10.0."""
    nic = dev("nic", "e1000", "05.0", props={"autonegotiation": False})
    old = machine(nic)
    assert codes(old) == []
    new = attrs.evolve(old, info=attrs.evolve(old.info, release="10.0"))
    assert codes(new) == ["E1093"]


def test_multifunction_on_function_zero_is_fine() -> None:
    ports = machine(dev("p0", "pcie-root-port", "04.0", props={"chassis": 1,
                                                               "multifunction": True}),
                    dev("p1", "pcie-root-port", "04.1", props={"chassis": 2}))
    assert codes(ports) == []


def test_a_read_only_drive_on_a_device_that_needs_it_writable() -> None:
    ro = {"b0": {**BLK["b0"], "read-only": True}}
    ahci = dev("ahci", "ich9-ahci", "06.0",
               buses=(tree.Bus("ahci.0", "ide", "unit",
                               (dev("d", "ide-hd", "0", backend={"drive": "b0"},
                                    notation="unit"),)),))
    assert diagnostics(machine(ahci, backends=ro)) == [
        ("E1414", "`d` (ide-hd) needs a writable blockdev, but `b0` is read-only")]
    assert codes(machine(ahci, backends=BLK)) == []


def test_requirements_and_cycles() -> None:
    # isa-serial requires an interrupt controller; take away every provider
    serial = dev("s", "isa-serial", props={"index": 0})
    lpc_only = tree.Machine(INFO, tree.Bus("main-system-bus", "system", "none", (
        dev("q35", "q35-pcihost", origin="machine", buses=(tree.Bus("pcie.0", "pcie", "pci", (
            dev("lpc", "ICH9-LPC", "1f.0", origin="machine",
                buses=(tree.Bus("isa.0", "isa", "none", (serial,)),)),)),)),)))
    assert diagnostics(lpc_only) == [
        ("E1407", "`s` (isa-serial) requires `interrupt-controller`, which no device of this "
                  "machine provides")]
    assert codes(machine(isa=(serial,))) == []
    # a provider that hangs below the device that requires it: a dependency cycle
    pic = dev("pic", "isa-i8259", props={"iobase": 0x20, "master": True}, origin="machine")
    loop = tree.Machine(INFO, tree.Bus("main-system-bus", "system", "none", (
        dev("s", "isa-serial", props={"index": 0},
            buses=(tree.Bus("isa.9", "isa", "none", (pic,)),)),)))
    assert diagnostics(loop) == [
        ("E1403", "`s` (isa-serial) cannot go on `main-system-bus`, a `system` bus"),
        ("E1408", "dependency cycle: `s` requires `interrupt-controller` from → `pic` sits on "
                  "a bus of `s`")]
    assert codes(machine(isa=(serial, pic))) == []
