"""The `mschema` command. Parses arguments, calls `driver`, renders results and diagnostics.
Heavy modules are imported inside each command so `mschema lint` starts fast."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from compiler import __version__

if TYPE_CHECKING:
    from compiler.base.diagnostics import Diagnostic
    from compiler.spec.policy import Policy

# `--format` of lint, compile, verify and migrate-check for CI (compiler/present/ci.py)
CI_FORMATS = ("sarif", "github")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mschema", description="Declarative machine schemas "
                                "for QEMU: expand loose specs into precise machines.")
    p.add_argument("--version", action="version", version=f"mschema {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lint = sub.add_parser("lint", help="check .machine schemas and stdlib files")
    lint.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                      help="files or directories to check, as one set (default: every "
                      "shipped schema and stdlib file)")
    lint.add_argument("--format", choices=("text", "json", *CI_FORMATS), default="text")

    show = sub.add_parser("show", help="what a machine creates by itself, with addresses")
    show.add_argument("machine", metavar="MACHINE", help="e.g. pc-q35, pc-q35-7.2, pseries")
    show.add_argument("--option", "-o", action="append", default=[], metavar="K=V",
                      help="a machine option, e.g. sata=off (repeatable)")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.add_argument("--why", action="store_true",
                      help="say for each device which statement creates it")
    comp = sub.add_parser("compile", help="loose spec (or precise blob) → precise outputs")
    comp.add_argument("spec", type=Path, nargs="+", metavar="SPEC",
                      help="a spec or blob; several, or a directory of them, make a batch "
                      "run (outputs under -o DIR/NAME/, a summary table at the end)")
    comp.add_argument("--emit", action="append", default=[],
                      choices=("json", "argv", "shell", "dtb", "dts", "libvirt"),
                      help="output kind (repeatable)")
    comp.add_argument("-o", "--output", type=Path, metavar="PATH")
    comp.add_argument("--format", choices=("text", "json", *CI_FORMATS), default="text",
                      help="how to print diagnostics (json: a list on stderr; sarif, github: "
                      "on stdout)")
    comp.add_argument("--capacity", action="store_true",
                      help="say where devices can still be hot-plugged")
    comp.add_argument("--why", metavar="ID",
                      help="say why device ID is in the precise machine, and where it comes from")
    _add_jobs(comp)
    _add_policy(comp)
    imp = sub.add_parser("import-libvirt", help="libvirt domain XML → a loose spec (or with "
                         "--precise the precise blob, libvirt's addresses kept)")
    imp.add_argument("domain", type=Path, metavar="DOMAIN.xml")
    imp.add_argument("-o", "--output", type=Path, metavar="FILE")
    imp.add_argument("--precise", action="store_true",
                     help="the precise blob, with every <address> libvirt wrote")
    imp.add_argument("--partial", action="store_true",
                     help="import what can be imported; the rest are warnings")
    imp.add_argument("--format", choices=("text", "json"), default="text",
                     help="how to print diagnostics (json: a list on stderr)")
    hot = sub.add_parser("hotplug", help="add or remove a device on a running machine's blob")
    hot.add_argument("blob", type=Path, metavar="BLOB")
    what = hot.add_mutually_exclusive_group(required=True)
    what.add_argument("--add", type=Path, metavar="FRAGMENT",
                      help="a loose fragment: [[disk]], [[nic]], [[device]], …")
    what.add_argument("--remove", metavar="ID", help="the id of the device to unplug")
    hot.add_argument("--emit", choices=("json", "qmp"), default="json",
                     help="json: the new blob; qmp: the commands, one JSON object a line")
    hot.add_argument("-o", "--output", type=Path, metavar="PATH")
    hot.add_argument("--format", choices=("text", "json"), default="text",
                     help="how to print diagnostics")
    _add_policy(hot)

    mig = sub.add_parser("migrate-check", help="do two blobs describe the same guest?")
    mig.add_argument("source", type=Path, metavar="SRC",
                     help="a spec or blob; or a directory, paired file by file with DST's")
    mig.add_argument("destination", type=Path, metavar="DST")
    _add_jobs(mig)
    mig.add_argument("--format", choices=("text", "json", *CI_FORMATS), default="text",
                     help="how to print the differences and diagnostics (json: the "
                     "differences as a list on stdout, or a record per pair in a batch run; "
                     "sarif, github: the differences as diagnostics)")
    _add_policy(mig)
    sdiff = sub.add_parser("schema-diff", help="what changes guest-visibly between two "
                           "machine schemas (0: none, 1: some, 2: trouble)")
    sdiff.add_argument("a", metavar="A", help="a machine, e.g. pc-q35-7.0")
    sdiff.add_argument("b", metavar="B", help="another, e.g. pc-q35-7.2 or pc-q35")
    sdiff.add_argument("--format", choices=("text", "json"), default="text")
    qdiff = sub.add_parser("qemu-diff", help="does a machine version build the same guest on "
                           "two QEMU binaries? (0: yes, 1: differences, 2: trouble)")
    qdiff.add_argument("machine", metavar="MACHINE", help="a machine version, e.g. pc-q35-7.1")
    qdiff.add_argument("--qemu", action="append", required=True, metavar="PATH",
                       help="a QEMU binary; give two (e.g. 7.2's and 10.0's)")
    qdiff.add_argument("--option", "-o", action="append", default=[], metavar="K=V",
                       help="a machine option, e.g. usb=on (repeatable)")
    qdiff.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    qdiff.add_argument("--format", choices=("text", "json"), default="text")
    _add_verify_extract(sub)
    from compiler.present import commands as present  # graph (issue 16)

    present.add_parsers(sub)
    return p


def _add_policy(command: argparse.ArgumentParser) -> None:
    command.add_argument("--policy", type=Path, metavar="FILE",
                         help="a platform's policy (TOML): what the input may ask for "
                         "(README, Security)")


def main(argv: Sequence[str] | None = None) -> int:
    """The command, with a last resort: an exception that escapes it is a bug in mschema,
    reported as `error[E9999]` with exit 3, never as a traceback (`MSCHEMA_DEBUG=1` re-raises
    it for developers)."""
    try:
        return _main(argv)
    except Exception as exc:
        import os

        if os.environ.get("MSCHEMA_DEBUG"):
            raise
        import traceback

        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        detail = str(exc)[:500]
        sys.stderr.write(
            f"mschema: error[E9999]: internal error: {type(exc).__name__}"
            + (f": {detail}" if detail else "") + "\n"
            f"  = note: raised at {where}\n"
            "  = help: this is a bug in mschema, not a problem with your input: please report "
            "it with the command line and its input files (MSCHEMA_DEBUG=1 shows the "
            "traceback)\n")
        return 3


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    if argv is None and "_ARGCOMPLETE" in os.environ:  # the shell asks for completions
        from compiler.present import completion

        completion.complete(parser)
    args = parser.parse_args(argv)
    fmt = getattr(args, "format", "text")
    ci = fmt in CI_FORMATS
    if args.command == "lint" and not any(p.is_dir() for p in args.paths) and _lint_unchanged(
            args.paths, args.format):
        return _ci_report(fmt, [], argv) if ci else 0
    from compiler.base.diagnostics import CompileError, render_json, render_text

    if ci and args.command == "compile" and ((args.emit and args.output is None)
                                             or args.why is not None or args.capacity):
        sys.stderr.write(f"mschema compile: error: `--format {fmt}` writes to stdout: give "
                         "`--emit` an `-o`; `--why` and `--capacity` print text\n")
        return 2
    try:
        if args.command == "lint" and any(p.is_dir() for p in args.paths):
            args.paths = _schema_files(args.paths)
            if _lint_unchanged(args.paths, fmt):
                return _ci_report(fmt, [], argv) if ci else 0
        if args.command in ("compile", "verify", "migrate-check") and _is_batch(args):
            if ci:
                sys.stderr.write(f"mschema {args.command}: error: a batch run prints a table "
                                 f"or, with `--format json`, a record per input; not {fmt}\n")
                return 2
            return _batch(args, _policy(args.policy))
        if ci and args.command in ("lint", "compile", "verify", "migrate-check"):
            from compiler.present import commands as present

            found = present.ci_command(args, _compile, _policy(getattr(args, "policy", None)))
            return _ci_report(fmt, found, argv)
        if args.command == "lint":
            return _lint(args.paths, fmt)
        if args.command == "schema-diff":
            return _schema_diff(args.a, args.b, fmt)
        if args.command == "qemu-diff":
            return _qemu_diff(args.machine, args.qemu, args.option, args.timeout, fmt)
        if args.command == "show":
            return _show(args.machine, args.option, fmt, args.why)
        policy = _policy(getattr(args, "policy", None))
        if args.command == "hotplug":
            return _hotplug(args.blob, args.add, args.remove, args.emit, args.output, policy)
        if args.command == "migrate-check":
            return _migrate_check(args.source, args.destination, fmt, policy)
        if args.command == "verify":
            return _verify(args.spec[0], args.qemu, args.timeout, args.user_net, policy)
        if args.command == "extract":
            return _extract(args.qmp, args.output, args.timeout, fmt, args.partial, policy)
        if args.command in ("graph", "docs", "explain"):
            from compiler.present import commands as present

            return present.run(args)
        if args.command == "import-libvirt":
            return _import_libvirt(args.domain, args.output, args.precise, args.partial, fmt)
        if args.command == "compile":
            if args.capacity:
                return _capacity(args.spec[0], policy)
            return _compile(args.spec[0], args.emit, args.output, args.why, policy)
    except CompileError as exc:
        if ci:
            return _ci_report(fmt, exc.diagnostics, argv)
        # lint's findings are its output (stdout); elsewhere diagnostics go to stderr
        stream = sys.stdout if args.command == "lint" and fmt == "json" else sys.stderr
        stream.write(render_json(exc.diagnostics) if fmt == "json" else
                     render_text(exc.diagnostics))
        return 1
    raise AssertionError(f"unhandled command {args.command}")


def _ci_report(fmt: str, diagnostics: Sequence[Diagnostic],
               argv: Sequence[str] | None) -> int:
    from compiler.present import commands

    commands.ci_report(fmt, diagnostics, list(sys.argv[1:] if argv is None else argv))
    return 1 if any(d.severity == "error" for d in diagnostics) else 0


def _policy(path: Path | None) -> Policy:
    from compiler import driver

    return driver.load_policy(path)


def _qemu_diff(machine: str, binaries: list[str], options: list[str], timeout: float,
               fmt: str) -> int:
    """`diff`'s convention, as schema-diff: 0 the same guest on both binaries, 1 different
    (one line per difference on stdout; a prop only one binary has is listed, not counted),
    2 trouble (a diagnostic on stderr)."""
    import json

    from compiler import driver
    from compiler.base.diagnostics import CompileError, render_json, render_text

    if len(binaries) != 2:
        sys.stderr.write("mschema qemu-diff: error: give --qemu twice\n")
        return 2
    try:
        versions, found = driver.qemu_diff(machine, options, binaries, timeout)
    except CompileError as exc:
        sys.stderr.write(render_json(exc.diagnostics) if fmt == "json" else
                         render_text(exc.diagnostics))
        return 2
    if fmt == "json":
        sys.stdout.write(json.dumps({"qemu": versions, "differences": [
            d.as_json() for d in found]}, indent=2) + "\n")
    else:
        sys.stdout.write(f"# {machine}: QEMU {versions[0]} → QEMU {versions[1]}\n")
        sys.stdout.write("".join(d.text() + "\n" for d in found))
    return 1 if any(d.counts for d in found) else 0


def _schema_diff(a: str, b: str, fmt: str) -> int:
    """`diff`'s convention: 0 the same, 1 different (one line per difference on stdout),
    2 trouble (an unknown machine: its diagnostic on stderr)."""
    import json

    from compiler.base.diagnostics import Collector, CompileError, render_json, render_text
    from compiler.driver import find_machine
    from compiler.lang.resolve import load_library
    from compiler.ops import schema_diff

    try:
        library = load_library()
        diags = Collector()
        machines = []
        for name in (a, b):
            try:
                machines.append(find_machine(library, name, diags))
            except CompileError:
                pass
        diags.check()
    except CompileError as exc:
        sys.stderr.write(render_json(exc.diagnostics) if fmt == "json" else
                         render_text(exc.diagnostics))
        return 2
    found = schema_diff.diff(library, machines[0], machines[1])
    if fmt == "json":
        sys.stdout.write(json.dumps([d.as_json() for d in found], indent=2) + "\n")
    else:
        sys.stdout.write("".join(d.text() + "\n" for d in found))
    return 1 if found else 0


def _lint_unchanged(paths: list[Path], fmt: str) -> bool:
    """Is a clean run of this lint, on these very files, in the cache? Then say so as that
    run did, without importing the compiler proper (`cache` only needs the stdlib)."""
    from compiler.lang import cache

    if not cache.lint_is_clean(paths):
        return False
    if fmt == "json":
        sys.stdout.write("[]\n")
    return True


def _schema_files(paths: list[Path]) -> list[Path]:
    """lint's inputs: files as given, a directory as the schema and stdlib files below it
    (sorted). They are checked as one set: they may `use` and `extend` one another."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            below = sorted(p for p in path.rglob("*")
                           if p.suffix in (".machine", ".mschema") and p.is_file())
            if not below:
                from compiler.base.diagnostics import CompileError
                from compiler.fleet import empty_directory

                raise CompileError([empty_directory(path, (".machine", ".mschema"))])
            found += below
        else:
            found.append(path)
    return found


