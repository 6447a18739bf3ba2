"""The interrupts of sPAPR VIO devices (validate's `address-interrupts`, E1418) against
QEMU 7.2: for regs given in the spec, the compiler refuses exactly the machines QEMU
refuses (`IRQ N is not free`), naming the same interrupt, and accepts the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from qemu_support import machine_argv

from compiler import driver
from compiler.base.diagnostics import CompileError
from compiler.qemu import process

# regs of spapr-vscsi devices, in order, and the interrupt QEMU refuses (None: accepted)
CASES = [
    ((0x71000105, 0x5000), 0x1105),  # QEMU's own range against libvirt's 0x1000 steps
    ((0x1000, 0x71000001), 0x1101),
    ((0x30001000, 0x710000F1), 0x11F1),  # a libvirt vty reg
    ((0x71000100,), 0x1100),  # against the machine's NVRAM at 0x71000000
    ((0x71000105, 0x6000), None),
    ((0x2000, 0x71000001, 0x30000000), None),
]


def _spec(regs: tuple[int, ...], directory: Path) -> Path:
    path = directory / "vio.toml"
    path.write_text('machine = "pseries-7.2"\n' + "".join(
        f'\n[[device]]\ntype = "spapr-vscsi"\nid = "vs{i}"\naddr = "{reg:#x}"\n'
        for i, reg in enumerate(regs)), encoding="utf-8")
    return path


def _qemu_refuses(regs: tuple[int, ...]) -> str | None:
    devices = [a for i, reg in enumerate(regs)
               for a in ("-device", f"spapr-vscsi,id=vs{i},reg={reg:#x}")]
    try:
        process.query(machine_argv(["-machine", "pseries-7.2", "-nodefaults", *devices]),
                      hmp=())
    except process.QemuError as exc:
        return exc.stderr
    return None


@pytest.mark.parametrize(("regs", "irq"), CASES, ids=lambda v: str(v))
def test_vio_interrupts_as_qemu(regs: tuple[int, ...], irq: int | None,
                                tmp_path: Path) -> None:
    refused = _qemu_refuses(regs)
    assert (refused is not None) == (irq is not None), refused
    try:
        driver.compile_input(_spec(regs, tmp_path))
        codes: list[str] = []
    except CompileError as exc:
        codes = [d.code for d in exc.diagnostics]
        (d,) = exc.diagnostics
        assert f"`IRQ {irq} is not free`" in d.notes[0]
    if irq is None:
        assert codes == []
    else:
        assert refused is not None and f"IRQ {irq} is not free" in refused
        assert codes == ["E1418"]
