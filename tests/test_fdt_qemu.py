"""Fidelity of the pseries device tree: for each spec, the DTB mschema emits and the one
QEMU builds for the emitted argv (`-machine pseries-7.2,dumpdtb=FILE`; QEMU 7.2, or QEMU
10.0 for the machine versions 7.2 lacks: `tests/fdt/pseries-8.0-*`, `pseries-10.0-*`) are compared
node by node and property by property, as bytes: the same nodes with their subnodes in the
same order, the same properties in the same order with the same values.

Only what QEMU itself randomises or orders by a hash table is normalised: the value of
`/chosen/rng-seed` (its length is kept) and the four `ibm,drc-*` arrays of a node, sorted
together by index (`spapr_dt_drc` walks a QOM property hash table). Cases: every spec in
`tests/fdt/` and every golden VM case (`tests/vm/`) whose machine QEMU hands a device tree
(`quirk dumpdtb = true` in its schema: pseries today).

`KNOWN_DIFFERENCES` names what cannot match yet (none today); each entry is a strict xfail.
"""

from __future__ import annotations

import json
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import vm_support
from qemu_support import binary_of, has_dumpdtb, machine_qemu, require_binary, schema

from compiler import driver
from compiler.emit import argv as argv_emit
from compiler.emit import blob as blob_emit
from compiler.emit import fdt
from compiler.qemu import fdt_check, process

ROOT = Path(__file__).resolve().parent.parent


def spec_machine(spec: Path) -> str:
    return str(tomllib.loads(spec.read_text(encoding="utf-8"))["machine"])


SPECS = [spec for folder in ("fdt", "vm") for spec in sorted((ROOT / "tests" / folder).glob(
    "*.toml")) if has_dumpdtb(spec_machine(spec))]
# spec (relative to the repo) → why its device tree cannot match QEMU's yet
KNOWN_DIFFERENCES: dict[str, str] = {}

def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def differences(ours: bytes, theirs: bytes, machine: str = "pseries") -> list[str]:
    """Every difference between two DTBs, one line each (`compiler.qemu.fdt_check`: nodes and
    properties as bytes, in order; the machine's `quirk fdt-random` props and the DRC arrays
    normalised)."""
    random = fdt_check.random_props(schema(machine))
    return [d.message for d in fdt_check.whole_tree_differences(
        fdt_check.read_dtb(ours), fdt_check.read_dtb(theirs), random)]


def _cells(data: bytes) -> list[bytes]:
    return [data[i:i + 4] for i in range(0, len(data), 4)]


def _backing_files(blob: dict[str, object], directory: Path) -> None:
    vm_support.make_host_files(blob, directory)


def both_trees(spec: Path, scratch: Path) -> tuple[bytes, bytes]:
    """(mschema's DTB, QEMU's DTB) for `spec`."""
    machine = driver.compile_input(spec)
    ours = fdt.dtb(machine)
    args = argv_emit.argv(machine)
    qemu = machine_qemu(machine.info.qemu)  # QEMU 10.0 for pseries-8.0 and newer
    _backing_files(json.loads(blob_emit.blob(machine)), scratch)
    theirs = process.dump_dtb(vm_support.runnable_argv([*qemu, *args[1:]], str(scratch)),
                           timeout=60.0)
    return ours, theirs


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bytes]]:
    """Every case's two trees, QEMU run two at a time."""
    for name in sorted({binary_of(spec_machine(spec)) for spec in SPECS}):
        require_binary(name)

    def one(spec: Path) -> tuple[str, tuple[bytes, bytes]]:
        return rel(spec), both_trees(spec, tmp_path_factory.mktemp(spec.stem))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, SPECS))


def test_enough_cases() -> None:
    own = [s for s in SPECS if s.parent.name == "fdt"]
    assert len(own) >= 12, own


@pytest.mark.parametrize("spec", [
    pytest.param(rel(s), marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[rel(s)])]
                 if rel(s) in KNOWN_DIFFERENCES else [])
    for s in SPECS])
def test_same_tree_as_qemu(spec: str, dumped: dict[str, tuple[bytes, bytes]]) -> None:
    ours, theirs = dumped[spec]
    problems = differences(ours, theirs, spec_machine(ROOT / spec))
    assert not problems, f"{spec}: {len(problems)} difference(s) from QEMU's tree:\n  " + \
        "\n  ".join(problems)


def _edit(dtb: bytes, path: str, prop: str, value: bytes) -> bytes:
    """`dtb` with one property's value replaced, written back through pylibfdt."""
    import libfdt

    tree = libfdt.Fdt(bytearray(dtb))
    tree.setprop(tree.path_offset(path), prop, value)
    return bytes(tree.as_bytearray())


def test_comparison_is_not_vacuous(dumped: dict[str, tuple[bytes, bytes]]) -> None:
    ours = dumped["tests/fdt/pseries-bridges.toml"][0]
    assert not differences(ours, ours)
    changed = _edit(ours, "/pci@800000020000000", "ibm,pe-total-#msi", b"\0\0\0\1")
    assert differences(ours, changed)
    # the DRC arrays in another order are the same; another index is not
    root = fdt_check.read_dtb(ours)
    indexes, names_prop = root.prop("ibm,drc-indexes"), root.prop("ibm,drc-names")
    assert indexes is not None and names_prop is not None
    head, cells = indexes[:4], _cells(indexes[4:])
    names = names_prop[4:].split(b"\0")[:len(cells)]
    swapped = _edit(_edit(ours, "/", "ibm,drc-indexes", head + b"".join([cells[1], cells[0],
                                                                         *cells[2:]])),
                    "/", "ibm,drc-names", head + b"".join(n + b"\0" for n in
                                                          [names[1], names[0], *names[2:]]))
    assert not differences(ours, swapped)
    wrong = _edit(ours, "/", "ibm,drc-indexes", head + b"".join([b"\x20\0\0\x63", *cells[1:]]))
    assert differences(ours, wrong)
    seeded = _edit(ours, "/chosen", "rng-seed", bytes(range(32)))
    assert not differences(ours, seeded)
    # only because pseries' `quirk fdt-random` says so: without it the seed is compared
    assert differences(ours, seeded, "pc-q35")
    assert len(list(root.walk())) > 10