def _lint(paths: list[Path], fmt: str) -> int:
    from compiler import driver

    driver.lint(paths)
    if fmt == "json":
        sys.stdout.write("[]\n")
    return 0


def _show(machine: str, options: list[str], fmt: str, why: bool) -> int:
    from compiler import driver
    from compiler.emit import blob, text

    result = driver.show(machine, options)
    if fmt == "json":
        sys.stdout.write(blob.show_json(result))
        return 0
    from compiler.ops import hotplug

    sys.stdout.write(text.show_text(result, why=why))
    sys.stdout.write(hotplug.describe_capacity(hotplug.capacity(result)))
    return 0


def _compile(path: Path, emits: list[str], output: Path | None, why: str | None,
             policy: Policy) -> int:
    from compiler import driver
    from compiler.emit import text

    machine = driver.compile_input(path, policy)
    if why is not None:
        from compiler.base.diagnostics import CompileError, error, quote_list
        from compiler.base.source import SourceFile
        from compiler.build.tree import walk

        ids = [d.id for _b, d, _n in walk(machine.root)]
        if why not in ids:
            span = SourceFile.from_text("<command line>", why).span(0, len(why))
            raise CompileError([error("E1501", f"no device `{why}` in this machine", span,
                                      notes=[f"its devices are {quote_list(ids, 40)}"])])
        sys.stdout.write(text.why(machine, why))
        return 0
    from compiler.emit import kinds as emit_kinds

    if len(emits) == 1 and output is None:
        if emits[0] == "dtb":
            sys.stderr.write("mschema compile: error: `--emit dtb` is binary: give `-o FILE`\n")
            return 2
        shown = emit_kinds.render(machine, emits[0])
        assert isinstance(shown, str)
        sys.stdout.write(shown)
        return 0
    if len(emits) == 1 and output is not None:
        _write_atomically({output: emit_kinds.render(machine, emits[0])},
                          [output] if emits[0] in emit_kinds.EXECUTABLE else [])
        return 0
    name = machine.name or path.stem
    directory = output or Path("build") / name
    files = {directory / f"{name}{emit_kinds.SUFFIXES[k]}": emit_kinds.render(machine, k)
             for k in emits or emit_kinds.DEFAULT}
    _write_atomically(files, [directory / f"{name}{emit_kinds.SUFFIXES[k]}"
                              for k in emit_kinds.EXECUTABLE])
    return 0


