"""Golden VM cases for `mschema compile`, libvirt style: `tests/vm/<case>.toml` is a loose
spec, `<case>.json` the precise blob (`--emit json`) and `<case>.argv` the command line
(`--emit argv`) it must compile to, byte for byte; the argv golden holds one argument per line
(so that a diff shows the argument that changed), and `--emit argv` must print exactly that
list as JSON. `--update-goldens` rewrites them from the compiler's output: read the diff
before committing it.

Each case's golden argv also runs in the real QEMU (paused, one start per case, in a
scratch directory holding the backing files the spec names), and its golden blob is compared
with `info qtree` device by device (`compiler/qemu/compare.py`, as `mschema verify` does): same
devices, buses, types, addresses and ids, and the props QEMU shows. So no golden is blessed
that QEMU contradicts, and with `test_golden` the compiler's output agrees with QEMU.
tap/bridge networks are replaced by `user` ones for that run only; the goldens keep them.

Known compiler bugs are strict xfails (`WRONG_OUTPUT`, `QEMU_XFAIL`, `MUST_REFUSE`): a
golden holds the right output, corrected from the compiler's by a function named there.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
from qemu_support import (
    RELEASES,
    UNSUPPORTED_MACHINE,
    binary_of,
    case_family,
    families,
    release_argv,
    releases_of,
)
from vm_support import argv_from_golden, argv_golden_text, emitted_argv_json, make_host_files

from compiler.qemu import compare, process, verify

ROOT = Path(__file__).resolve().parent.parent
VM = ROOT / "tests" / "vm"
CASES = sorted(p.stem for p in VM.glob("*.toml"))
KINDS = {"json": ".json", "argv": ".argv"}

# Known compiler bugs (outside this test's files; see the report of the change that added
# them). Each test they break is a strict xfail, so fixing the bug makes it fail until the
# entry is removed.


# (case, kind) → (bug, the correction that turns today's output into the right golden;
# `--update-goldens` writes the corrected output, never the wrong one)
# (none left: usb-storage's scsi-hd, once without its 0:0:0, is fixed)
WRONG_OUTPUT: dict[tuple[str, str], tuple[str, Callable[[str], str]]] = {}
# Cases whose right output cannot be written down yet, so they have no goldens: their golden
# test checks only the outcome (refused / compiled) and their QEMU test runs the compiler's
# output. Once fixed, both XPASS: drop the entry, `--update-goldens`, read the new goldens.
# case → bug: the compiler accepts the spec but must refuse it
MUST_REFUSE: dict[str, str] = {}
# case → bug: the compiler refuses the spec but must compile it
MUST_COMPILE: dict[str, str] = {}
# case → bug: QEMU does not build what the blob says, or refuses the argv
QEMU_XFAIL: dict[str, str] = {**MUST_REFUSE, **MUST_COMPILE}

DETERMINISM_CASES = ("q35-full", "q35-many-disks", "pseries-full")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


class Compiled(NamedTuple):
    returncode: int
    stderr: str
    outputs: dict[str, str]  # KINDS → text, when it succeeded


def run_compile(case: str, env: dict[str, str] | None = None, *, stdout: bool = False
                ) -> Compiled:
    """The real CLI from the repo root: `python -m compiler compile tests/vm/CASE.toml`, with
    `--emit json --emit argv -o DIR` (one run), or with `stdout` one `--emit KIND` per kind."""
    base = [sys.executable, "-m", "compiler", "compile", f"tests/vm/{case}.toml"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False, env=env)

    outputs: dict[str, str] = {}
    if stdout:
        for kind in KINDS:
            done = run("--emit", kind)
            if done.returncode != 0 or done.stderr:
                return Compiled(done.returncode, done.stderr, {})
            outputs[kind] = done.stdout
        return Compiled(0, "", outputs)
    with tempfile.TemporaryDirectory(prefix="vm-golden-") as tmp:
        done = run("--emit", "json", "--emit", "argv", "-o", tmp)
        if done.returncode == 0:
            written = sorted(Path(tmp).iterdir())
            argvs = [f for f in written if f.name.endswith(".argv.json")]
            blobs = [f for f in written if f not in argvs]
            assert len(argvs) == len(blobs) == 1, f"{case}: -o wrote {written}"
            outputs = {"json": blobs[0].read_text(encoding="utf-8"),
                       "argv": argvs[0].read_text(encoding="utf-8")}
    return Compiled(done.returncode, done.stderr, outputs)


def golden_text(kind: str, output: str) -> str:
    """A CLI output as its golden file holds it: the blob as printed, the argv one argument
    per line (checking that the CLI printed it as `emitted_argv_json` does)."""
    if kind == "json":
        return output
    argv = json.loads(output)
    assert output == emitted_argv_json(argv), "--emit argv prints another layout"
    return argv_golden_text(argv)


@functools.cache
def compile_case(case: str) -> Compiled:
    return run_compile(case)


def compiled(case: str, kind: str) -> str:
    """The output of a compile that must succeed and say nothing on stderr."""
    result = compile_case(case)
    assert result.returncode == 0, f"compiling tests/vm/{case}.toml failed:\n{result.stderr}"
    assert result.stderr == "", result.stderr
    return result.outputs[kind]


@pytest.fixture(scope="module", autouse=True)
def _compile_all() -> None:
    """Compile every case up front, in parallel (the CLI's start-up dominates)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(compile_case, CASES))


def test_enough_cases() -> None:
    """Every machine family has its cases, each named after its family (or an alias of it,
    `q35-…`) and compiled for a machine of that family."""
    by_family = {f: [c for c in CASES if case_family(c) == f] for f in families()}
    assert len(CASES) >= 28 and all(len(cs) >= 9 for cs in by_family.values()), by_family
    assert sum(map(len, by_family.values())) == len(CASES), \
        "a case name starts with a machine family or alias, then `-`"
    for family, cases in by_family.items():
        for case in cases:
            machine = json.loads(compiled(case, "json"))["machine"]
            assert machine["schema"] == family, case
            assert machine["qemu"] in families()[family], case


def _xfail(reason: str | None) -> list[pytest.MarkDecorator]:
    return [] if reason is None else [pytest.mark.xfail(strict=True, reason=reason)]


GOLDEN_PARAMS = [
    pytest.param(case, kind, marks=_xfail(MUST_REFUSE.get(case) or MUST_COMPILE.get(case)
                                          or WRONG_OUTPUT.get((case, kind), (None,))[0]))
    for case in CASES for kind in sorted(KINDS)
]


@pytest.mark.parametrize(("case", "kind"), GOLDEN_PARAMS)
def test_golden(case: str, kind: str, update_goldens: bool) -> None:
    golden = VM / f"{case}{KINDS[kind]}"
    result = compile_case(case)
    if case in MUST_REFUSE or case in MUST_COMPILE:
        assert not golden.exists(), f"{rel(golden)}: a known-bad case has no golden output"
        assert "Traceback" not in result.stderr, result.stderr
        if case in MUST_REFUSE:
            assert result.returncode == 1 and not result.outputs, "the compiler accepted it"
            assert "error[" in result.stderr, result.stderr
        else:
            assert (result.returncode, result.stderr) == (0, ""), result.stderr
        return
    actual = golden_text(kind, compiled(case, kind))
    if update_goldens:
        bug = WRONG_OUTPUT.get((case, kind))
        golden.write_text(bug[1](actual) if bug else actual, encoding="utf-8")
        if bug:
            pytest.skip(f"wrote the corrected golden: {bug[0]}")
        return
    assert golden.exists(), f"{rel(golden)} is missing: run pytest with --update-goldens"
    assert actual == golden.read_text(encoding="utf-8"), f"output differs from {rel(golden)}"


def _make_backing_files(blob: dict[str, object], directory: Path) -> None:
    make_host_files(blob, directory)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("case", [pytest.param(c, marks=_xfail(QEMU_XFAIL.get(c)))
                                  for c in CASES])
def test_qemu_builds_the_blob(case: str, release: str, tmp_path: Path) -> None:
    """QEMU builds what the blob says, device by device, on QEMU 7.2 and on QEMU 10.0 (the
    machine versions are 7.x: a newer QEMU must build them the same)."""
    if case in MUST_REFUSE and compile_case(case).returncode == 1:
        return  # refused, as it must be
    if case in MUST_REFUSE or case in MUST_COMPILE:
        blob, argv = json.loads(compiled(case, "json")), json.loads(compiled(case, "argv"))
    else:
        # the goldens: `test_golden` checks that the compiler prints exactly these
        blob = json.loads((VM / f"{case}.json").read_text(encoding="utf-8"))
        argv = argv_from_golden((VM / f"{case}.argv").read_text(encoding="utf-8"))
    qemu = release_argv(binary_of(blob["machine"]["qemu"]), release)
    assert argv[0] == Path(qemu[0]).name
    _make_backing_files(blob, tmp_path)
    runnable = verify.runnable_argv([*qemu, *argv[1:]], str(tmp_path))
    if release not in releases_of(blob["machine"]["qemu"]):
        # a machine version newer than the release (pc-q35-10.0 on QEMU 7.2): the blob says
        # which release it needs, and that release's QEMU refuses the machine type
        assert blob["machine"]["qemu-release"] != release
        with pytest.raises(process.QemuError) as refused:
            process.query([*runnable, "-accel", "tcg"], hmp=(), qmp=[], timeout=30.0)
        assert UNSUPPORTED_MACHINE in refused.value.stderr
        return
    qom = compare.qom_requests(blob)
    types = {d["type"] for _b, _n, d in compare.blob_walk(blob["devices"])}
    gone = [refusal for (gone_from, type_), refusal in GONE_IN_RELEASE.items()
            if gone_from == release and type_ in types]
    if gone:
        with pytest.raises(process.QemuError) as exc:
            process.query([*runnable, "-accel", "tcg"], hmp=("info qtree",), qmp=[],
                          timeout=30.0)
        assert gone[0] in exc.value.stderr
        return
    result = process.query([*runnable, "-accel", "tcg"], hmp=("info qtree", "info usb"),
                        qmp=[*compare.MACHINE_REQUESTS, *qom], timeout=30.0)
    root = process.parse_qtree(result.hmp[0])
    assert (root.name, root.type) == ("main-system-bus", "System")
    n = len(compare.MACHINE_REQUESTS)
    problems = compare.compare(blob, root, result.hmp[1], result.qmp[n:], result.qmp[:n])
    assert problems == release_findings(blob, argv, release), \
        "QEMU disagrees with the blob:\n  " + "\n  ".join(problems)


# Where QEMU 10.0 builds an old machine version otherwise than 7.2, the release that defined
# it: (release, machine option, the version's value) → what QEMU holds instead. Findings
# (docs/releases.md), asserted as QEMU behaves so that a change shows.
# Device types a newer release no longer has: (release, type) → QEMU's refusal.
GONE_IN_RELEASE = {
    ("10.0", "sga"): "'sga' is not a valid device model name",
}
RELEASE_FINDINGS = {
    # under TCG, 10.0 resolves pseries-7.x's Spectre bounds-check capability to `broken`
    ("10.0", "cap-sbbc", "workaround"): "broken",
}


def release_findings(blob: dict[str, object], argv: list[str], release: str) -> list[str]:
    """The differences `compare` must report: the findings for options left to QEMU (an
    option on the command line is QEMU's to keep, on every release)."""
    machine = blob["machine"]
    assert isinstance(machine, dict)
    given = argv[argv.index("-machine") + 1]
    found = []
    for name, value in sorted(machine["options"].items()):
        held = RELEASE_FINDINGS.get((release, name, value))
        if held is not None and f",{name}=" not in given:
            found.append(f"machine: machine option `{name}` is {held!r} in QOM, "
                         f"{value!r} in the blob")
    return found


@pytest.mark.parametrize("case", DETERMINISM_CASES)
def test_deterministic_across_hash_seeds(case: str) -> None:
    """Same bytes whatever the hash seed, and on stdout as in the files `-o` writes."""
    seen = {}
    for seed, stdout in (("0", True), ("1", False), ("random", False)):
        result = run_compile(case, {**os.environ, "PYTHONHASHSEED": seed}, stdout=stdout)
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        seen[seed] = {k: golden_text(k, text) for k, text in result.outputs.items()}
    goldens = {k: (VM / f"{case}{suffix}").read_text(encoding="utf-8")
               for k, suffix in KINDS.items()}
    for seed, outputs in seen.items():
        assert outputs == goldens, f"{case}: PYTHONHASHSEED={seed} gives other output"


def test_comparison_is_not_vacuous() -> None:
    """The comparison sees a moved, a retyped and a missing device."""
    blob = json.loads(compiled("q35-virtio-disk-user-nic", "json"))
    entries = compare.blob_entries(blob)
    assert any(e.id == "disk0" and e.addr == "00.0" and e.bus == "rp0" for e in entries)
    moved = [e._replace(addr="01.0") if e.id == "disk0" else e for e in entries]
    retyped = [e._replace(type="virtio-scsi-pci") if e.id == "net0" else e for e in entries]
    assert compare.differences(entries, moved)
    assert compare.differences(entries, retyped)
    assert compare.differences(entries, entries[1:])
    assert not compare.differences(entries, list(reversed(entries)))
    buses = compare.blob_buses(blob)
    assert any(b.name == "rp2" and b.owner_id == "rp2" for b in buses), "the spare port's bus"
    assert compare.differences(buses, [b for b in buses if b.name != "rp2"])


def test_qom_and_machine_comparisons_are_not_vacuous() -> None:
    blob = json.loads(compiled("q35-disk-props", "json"))
    answers: list[object] = []
    for _, _, d in compare.blob_walk(blob["devices"]):
        if d["origin"] != "machine":
            answers += [v for _, v in sorted(d["props"].items())]
            answers += [v for _, v in sorted(d.get("backend", {}).items())]
    options = {k: blob["machine"]["options"][k] for k in compare.shown_options(blob)}
    assert len(answers) + len(options) == len(compare.qom_requests(blob))
    assert not compare.qom_differences(blob, [*answers, *options.values()])
    assert compare.qom_differences(blob, [*answers[:-1], "other", *options.values()])
    assert compare.qom_differences(blob, [2 if a == 1 else a for a in
                                          [*answers, *options.values()]])
    # a machine option QOM holds otherwise; `auto` is QEMU's to resolve (vmport reads `on`)
    assert compare.qom_differences(blob, [*answers, *{**options, "usb": True}.values()])
    assert not compare.qom_differences(blob, [*answers, *{**options, "vmport": "on"}.values()])
    cpus = [{"props": {"socket-id": 0, "core-id": 0, "thread-id": 0}}]
    memory = {"base-memory": blob["memory"]["size"]}
    smp = {"cpus": 1, "maxcpus": 1, "sockets": 1, "cores": 1, "threads": 1}
    boot = {"order": "cad"}
    uuid = {"UUID": "00000000-0000-0000-0000-000000000000"}
    now = datetime.datetime.now(datetime.UTC)
    rtc = {"tm_year": now.year - 1900, "tm_mon": now.month - 1, "tm_mday": now.day,
           "tm_hour": now.hour, "tm_min": now.minute, "tm_sec": now.second}
    assert not compare.machine_differences(blob, [cpus, memory, smp, boot, rtc, uuid])
    assert compare.machine_differences(blob, [cpus * 2, memory, smp, boot, rtc, uuid])
    assert compare.machine_differences(blob, [cpus, {"base-memory": 1}, smp, boot, rtc, uuid])
    assert compare.machine_differences(blob, [cpus, memory, {**smp, "maxcpus": 2}, boot, rtc, uuid])
    assert compare.machine_differences(blob, [cpus, memory, {**smp, "cores": 2}, boot, rtc, uuid])
    menu = {**blob, "boot": {"menu": True}}
    assert not compare.machine_differences(menu, [cpus, memory, smp, {**boot, "menu": True},
                                                  rtc, uuid])
    assert compare.machine_differences(menu, [cpus, memory, smp, boot, rtc, uuid])
    dated = {**blob, "rtc": {"base": "2006-06-17T16:01:21"}}
    assert compare.machine_differences(dated, [cpus, memory, smp, boot, rtc, uuid])
    then = {"tm_year": 106, "tm_mon": 5, "tm_mday": 17, "tm_hour": 16, "tm_min": 1, "tm_sec": 30}
    assert not compare.machine_differences(dated, [cpus, memory, smp, boot, then, uuid])
    hotpluggable = {**blob, "cpus": {**blob["cpus"], "maxcpus": 2, "cores": 2}}
    assert not compare.machine_differences(hotpluggable, [cpus, memory,
                                                          {**smp, "maxcpus": 2, "cores": 2},
                                                          boot, rtc, uuid])
    named = {**blob, "uuid": "c7a5fdbd-edaf-9455-926a-d65c16db1809"}
    assert compare.machine_differences(named, [cpus, memory, smp, boot, rtc, uuid])
    assert not compare.machine_differences(named, [cpus, memory, smp, boot, rtc,
                                                   {"UUID": named["uuid"]}])


def test_runnable_argv() -> None:
    argv = ["qemu", "-blockdev",
            '{"driver":"raw","node-name":"d","file":{"driver":"file","filename":"a.raw"}}',
            "-netdev", '{"id":"n","type":"tap","ifname":"tap0","script":"no"}',
            "-chardev", "socket,id=c,path=s,,x.sock,server=on,wait=off",
            "-chardev", "file,id=f,path=/abs/log"]
    out = verify.runnable_argv(argv, "/tmp/d")
    assert json.loads(out[2])["file"]["filename"] == "/tmp/d/a.raw"
    assert json.loads(out[4]) == {"id": "n", "type": "user"}
    assert out[6] == "socket,id=c,path=/tmp/d/s,,x.sock,server=on,wait=off"
    assert out[8] == "file,id=f,path=/abs/log"


def test_usb_ports() -> None:
    text = ("  Device 0.0, Port 1, Speed 480 Mb/s, Product QEMU USB Tablet, ID: usb0\n"
            "  Device 0.0, Port 4, Speed 12 Mb/s, Product QEMU USB Hub, ID: \n"
            "  Device 0.0, Port 4.1, Speed 12 Mb/s, Product QEMU USB Keyboard, ID: kbd\n")
    assert compare.usb_ports(text) == {"usb0": "1", "kbd": "4.1"}


def test_a_machine_devices_prop_is_compared() -> None:
    """A `-global` on a machine device (no id in QEMU) is checked in `info qtree`: without
    it on the command line, QEMU's default shows as a difference."""
    blob = json.loads((VM / "q35-globals.json").read_text(encoding="utf-8"))
    argv = argv_from_golden((VM / "q35-globals.argv").read_text(encoding="utf-8"))
    at = argv.index("driver=q35-pcihost,property=pci-hole64-size,value=1073741824")
    del argv[at - 1:at + 1]
    qemu = release_argv(binary_of(blob["machine"]["qemu"]), "7.2")
    result = process.query([*qemu, *argv[1:], "-accel", "tcg"], hmp=("info qtree", "info usb"),
                           qmp=[], timeout=30.0)
    root = process.parse_qtree(result.hmp[0])
    assert compare.compare(blob, root, result.hmp[1]) == [
        "props: `q35` (q35-pcihost): `pci-hole64-size` is 34359738368 (32 GiB) in info qtree, "
        "1073741824 in the blob"]


def test_numa_comparison_is_not_vacuous(tmp_path: Path) -> None:
    """`verify`'s NUMA comparison on QEMU's own answers for the q35-numa case: none for the
    blob it ran, one for each node QEMU has otherwise (a cpu on another node, a backend of
    another size, a node less); without nodes, a machine must have only those it makes by
    itself (pseries' one)."""
    blob = json.loads((VM / "q35-numa.json").read_text(encoding="utf-8"))
    argv = argv_from_golden((VM / "q35-numa.argv").read_text(encoding="utf-8"))
    qemu = release_argv(binary_of(blob["machine"]["qemu"]), "7.2")
    result = process.query([*verify.runnable_argv([*qemu, *argv[1:]], str(tmp_path)),
                            "-accel", "tcg"], hmp=(), qmp=list(compare.MACHINE_REQUESTS),
                           timeout=30.0)
    answers = list(result.qmp)
    smp, hotpluggable, memdevs, info_numa = answers[2], *answers[-3:]
    assert not compare.numa_differences(blob, smp, hotpluggable, memdevs, info_numa)
    assert not compare.machine_differences(blob, answers)
    moved = [{**c, "props": {**c["props"], "node-id": 1 - c["props"]["node-id"]}}
             if c["props"].get("socket-id") == 0 and c["props"].get("core-id") == 0 else c
             for c in hotpluggable]
    assert [str(d) for d in compare.numa_differences(blob, smp, moved, memdevs, info_numa)] \
        == ['machine: `numa[0].cpus` is "2-3" in QEMU, "0-3" in the blob',
            'machine: `numa[1].cpus` is "0-1,4-7" in QEMU, "4-7" in the blob']
    larger = [{**m, "size": m["size"] * 2} for m in memdevs]
    assert len(compare.numa_differences(blob, smp, hotpluggable, larger, info_numa)) == 2
    assert compare.numa_differences({**blob, "numa": blob["numa"][:1]}, smp, hotpluggable,
                                    memdevs, info_numa)
    assert compare.numa_differences({**blob, "numa": []}, smp, hotpluggable, memdevs,
                                    info_numa)
    pseries = json.loads((VM / "pseries-minimal.json").read_text(encoding="utf-8"))
    assert not compare.numa_differences(pseries, smp, [], [], "1 nodes\n")
    assert compare.numa_differences(pseries, smp, [], [], "0 nodes\n")
