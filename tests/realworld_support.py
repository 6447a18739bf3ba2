"""The real-world corpus (`tests/realworld/`): QEMU command lines from public projects' test
data, adapted by `tools/realworld_adapt.py` (sources and changes: `tests/realworld/SOURCES.md`).

Each case runs as a user would use mschema on a machine someone else started: QEMU `A` starts
paused from the case's argv with a QMP socket; `mschema extract` reads the precise blob;
`mschema compile BLOB --emit argv` gives the argv of the same machine; QEMU `B` starts from it;
then QEMU's two views are compared: every device (`info qtree`: type, place in the tree,
address and every qdev property QEMU prints, but the names of backends), and every machine
setting (each scalar QOM property of `/machine`, `-boot` and `-smp` among them; the cpus
and their type; the memory; the uuid; the NUMA nodes: `info numa`, each possible cpu's
node, the RAM backends with their props). `-global` shows in the props of the devices it
reaches, `-rtc driftfix` in the RTC's. Not compared, as QEMU shows them nowhere or they are
the host's: `-name`, `-rtc base`/`clock`, the CPU's feature flags, `-no-shutdown`,
`-watchdog-action`, `-sandbox`, `-msg`, `-overcommit`. A case `rebuilds` when nothing
differs; otherwise it `fails` with one reason: the first error of the step that went wrong
(extract's first diagnostic, compile's, QEMU's refusal), or the first difference.
`tests/realworld/EXPECTED` holds each case's outcome (test_realworld.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs
from qemu_support import require_binary
from vm_support import qmp, started

from compiler.qemu import process

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "realworld"
EXPECTED = CORPUS / "EXPECTED"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
Json = object

# qdev props whose values name a backend (a node, netdev, chardev, object): the names are the
# user's and extract's choice, not the guest's hardware
BACKEND_PROPS = frozenset({"drive", "netdev", "chardev", "audiodev", "rng", "memdev", "fsdev",
                           "iothread", "tpmdev", "pflash0", "pflash1", "memory-backend"})
# props that say where a device sits on its bus, in the order they are tried
ADDRESS_PROPS = ("addr", "port", "reg", "nr", "cad", "unit", "iobase", "index", "scsi-id",
                 "chassis", "bus_nr", "slot")
# /machine props that are not settings of the guest's hardware
MACHINE_SKIP = frozenset({"type", "memory-backend", "pflash0", "pflash1", "rtc-time",
                          "dumpdtb", "peripheral", "peripheral-anon", "unattached"})


def cases() -> list[str]:
    return sorted(p.stem for p in CORPUS.glob("*.args"))


def case_argv(case: str) -> list[str]:
    """The case's argv, the binary resolved on PATH (the test skips when it is missing)."""
    words = (CORPUS / f"{case}.args").read_text(encoding="utf-8").splitlines()
    return [require_binary(words[0]), *words[1:]]


@attrs.frozen
class Outcome:
    status: str  # "rebuilds" | "fails"
    reason: str = ""
    details: tuple[str, ...] = ()

    def line(self) -> str:
        return self.status if self.status == "rebuilds" else f"fails: {self.reason}"


