"""`mschema extract` against the real QEMU 7.2 (CONTRACT): the precise blob of a running
QEMU, read over QMP.

- QEMU started with a golden case's argv: extract gives back the compiled blob's
  guest-visible tree exactly (ids, types, origins, buses, addresses), its props (QEMU adds
  the ones it derives), cpus, memory, options and backends (as far as QEMU reveals them);
- QEMU started by hand with plain `-device` options, with ids and without;
- after `device_add`: those devices have origin `hotplug`;
- the blob as the way to start the same machine: `compile extracted.json` gives an argv
  that, in a fresh QEMU, extracts to the same blob (byte for byte), and `verify` agrees;
- what QEMU does not reveal or the blob cannot say is a warning, at the device.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from corpus_support import codes_of
from qemu_support import (
    binary_of,
    families,
    machine_argv,
    machine_qemu,
    release_argv,
    require_binary,
)
from vm_support import make_host_files, qmp, read_argv_golden, running

from compiler import cli, driver
from compiler.base import backends as kinds
from compiler.base.diagnostics import CompileError, render_text
from compiler.emit import argv as argv_emit
from compiler.emit import blob as blob_emit
from compiler.lang import resolve
from compiler.qemu import verify
from compiler.qemu.compare import address_text, qtree_lines
from compiler.qemu.extract import backends
from compiler.qemu.extract import build as extract

ROOT = Path(__file__).resolve().parent.parent
VM = ROOT / "tests" / "vm"
Json = Any

CASES = sorted(p.stem for p in VM.glob("*.toml") if p.with_suffix(".json").exists())


def mschema(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]})


def guest_tree(devices: list[Json], bus: str = "main-system-bus") -> list[tuple[object, ...]]:
    """The guest-visible tree: every device and bus, in order, without props."""
    out: list[tuple[object, ...]] = []
    for d in devices:
        out.append(("device", bus, d["id"], d["type"], d["origin"], d.get("addr")))
        for b in d.get("buses", []):
            out.append(("bus", d["id"], b["name"], b["kind"]))
            out += guest_tree(b["devices"], b["name"])
    return out


def props_by_id(devices: list[Json]) -> dict[str, dict[str, object]]:
    out = {}
    for d in devices:
        out[d["id"]] = d["props"]
        for b in d.get("buses", []):
            out.update(props_by_id(b["devices"]))
    return out


def make_files(blob: Mapping[str, Json], directory: Path) -> None:
    make_host_files(blob, directory, 65536)


def start_argv(blob: Mapping[str, Json], argv: list[str], directory: Path) -> list[str]:
    """An emitted argv made runnable here: the binary's path, files under `directory`."""
    make_files(blob, directory)
    qemu = machine_qemu(str(blob["machine"]["qemu"]))  # QEMU 10.0 for pc-q35-10.0
    return verify.runnable_argv([*qemu, *argv[1:]], str(directory))


def default_cpu_model(sock: str, qemu_machine: str) -> str:
    """The CPU model a QEMU machine type gets by default, as QEMU says (`qemu64`)."""
    (machines,) = qmp(sock, ("query-machines", {}))
    assert isinstance(machines, list)
    (cpu_type,) = [m["default-cpu-type"] for m in machines if m["name"] == qemu_machine]
    return str(cpu_type).rsplit("-", 2)[0]  # `qemu64-x86_64-cpu` → `qemu64`


def extracted(sock: str) -> tuple[Json, extract.Result]:
    result = driver.extract(sock)
    return json.loads(blob_emit.blob(result.machine)), result


def no_warnings(result: extract.Result) -> None:
    assert not result.diagnostics, render_text(result.diagnostics)


# QEMU 7.2 has no `query-audiodevs`: an audiodev's driver is not revealed (the blob says
# `none`, which is what the compiler gives every sound card)
HIDDEN_AUDIO_DRIVER = "QEMU does not reveal the driver of audiodev `"


def unrevealed_only(result: extract.Result, hidden: Collection[str] = ()) -> None:
    """No warning but those for what this QEMU does not reveal."""
    others = [d for d in result.diagnostics if d.message not in hidden
              and not d.message.startswith(HIDDEN_AUDIO_DRIVER)]
    assert others == [], render_text(result.diagnostics)


# --------------------------------------------------------------------------
# A QEMU started with a compiled argv


