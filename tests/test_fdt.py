"""The device tree outputs: `--emit dtb` / `--emit dts`, the files `compile` writes, DTS
that dtc compiles back to the very same DTB, the pc-q35 description, the fdt language's
diagnostics and generic functions. Fidelity against QEMU is `test_fdt_qemu.py`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from qemu_support import require_binary

from compiler import driver
from compiler.base.diagnostics import CompileError
from compiler.emit import fdt, fdt_out
from compiler.emit.fdt_out import read_dtb
from compiler.lang import resolve

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted((ROOT / "tests" / "fdt").glob("*.toml")) + sorted(
    (ROOT / "tests" / "vm").glob("*.toml"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def mschema(*args: str, env: dict[str, str] | None = None,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.mark.parametrize("case", [rel(c) for c in CASES])
def test_dts_compiles_back_to_the_same_dtb(case: str, tmp_path: Path) -> None:
    dtc = require_binary("dtc")
    machine = driver.compile_input(ROOT / case)
    dtb, dts = fdt.dtb(machine), fdt.dts(machine)
    (tmp_path / "m.dts").write_text(dts, encoding="utf-8")
    done = subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "m.dtb"),
                           str(tmp_path / "m.dts")], capture_output=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "m.dtb").read_bytes() == dtb, f"{case}: dtc's DTB differs from ours"


def test_compile_writes_dtb_and_dts_beside_blob_and_argv(tmp_path: Path) -> None:
    done = mschema("compile", "tests/vm/pseries-full.toml", "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr.decode()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ppc01.argv.json", "ppc01.dtb", "ppc01.dts", "ppc01.json", "ppc01.sh"]
    dtb = (tmp_path / "ppc01.dtb").read_bytes()
    assert dtb[:4] == bytes.fromhex("d00dfeed")
    assert read_dtb(dtb).children, "an empty tree"
    dts = (tmp_path / "ppc01.dts").read_text(encoding="utf-8")
    assert dts.startswith("/dts-v1/;\n") and "vty@71000001 {" in dts
    one = mschema("compile", "tests/vm/pseries-full.toml", "--emit", "dtb",
                  "-o", str(tmp_path / "one.dtb"))
    assert one.returncode == 0 and (tmp_path / "one.dtb").read_bytes() == dtb
    shown = mschema("compile", "tests/vm/pseries-full.toml", "--emit", "dts")
    assert shown.returncode == 0 and shown.stdout.decode() == dts


def test_q35_compile_writes_a_device_tree_too(tmp_path: Path) -> None:
    done = mschema("compile", "tests/vm/q35-full.toml", "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "full.dtb").exists() and (tmp_path / "full.dts").exists()


def test_dtb_on_stdout_is_a_usage_error() -> None:
    done = mschema("compile", "tests/vm/pseries-minimal.toml", "--emit", "dtb")
    assert done.returncode == 2 and done.stdout == b""
    assert b"-o" in done.stderr


def test_failed_compile_writes_no_device_tree(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('machine = "pseries"\ncpus = 0\n', encoding="utf-8")
    out = tmp_path / "out"
    done = mschema("compile", str(bad), "-o", str(out))
    assert done.returncode == 1 and b"error[" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize("seed", ["0", "1"])
def test_same_bytes_whatever_the_hash_seed(seed: str, tmp_path: Path) -> None:
    done = mschema("compile", "tests/fdt/pseries-bridges.toml", "--emit", "dtb",
                   "-o", str(tmp_path / "a.dtb"), env={"PYTHONHASHSEED": seed})
    assert done.returncode == 0, done.stderr.decode()
    machine = driver.compile_input(ROOT / "tests/fdt/pseries-bridges.toml")
    assert (tmp_path / "a.dtb").read_bytes() == fdt.dtb(machine)


def test_q35_tree_describes_every_pci_device() -> None:
    """pc-q35: one node per PCI function of the blob, named by the IEEE 1275 PCI binding,
    with its qdev id; the cpus; RAM split below and above 4 GiB as QEMU splits it."""
    machine = driver.compile_input(ROOT / "tests/vm/q35-full.toml")
    blob = json.loads(__import__("compiler.emit.blob", fromlist=["blob"]).blob(machine))
    ids = set()

    def walk(devices: list[dict[str, object]], pci: bool) -> None:
        for d in devices:
            if pci:
                ids.add(d["id"])
            for bus in d.get("buses", []):  # type: ignore[attr-defined]
                walk(bus["devices"], bus["kind"] in ("pci", "pcie"))

    walk(blob["devices"], False)
    root = fdt.build(machine)
    named = {p.value[:-1].decode(): path for path, node in root.walk() for p in node.props
             if p.name == "qemu,id"}
    assert set(named) == ids
    assert named["mch"] == "/pcie@b0000000/host@0"
    assert re.fullmatch(r"/pcie@b0000000/pci@1(,\d)?/scsi@0", named["disk0"])
    cpus = [n for path, n in root.walk() if path.startswith("/cpus/cpu@")]
    assert len(cpus) == blob["cpus"]["count"]
    memory = dict((p.name, p.value) for p in next(
        n for path, n in root.walk() if path == "/memory@0").props)
    size = blob["memory"]["size"]
    low = min(size, 0x80000000) if size >= 0xB0000000 else size
    cells = [low.to_bytes(8, "big")]
    if size > low:
        cells += [(1 << 32).to_bytes(8, "big"), (size - low).to_bytes(8, "big")]
    assert memory["reg"] == bytes(8) + cells[0] + b"".join(cells[1:])


def test_virtio_ids_depend_on_the_bus() -> None:
    """Transitional on pcie.0 and conventional buses, modern-only behind a PCIe port."""
    machine = driver.compile_input(ROOT / "tests/vm/q35-full.toml")
    devices = {(p.value[:-1].decode()): node for _path, node in fdt.build(machine).walk()
               for p in node.props if p.name == "qemu,id"}
    dev_id = {p.name: p.value for p in devices["net0"].props}["device-id"]
    assert int.from_bytes(dev_id, "big") == 0x1041


# ---- the language ---------------------------------------------------------------------------
MACHINE = """use "buses"
device t-host {{ plugs system  bus pcie "pcie.0" {{ slot 0..0x1f }} }}
machine t-7.2 {{
    family t  arch x86_64  binary "qemu-system-x86_64"  qemu-machine "t-7.2"
    default-memory "128M"
    devices {{ host: t-host }}
    fdt {{ {body} }}
}}
"""


def _machine_with(tmp_path: Path, body: str) -> tuple[object, Path]:
    path = tmp_path / "t.machine"
    path.write_text(MACHINE.format(body=body), encoding="utf-8")
    library = resolve.load_library([path])
    from compiler.build import tree

    info = tree.MachineInfo("t", "t-7.2", "x86_64", "qemu-system-x86_64", ())
    host = tree.Device("host", "t-host", "machine",
                       buses=(tree.Bus("pcie.0", "pcie", "pci"),))
    m = tree.Machine(info, tree.Bus("main-system-bus", "system", "none", (host,)),
                     (("count", 2),), (("size", 1 << 30),))
    return fdt.build(m, library), path


def test_values_loops_and_expressions(tmp_path: Path) -> None:
    root, _ = _machine_with(tmp_path, '''
        let n = cpus.count
        prop "cells" = <1 (n * 2 + 1) (u64(memory)) (for i in 0 .. n - 1 : i (i << 4))>
        prop "strings" = "a", "cpu{i:02x}" for i in 1 .. n
        prop "bytes" = [0x12 0 0xff]
        prop "mixed" = <n>, "x"
        prop "flag" when memory > 0x100 and not (n == 3)
        prop "gone" when n != 2
        node "blk@{b:x}" for b, s in pow2-blocks(0x1000, 0x7000) { prop "s" = <s> }''')
    assert isinstance(root, fdt_out.Node)
    props = {p.name: p.value for p in root.props}
    assert props["cells"] == b"".join(
        c.to_bytes(4, "big") for c in [1, 5, 0, 1 << 30, 0, 0, 1, 16])
    assert props["strings"] == b"a\0cpu01\0cpu02\0"
    assert props["bytes"] == b"\x12\x00\xff"
    assert props["mixed"] == b"\0\0\0\2x\0"
    assert props["flag"] == b"" and "gone" not in props
    assert [c.name for c in root.children] == ["blk@1000", "blk@2000", "blk@4000", "blk@6000"]


def test_unknown_variable_is_reported_at_its_place(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as info:
        _machine_with(tmp_path, 'prop "x" = <nope>')
    (d,) = info.value.diagnostics
    assert d.code == "E1901" and "`nope`" in d.message and d.span.path.endswith("t.machine")


def test_unknown_function_and_device_type_fail_lint(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as info:
        _machine_with(tmp_path, 'prop "x" = frobnicate(1)\nchildren no-such-device')
    codes = sorted(d.code for d in info.value.diagnostics)
    assert codes == ["E0201", "E0202"]


def _cells(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in values)


# function → an fdt body that calls it (2 cpus, 1 GiB, one `t-host` without a node of its
# own), and the root's props and child nodes it gives
FUNCTION_CASES: dict[str, tuple[str, dict[str, bytes], list[str]]] = {
    "u64": ('prop "v" = <(u64(memory))>', {"v": _cells(0, 1 << 30)}, []),
    "min": ('prop "v" = <(min(3, cpus.count))>', {"v": _cells(2)}, []),
    "max": ('prop "v" = <(max(3, cpus.count))>', {"v": _cells(3)}, []),
    "log2ceil": ('prop "v" = <(log2ceil(5))>', {"v": _cells(3)}, []),
    "pow2floor": ('prop "v" = <(pow2floor(5))>', {"v": _cells(4)}, []),
    "pow2-blocks": ('node "b@{b:x}" for b, s in pow2-blocks(0x1000, 0x3000) { }', {},
                    ["b@1000", "b@2000"]),
    "reversed": ('node "b@{b:x}" for b, s in reversed(pow2-blocks(0x1000, 0x3000)) { }', {},
                 ["b@2000", "b@1000"]),
    "mac-bytes": ('prop "v" = mac-bytes("52:54:00:12:34:56")',
                  {"v": bytes.fromhex("525400123456")}, []),
    "pci-reg": ('let bars = <0x10 1 0x20 0x20 3 0>\nprop "v" = pci-reg(1, 0x11, bars)',
                {"v": _cells(0x11100, 0, 0, 0, 0, 0x1011110, 0, 0, 0, 0x20,
                             0x3011120, 0, 0, 0, 0)}, []),
    "has": ('prop "v" when has(t-host)\nprop "w" when not has(t-host)', {"v": b""}, []),
    "first-path": ('prop "v" = first-path(t-host)', {"v": b"\0"}, []),
    "boot-list": ('prop "v" = boot-list()', {"v": b"\0"}, []),
    "defined": ('prop "v" when defined(memory)\nprop "w" when defined(nope)', {"v": b""}, []),
    "count": ('prop "v" = <(count(t-host) + 1)>', {"v": _cells(2)}, []),
}


def test_every_function_has_a_behaviour_case() -> None:
    assert sorted(FUNCTION_CASES) == sorted(resolve.FDT_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTION_CASES))
def test_every_function_is_implemented(name: str, tmp_path: Path) -> None:
    """Each function of the fdt language evaluates, to what it is documented to give."""
    body, props, children = FUNCTION_CASES[name]
    root, _ = _machine_with(tmp_path, body)
    assert isinstance(root, fdt_out.Node)
    assert {p.name: p.value for p in root.props} == props
    assert [c.name for c in root.children] == children


def test_first_path_and_boot_list_name_nodes() -> None:
    """On a node that exists, `first-path` and `boot-list` give its path (pseries' chosen)."""
    machine = driver.compile_input(ROOT / "tests/vm/pseries-full.toml")
    [chosen] = [n for path, n in fdt.build(machine).walk() if path == "/chosen"]
    props = {p.name: p.value for p in chosen.props}
    assert props["stdout-path"] == b"/vdevice/vty@71000001\0"
    assert props["qemu,boot-list"] == b"/pci@800000020000000/scsi@0\0"


def test_pci_reg_and_blocks() -> None:
    from compiler.emit.fdt import _pci_reg, _pow2_blocks

    assert _pci_reg(1, 0x11, (0x10, 1, 0x20, 0x20, 3, 1 << 33)) == (
        0x11100, 0, 0, 0, 0, 0x1011110, 0, 0, 0, 0x20, 0x3011120, 0, 0, 2, 0)
    assert _pow2_blocks(0x80000000, 0xC0000000) == ((0x80000000, 0x40000000),)
    assert _pow2_blocks(0x400000000, 0x500000000) == ((0x400000000, 0x100000000),)
