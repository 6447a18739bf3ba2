"""Tests of compiler.qemu.process against the real QEMU binaries (no mocks)."""

from __future__ import annotations

import pytest
from qemu_support import machine_argv

from compiler.qemu import process
from compiler.qemu.process import QemuError, QtreeBus, QtreeDevice

Q35 = ["-machine", "pc-q35-7.2", "-nodefaults", "-accel", "tcg"]
PSERIES = ["-machine", "pseries-7.2", "-nodefaults", "-accel", "tcg", "-m", "1G"]


@pytest.fixture(scope="module")
def q35_tree() -> QtreeBus:
    return process.qtree_devices(machine_argv(Q35), timeout=20.0)


def test_q35_device_count(q35_tree: QtreeBus) -> None:
    assert q35_tree.name == "main-system-bus"
    assert q35_tree.type == "System"
    assert len(list(process.walk(q35_tree))) == 30


def test_q35_mch(q35_tree: QtreeBus) -> None:
    [(bus, mch)] = [(b, d) for b, d in process.walk(q35_tree) if d.type == "mch"]
    assert (bus.name, bus.type) == ("pcie.0", "PCIE")
    assert mch.addr == "00.0"
    assert mch.id == ""
    assert mch.prop("multifunction") == "false"


def test_q35_smbus_eeproms(q35_tree: QtreeBus) -> None:
    eeproms = [(b, d) for b, d in process.walk(q35_tree) if d.type == "smbus-eeprom"]
    assert len(eeproms) == 8
    assert {b.name for b, _ in eeproms} == {"i2c"}
    # Newest first, as QEMU lists them.
    assert [d.prop("address") for _, d in eeproms][:2] == ["87 (0x57)", "86 (0x56)"]


def test_q35_ahci_buses(q35_tree: QtreeBus) -> None:
    [ahci] = [d for _, d in process.walk(q35_tree) if d.type == "ich9-ahci"]
    assert ahci.addr == "1f.2"
    assert sorted(b.name for b in ahci.buses) == [f"ide.{i}" for i in range(6)]
    assert {b.type for b in ahci.buses} == {"IDE"}


def test_pseries_nvram() -> None:
    tree = process.qtree_devices(machine_argv(PSERIES), timeout=20.0)
    [(bus, nvram)] = [(b, d) for b, d in process.walk(tree) if d.type == "spapr-nvram"]
    assert nvram.id == "nvram@71000000"
    assert (bus.name, bus.type) == ("spapr-vio", "spapr-vio-bus")
    assert nvram.addr is None


def test_pseries_dump_dtb() -> None:
    dtb = process.dump_dtb(machine_argv(PSERIES), timeout=20.0)
    assert dtb[:4] == bytes.fromhex("d00dfeed")


def test_query_hmp_and_qmp() -> None:
    result = process.query(
        machine_argv(Q35),
        hmp=["info status"],
        qmp=[("query-status", {})],
        timeout=20.0,
    )
    assert "paused" in result.hmp[0]
    assert isinstance(result.qmp[0], dict)
    assert result.qmp[0]["status"] == "prelaunch"


def test_bad_device_raises_with_qemu_message() -> None:
    argv = machine_argv([*Q35, "-device", "nonexistent-device"])
    with pytest.raises(QemuError, match="is not a valid device model name") as info:
        process.query(argv, timeout=20.0)
    assert "nonexistent-device" in info.value.stderr


def test_failing_qmp_command_raises() -> None:
    argv = machine_argv(Q35)
    with pytest.raises(QemuError, match="no-such-command"):
        process.query(argv, hmp=[], qmp=[("no-such-command", {})], timeout=20.0)


def test_missing_binary_raises() -> None:
    with pytest.raises(QemuError, match="cannot start"):
        process.query(["/nonexistent/qemu-system-x86_64"], timeout=5.0)