@pytest.mark.parametrize("case", CASES)
def test_extract_gives_back_the_compiled_blob(case: str, tmp_path: Path) -> None:
    golden = json.loads((VM / f"{case}.json").read_text(encoding="utf-8"))
    argv = read_argv_golden(VM / f"{case}.argv")
    with running(start_argv(golden, argv, tmp_path)) as sock:
        got, result = extracted(sock)
        default_cpu = default_cpu_model(sock, golden["machine"]["qemu"])
    files = {i for i, b in golden["backends"].items() if b.get("backend") == "file"}
    hidden = {f"QEMU does not reveal the file of chardev `{i}`" for i in files}
    exports = {i for i, b in golden["backends"].items() if b.get("kind") == "fsdev"}
    hidden |= {f"QEMU does not reveal the directory of fsdev `{i}`" for i in exports}
    unrevealed_only(result, hidden)
    assert guest_tree(got["devices"]) == guest_tree(golden["devices"])
    assert {k: golden["machine"][k] for k in ("schema", "qemu", "arch")} == \
        {k: got["machine"][k] for k in ("schema", "qemu", "arch")}
    # a model that is the machine's default cpu cannot be told from none
    cpus = dict(golden["cpus"])
    if "model" not in got["cpus"] and cpus.get("model") == default_cpu:
        del cpus["model"]
    # QEMU's own name for the model, as `query-cpu-definitions` lists it (libvirt's
    # `POWER8` is ppc's case-insensitive `power8`)
    def named(c: dict[str, Json]) -> dict[str, Json]:
        return {k: str(v).lower() if k == "model" else v for k, v in c.items()}

    assert named(got["cpus"]) == named(cpus) and got["memory"] == golden["memory"]
    assert got.get("boot") == golden.get("boot")  # -boot: only what was given, both ways
    # -global: what `info qtree` shows of the machine's devices, and QOM for the props it
    # does not print (ICH9-LPC's disable_s3/s4)
    assert got.get("globals", {}) == golden.get("globals", {})
    # -rtc: only `driftfix=slew` shows (as the pc RTC's lost_tick_policy; `quirk rtc-driftfix`)
    slew = golden.get("rtc", {}).get("driftfix") == "slew"
    assert got.get("rtc", {}) == ({"driftfix": "slew"} if slew else {})
    # options: QEMU resolves q35's vmport=auto to on; the rest it holds as given
    options = {k: v for k, v in golden["machine"]["options"].items() if k != "vmport"}
    assert options.items() <= got["machine"]["options"].items()
    # props: every one the compiler set, same value; QEMU adds those it derives
    mine, qemus = props_by_id(golden["devices"]), props_by_id(got["devices"])
    for ident, props in mine.items():
        assert props.items() <= qemus[ident].items(), ident
    # backends: all, with the host side QEMU reveals (paths made absolute to run here;
    # tap and bridge networks run as user ones here; file chardevs hide their path)
    assert set(got["backends"]) == set(golden["backends"])
    for ident, body in golden["backends"].items():
        have = got["backends"][ident]
        if body.get("kind") == "blockdev":
            assert have == {**body, "file": str(tmp_path / str(body["file"]))}
        elif body.get("kind") == "netdev" and body["type"] in ("tap", "bridge"):
            assert have == {"kind": "netdev", "type": "user"}
        elif ident in files:
            assert have == {**body, "path": ""}
        elif ident in exports:  # neither the directory nor how it is shared
            assert have == {"kind": "fsdev", "driver": "local", "path": "",
                            "security_model": "none"}
        elif "path" in body:
            assert have == {**body, "path": str(tmp_path / str(body["path"]))}
        else:
            assert have == body, ident


# --------------------------------------------------------------------------
# The blob as the way to start the same machine (and what verify says of it)


def _round_trip(first: Json, directory: Path) -> Json:
    """Compile `first` as a blob file, start the argv in a fresh QEMU, extract again."""
    path = directory / "extracted.json"
    path.write_text(json.dumps(first, indent=2) + "\n", encoding="utf-8")
    machine = driver.compile_input(path)
    assert json.loads(blob_emit.blob(machine)) == first, "a blob compiles to itself"
    argv = argv_emit.argv(machine)
    with running(start_argv(first, argv, directory)) as sock:
        second, result = extracted(sock)
    unrevealed_only(result)
    return second


@pytest.mark.parametrize("case", ["q35-full", "pseries-full", "q35-display-audio"])
def test_compiled_extracted_blob_starts_the_same_machine(case: str, tmp_path: Path) -> None:
    golden = json.loads((VM / f"{case}.json").read_text(encoding="utf-8"))
    argv = read_argv_golden(VM / f"{case}.argv")
    with running(start_argv(golden, argv, tmp_path)) as sock:
        first, _ = extracted(sock)
    second = _round_trip(first, tmp_path)
    assert second == first
    assert guest_tree(second["devices"]) == guest_tree(golden["devices"])


def test_audiodevs_on_a_qemu_that_shows_them(tmp_path: Path) -> None:
    """QEMU 10.0 has `query-audiodevs`: each sound card's audiodev comes back with its
    driver and no warning; driver options a blob cannot say (a wav file) are a drop."""
    golden = json.loads((VM / "q35-display-audio.json").read_text(encoding="utf-8"))
    argv = read_argv_golden(VM / "q35-display-audio.argv")
    qemu = release_argv(binary_of(golden["machine"]["qemu"]), "10.0")
    with running(verify.runnable_argv([*qemu, *argv[1:]], str(tmp_path))) as sock:
        got, result = extracted(sock)
    no_warnings(result)
    assert got["backends"] == golden["backends"]
    by_hand = ["-machine", "pc-q35-7.2", "-nodefaults",
               "-audiodev", f"wav,id=snd0,path={tmp_path}/out.wav", "-audiodev", "none,id=snd1",
               "-device", "AC97,audiodev=snd0,id=card0,bus=pcie.0,addr=0x2",
               "-device", "ES1370,audiodev=snd1,id=card1,bus=pcie.0,addr=0x3"]
    with running([*qemu, *by_hand]) as sock:
        got, result = extracted(sock)
    assert got["backends"] == {"snd0": {"kind": "audiodev", "driver": "wav"},
                               "snd1": {"kind": "audiodev", "driver": "none"}}
    assert [(d.code, d.message) for d in result.diagnostics] == [
        ("E1716", "audiodev `snd0` (wav) has options a blob cannot say: `path`")]