def _write_atomically(files: dict[Path, str | bytes], executable: Sequence[Path] = ()) -> None:
    """Everything is rendered before anything is written; the files are written as one set
    (`base/outputs.py`: temporary files, then renames; E1502/E1503 with nothing written)."""
    from compiler.base import outputs

    outputs.write([outputs.Output(path, content.encode("utf-8") if isinstance(content, str)
                                  else content, path in executable)
                   for path, content in files.items()])


def _import_libvirt(domain: Path, output: Path | None, precise: bool, partial: bool,
                    fmt: str) -> int:
    from compiler import driver
    from compiler.base.diagnostics import render_json, render_text

    text, warnings = driver.import_libvirt(domain, precise, partial)
    if warnings:
        sys.stderr.write(render_json(warnings) if fmt == "json" else render_text(warnings))
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically({output: text})
    return 0


def _hotplug(blob_path: Path, fragment: Path | None, remove: str | None, emit: str,
             output: Path | None, policy: Policy) -> int:
    from compiler import driver
    from compiler.emit import blob, qmp

    change = driver.hotplug(blob_path, fragment, remove, policy)
    text = (blob.blob(change.new) if emit == "json"
            else qmp.lines(qmp.transition(change.old, change.new)))
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically({output: text})
    return 0


def _migrate_check(source: Path, destination: Path, fmt: str, policy: Policy) -> int:
    """Exit 1 when the guest would see a difference; host-security differences (a backend
    that starts running a program, listening or logging) are counted apart and listed, as
    backend ones, without changing the exit code."""
    import json

    from compiler import driver
    from compiler.lang import resolve
    from compiler.ops import migrate

    src = driver.compile_input(source, policy)
    dst = driver.compile_input(destination, policy)
    found = migrate.differences(src, dst, resolve.load_library())
    count = {k: sum(1 for d in found if d.kind == k) for k in migrate.KINDS}
    if fmt == "json":
        sys.stdout.write(json.dumps({"differences": [{"kind": d.kind, "text": d.text}
                                                     for d in found],
                                     "counts": count}, indent=2) + "\n")
    else:
        for d in found:
            sys.stdout.write(f"{d.kind}: {d.text}\n")
        sys.stdout.write(f"{count['guest-visible']} guest-visible difference(s), "
                         f"{count['host-security']} host-security difference(s), "
                         f"{count['backend']} backend difference(s)\n")
    return 1 if count["guest-visible"] else 0


