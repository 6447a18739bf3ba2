"""`mschema verify` against the real QEMU 7.2 (CONTRACT): agreeing and disagreeing cases on
both machines, and the host problems that must be one diagnostic, never a hang or a
traceback.

QEMU can only disagree with a blob that compiles if the machine schema is wrong, since the
argv is derived from the blob: so disagreements are made two ways. In process, a compiled
machine with a device the machine creates taken out or moved (what a wrong schema would
predict) goes through `verify.verify`; on the command line, `--qemu` names a wrapper that
starts the real QEMU with one device more (what a QEMU build unlike the schema would do).
A blob edited by hand so that it omits a machine device is refused before QEMU starts
(E1605, `compiler/build/precise.py`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from corpus_support import codes_of
from qemu_support import (
    binary_of,
    case_family,
    families,
    has_dumpdtb,
    release_argv,
    require_binary,
)
from vm_support import read_argv_golden

from compiler import driver
from compiler.base import notations
from compiler.build import tree
from compiler.lang import resolve
from compiler.qemu import compare, verify

ROOT = Path(__file__).resolve().parent.parent
VM = ROOT / "tests" / "vm"


def mschema(*args: str, cwd: Path = ROOT, path: str = "/usr/bin:/bin"
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": path})


def backing_files(case: str, directory: Path) -> None:
    """The image files a golden case's spec names, in `directory` (where QEMU runs)."""
    blob = json.loads((VM / f"{case}.json").read_text(encoding="utf-8"))
    for name, fmt in verify.backing_files(blob):
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "qcow2":
            subprocess.run([require_binary("qemu-img"), "create", "-q", "-f", "qcow2",
                            str(target), "64M"], check=True, timeout=30)
        else:
            target.write_bytes(b"\0" * 65536)


def machine_of(case: str) -> str:
    """The machine family of a golden case, from its name (tests/qemu_support.py)."""
    family = case_family(case)
    assert family is not None, case
    return family


# --------------------------------------------------------------------------
# Agreeing


# each family's `…-full` golden case (by name, tests/qemu_support.py): a new family's is
# verified with no edit here
FULL_CASES = sorted(p.stem for p in VM.glob("*-full.toml") if case_family(p.stem))


def test_every_family_has_a_full_case() -> None:
    assert sorted({case_family(c) for c in FULL_CASES}) == sorted(families())