def test_audiodev_bodies() -> None:
    """What `extract` makes of an audiodev, from what QEMU reveals (or does not)."""
    @attrs.frozen
    class Shown:
        blocks: tuple[Mapping[str, object], ...] = ()
        nodes: tuple[Mapping[str, object], ...] = ()
        network: str = ""
        chardevs: tuple[Mapping[str, object], ...] = ()
        objects: Mapping[str, Mapping[str, object]] = attrs.field(factory=dict)
        audiodevs: tuple[Mapping[str, object], ...] | None = None

    warned: list[str] = []

    def warn(message: str, notes: list[str]) -> None:
        warned.append(message)

    rules = kinds.get("audiodev")
    assert rules.extract(Shown(), "a", warn) == {"driver": "none"}  # QEMU 7.2
    assert warned == ["QEMU does not reveal the driver of audiodev `a` (it has no "
                      "`query-audiodevs` before QEMU 8.0)"]
    warned.clear()
    shown = Shown(audiodevs=({"id": "a", "driver": "pa", "timer-period": 10000},
                             {"id": "b", "driver": "none", "timer-period": 5000}))
    assert rules.extract(shown, "a", warn) == {"driver": "pa"} and warned == []
    assert rules.extract(shown, "b", warn) == {"driver": "none"}
    assert rules.extract(shown, "c", warn) is None
    assert warned == ["audiodev `b` (none) has options a blob cannot say: `timer-period`",
                      "QEMU shows no audiodev `c`"]
    assert rules.argv("snd0", {"kind": "audiodev", "driver": "none"}) == [
        "-audiodev", "none,id=snd0"]
    assert rules.qmp_add("snd0", {"driver": "none"}) is None
    assert rules.problems({"driver": "alsa"}) == []
    assert [field for field, _ in rules.problems({"driver": "nope"})] == ["driver"]


# --------------------------------------------------------------------------
# A QEMU started by hand


def _device(blob: Json, ident: str) -> tuple[str, Json]:
    """(bus name, device) of the device `ident`."""
    def find(devices: list[Json], bus: str) -> Iterator[tuple[str, Json]]:
        for d in devices:
            if d["id"] == ident:
                yield bus, d
            for b in d.get("buses", []):
                yield from find(b["devices"], b["name"])

    (found,) = find(blob["devices"], "main-system-bus")
    return found


Q35_BY_HAND = [
    "-machine", "pc-q35-7.2", "-nodefaults", "-m", "512M", "-smp", "2", "-cpu", "max",
    "-netdev", "user,id=n0",
    "-device", "pcie-root-port,id=port1,chassis=1,port=1,bus=pcie.0,addr=0x2",
    "-device", "pcie-root-port,chassis=2,port=2,bus=pcie.0,addr=0x3",
    "-device", "virtio-net-pci,netdev=n0,id=nic0,bus=port1",
    "-device", "qemu-xhci",
    "-device", "usb-tablet",
    "-device", "usb-kbd,id=kbd",
    "-device", "virtio-scsi-pci,id=hba,bus=pcie.0,addr=0x5",
    "-blockdev", "driver=raw,node-name=d0,file.driver=file,file.filename=DIR/a.raw",
    "-device", "scsi-hd,drive=d0,bus=hba.0,scsi-id=3",
    "-device", "ide-cd,bus=ide.4",
    "-chardev", "null,id=c0",
    "-device", "isa-serial,chardev=c0,index=1",
    "-object", "rng-random,id=r0,filename=/dev/urandom",
    "-device", "virtio-rng-pci,rng=r0,addr=0x1e",
]

PSERIES_BY_HAND = [
    "-machine", "pseries-7.2,usb=on,ic-mode=xics", "-nodefaults", "-m", "1G",
    "-chardev", "null,id=c0",
    "-device", "spapr-vty,chardev=c0",
    "-device", "spapr-vscsi,id=vs",
    "-device", "spapr-vscsi",
    "-blockdev", "driver=raw,node-name=d1,file.driver=file,file.filename=DIR/a.raw",
    "-device", "scsi-hd,bus=v-scsi@71000003.0,drive=d1",
    "-device", "virtio-rng-pci",
    "-device", "spapr-pci-host-bridge,index=1,id=phb1",
    "-device", "pci-bridge,chassis_nr=1,id=br,bus=phb1.0",
    "-device", "e1000,bus=br,addr=0x3,mac=52:54:00:00:00:07",
    "-device", "usb-tablet,bus=usb-bus.0",
]


def _by_hand(args: list[str], directory: Path) -> list[str]:
    (directory / "a.raw").write_bytes(b"\0" * 65536)
    return machine_argv([a.replace("DIR", str(directory)) for a in args])


def test_q35_started_by_hand(tmp_path: Path) -> None:
    with running(_by_hand(Q35_BY_HAND, tmp_path)) as sock:
        blob, result = extracted(sock)
    no_warnings(result)
    assert blob["cpus"] == {"count": 2, "sockets": 1, "cores": 2, "threads": 1,
                            "model": "max"}
    assert blob["memory"] == {"size": 512 << 20}
    assert _device(blob, "port1")[1]["origin"] == "spec"  # not the compiler's `rpN`
    anon_port = _device(blob, "pcie-root-port0")
    assert anon_port[0] == "pcie.0" and anon_port[1]["addr"] == "03.0"
    # the id-less port's bus is `pcie.0` in QEMU (sic); with the blob's id it is named so
    assert [b["name"] for b in anon_port[1]["buses"]] == ["pcie-root-port0"]
    assert _device(blob, "nic0")[0] == "port1"
    assert _device(blob, "nic0")[1]["backend"] == {"netdev": "n0"}
    assert _device(blob, "qemu-xhci0")[1]["addr"] == "01.0"
    bus, tablet = _device(blob, "usb-tablet0")
    assert (bus, tablet["type"], tablet["origin"], tablet["addr"]) == (
        "qemu-xhci0.0", "usb-tablet", "spec", "1")
    assert _device(blob, "kbd")[1]["addr"] == "2"
    assert _device(blob, "hba")[1]["addr"] == "05.0"
    bus, disk = _device(blob, "scsi-hd0")
    assert (bus, disk["addr"], disk["backend"]) == ("hba.0", "0:3:0", {"drive": "d0"})
    assert _device(blob, "ide-cd0")[0] == "ide.4"
    serial = _device(blob, "isa-serial0")[1]
    assert serial["props"]["index"] == 1 and serial["backend"] == {"chardev": "c0"}
    assert _device(blob, "virtio-rng-pci0")[1]["addr"] == "1e.0"
    assert blob["backends"] == {
        "c0": {"backend": "null", "kind": "chardev"},
        "d0": {"driver": "raw", "file": str(tmp_path / "a.raw"), "kind": "blockdev"},
        "n0": {"kind": "netdev", "type": "user"},
        "r0": {"backend": "random", "filename": "/dev/urandom", "kind": "rng"}}
    assert _round_trip(blob, tmp_path) == blob