def _capacity(path: Path, policy: Policy) -> int:
    from compiler import driver
    from compiler.ops import hotplug

    sys.stdout.write(hotplug.describe_capacity(hotplug.capacity(
        driver.compile_input(path, policy))))
    return 0


# ---- verify and extract ------------------------------------------------------------------
def _add_verify_extract(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ver = sub.add_parser("verify", help="start QEMU with the emitted argv (paused) and compare "
                         "what it builds with the prediction")
    ver.add_argument("spec", type=Path, nargs="+", metavar="SPEC|BLOB",
                     help="several, or a directory of them, make a batch run")
    ver.add_argument("--qemu", metavar="PATH",
                     help="the QEMU binary (default: the schema's, e.g. qemu-system-x86_64, "
                     "on PATH)")
    ver.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                     help="the longest wait for QEMU (default: 30)")
    ver.add_argument("--user-net", action="store_true",
                     help="run tap and bridge netdevs as user ones (same guest hardware, "
                     "no privileges needed)")
    ver.add_argument("--format", choices=("text", "json", *CI_FORMATS), default="text",
                     help="how to print the differences (json: a list on stderr; sarif, "
                     "github: on stdout)")
    _add_jobs(ver)
    _add_policy(ver)
    ext = sub.add_parser("extract", help="the precise blob of a running QEMU, over QMP")
    ext.add_argument("--qmp", required=True, metavar="SOCKET",
                     help="QEMU's QMP socket (`-qmp unix:SOCKET,server=on,wait=off`)")
    ext.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="write the blob here (default: stdout)")
    ext.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                     help="the longest wait for QEMU's answers (default: 30)")
    ext.add_argument("--format", choices=("text", "json"), default="text",
                     help="how to print warnings and errors (json: a list on stderr)")
    ext.add_argument("--partial", action="store_true",
                     help="write the blob even where QEMU has what it cannot describe "
                     "(those errors become warnings naming what the blob leaves out)")
    _add_policy(ext)


