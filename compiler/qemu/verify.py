"""`mschema verify`: start the real QEMU with a precise machine's argv (paused, `-S`), read
back what it built over QMP and compare it with the prediction (`compare`), and for
machines with a flattened device tree also QEMU's DTB (`fdt_check`).

Ends at a list of diagnostics (E17xx), each difference pointing at the device it concerns:
in a blob, its `id`; in a loose spec, the entry that asked for it; for what the machine
creates by itself, the schema statement. Host problems (no QEMU, a backing file missing)
are found before QEMU starts; QEMU's own refusals come with its stderr.

Also the host side of running an emitted argv elsewhere (`backing_files`, `runnable_argv`),
shared with the tests.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence

import attrs

from compiler.base import backends
from compiler.base.diagnostics import Diagnostic, Label, error
from compiler.base.source import SourceFile, Span
from compiler.build import tree
from compiler.lang import model
from compiler.qemu import process
from compiler.qemu.compare import Difference, Json

# Where QEMU 7.2 builds a device tree for the guest and `-machine dumpdtb=FILE` writes it
# (pseries); x86 machines accept `dumpdtb` and ignore it, so QEMU would never exit.

CODES: dict[str, str] = {
    "missing": "E1704",
    "extra": "E1705",
    "moved": "E1706",
    "type": "E1707",
    "props": "E1708",
    "bus": "E1709",
    "machine": "E1710",
    "fdt": "E1711",
}


@attrs.frozen
class Outcome:
    """What verify found: the problems (empty when QEMU agrees) and what it compared."""

    diagnostics: tuple[Diagnostic, ...]
    devices: int
    buses: int
    command: tuple[str, ...]
    fdt: str  # "whole": the device tree compared whole; "nodes": its nodes; "": not at all


def verify(machine: tree.Machine, library: model.Library, input_span: Span, *,
           binary: str | None = None, binary_span: Span | None = None,
           timeout: float = 30.0, user_net: bool = False) -> Outcome:
    """Run `machine`'s argv in QEMU and compare; `input_span`: the start of the input
    file, where problems without a better place are reported."""
    from compiler.emit import argv as argv_emit
    from compiler.emit import blob as blob_emit
    from compiler.qemu import compare, fdt_check

    blob = json.loads(blob_emit.blob(machine))
    args = argv_emit.argv(machine)
    found = find_binary(binary or args[0], binary_span or input_span,
                        machine.info.qemu, given=binary is not None)
    if isinstance(found, Diagnostic):
        return Outcome((found,), 0, 0, tuple(args), "")
    too_old = release_problem(found, machine, binary_span or input_span, timeout)
    if too_old is not None:
        return Outcome((too_old,), 0, 0, tuple(args), "")
    missing = missing_files(machine, input_span)
    if missing:
        return Outcome(tuple(missing), 0, 0, tuple(args), "")
    command = [found, *args[1:], "-accel", "tcg"]
    if user_net:
        command = user_netdevs(command)
    qom = compare.qom_requests(blob)
    try:
        result = process.query(command, hmp=("info qtree", "info usb"),
                            qmp=[*compare.MACHINE_REQUESTS, *qom], timeout=timeout)
    except process.QemuError as exc:
        return Outcome((qemu_failed(exc, input_span, command),), 0, 0, tuple(command), "")
    root = process.parse_qtree(result.hmp[0])
    info = compare.bus_info()
    n = len(compare.MACHINE_REQUESTS)
    diffs = compare.compare_all(blob, root, result.hmp[1], result.qmp[n:], result.qmp[:n],
                                result.hmp[0], info)
    fdt = ""
    if _dumps_dtb(library, machine):
        try:
            dtb = process.dump_dtb(command, timeout=timeout)
            in_fdt, whole = fdt_check.fdt_differences(machine, blob, dtb, library, info)
        except (process.QemuError, ValueError) as exc:
            failure = exc if isinstance(exc, process.QemuError) else process.QemuError(str(exc))
            return Outcome((qemu_failed(failure, input_span, command, "dumping its device "
                                        "tree"),), 0, 0, tuple(command), "")
        diffs += in_fdt
        fdt = "whole" if whole else "nodes"
    spans = device_spans(machine)
    diagnostics = tuple(difference_diagnostic(d, spans, input_span) for d in diffs)
    devices = sum(1 for _ in tree.walk(machine.root))
    buses = sum(len(d.buses) for _, d, _ in tree.walk(machine.root))
    return Outcome(diagnostics, devices, buses, tuple(command), fdt)


def release_problem(binary: str, machine: tree.Machine, span: Span,
                    timeout: float = 30.0) -> Diagnostic | None:
    """E1732 when QEMU `binary` (its version read over QMP, `query-version`) is older than
    the release the machine is compiled for (the blob's `qemu-release`, 7.2 by default),
    before QEMU is asked to build it; E1703 when it will not say."""
    from compiler.lang import model

    need = machine.info.release or model.DEFAULT_RELEASE
    try:
        have = process.release([binary], timeout=timeout)
    except process.QemuError as exc:
        return qemu_failed(exc, span, [binary, "-machine", "none"], "reading its version")
    if have[:2] >= (model.release_key(need) or (0, 0)):
        return None
    return error("E1732", f"QEMU {'.'.join(map(str, have))} (`{binary}`) is older than QEMU "
                 f"{need}, which `{machine.info.qemu}` needs", span,
                 notes=[f"the blob's `machine.qemu-release` is {need}"
                        if machine.info.release else f"a blob without `qemu-release` is for "
                        f"QEMU {need}"],
                 help=f"give `--qemu PATH` of QEMU {need} or newer")


def find_binary(name: str, span: Span, machine: str, *, given: bool) -> str | Diagnostic:
    """The QEMU executable: `--qemu PATH` as given, else the schema's binary on PATH."""
    if os.sep in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
        return error("E1701", f"QEMU binary `{name}` does not exist or is not executable",
                     span, help="give the path of a `qemu-system-*` binary")
    path = process.find_binary(name)
    if path is None and given:
        return error("E1701", f"`{name}` is not on PATH", span,
                     help="give the path of a `qemu-system-*` binary")
    if path is None:
        return error("E1701", f"`{name}` is not on PATH", span,
                     notes=[f"`{machine}` runs on `{name}`"],
                     help="install QEMU 7.2 (Debian: `apt-get install qemu-system-x86 "
                     "qemu-system-ppc`), or give its path with `--qemu PATH`")
    return path


def device_spans(machine: tree.Machine) -> dict[str, tuple[Span | None, Span | None]]:
    """Device id → (primary, secondary) place: the spec entry (or blob id) that asked for
    it, then the schema statement that made it; or the statement alone."""
    spans: dict[str, tuple[Span | None, Span | None]] = {}
    for _, d, _ in tree.walk(machine.root):
        cause, rule = d.why.cause, d.why.span
        spans[d.id] = (cause, rule) if cause is not None else (rule, None)
    return spans


def difference_diagnostic(d: Difference, spans: Mapping[str, tuple[Span | None, Span | None]],
                          fallback: Span) -> Diagnostic:
    primary, secondary = spans.get(d.device or "", (None, None))
    labels = [Label(secondary, "the rule that makes it")] if secondary is not None else []
    return error(CODES[d.kind], d.message, primary or fallback, labels=labels,
                 notes=[f"difference: {d.kind}"])


def qemu_failed(exc: process.QemuError, span: Span, command: Sequence[str],
                doing: str = "building the machine") -> Diagnostic:
    lines = [ln for ln in exc.stderr.splitlines() if ln.strip()][-8:]
    return error("E1703", f"QEMU failed while {doing}: {exc.message}", span,
                 notes=[*(f"QEMU: {ln}" for ln in lines),
                        "command: " + " ".join(_quote(a) for a in command)])


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


# --------------------------------------------------------------------------
# The host side


def backing_files(blob: Mapping[str, Json]) -> list[tuple[str, str]]:
    """(file name, image format) of every blockdev backend of a blob, and (directory,
    `directory`) of every fsdev."""
    return [(str(b["file"]), str(b["driver"])) if b.get("kind") == "blockdev" else
            (str(b["path"]), "directory") for b in blob["backends"].values()
            if b.get("kind") == "blockdev" or (b.get("kind") == "fsdev" and b.get("path"))]


def missing_files(machine: tree.Machine, fallback: Span) -> list[Diagnostic]:
    """Host files QEMU needs before it can start: disk images and rng sources must exist,
    and the directories of chardev files and sockets (relative paths: from here, where
    QEMU runs)."""
    users: dict[str, tree.Device] = {}
    for _, d, _ in tree.walk(machine.root):
        for _name, target in d.backend:
            users.setdefault(target, d)
    spans = device_spans(machine)
    problems = []
    for ident, body in machine.backends:
        b = dict(body)
        kind = backends.REGISTRY.get(str(b.get("kind")))
        for path, what in kind.host_files(b) if kind else ():
            if os.path.exists(path):
                continue
            user = users.get(ident)
            primary = spans.get(user.id, (None, None))[0] if user else None
            problems.append(error(
                "E1702", f"{what} `{path}` of backend `{ident}` does not exist", primary or
                fallback, notes=[f"QEMU would not start: `{user.id}` ({user.type}) needs it"
                                 if user else "QEMU would not start"] +
                ([f"relative paths are read from the current directory, {os.getcwd()}"]
                 if not os.path.isabs(path) else []),
                help="create it (`qemu-img create -f qcow2 FILE 1G` for an image), or run "
                "verify where the paths are valid"))
    return problems


def user_netdevs(argv: Sequence[str]) -> list[str]:
    """`argv` with tap and bridge netdevs made `user` ones: the guest hardware is the same,
    and no privileges or host network setup are needed."""
    out = list(argv)
    for i in range(len(out) - 1):
        if out[i] == "-netdev" and out[i + 1].startswith("{"):
            net = json.loads(out[i + 1])
            if net.get("type") in ("tap", "bridge"):
                out[i + 1] = json.dumps({"id": net["id"], "type": "user"},
                                        separators=(",", ":"))
    return out


def _absolute(path: str, directory: str) -> str:
    return path if os.path.isabs(path) else os.path.join(directory, path)


def runnable_argv(argv: Sequence[str], directory: str) -> list[str]:
    """`argv` with relative host paths under `directory` and tap/bridge netdevs `user`."""
    out = user_netdevs(argv)
    for i in range(len(out) - 1):
        opt, value = out[i], out[i + 1]
        if opt == "-blockdev" and value.startswith("{"):
            node = json.loads(value)
            file = node.get("file")
            if isinstance(file, dict) and "filename" in file:
                file["filename"] = _absolute(file["filename"], directory)
            out[i + 1] = json.dumps(node, separators=(",", ":"))
        elif opt == "-fsdev" or opt == "-chardev":
            out[i + 1] = re.sub(r"(?<=,)path=((?:[^,]|,,)*)",
                                lambda m: "path=" + _absolute(m[1], directory.replace(",", ",,")),
                                value)
    return out


def input_start(path: str) -> Span:
    """The first character of the input file (or an empty source if it cannot be read)."""
    try:
        source = SourceFile.read(path)
    except (OSError, UnicodeDecodeError):
        source = SourceFile.from_text(path, "")
    return source.span(0, 0)


def _dumps_dtb(library: model.Library, machine: tree.Machine) -> bool:
    """Does QEMU hand this machine's guest a device tree it can dump (`dumpdtb=FILE`)? The
    schema says so with `quirk dumpdtb = true`; x86 QEMU accepts the option and ignores it."""
    schema = next((s for s in library.machines.values()
                   if s.family == machine.info.schema and s.qemu_machine == machine.info.qemu),
                  None)
    return schema is not None and any(q.name == "dumpdtb" and q.value is True
                                      for q in schema.quirks)