def read_expected(path: Path = EXPECTED) -> dict[str, str]:
    """`EXPECTED`: `CASE: rebuilds` or `CASE: fails: REASON`, one a line; `#` comments."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            case, _, outcome = line.partition(": ")
            out[case] = outcome
    return out


EXPECTED_HEAD = """\
# The outcome of each real-world case (tests/test_realworld.py asserts exactly this):
# `CASE: rebuilds`, or `CASE: fails: REASON` (the first error or difference). Regenerate with
# `python3 -m pytest tests/test_realworld.py --update-goldens` and review the diff.
"""


def write_expected(outcomes: Mapping[str, str], path: Path = EXPECTED) -> None:
    path.write_text(EXPECTED_HEAD + "".join(f"{c}: {outcomes[c]}\n" for c in sorted(outcomes)),
                    encoding="utf-8")


# ---------------------------------------------------------------------------------------
# Host files the adapted argv names (`images/…`, relative to the case's directory)


def make_host_files(argv: Sequence[str], directory: Path) -> None:
    """Create the images and 9p directories of an adapted argv in `directory`: each
    `-blockdev` file in the format of the node above it (qcow2 or raw, 16 MiB), UEFI
    variables as a copy of Debian's OVMF_VARS_4M.fd."""
    nodes = [json.loads(v) for o, v in itertools.pairwise(argv) if o == "-blockdev"
             and v.startswith("{")]
    for node in list(nodes):  # a protocol node written inside its format node
        if isinstance(node.get("file"), dict):
            nodes.append({**node["file"], "node-name": f"{node['node-name']}-file"})
            node["file"] = f"{node['node-name']}-file"
    formats = {str(n.get("file")): str(n["driver"]) for n in nodes
               if isinstance(n.get("file"), str)}
    for node in nodes:
        name = str(node.get("filename", ""))
        if node.get("driver") != "file" or not name.startswith("images/"):
            continue
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            continue
        if name.endswith("_VARS.fd"):
            shutil.copyfile(OVMF_VARS, target)
            continue
        fmt = formats.get(str(node.get("node-name")), "raw")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2" if fmt == "qcow2" else "raw",
                        str(target), "16M"], check=True, capture_output=True)
    for option, value in itertools.pairwise(argv):
        if option == "-fsdev":
            for part in value.split(","):
                if part.startswith("path="):
                    (directory / part.removeprefix("path=")).mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------------------------------
# QEMU's view of a machine


@attrs.frozen
class View:
    """What one QEMU shows of the machine it built."""

    devices: Mapping[Place, Mapping[str, str]]  # place → props
    machine: Mapping[str, Json]  # setting → value


Place = tuple[tuple[str, str, str, int], ...]  # per level: bus type, device type, address, n


def _address(device: process.QtreeDevice) -> str:
    for prop in ADDRESS_PROPS:
        raw = device.prop(prop)
        if raw is not None:
            return f"{prop}={raw.split(' (0x')[0].strip(chr(34))}"
    return ""


def _devices(bus: process.QtreeBus, ancestry: Place,
             out: dict[Place, dict[str, str]]) -> None:
    for device in reversed(bus.devices):  # qtree lists the newest first
        segment = (bus.type, device.type, _address(device))
        n = sum(1 for k in out if len(k) == len(ancestry) + 1 and k[:-1] == ancestry
                and k[-1][:3] == segment)
        key = (*ancestry, (*segment, n))  # devices alike and without address: in order
        out[key] = {k: v for k, v in device.props if k not in BACKEND_PROPS}
        for child in device.buses:
            _devices(child, key, out)


def view(sock: str) -> View:
    """Read QEMU's view over QMP (before or after extract: one client at a time)."""
    qtree, props = qmp(sock, ("human-monitor-command", {"command-line": "info qtree"}),
                       ("qom-list", {"path": "/machine"}))
    assert isinstance(qtree, str) and isinstance(props, list)
    devices: dict[Place, dict[str, str]] = {}
    root = process.parse_qtree(qtree.replace("\r\n", "\n"))
    _devices(root, (), devices)
    names = sorted(str(p["name"]) for p in props
                   if not str(p["type"]).startswith(("child<", "link<"))
                   and p["name"] not in MACHINE_SKIP)
    machine: dict[str, Json] = {}
    for name in names:
        try:
            (machine[f"/machine {name}"],) = qmp(sock, ("qom-get", {"path": "/machine",
                                                                    "property": name}))
        except Exception as e:  # a property QOM cannot read (write-only): say so
            machine[f"/machine {name}"] = f"<unreadable: {type(e).__name__}>"
    cpus, memory, uuid = qmp(sock, ("query-cpus-fast", {}), ("query-memory-size-summary", {}),
                             ("query-uuid", {}))
    assert isinstance(cpus, list)
    machine["cpus"] = [{"props": c["props"], "target": c["target"]} for c in cpus]
    if cpus:
        (machine["cpu type"],) = qmp(sock, ("qom-get", {"path": cpus[0]["qom-path"],
                                                        "property": "type"}))
    machine["memory"] = memory
    machine["uuid"] = uuid
    info_numa, hotpluggable, memdevs = qmp(
        sock, ("human-monitor-command", {"command-line": "info numa"}),
        ("query-hotpluggable-cpus", {}), ("query-memdev", {}))
    assert isinstance(hotpluggable, list) and isinstance(memdevs, list)
    machine["info numa"] = str(info_numa).replace("\r\n", "\n")
    machine["cpu nodes"] = sorted(json.dumps(c["props"], sort_keys=True) for c in hotpluggable)
    machine["memory backends"] = sorted(memdevs, key=lambda m: str(m.get("id")))
    machine.update(_qom_only(sock, root))
    return View(devices, machine)