def _verify(path: Path, binary: str | None, timeout: float, user_net: bool,
            policy: Policy) -> int:
    from compiler import driver
    from compiler.base.diagnostics import CompileError

    outcome = driver.verify(path, binary, timeout, user_net, policy)
    if outcome.diagnostics:
        raise CompileError(outcome.diagnostics)
    fdt = {"whole": " and the device tree it predicts",
           "nodes": " and the device-tree nodes it predicts"}.get(outcome.fdt, "")
    sys.stdout.write(f"{path}: QEMU built the {outcome.devices} devices and {outcome.buses} "
                     f"buses the precise machine predicts{fdt} (paused with -S: the guest "
                     "never ran)\n")
    return 0


def _extract(socket: str, output: Path | None, timeout: float, fmt: str,
             partial: bool, policy: Policy) -> int:
    """Exit 1 and write nothing when the blob cannot describe all of QEMU's machine
    (`extract/report.py`), unless `partial`; or when a `--policy` is given and the machine
    QEMU runs breaks it (without one, extract describes whatever runs)."""
    from compiler import driver
    from compiler.base.diagnostics import CompileError, render_json, render_text
    from compiler.emit import blob
    from compiler.qemu.extract import report
    from compiler.spec.policy import DEFAULT

    result = driver.extract(socket, timeout)
    if not result.complete and not partial:
        raise CompileError(report.refused(result.diagnostics))
    if policy is not DEFAULT:
        from compiler.base.source import SourceFile
        from compiler.build import confine

        where = SourceFile.from_text(f"<qmp {socket}>", "").span(0, 0)
        driver.confined(result.machine, policy, confine.Places(where))
    shown = report.partial(result.diagnostics)
    if shown:
        sys.stderr.write(render_json(shown) if fmt == "json" else render_text(shown))
    text = blob.blob(result.machine)
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically({output: text})
    return 0


