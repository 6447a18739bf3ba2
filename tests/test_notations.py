"""The address-notation registry (`compiler/base/notations.py`) is the one place that knows
notations: each class round-trips its CONTRACT text and says what QEMU and the FDT call an
address; and no module outside the registry compares a notation with a notation's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compiler.base import notations

ROOT = Path(__file__).resolve().parent.parent
COMPILER = ROOT / "compiler"
REGISTRY_FILE = COMPILER / "base" / "notations.py"

NAMES = "|".join(notations.REGISTRY)
_NAME = rf"""["']({NAMES})["']"""
# a comparison with a notation name on a line about notations (`notation == "pci"`,
# `bus.space.notation in ("none", "vio")`, `self.notation(r) == "usb"`), or a notation named
# by a literal where it should come from the bus (`notations.parse("pci", …)`, `REGISTRY["vio"]`)
CHAIN = [
    re.compile(rf"notation.*(==|!=|\bin\b)\s*\(?[^=]*{_NAME}"),
    re.compile(rf"{_NAME}\s*(==|!=)\s*.*notation"),
    re.compile(rf"notations\.(parse|format|get)\(\s*{_NAME}"),
    re.compile(rf"REGISTRY\[\s*{_NAME}\s*\]"),
]


def chains(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if not line.lstrip().startswith("#") and any(p.search(line) for p in CHAIN)]


def test_no_notation_chain_outside_the_registry() -> None:
    found = {str(path.relative_to(ROOT)): hits for path in sorted(COMPILER.rglob("*.py"))
             if path != REGISTRY_FILE and (hits := chains(path.read_text(encoding="utf-8")))}
    assert found == {}, "ask `notations.get(name)` (base/notations.py) instead"


@pytest.mark.parametrize("line", [
    'if notation == "pci":',
    'if bus.space.notation in ("none", "vio"):',
    'if self.notation(group[0]) == "usb":',
    'if "scsi" == space.notation:',
    'slot, fn = notations.parse("pci", d.addr)',
    'unit = notations.REGISTRY["vio"]',
])
def test_the_chain_detector_sees_chains(line: str) -> None:
    assert chains(line) == [line]


@pytest.mark.parametrize("line", [
    'if item.kind == "usb":',  # a loose-spec item kind
    'PCI_KINDS = ("pci", "pcie")',  # bus kinds
    'if notations.get(bus.notation).pci_hierarchy:',
])
def test_the_chain_detector_leaves_other_names(line: str) -> None:
    assert chains(line) == []


@pytest.mark.parametrize(("name", "text", "addr"), [
    ("pci", "1f.3", (0x1F, 3)),
    ("vio", "0x71000001", (0x71000001,)),
    ("scsi", "0:3:1", (0, 3, 1)),
    ("usb", "4.2", (4, 2)),
    ("unit", "1", (1,)),
])
def test_parse_and_format_round_trip(name: str, text: str, addr: tuple[int, ...]) -> None:
    rules = notations.REGISTRY[name]
    assert rules.parse(text) == addr
    assert rules.format(addr) == text


def test_syntax_errors_carry_the_notations_help() -> None:
    for name, rules in notations.REGISTRY.items():
        with pytest.raises(notations.AddressSyntaxError, match=re.escape(rules.syntax_help)):
            rules.parse("nonsense")
        assert notations.SYNTAX_HELP[name] == rules.syntax_help


@pytest.mark.parametrize(("name", "addr", "props"), [
    ("pci", (2, 0), {"addr": "0x02.0x0"}),
    ("vio", (0x71000001,), {"reg": 0x71000001}),
    ("scsi", (0, 3, 1), {"channel": 0, "scsi-id": 3, "lun": 1}),
    ("usb", (1, 2), {"port": "1.2"}),
    ("unit", (1,), {"unit": 1}),
    ("none", (), {}),
])
def test_qemu_props(name: str, addr: tuple[int, ...], props: dict[str, object]) -> None:
    assert notations.REGISTRY[name].qemu(addr) == props


@pytest.mark.parametrize(("name", "addr", "unit", "variables"), [
    ("pci", (0x1F, 3), "1f,3", {"slot": 0x1F, "fn": 3, "devfn": 0xFB}),
    ("pci", (4, 0), "4", {"slot": 4, "fn": 0, "devfn": 0x20}),
    ("vio", (0x71000001,), "71000001", {"reg": 0x71000001}),
    ("scsi", (0, 3, 1), "", {"channel": 0, "target": 3, "lun": 1}),
    ("usb", (2,), "", {"port": "2"}),
    ("unit", (0,), "", {"unit-number": 0}),
])
def test_fdt(name: str, addr: tuple[int, ...], unit: str, variables: dict[str, object]) -> None:
    rules = notations.REGISTRY[name]
    assert rules.fdt_unit(addr) == unit
    assert rules.fdt_vars(addr) == variables


class _Free:
    def __init__(self, taken: set[int]) -> None:
        self.taken = taken

    def first_free(self, lo: int, hi: int) -> int | None:
        return next((v for v in range(lo, hi + 1) if v not in self.taken), None)


def test_next_free_follows_the_ranges_and_tags() -> None:
    usb = notations.AddressSpace("usb", (("port", (notations.FieldRange(1, 2, "usb2"),
                                                   notations.FieldRange(3, 4, "usb3"))),))
    rules = usb.rules
    assert rules.next_free(usb, _Free({1}), None, None) == (2,)
    assert rules.next_free(usb, _Free({1}), "usb3", None) == (3,)
    assert rules.next_free(usb, _Free({1, 2, 3, 4}), None, None) is None
    pci = notations.AddressSpace("pci", (("slot", (notations.FieldRange(1, 0x1F),)),))
    assert pci.rules.next_free(pci, _Free({1, 2}), None, None) == (3, 0)
    vio = notations.AddressSpace("vio", (("reg", (notations.FieldRange(0x1000, 0x1001),)),))
    assert vio.rules.next_free(vio, _Free(set()), None, 0x1001) == (0x1001,)
    assert vio.rules.next_free(vio, _Free({0x1001}), None, 0x1001) is None
    assert notations.get("none").next_free(notations.AddressSpace("none"), _Free(set()),
                                           None, None) == ()


def test_an_address_prints_its_contract_text() -> None:
    addr = notations.Address.parse("pci", "0x1f.3")
    assert (addr.value, str(addr)) == ((0x1F, 3), "1f.3")
    assert notations.Address.as_written("pci", "1f.3") == addr


def test_a_blob_address_spelt_otherwise_is_kept_as_written() -> None:
    """So that the blob's check against its rebuilt tree reports it as the user wrote it."""
    other = notations.Address.as_written("pci", "0x1f.3")
    assert str(other) == "0x1f.3" and other != notations.Address("pci", (0x1F, 3))
    assert str(notations.Address.as_written("pci", "zz")) == "zz"
