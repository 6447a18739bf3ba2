"""Where devices go, as the schema language says it: `placement when COND { … }` picks the
placement under the machine's options (tests/lang/good/placement-when-ok.machine: arm
virt's GICv3 without an ITS takes no root ports), an `overflow` container's `inner-slots`
narrow the bus it adds, and a `provide` of a type that plugs into the kind it provides
(tests/lang/good/provide-self-plugging-ok.machine) ends in E1202 once every bus of that
kind is full, never in a provider of the provider of … (E9999)."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler import driver
from compiler.base.diagnostics import CompileError
from compiler.build import tree
from compiler.spec import loose

GOOD = Path(__file__).resolve().parent / "lang" / "good"
NIC = '[[device]]\ntype = "t-nic"\n'


def compiled(case: str, spec: str, tmp_path: Path) -> tree.Machine:
    library = driver.lint([GOOD / case])
    path = tmp_path / "vm.toml"
    path.write_text(spec, encoding="utf-8")
    return driver.compile_loose(loose.load(path), library)


def places(m: tree.Machine) -> dict[str, tuple[str, str]]:
    """id → (its bus, its address) of every device the spec or the compiler added."""
    return {d.id: (b.name, str(d.addr)) for b, d, _n in tree.walk(m.root)
            if d.origin != "machine"}


def test_the_placement_follows_the_options() -> None:
    library = driver.lint([GOOD / "placement-when-ok.machine"])
    for name in ("t-placement-when", "t-placement-when-older"):  # inherited with `extends`
        m = library.machines[name]
        assert m.placed_under({}).placement.port_device == "t-port"
        assert m.placed_under({"its": False}).placement.port_device is None
        assert m.placed_under({"its": False}).placement.overflow == ()
        (bridge,) = m.placed_under({"its": False, "gic-version": "2"}).placement.overflow
        assert (bridge.device, bridge.slots, bridge.inner) == ("t-bridge", (0x1e, 0x1f),
                                                               (0x01, 0x1f))


def test_a_compile_places_by_the_options_it_is_given(tmp_path: Path) -> None:
    spec = 'machine = "t-placement-when"\n' + NIC * 2
    assert places(compiled("placement-when-ok.machine", spec, tmp_path)) == {
        "rp0": ("pcie.0", "01.0"), "rp1": ("pcie.0", "01.1"), "rp2": ("pcie.0", "01.2"),
        "dev0": ("rp0", "00.0"), "dev1": ("rp1", "00.0")}
    no_its = spec + "[options]\nits = false\n"
    assert places(compiled("placement-when-ok.machine", no_its, tmp_path)) == {
        "dev0": ("pcie.0", "00.0"), "dev1": ("pcie.0", "01.0")}


def test_overflow_bridges_take_their_inner_slots(tmp_path: Path) -> None:
    """pcie.0 keeps 1e and 1f for the bridges: 30 nics fill 00..1d, the next ones go
    behind a bridge from its slot 1."""
    spec = ('machine = "t-placement-when"\n' + NIC * 32 +
            '[options]\nits = false\ngic-version = "2"\n')
    placed = places(compiled("placement-when-ok.machine", spec, tmp_path))
    assert placed["dev29"] == ("pcie.0", "1d.0")
    assert placed["br0"] == ("pcie.0", "1e.0")
    assert placed["dev30"] == ("br0", "01.0") and placed["dev31"] == ("br0", "02.0")


def test_a_provider_that_needs_its_own_kind_is_e1202(tmp_path: Path) -> None:
    """pci.0 has 4 slots: 4 nics fill it; the fifth asks `provide pci by t-bridge` for a
    bus, whose bridge finds no place either: one E1202 at the nic, naming the rule."""
    spec = 'machine = "t-provide-self"\n' + NIC * 5
    with pytest.raises(CompileError) as caught:
        compiled("provide-self-plugging-ok.machine", spec, tmp_path)
    (d,) = caught.value.diagnostics
    assert d.code == "E1202" and "`t-nic`" in d.message
    assert any("`provide pci by t-bridge` cannot add one" in n for n in d.notes)