_QOM_LINE = re.compile(r"^(?P<indent> *)/(?P<name>\S+) \((?P<type>[^)]+)\)$")


def _qom_only(sock: str, root: process.QtreeBus) -> dict[str, Json]:
    """The stdlib-declared props of the devices QEMU created by itself that `info qtree`
    does not print (QOM properties only: ICH9-LPC's disable_s3), by QOM path from `info
    qom-tree`."""
    from compiler.lang.resolve import load_library

    library = load_library()
    hidden = {(d.type, name) for _, d in process.walk(root) if d.type in library.devices
              for name in library.devices[d.type].props if d.prop(name) is None}
    (text,) = qmp(sock, ("human-monitor-command", {"command-line": "info qom-tree"}))
    assert isinstance(text, str)
    stack: list[str] = []
    objects: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").splitlines():
        m = _QOM_LINE.match(line.rstrip())
        if m is None:
            continue
        del stack[len(m["indent"]) // 2:]
        stack.append(m["name"])
        path = "/" + "/".join(stack)
        if m["type"] in library.devices and not path.startswith("/machine/peripheral"):
            objects.append((path, m["type"]))
    listed = qmp(sock, *(("qom-list", {"path": path}) for path, _ in objects))
    reads = []
    for (path, type_), props in zip(objects, listed, strict=True):
        assert isinstance(props, list)
        qom = {str(p["name"]): str(p["type"]) for p in props}
        for name in sorted(library.devices[type_].props):
            # a qdev prop shows in `info qtree` (compared there); the others only in QOM
            if name in qom and not qom[name].startswith(("link<", "child<")) and \
                    (type_, name) in hidden:
                reads.append((path, name))
    values = qmp(sock, *(("qom-get", {"path": p, "property": n}) for p, n in reads))
    return {f"qom {p} {n}": v for (p, n), v in zip(reads, values, strict=True)}



def _show(place: Place) -> str:
    """`q35-pcihost/pcie-root-port[addr=02.1]/nec-usb-xhci[addr=00.0]/usb-redir[port=2]`"""
    return "/".join(f"{t}[{a}]" if a else t + (f"#{n}" if n else "")
                    for _, t, a, n in place)


def view_differences(a: View, b: View) -> list[str]:
    """What QEMU B (the rebuilt machine) shows otherwise than QEMU A (the original)."""
    found = []
    for place in sorted(a.devices.keys() - b.devices.keys(), key=str):
        found.append(f"device {_show(place)} is not rebuilt")
    for place in sorted(b.devices.keys() - a.devices.keys(), key=str):
        found.append(f"device {_show(place)} is rebuilt but was not there")
    for place in sorted(a.devices.keys() & b.devices.keys(), key=str):
        pa, pb = a.devices[place], b.devices[place]
        for prop in sorted(pa.keys() | pb.keys()):
            if pa.get(prop) != pb.get(prop):
                found.append(f"device {_show(place)}: `{prop}` is {pa.get(prop)} in the "
                             f"original, {pb.get(prop)} rebuilt")
    for key in sorted(a.machine.keys() | b.machine.keys()):
        if a.machine.get(key) != b.machine.get(key):
            found.append(f"machine {key} is {json.dumps(a.machine.get(key))} in the original, "
                         f"{json.dumps(b.machine.get(key))} rebuilt")
    return found


# ---------------------------------------------------------------------------------------
# One case


def mschema(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _stable(text: str, directory: Path) -> str:
    """A reason that does not change from run to run: no scratch paths, one line."""
    text = text.replace(str(directory), "DIR")
    text = re.sub(r"/tmp/[\w./-]+", "TMP", text)
    return " ".join(text.split())[:300]


def _qemu_refusal(error: Exception) -> str:
    """QEMU's last line of complaint (its stderr), without the timestamp `-msg` adds."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else "(QEMU said nothing)"
    return re.sub(r"^\S*\d{4}-\d\d-\d\dT[\d:.]+Z ", "", last)


@contextlib.contextmanager
def _started(argv: Sequence[str], directory: Path, timeout: float = 30.0) -> Iterator[str]:
    """QEMU paused with a QMP socket, started in `directory` (where `images/` are), as
    `vm_support.running` starts it; killed afterwards."""
    with started(argv, str(directory / f"qmp-{next(_serial)}.sock"), str(directory / "stderr"),
                 cwd=str(directory), timeout=timeout) as sock:
        yield sock


_serial = itertools.count()


def run_case(case: str, directory: Path) -> Outcome:
    """`run_argv` of the case's argv."""
    return run_argv(case_argv(case), directory)


def run_argv(argv: Sequence[str], directory: Path) -> Outcome:
    """Start, extract, compile, start again, compare; the outcome with its reason.

    `extract` exits 1 when it cannot describe something; then `--partial` writes what it
    could, and the case goes on (the rebuilt machine shows what was lost). The case fails
    when extract exited non-zero or the two views differ; the reason is then extract's first
    diagnostic (what it could not describe explains the rest), else the first difference."""
    make_host_files(argv, directory)
    blob = directory / "blob.json"
    try:
        with _started(argv, directory) as sock:
            original = view(sock)
            done = mschema("extract", "--qmp", sock, "-o", str(blob), "--format", "json",
                           cwd=directory)
            if done.returncode != 0 and not blob.exists():
                mschema("extract", "--qmp", sock, "--partial", "-o", str(blob), "--format",
                        "json", cwd=directory)
    except RuntimeError as e:
        return Outcome("fails", "QEMU refuses the original: " + _stable(_qemu_refusal(e),
                                                                       directory))
    diagnostics = _diagnostics(done.stderr)
    extract_reason = "extract: " + _stable(diagnostics[0] if diagnostics else
                                           first_line(done.stderr), directory)
    if not blob.exists():
        return Outcome("fails", extract_reason, (done.stderr,))
    compiled = mschema("compile", str(blob), "--emit", "argv", "--format", "json", cwd=directory)
    if compiled.returncode != 0:
        reason = extract_reason if diagnostics else "compile: " + _stable(
            (_diagnostics(compiled.stderr) or [first_line(compiled.stderr)])[0], directory)
        return Outcome("fails", reason, (*diagnostics, compiled.stderr))
    rebuilt = json.loads(compiled.stdout)
    extra = [] if "-accel" in rebuilt else ["-accel", "tcg"]
    try:
        with _started([require_binary(rebuilt[0]), *rebuilt[1:], *extra], directory) as sock:
            again = view(sock)
    except RuntimeError as e:
        # what extract could not describe (a blob `--partial` wrote) explains a refusal
        reason = extract_reason if done.returncode != 0 and diagnostics else \
            "QEMU refuses the rebuilt argv: " + _stable(_qemu_refusal(e), directory)
        return Outcome("fails", reason, tuple(diagnostics))
    found = view_differences(original, again)
    if found or done.returncode != 0:
        reason = extract_reason if diagnostics else _stable(_first_difference(found),
                                                            directory)
        return Outcome("fails", reason, (*diagnostics, *found))
    return Outcome("rebuilds", details=tuple(diagnostics))


def _first_difference(found: Sequence[str]) -> str:
    """The first device that differs, else every machine setting that does (by name)."""
    devices = [f for f in found if f.startswith("device ")]
    if devices:
        return devices[0]
    names = [f.removeprefix("machine ").split(" is ", 1)[0].removeprefix("/machine ")
             for f in found]
    return "machine settings differ: " + ", ".join(names)


def _diagnostics(stderr: str) -> list[str]:
    """`--format json` diagnostics as `severity[CODE]: message`, in mschema's order."""
    try:
        found = json.loads(stderr) if stderr.strip() else []
    except json.JSONDecodeError:
        return []
    return [f"{d['severity']}[{d['code']}]: {d['message']}" for d in found
            if isinstance(d, dict)]


def first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "(nothing on stderr)"


def run_in_scratch(case: str) -> tuple[str, Outcome]:
    """`run_case` in a scratch directory of its own (for a process pool)."""
    with tempfile.TemporaryDirectory(prefix=f"mschema-rw-{case}-") as tmp:
        return case, run_case(case, Path(tmp))