# ---- many inputs -------------------------------------------------------------------------
def _add_jobs(command: argparse.ArgumentParser) -> None:
    command.add_argument("-j", "--jobs", type=int, metavar="N",
                         help="run a batch in N worker processes (default: the number of "
                         "cores); giving it makes even one input a batch run")


def _is_batch(args: argparse.Namespace) -> bool:
    if args.command == "migrate-check":
        return args.jobs is not None or args.source.is_dir() or args.destination.is_dir()
    return args.jobs is not None or len(args.spec) > 1 or any(p.is_dir() for p in args.spec)


def _batch(args: argparse.Namespace, policy: Policy) -> int:
    """Many inputs (`fleet.py`): the records as JSON lines with `--format json`, else a
    summary table; exit 1 if any input failed, 2 for a batch that cannot start."""
    import functools
    import json
    import time

    from compiler import fleet
    from compiler.base.diagnostics import CompileError

    jobs = args.jobs if args.jobs is not None else fleet.default_jobs()
    if jobs < 1:
        sys.stderr.write("mschema: error: `-j` takes a number of processes, 1 or more\n")
        return 2
    job: fleet.Job
    if args.command == "compile":
        if args.why is not None or args.capacity:
            sys.stderr.write("mschema compile: error: `--why` and `--capacity` take one "
                             "input\n")
            return 2
        from compiler.emit import kinds as emit_kinds

        found = fleet.items(args.spec)
        clash = fleet.collisions(found)
        if clash:
            raise CompileError(clash)
        job = functools.partial(fleet.compile_job,
                                kinds=tuple(dict.fromkeys(args.emit or emit_kinds.DEFAULT)),
                                out=args.output or Path("build"), policy=policy)
    elif args.command == "verify":
        found = fleet.items(args.spec)
        job = functools.partial(fleet.verify_job, binary=args.qemu, timeout=args.timeout,
                                user_net=args.user_net, policy=policy)
    else:
        found = fleet.pairs(args.source, args.destination)
        job = functools.partial(fleet.migrate_job, policy=policy)
    start = time.perf_counter()
    records = fleet.run(job, found, jobs, sys.stderr)
    seconds = time.perf_counter() - start
    if args.format == "json":
        sys.stdout.write("".join(json.dumps(r.as_json()) + "\n" for r in records))
    else:
        sys.stdout.write(fleet.summary_text(args.command, records, seconds, jobs))
    return 0 if all(r.ok for r in records) else 1