def test_pseries_started_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running(_by_hand(PSERIES_BY_HAND, tmp_path)) as sock:
        blob, result = extracted(sock)
    no_warnings(result)
    assert blob["machine"]["options"]["usb"] is True
    assert blob["machine"]["options"]["ic-mode"] == "xics"
    vio = [(d["id"], d["type"], d["addr"]) for d in _device(blob, "vio")[1]["buses"][0]
           ["devices"]]
    # QEMU's own ids of id-less VIO devices (`vty@71000001`) are no QEMU ids: renamed
    assert vio == [("nvram", "spapr-nvram", "0x71000000"),
                   ("spapr-vty0", "spapr-vty", "0x71000001"),
                   ("vs", "spapr-vscsi", "0x71000002"),
                   ("spapr-vscsi0", "spapr-vscsi", "0x71000003")]
    assert _device(blob, "scsi-hd0")[0] == "spapr-vscsi0.0"  # was `v-scsi@71000003.0`
    assert _device(blob, "phb1")[1]["props"] == {"index": 1}
    assert _device(blob, "br")[0] == "phb1.0"
    bus, nic = _device(blob, "e1000-0")
    assert (bus, nic["addr"], nic["props"]["mac"]) == ("br", "03.0", "52:54:00:00:00:07")
    assert _device(blob, "usb-tablet0")[0] == "usb-bus.0"  # on the machine's nec-usb-xhci
    assert _device(blob, "virtio-rng-pci0")[1].get("backend") is None  # QEMU's own rng
    # verify agrees with the blob extracted from a QEMU that mschema did not start
    path = tmp_path / "extracted.json"
    path.write_text(json.dumps(blob), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    outcome = verify.verify(driver.compile_input(path), resolve.load_library(),
                            verify.input_start(str(path)))
    assert not outcome.diagnostics, render_text(outcome.diagnostics)
    assert outcome.fdt == "whole"
    assert _round_trip(blob, tmp_path) == blob


# --------------------------------------------------------------------------
# After hot-plug


@pytest.mark.parametrize(("args", "plugged"), [
    (["-machine", "pc-q35-7.2", "-nodefaults",
      "-device", "pcie-root-port,id=rp0,chassis=0,port=0,multifunction=on,addr=0x1",
      "-device", "pcie-root-port,id=rp1,chassis=1,port=1,addr=0x1.0x1",
      "-device", "qemu-xhci,id=usb0", "-object", "rng-random,id=r0,filename=/dev/urandom"],
     [("device_add", {"driver": "virtio-rng-pci", "bus": "rp0", "rng": "r0", "id": "hot0"}),
      ("device_add", {"driver": "virtio-balloon-pci", "bus": "rp1"}),
      ("device_add", {"driver": "usb-mouse", "bus": "usb0.0"})]),
    (["-machine", "pseries-7.2", "-nodefaults", "-netdev", "user,id=n0"],
     [("device_add", {"driver": "virtio-net-pci", "netdev": "n0", "id": "hot0"}),
      ("device_add", {"driver": "virtio-balloon-pci", "bus": "pci.0", "addr": "0x5"})]),
])
def test_hotplugged_devices(args: list[str], plugged: list[tuple[str, Mapping[str, object]]],
                            tmp_path: Path) -> None:
    with running(machine_argv(args)) as sock:
        qmp(sock, *plugged)
        blob, result = extracted(sock)
    no_warnings(result)
    hot = {ident: origin for kind, _bus, ident, _t, origin, _a in
           (e for e in guest_tree(blob["devices"]) if e[0] == "device")
           if origin == "hotplug"}
    assert sorted(hot) == sorted(["hot0", "virtio-balloon-pci0"] +
                                 (["usb-mouse0"] if "qemu-xhci" in str(args) else []))
    if "pseries" in str(args):
        assert _device(blob, "hot0")[1]["backend"] == {"netdev": "n0"}
        assert _device(blob, "virtio-balloon-pci0")[1]["addr"] == "05.0"
    # started again from the blob, they are there from the start (cold-plugged)
    again = _round_trip(blob, tmp_path)
    cold = guest_tree(again["devices"])
    assert cold == [(*e[:4], "spec" if e[0] == "device" and e[4] == "hotplug" else e[4], e[5])
                    if e[0] == "device" else e for e in guest_tree(blob["devices"])]


# --------------------------------------------------------------------------
# Warnings and errors


WHAT_IT_CANNOT_SAY = [
    "-machine", "pc-q35-7.2", "-nodefaults", "-smp", "1,maxcpus=2", "-serial", "null",
    "-chardev", "file,id=log,path=DIR/log", "-device", "isa-serial,chardev=log,id=com2",
    "-device", "virtio-mouse-pci"]


def _without_type(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    """Extract with a stdlib that does not know `dtype` (a type QEMU can create: the
    shipped stdlib aims to know them all)."""
    shipped = resolve.load_library()
    narrower = attrs.evolve(shipped, devices={k: v for k, v in shipped.devices.items()
                                              if k != dtype})
    monkeypatch.setattr(resolve, "load_library", lambda: narrower)


def _extract_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["extract", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _diagnostics(stderr: str) -> list[tuple[str, str, str]]:
    return [(sev, code, message) for _p, _l, sev, code, message in re.findall(
        r"^(.+?):(\d+):\d+: (error|warning)\[(E\d{4})\]: (.*)$", stderr, re.M)]


def test_what_the_blob_cannot_describe_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A file chardev (QEMU hides its path), a device of a type the stdlib does not know:
    each an error at its place, and nothing written; `-serial` (a device the machine
    creates, not the schema, which the blob lists) is a note, a warning; `maxcpus` is
    nothing (the blob says it)."""
    _without_type(monkeypatch, "virtio-mouse-pci")
    target = tmp_path / "vm.json"
    with running(_by_hand(WHAT_IT_CANNOT_SAY, tmp_path)) as sock:
        code, out, err = _extract_cli(capsys, "--qmp", sock, "-o", str(target))
    assert (code, out) == (1, ""), err
    assert not target.exists()
    assert _diagnostics(err) == [
        ("error", "E1714", "`virtio-mouse-pci` is not a device type of the stdlib"),
        ("error", "E1716", "QEMU does not reveal the file of chardev `log`"),
        ("warning", "E1715", "QEMU created `isa-serial` on `isa.0` by itself, which "
                             "`pc-q35-7.2` does not predict")], err
    assert err.count("= note: `--partial` writes the blob all the same, without it") == 2
    # a diagnostic about a device points at its line in `info qtree`
    assert all(line.startswith("<info qtree of ") for line in err.splitlines()
               if re.match(r"^\S.*: (error|warning)\[", line))
    assert "dev: virtio-mouse-pci" in err


# nodes given out of order, with backend ids of their own, cpus interleaved and a
# hot-pluggable cpu, unequal sizes in KiB; and an expander on node 1
NUMA_BY_HAND = [
    "-machine", "pc-q35-7.2,mem-merge=off", "-nodefaults", "-m", "196616k",
    "-smp", "3,maxcpus=4,sockets=2,cores=2",
    "-object", "memory-backend-ram,id=big,size=131080k",
    "-object", "memory-backend-ram,id=small,size=64M",
    "-numa", "node,nodeid=1,cpus=1,cpus=3,memdev=big",
    "-numa", "node,nodeid=0,cpus=0,cpus=2,memdev=small",
    "-device", "pxb-pcie,id=pxb,bus_nr=200,numa_node=1,bus=pcie.0,addr=0x5",
]


def test_numa_nodes_started_by_hand(tmp_path: Path) -> None:
    """`-numa` nodes read back as QEMU has them: each node's backend by where its memory
    sits in the machine's RAM (not by its name or size), its cpus by `node-id` (a possible
    cpu not present too), its size exact (in KiB, where `info numa` says MiB); a pxb-pcie
    keeps its node. The blob compiles to a QEMU that extracts to it again."""
    with running(_by_hand(NUMA_BY_HAND, tmp_path)) as sock:
        blob, result = extracted(sock)
    no_warnings(result)
    assert blob["numa"] == [
        {"cpus": "0,2", "memdev": "small", "memory": 64 << 20},
        {"cpus": "1,3", "memdev": "big", "memory": 131080 << 10}]
    assert blob["memory"] == {"size": 196616 << 10}
    assert _device(blob, "pxb")[1]["props"]["numa_node"] == 1
    assert _round_trip(blob, tmp_path) == blob


def test_numa_nodes_on_qemu_10_0(tmp_path: Path) -> None:
    """The same nodes read back from QEMU 10.0 (its `query-hotpluggable-cpus` has more
    topology levels, its `smp` drawers, books, modules): the same blob, and the golden
    q35-numa machine on 10.0 extracts to its blob."""
    qemu = release_argv("qemu-system-x86_64", "10.0")
    (tmp_path / "a.raw").write_bytes(b"\0" * 65536)
    with running([*qemu, *NUMA_BY_HAND]) as sock:
        blob, result = extracted(sock)
    no_warnings(result)
    assert blob["numa"] == [
        {"cpus": "0,2", "memdev": "small", "memory": 64 << 20},
        {"cpus": "1,3", "memdev": "big", "memory": 131080 << 10}]
    golden = json.loads((VM / "q35-numa.json").read_text(encoding="utf-8"))
    argv = read_argv_golden(VM / "q35-numa.argv")
    with running(verify.runnable_argv([*qemu, *argv[1:]], str(tmp_path))) as sock:
        got, result = extracted(sock)
    unrevealed_only(result)
    assert got["numa"] == golden["numa"] and got["memory"] == golden["memory"]


@pytest.mark.parametrize(("backend", "said"), [
    ("memory-backend-ram,id=m1,size=128M,prealloc=on", "has `prealloc` true"),
    ("memory-backend-ram,id=m1,size=128M,merge=off", "has `merge` false"),
    ("memory-backend-memfd,id=m1,size=128M", "is a `memory-backend-memfd`"),
])
def test_numa_backends_a_blob_cannot_describe(backend: str, said: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A node's RAM backend that is not a plain `memory-backend-ram` with QEMU's defaults
    (`merge` follows the machine's `mem-merge`) is a drop (E1716); `--partial` writes the
    nodes with plain RAM."""
    argv = machine_argv(["-machine", "pc-q35-7.2", "-nodefaults", "-m", "256M", "-smp", "2",
                         "-object", "memory-backend-ram,id=m0,size=128M", "-object", backend,
                         "-numa", "node,nodeid=0,cpus=0,memdev=m0",
                         "-numa", "node,nodeid=1,cpus=1,memdev=m1"])
    with running(argv) as sock:
        code, out, err = _extract_cli(capsys, "--qmp", sock)
        assert (code, out) == (1, ""), err
        assert [(sev, c) for sev, c, _m in _diagnostics(err)] == [("error", "E1716")], err
        assert f"NUMA node 1's RAM backend `m1` {said}" in err
        code, out, err = _extract_cli(capsys, "--qmp", sock, "--partial")
    assert code == 0 and "warning[E1716]" in err
    assert json.loads(out)["numa"] == [
        {"cpus": "0", "memdev": "m0", "memory": 128 << 20},
        {"cpus": "1", "memdev": "m1", "memory": 128 << 20}]


def test_numa_nodes_on_pseries_are_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """pseries takes no `[[numa]]` nodes in mschema (`quirk numa-max-nodes = 0`: its device
    tree would change): QEMU's are a drop, E1716; `--partial` writes the blob without them.
    The one node pseries makes by itself is no `-numa` node (every other pseries case)."""
    argv = machine_argv(["-machine", "pseries-7.2", "-nodefaults", "-m", "512M", "-smp", "2",
                         "-object", "memory-backend-ram,id=m0,size=256M",
                         "-object", "memory-backend-ram,id=m1,size=256M",
                         "-numa", "node,nodeid=0,cpus=0,memdev=m0",
                         "-numa", "node,nodeid=1,cpus=1,memdev=m1"])
    with running(argv) as sock:
        code, out, err = _extract_cli(capsys, "--qmp", sock)
        assert (code, out) == (1, ""), err
        assert _diagnostics(err) == [
            ("error", "E1716", "QEMU has 2 NUMA nodes (`-numa`): `pseries-7.2` takes no NUMA "
                               "nodes (its `quirk numa-max-nodes`); the blob leaves them out")
        ], err
        code, out, err = _extract_cli(capsys, "--qmp", sock, "--partial")
    assert code == 0 and "warning[E1716]" in err
    assert "numa" not in json.loads(out)


def test_partial_writes_what_it_can(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`--partial`: the same diagnostics, all warnings, and the blob without what they
    name; it compiles, and starts a machine that lacks just that."""
    _without_type(monkeypatch, "virtio-mouse-pci")
    args = [a for a in WHAT_IT_CANNOT_SAY if a not in ("-smp", "1,maxcpus=2")]
    with running(_by_hand(args, tmp_path)) as sock:
        code, out, err = _extract_cli(capsys, "--qmp", sock, "--partial")
    assert code == 0, err
    assert [(sev, c) for sev, c, _m in _diagnostics(err)] == [
        ("warning", "E1714"), ("warning", "E1716"), ("warning", "E1715")]
    assert "`--partial`" not in err
    assert "= note: the blob leaves out `virtio-mouse-pci0`" in err
    blob = json.loads(out)
    types = [d[1] for kind, _b, *d in guest_tree(blob["devices"]) if kind == "device"]
    assert "virtio-mouse-pci" not in types
    serials = [d for kind, _b, *d in guest_tree(blob["devices"]) if kind == "device"
               and d[1] == "isa-serial"]
    assert sorted((ident, origin) for ident, _t, origin, _a in serials) == [
        ("com2", "spec"), ("isa-serial0", "default")]
    assert blob["backends"]["log"] == {"backend": "file", "kind": "chardev", "path": ""}
    blob["backends"]["log"]["path"] = str(tmp_path / "log2")  # filled in by hand
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(blob), encoding="utf-8")
    monkeypatch.undo()
    with running(start_argv(blob, argv_emit.argv(driver.compile_input(path)),
                            tmp_path)) as sock:
        again, result = extracted(sock)
    assert [d.code for d in result.diagnostics if d.severity == "error"] == ["E1716"]
    assert "virtio-mouse-pci" not in json.dumps(again)


def test_a_complete_extract_exits_0(tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A machine with every device known and nothing hidden: exit 0, the notes only."""
    argv = machine_argv(["-machine", "pc-q35-7.2", "-nodefaults", "-serial", "null",
                         "-chardev", "null,id=c0", "-device", "isa-serial,chardev=c0,id=com2"])
    with running(argv) as sock:
        code, out, err = _extract_cli(capsys, "--qmp", sock)
    assert [(sev, c) for sev, c, _m in _diagnostics(err)] == [("warning", "E1715")], err
    assert code == 0 and json.loads(out)["backends"]["c0"]["backend"] == "null"


def test_a_usb_hub_qemu_adds_by_itself(tmp_path: Path) -> None:
    """Five tablets on a 4-port bus: QEMU plugs a hub into the last port by itself. The blob
    lists it (`default`, with a warning), before the tablets behind it, so that compiling
    the blob starts the same machine."""
    argv = machine_argv(["-machine", "pc-q35-7.2", "-nodefaults",
                         "-device", "qemu-xhci,id=x", *["-device", "usb-tablet"] * 5])
    with running(argv) as sock:
        blob, result = extracted(sock)
    assert [d.code for d in result.diagnostics] == ["E1715"]
    assert "usb-hub" in result.diagnostics[0].message
    usb = [(d["id"], d["type"], d["origin"], d["addr"])
           for d in _device(blob, "x")[1]["buses"][0]["devices"]]
    assert usb == [("usb-tablet0", "usb-tablet", "spec", "1"),
                   ("usb-tablet1", "usb-tablet", "spec", "2"),
                   ("usb-tablet2", "usb-tablet", "spec", "3"),
                   ("usb-hub0", "usb-hub", "default", "4"),
                   ("usb-tablet3", "usb-tablet", "spec", "4.1"),
                   ("usb-tablet4", "usb-tablet", "spec", "4.2")]
    again = _round_trip(blob, tmp_path)
    hub = _device(again, "usb-hub0")[1]
    assert hub["origin"] == "spec"  # emitted with -device now
    hub["origin"] = "default"
    assert again == blob


def test_extract_writes_a_file(tmp_path: Path) -> None:
    argv = machine_argv(["-machine", "pseries-7.2", "-nodefaults"])
    with running(argv) as sock:
        out = mschema("extract", "--qmp", sock, "-o", str(tmp_path / "vm.json"))
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    blob = json.loads((tmp_path / "vm.json").read_text(encoding="utf-8"))
    assert blob["machine"]["qemu"] == "pseries-7.2"
    assert blob["devices"] == json.loads((VM / "pseries-minimal.json").read_text())["devices"]


def test_machine_type_without_schema(tmp_path: Path) -> None:
    # a machine type no schema describes, run by the binary of one that is
    argv = [require_binary(binary_of("pc-q35-7.2")), "-machine", "isapc", "-nodefaults"]
    with running(argv) as sock:
        out = mschema("extract", "--qmp", sock, "-o", str(tmp_path / "vm.json"))
    assert (out.returncode, codes_of(out.stderr)) == (1, ["E1713"]), out.stderr
    assert "`isapc`, which no schema describes" in out.stderr
    # each family as its oldest … newest version, from the schemas
    known = ", ".join(f"`{vs[-1]}` … `{vs[0]}`" if len(vs) > 1 else f"`{vs[0]}`"
                      for vs in families().values())
    assert f"the schemas describe {known}" in out.stderr
    assert not (tmp_path / "vm.json").exists()


def test_no_socket(tmp_path: Path) -> None:
    out = mschema("extract", "--qmp", str(tmp_path / "nope.sock"))
    assert (out.returncode, codes_of(out.stderr)) == (1, ["E1712"]), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_socket_nobody_listens_on(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    out = mschema("extract", "--qmp", path)
    assert (out.returncode, codes_of(out.stderr)) == (1, ["E1712"]), out.stderr
    assert "Traceback" not in out.stderr


def test_a_socket_that_never_greets_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        out = mschema("extract", "--qmp", path, "--timeout", "1")
    finally:
        for c in accepted:
            c.close()
        server.close()
    assert (out.returncode, codes_of(out.stderr)) == (1, ["E1712"]), out.stderr
    assert "within 1 s" in out.stderr


# --------------------------------------------------------------------------
# Pieces, without QEMU


def test_addresses_from_qemu_values() -> None:
    assert address_text("pci", [0xF3]) == "1e.3"
    assert address_text("pci", ["04.0"]) == "04.0"
    assert address_text("vio", [0x71000001]) == "0x71000001"
    assert address_text("scsi", [0, 3, 1]) == "0:3:1"
    assert address_text("unit", [0]) == "0"
    assert address_text("unit", [-1]) is None  # QEMU's "auto", not assigned
    assert address_text("usb", ["4.2"]) == "4.2" and address_text("usb", [""]) is None


def test_qtree_lines() -> None:
    text = ("bus: main-system-bus\n  type System\n  dev: qemu-xhci, id \"x\"\n"
            "    bus: x.0\n      type usb-bus\n      dev: usb-hub, id \"\"\n"
            "        addr 0.0, port 4, speed 12, name QEMU USB Hub, attached\n"
            "      dev: usb-kbd, id \"\"\n"
            "        addr 0.0, port 4.1, speed 12, name QEMU USB Keyboard, attached\n")
    lines = qtree_lines(text)
    assert [p for _s, _e, p in lines] == [None, "4", "4.1"]
    start, end, _ = lines[1]
    assert text[start:end] == 'dev: usb-hub, id ""'


def test_info_network() -> None:
    text = ("hub 0\n \\ h0\nnet0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\n"
            " \\ net0: index=0,type=user,net=10.0.2.0,restrict=off\n"
            "t0: index=0,type=tap,ifname=tap0,script=no,downscript=no\n"
            "b0: index=0,type=tap,helper=/usr/lib/qemu/qemu-bridge-helper,br=br0\n")
    nets = backends.networks(text)
    assert nets["net0"][0] == "user"  # the netdev, not the NIC of the same name
    assert nets["t0"] == ("tap", {"ifname": "tap0", "script": "no", "downscript": "no"})
    assert nets["b0"][1]["br"] == "br0"


def test_reading_a_dtb(tmp_path: Path) -> None:
    from compiler.qemu import fdt_check

    dtc = require_binary("dtc")
    source = tmp_path / "t.dts"
    source.write_text("/dts-v1/;\n/ { #address-cells = <2>; #size-cells = <2>;\n"
                      "  memory@0 { device_type = \"memory\"; reg = <0 0 0 0x20000000>; };\n"
                      "  vdevice { vty@71000000 { reg = <0x71000000>; }; }; };\n",
                      encoding="utf-8")
    dtb = subprocess.run([dtc, "-I", "dts", "-O", "dtb", str(source)], capture_output=True,
                         check=True, timeout=30).stdout
    root = fdt_check.read_dtb(dtb)
    assert [c.name for c in root.children] == ["memory@0", "vdevice"]
    assert root.children[0].text("device_type") == "memory"
    assert root.children[1].children[0].unit == "71000000"
    assert fdt_check.whole_tree_differences(root, root) == []
    with pytest.raises(ValueError):
        fdt_check.read_dtb(b"not a dtb")
    assert os.path.getsize(source) > 0


# --------------------------------------------------------------------------
# What real configurations showed (issue 11): each started in QEMU, extracted, compiled


def test_multifunction_of_function_0_is_kept(tmp_path: Path) -> None:
    """libvirt's ICH9 USB: the UHCI companions at 1d.0–1d.2 (function 0 says
    `multifunction=on`), the EHCI at 1d.7. Without `multifunction` on `uhci1` the blob
    would not compile (E1405)."""
    argv = machine_argv([
        "-machine", "pc-q35-7.2", "-nodefaults",
        "-device", "ich9-usb-ehci1,id=usb,bus=pcie.0,addr=0x1d.0x7",
        "-device", "ich9-usb-uhci1,masterbus=usb.0,firstport=0,bus=pcie.0,multifunction=on,"
                   "addr=0x1d",
        "-device", "ich9-usb-uhci2,masterbus=usb.0,firstport=2,bus=pcie.0,addr=0x1d.0x1",
        "-device", "ich9-usb-uhci3,masterbus=usb.0,firstport=4,bus=pcie.0,addr=0x1d.0x2"])
    with running(argv) as sock:
        blob, result = extracted(sock)
    no_warnings(result)
    bus, uhci = _device(blob, "ich9-usb-uhci1-0")
    assert (bus, uhci["addr"], uhci["props"]["multifunction"]) == ("pcie.0", "1d.0", True)
    assert "multifunction" not in _device(blob, "ich9-usb-uhci2-0")[1]["props"]
    assert _round_trip(blob, tmp_path) == blob


def test_a_machine_device_qemu_moved_comes_back_as_a_global(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-global spapr-nvram.reg=0x71000100` moves the machine's NVRAM (libvirt's `<nvram>`
    address): the blob keeps the global and the NVRAM where QEMU has it, without a
    diagnostic, and compiles back to the same -global; a QEMU without it gives no global."""
    argv = machine_argv(["-machine", "pseries-7.2", "-nodefaults",
                         "-global", "spapr-nvram.reg=0x71000100"])
    with running(argv) as sock:
        code, out, err = _extract_cli(capsys, "--qmp", sock)
    assert (code, err) == (0, "")
    blob = json.loads(out)
    assert blob["globals"] == {"spapr-nvram.reg": 0x71000100}
    nvram = _device(blob, "nvram")[1]
    assert (nvram["addr"], nvram["props"]) == ("0x71000100", {"reg": 0x71000100})
    assert _round_trip(blob, tmp_path) == blob
    with running(machine_argv(["-machine", "pseries-7.2", "-nodefaults"])) as sock:
        code, out, err = _extract_cli(capsys, "--qmp", sock)
    assert (code, err) == (0, "") and "globals" not in json.loads(out)


def test_a_power8_machine_rebuilds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-cpu POWER8` as libvirt writes it: extract reads the model back as QEMU names its
    type (`power8`), with the XICS mode and no large decrementer QEMU chose for it; the blob
    compiles, starts the same machine (the device tree follows the CPU: `verify`) and
    extracts to itself."""
    argv = machine_argv(["-machine", "pseries-7.2", "-nodefaults", "-cpu", "POWER8",
                         "-smp", "2"])
    with running(argv) as sock:
        code, out, err = _extract_cli(capsys, "--qmp", sock)
    assert (code, err) == (0, "")
    blob = json.loads(out)
    assert blob["cpus"]["model"] == "power8"
    options = blob["machine"]["options"]
    assert (options["ic-mode"], options["cap-large-decr"]) == ("xics", False)
    assert _round_trip(blob, tmp_path) == blob
    path = tmp_path / "power8.json"
    path.write_text(out, encoding="utf-8")
    assert cli.main(["verify", str(path)]) == 0, capsys.readouterr().err


SWITCHES = [
    "-machine", "pc-q35-7.2", "-nodefaults",
    "-device", "pcie-root-port,id=rp1,chassis=1,port=0x10,bus=pcie.0,addr=0x2",
    "-device", "pcie-root-port,id=rp2,chassis=2,port=0x11,bus=pcie.0,addr=0x3",
    "-device", "x3130-upstream,id=up1,bus=rp1",
    "-device", "xio3130-downstream,id=dn1,bus=up1,chassis=3,port=0,addr=0x0",
    "-device", "xio3130-downstream,id=dn2,bus=up1,chassis=4,port=1,addr=0x1",
    "-device", "x3130-upstream,id=up2,bus=rp2",
    "-device", "xio3130-downstream,id=dn3,bus=up2,chassis=5,port=0,addr=0x0",
    "-device", "xio3130-downstream,id=dn4,bus=up2,chassis=6,port=1,addr=0x1",
]


def test_downstream_port_numbers_are_per_switch(tmp_path: Path) -> None:
    """libvirt numbers a switch's downstream ports 0, 1, … in each switch: `port` is
    `unique per-bus` (E1105 only between ports of one upstream port)."""
    with running(machine_argv(SWITCHES)) as sock:
        blob, result = extracted(sock)
    no_warnings(result)
    ports = {i: _device(blob, i)[1]["props"].get("port", 0) for i in ("dn1", "dn2", "dn3", "dn4")}
    assert ports == {"dn1": 0, "dn2": 1, "dn3": 0, "dn4": 1}
    assert _round_trip(blob, tmp_path) == blob
    # two ports of one switch with one number are still refused
    blob = json.loads(json.dumps(blob))
    _device(blob, "dn2")[1]["props"]["port"] = 0
    path = tmp_path / "clash.json"
    path.write_text(json.dumps(blob), encoding="utf-8")
    with pytest.raises(CompileError) as refused:
        driver.compile_input(path)
    assert [(d.code, d.message) for d in refused.value.diagnostics] == [
        ("E1105", "`port` 0 of `dn2` is already used by `dn1` (xio3130-downstream)")]