def test_parse_qtree_literal() -> None:
    text = """\
bus: main-system-bus
  type System
  dev: hpet, id ""
    gpio-out "" 1
    timers = 3 (0x3)
    mmio 00000000fed00000/0000000000000400
  dev: q35-pcihost, id "host"
    bypass-iommu = false
    bus: pcie.0
      type PCIE
      dev: ICH9-SMB, id ""
        addr = 1f.3
        romfile = ""
        class SMBus, addr 00:1f.3, pci id 8086:2930 (sub 1af4:1100)
        bar 4: i/o at 0xffffffffffffffff [0x3e]
        bus: i2c
          type i2c-bus
          dev: smbus-eeprom, id ""
            address = 87 (0x57)
      dev: mch, id ""
        addr = 00.0
  dev: kvmvapic, id ""
"""
    eeprom = QtreeDevice("smbus-eeprom", "", None, (("address", "87 (0x57)"),), ())
    i2c = QtreeBus("i2c", "i2c-bus", (eeprom,))
    smb = QtreeDevice(
        "ICH9-SMB", "", "1f.3", (("addr", "1f.3"), ("romfile", '""')), (i2c,)
    )
    mch = QtreeDevice("mch", "", "00.0", (("addr", "00.0"),), ())
    pcie = QtreeBus("pcie.0", "PCIE", (smb, mch))
    host = QtreeDevice("q35-pcihost", "host", None, (("bypass-iommu", "false"),), (pcie,))
    hpet = QtreeDevice("hpet", "", None, (("timers", "3 (0x3)"),), ())
    vapic = QtreeDevice("kvmvapic", "", None, (), ())
    assert process.parse_qtree(text) == QtreeBus("main-system-bus", "System", (hpet, host, vapic))
    assert [(b.name, d.type) for b, d in process.walk(process.parse_qtree(text))] == [
        ("main-system-bus", "hpet"),
        ("main-system-bus", "q35-pcihost"),
        ("pcie.0", "ICH9-SMB"),
        ("i2c", "smbus-eeprom"),
        ("pcie.0", "mch"),
        ("main-system-bus", "kvmvapic"),
    ]


PXB_QTREE = """bus: main-system-bus
  type System
  dev: pxb-host, id ""
    bus: pxb1
      type pxb-pcie-bus
      dev: pcie-root-port, id "rp1"
        addr = 00.0
        bus: rp1
          type PCIE
  dev: pxb-host, id ""
    bus: lost
      type pxb-pcie-bus
  dev: q35-pcihost, id ""
    bus: pcie.0
      type PCIE
      dev: pxb-pcie, id "pxb1"
        addr = 04.0
      dev: pxb-pcie, id ""
        addr = 05.0
"""


def test_parse_qtree_hangs_an_expander_bus_below_its_expander() -> None:
    """QEMU 7.2 shows a pxb-pcie's bus under a `pxb-host` on the main system bus; the
    stdlib's `qtree-parent pxb-host` moves it below the pxb-pcie of the bus's name. An
    expander without id (its bus not named after it) stays as QEMU shows it; each device
    keeps its `dev:` line."""
    root = process.parse_qtree(PXB_QTREE)
    walked = [(b.name, d.type, d.id, d.line) for b, d in process.walk(root)]
    assert walked == [
        ("main-system-bus", "pxb-host", "", 2),
        ("main-system-bus", "q35-pcihost", "", 3),
        ("pcie.0", "pxb-pcie", "pxb1", 4),
        ("pxb1", "pcie-root-port", "rp1", 1),
        ("pcie.0", "pxb-pcie", "", 5),
    ]
    assert process.parse_qtree(PXB_QTREE, parents={}).devices[0].buses[0].name == "pxb1"


def test_parse_qtree_rejects_bad_indentation() -> None:
    with pytest.raises(ValueError, match="line 3"):
        process.parse_qtree('bus: main-system-bus\n  type System\n      dev: x, id ""\n')


def test_parse_qtree_keeps_a_string_value_that_runs_over_lines() -> None:
    # QEMU 7.2's isa-applesmc without `osk`: a 64-byte key with no NUL after it, printed
    # with whatever memory follows (seen: a newline, a form feed, bytes that are not UTF-8)
    key = "This is a dummy key. Enter the real key using the -osk parameter"
    text = ('bus: main-system-bus\n  type System\n  dev: isa-applesmc, id "dev0"\n'
            f'    iobase = 768 (0x300)\n    osk = "{key}\x0c\x85U\n\x0f\ufffdU"\n'
            '  dev: port92, id ""\n    gpio-out "a20" 1\n')
    root = process.parse_qtree(text, parents={})
    assert [d.type for d in root.devices] == ["isa-applesmc", "port92"]
    assert root.devices[0].prop("osk") == f'"{key}\x0c\x85U\n\x0f\ufffdU"'
    assert root.devices[0].prop("iobase") == "768 (0x300)"


def test_parse_qtree_rejects_a_string_value_never_closed() -> None:
    with pytest.raises(ValueError, match="line 4: a string value never closed"):
        process.parse_qtree('bus: main-system-bus\n  type System\n  dev: x, id ""\n'
                            '    osk = "open\nbus: other\n')