@pytest.mark.parametrize("case", FULL_CASES)
def test_a_spec_agrees(case: str, tmp_path: Path) -> None:
    require_binary(binary_of(machine_of(case)))
    backing_files(case, tmp_path)
    result = mschema("verify", str(VM / f"{case}.toml"), "--user-net", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert "QEMU built the" in result.stdout and "predicts" in result.stdout
    assert "(paused with -S: the guest never ran)" in result.stdout  # and says so
    if has_dumpdtb(machine_of(case)):
        assert "device tree" in result.stdout, "a machine with a DTB compares it too"


@pytest.mark.parametrize("case", ["q35-disk-interfaces", "pseries-vscsi"])
def test_a_blob_agrees(case: str, tmp_path: Path) -> None:
    require_binary(binary_of(machine_of(case)))
    backing_files(case, tmp_path)
    result = mschema("verify", str(VM / f"{case}.json"), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


# --------------------------------------------------------------------------
# Disagreeing: a prediction that is wrong about what the machine creates


def _edited(bus: tree.Bus, edit: Callable[[tree.Device], tree.Device | None]) -> tree.Bus:
    devices = []
    for d in bus.devices:
        changed = edit(d)
        if changed is not None:
            devices.append(attrs.evolve(changed, buses=tuple(_edited(b, edit)
                                                             for b in changed.buses)))
    return attrs.evolve(bus, devices=tuple(devices))


def _verify_edited(case: str, edit: Callable[[tree.Device], tree.Device | None],
                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    require_binary(binary_of(machine_of(case)))
    backing_files(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    machine = driver.compile_input(VM / f"{case}.json")
    wrong = attrs.evolve(machine, root=_edited(machine.root, edit))
    outcome = verify.verify(wrong, resolve.load_library(), verify.input_start(
        str(VM / f"{case}.json")), user_net=True)
    return [(d.code, d.message) for d in outcome.diagnostics]


def _moved(device: tree.Device, text: str) -> notations.Address:
    """`device`'s address as `text`, in its own notation."""
    assert device.addr is not None
    return notations.Address.parse(device.addr.notation, text)


NVRAM_LACKING = ("E1711", "`/vdevice/nvram@71000000`: a node of QEMU's device tree that the "
                          "prediction lacks")
# case → (the machine device left out of the blob, what verify says)
OMITTED = {
    "q35-minimal": ("hpet", [("E1704", "QEMU built hpet on `main-system-bus` (system), which "
                                       "the blob does not list")]),
    "pseries-minimal": ("spapr-nvram", [
        ("E1704", "QEMU built spapr-nvram on `spapr-vio` (vio) at 0x71000000, which the blob "
                  "does not list"), NVRAM_LACKING]),
}
# case → (the machine device moved in the blob, its wrong address, what verify says)
MOVED = {
    "q35-minimal": ("ich9-ahci", "1f.5", [
        ("E1706", "ich9-ahci is on `pcie.0` at 1f.2 in QEMU, on `pcie.0` at 1f.5 in the blob")]),
    "pseries-minimal": ("spapr-nvram", "0x71000009", [
        ("E1706", "spapr-nvram is on `spapr-vio` at 0x71000000 in QEMU, on `spapr-vio` at "
                  "0x71000009 in the blob"), NVRAM_LACKING,
        ("E1711", "`/vdevice/nvram@71000009`: a node QEMU's device tree does not have")]),
}


@pytest.mark.parametrize("case", sorted(OMITTED))
def test_catches_an_omitted_machine_device(case: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    dtype, expected = OMITTED[case]
    found = _verify_edited(case, lambda d: None if d.type == dtype else d, tmp_path,
                           monkeypatch)
    assert found == expected


@pytest.mark.parametrize("case", sorted(MOVED))
def test_catches_a_machine_device_at_the_wrong_address(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dtype, addr, expected = MOVED[case]
    found = _verify_edited(case, lambda d: attrs.evolve(d, addr=_moved(d, addr)) if d.type == dtype
                           else d, tmp_path, monkeypatch)
    assert found == expected


def test_agreeing_edit_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path with nothing changed finds nothing: the findings above are real."""
    assert _verify_edited("pseries-minimal", lambda d: d, tmp_path, monkeypatch) == []


def _rng_more(case: str, host_at: str, bus: str, kind: str) -> list[tuple[str, str, str]]:
    """What verify says when QEMU builds a virtio-rng-pci more, at 1e.0 of `bus`."""
    spec = f"tests/vm/{case}.toml"
    return [(host_at, "E1704", f"QEMU built virtio-rng-pci on `{bus}` ({kind}) at 1e.0, which "
                               "the blob does not list"),
            (spec, "E1704", "QEMU built virtio-rng-device on `virtio-bus` (virtio), which the "
                            "blob does not list"),
            (spec, "E1709", "QEMU built bus `virtio-bus` (virtio) of virtio-rng-pci, which the "
                            "blob does not list")]


MORE = [
    ("q35-minimal", "pcie.0",
     _rng_more("q35-minimal", "schemas/pc-q35/pc-q35-7.2.machine", "pcie.0", "pcie")),
    ("pseries-minimal", "pci.0",
     [*_rng_more("pseries-minimal", "schemas/pseries/pseries-7.2.machine", "pci.0", "pci"),
      ("tests/vm/pseries-minimal.toml", "E1711", "`/pci@800000020000000/legacy-device@1e`: "
                                                 "a node of QEMU's device tree that the "
                                                 "prediction lacks")]),
]
HEADER = re.compile(r"^(?P<path>[^\n]+?):\d+:\d+: error\[(?P<code>E\d{4})\]: (?P<message>.*)$",
                    re.MULTILINE)


def diagnostics(stderr: str) -> list[tuple[str, str, str]]:
    """(path relative to the repository, code, message) of each diagnostic, in order."""
    return [(str(Path(m["path"]).relative_to(ROOT)), m["code"], m["message"])
            for m in HEADER.finditer(stderr)]


@pytest.mark.parametrize(("case", "bus", "expected"), MORE, ids=[c for c, _, _ in MORE])
def test_a_qemu_that_builds_more(case: str, bus: str, expected: list[tuple[str, str, str]],
                                 tmp_path: Path) -> None:
    """`--qemu`: a wrapper adding a device; each difference is a CONTRACT diagnostic (and a
    machine with a device tree finds the node too many there as well)."""
    binary = require_binary(binary_of(machine_of(case)))
    wrapper = tmp_path / "qemu-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {binary} "$@" -device virtio-rng-pci,bus={bus},'
                       'addr=0x1e\n', encoding="utf-8")
    wrapper.chmod(0o755)
    result = mschema("verify", str(VM / f"{case}.toml"), "--qemu", str(wrapper), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert diagnostics(result.stderr) == expected, result.stderr
    as_json = mschema("verify", str(VM / f"{case}.toml"), "--qemu", str(wrapper),
                      "--format", "json", cwd=tmp_path)
    listed = json.loads(as_json.stderr)
    assert as_json.returncode == 1
    assert [(str(Path(d["path"]).relative_to(ROOT)), d["code"], d["message"])
            for d in listed] == expected


def test_a_blob_omitting_a_machine_device_is_refused_before_qemu(tmp_path: Path) -> None:
    result = mschema("verify", str(ROOT / "tests/blob/bad/omits-machine-device.json"),
                     "--qemu", str(tmp_path / "never-started"), cwd=tmp_path)
    assert result.returncode == 1
    assert codes_of(result.stderr) == ["E1605"], result.stderr


def test_differences_point_at_the_input(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A difference about a device of a blob points at its `id` there."""
    require_binary(binary_of("q35"))
    backing_files("q35-minimal", tmp_path)
    monkeypatch.chdir(tmp_path)
    machine = driver.compile_input(VM / "q35-minimal.json")
    moved = attrs.evolve(machine, root=_edited(
        machine.root, lambda d: attrs.evolve(d, addr=_moved(d, "1f.5")) if d.id == "sata" else d))
    outcome = verify.verify(moved, resolve.load_library(), verify.input_start("x.json"))
    (diag,) = [d for d in outcome.diagnostics if d.code == "E1706"]
    assert diag.span.path == str(VM / "q35-minimal.json")
    assert diag.span.source.text[diag.span.start:diag.span.end] == '"sata"'


def test_device_tree_nodes_without_the_emitter(tmp_path: Path) -> None:
    """The fallback when no FDT emitter can predict the tree: QEMU's VIO and PCI nodes,
    cpus and memory against the blob; a VIO device or a PCI function too many is seen."""
    from compiler.qemu import compare, fdt_check, process

    case = "pseries-full"
    binary = require_binary(binary_of(machine_of(case)))
    backing_files(case, tmp_path)
    blob = json.loads((VM / f"{case}.json").read_text(encoding="utf-8"))
    argv = read_argv_golden(VM / f"{case}.argv")
    dtb = process.dump_dtb(verify.runnable_argv([binary, *argv[1:]], str(tmp_path)))
    root = fdt_check.read_dtb(dtb)
    library, info = resolve.load_library(), compare.bus_info()
    assert fdt_check.node_differences(blob, root, library, info) == []
    vio = next(b for d in blob["devices"] for b in d.get("buses", []) if b["kind"] == "vio")
    vio["devices"] = [d for d in vio["devices"] if d["type"] != "spapr-vty"]
    pci = next(b for d in blob["devices"] for b in d.get("buses", []) if b["name"] == "pci.0")
    pci["devices"].append({"id": "x", "type": "virtio-rng-pci", "origin": "spec",
                           "addr": "1d.0", "props": {}})
    found = [d.message for d in fdt_check.node_differences(blob, root, library, info)]
    assert any("`vty@71000001` that the blob does not predict" in m for m in found), found
    assert any("no node for `x` (virtio-rng-pci) at 1d.0" in m for m in found), found


# --------------------------------------------------------------------------
# Host problems: one diagnostic each, before QEMU starts or within the timeout


def test_no_such_qemu_binary(tmp_path: Path) -> None:
    result = mschema("verify", str(VM / "q35-minimal.toml"), "--qemu",
                     str(tmp_path / "qemu-nope"))
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E1701"]), result.stderr
    assert "Traceback" not in result.stderr


def test_qemu_not_on_path(tmp_path: Path) -> None:
    result = mschema("verify", str(VM / "pseries-minimal.toml"), path=str(tmp_path))
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E1701"]), result.stderr
    assert f"`{binary_of('pseries')}` is not on PATH" in result.stderr
    assert "--qemu PATH" in result.stderr


def test_missing_backing_files(tmp_path: Path) -> None:
    """Checked before QEMU starts: the binary named here would fail the test if run."""
    require_binary(binary_of("q35"))
    result = mschema("verify", str(VM / "q35-full.toml"), "--user-net", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    # each points at the spec entry that names the file
    assert diagnostics(result.stderr) == [
        ("tests/vm/q35-full.toml", "E1702", f"image `{name}` of backend `{backend}` does not "
                                            "exist")
        for name, backend in (("install.iso", "cdrom0"), ("root.qcow2", "disk0"),
                              ("data.raw", "disk1"))]


def test_a_qemu_that_never_answers_times_out(tmp_path: Path) -> None:
    wrapper = tmp_path / "hangs"
    wrapper.write_text("#!/bin/sh\nexec sleep 60\n", encoding="utf-8")
    wrapper.chmod(0o755)
    start = time.monotonic()
    result = mschema("verify", str(VM / "q35-minimal.toml"), "--qemu", str(wrapper),
                     "--timeout", "1")
    assert time.monotonic() - start < 20
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E1703"]), result.stderr
    assert "within 1" in result.stderr


def test_qemu_refuses_the_command_line(tmp_path: Path) -> None:
    binary = require_binary(binary_of("q35"))
    wrapper = tmp_path / "refuses"
    wrapper.write_text(f'#!/bin/sh\nexec {binary} "$@" -device no-such-device\n',
                       encoding="utf-8")
    wrapper.chmod(0o755)
    result = mschema("verify", str(VM / "q35-minimal.toml"), "--qemu", str(wrapper))
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E1703"]), result.stderr
    assert "QEMU: " in result.stderr and "no-such-device" in result.stderr


# --------------------------------------------------------------------------
# Pieces, without QEMU


def test_user_net_keeps_the_guest_side() -> None:
    argv = ["qemu", "-netdev", '{"id":"n","type":"bridge","br":"br0"}',
            "-netdev", '{"id":"m","type":"user"}']
    out = verify.user_netdevs(argv)
    assert json.loads(out[2]) == {"id": "n", "type": "user"} and out[4] == argv[4]


def test_runnable_argv() -> None:
    argv = ["qemu", "-blockdev",
            '{"driver":"raw","node-name":"d","file":{"driver":"file","filename":"a.raw"}}',
            "-netdev", '{"id":"n","type":"tap","ifname":"tap0","script":"no"}',
            "-chardev", "socket,id=c,path=s,,x.sock,server=on,wait=off"]
    out = verify.runnable_argv(argv, "/tmp/d")
    assert json.loads(out[2])["file"]["filename"] == "/tmp/d/a.raw"
    assert json.loads(out[4]) == {"id": "n", "type": "user"}
    assert out[6] == "socket,id=c,path=/tmp/d/s,,x.sock,server=on,wait=off"


def test_every_code_is_documented() -> None:
    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    for code in [*verify.CODES.values(), "E1701", "E1702", "E1703"]:
        assert f"`{code}`" in text, code


# --------------------------------------------------------------------------
# Machine settings: values reach QEMU typed, commas doubled, and are read back from QOM


def test_firmware_path_with_a_comma_reaches_qemu(tmp_path: Path) -> None:
    """`-machine …,firmware=` (QEMU's -bios) with a comma in the path: the argv doubles it,
    QEMU loads the file and QOM holds the path as written."""
    require_binary("qemu-system-x86_64")
    image = tmp_path / "fw,uefi.fd"
    image.write_bytes(Path("/usr/share/qemu/OVMF.fd").read_bytes())
    (tmp_path / "vm.toml").write_text(f'machine = "pc-q35"\n[options]\nfirmware = "{image}"\n')
    argv = json.loads(mschema("compile", "vm.toml", "--emit", "argv", cwd=tmp_path).stdout)
    assert argv[2] == f"pc-q35-7.2,firmware={str(image).replace(',', ',,')}"
    result = mschema("verify", "vm.toml", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    # a blob whose firmware QEMU holds otherwise is refused by the comparison
    (tmp_path / "vm.toml").write_text('machine = "pc-q35"\n')
    ok = mschema("compile", "vm.toml", "--emit", "json", "-o", "vm.json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    blob = json.loads((tmp_path / "vm.json").read_text())
    answers: list[object] = []
    for _, _, d in compare.blob_walk(blob["devices"]):
        if d["origin"] != "machine":
            answers += [v for _, v in sorted(d["props"].items())]
    options = [blob["machine"]["options"][k] for k in compare.shown_options(blob)]
    assert not compare.qom_differences(blob, [*answers, *options])
    moved = [f"/elsewhere/{v}" if v == "bios-256k.bin" else v for v in options]
    assert compare.qom_differences(blob, [*answers, *moved])


# --------------------------------------------------------------------------
# Which QEMU runs a machine: the release the blob names, read from the binary over QMP


@pytest.mark.parametrize("case", ["q35-10.0-virtio", "pseries-10.0-virtio"])
def test_a_qemu_too_old_for_the_machine_is_refused(case: str, tmp_path: Path) -> None:
    """A blob of pc-q35-10.0 (`qemu-release` 10.0) on QEMU 7.2: E1732 from the version
    `query-version` gives, before QEMU is asked to build the machine; QEMU 10.0 (`--qemu`)
    builds it as predicted, device tree included."""
    old = release_argv(binary_of(machine_of(case)), "7.2")[0]
    new = release_argv(binary_of(machine_of(case)), "10.0")[0]
    backing_files(case, tmp_path)
    result = mschema("verify", str(VM / f"{case}.json"), "--qemu", old, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "error[E1732]: QEMU 7.2." in result.stderr, result.stderr
    assert "is older than QEMU 10.0, which `" in result.stderr
    assert "QEMU built the" not in result.stdout
    result = mschema("verify", str(VM / f"{case}.json"), "--qemu", new, "--user-net",
                     cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert "QEMU built the" in result.stdout
