"""The `mschema` command. Parses arguments, calls `driver`, renders results and diagnostics.
Heavy modules are imported inside each command so `mschema lint` starts fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mschema", description="Declarative machine schemas "
                                "for QEMU: expand loose specs into precise machines.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lint = sub.add_parser("lint", help="check .machine schemas and stdlib files")
    lint.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                      help="files to check (default: every shipped schema and stdlib file)")
    lint.add_argument("--format", choices=("text", "json"), default="text")

    show = sub.add_parser("show", help="what a machine creates by itself, with addresses")
    show.add_argument("machine", metavar="MACHINE", help="e.g. pc-q35, pc-q35-7.2, pseries")
    show.add_argument("--option", "-o", action="append", default=[], metavar="K=V",
                      help="a machine option, e.g. sata=off (repeatable)")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.add_argument("--why", action="store_true",
                      help="say for each device which statement creates it")
    comp = sub.add_parser("compile", help="loose spec (or precise blob) → precise outputs")
    comp.add_argument("spec", type=Path, metavar="SPEC")
    comp.add_argument("--emit", action="append", default=[], choices=("json", "argv", "shell"),
                      help="output kind (repeatable)")
    comp.add_argument("-o", "--output", type=Path, metavar="PATH")
    comp.add_argument("--format", choices=("text", "json"), default="text",
                      help="how to print diagnostics (json: a list on stderr)")
    comp.add_argument("--why", metavar="ID",
                      help="say why device ID is in the precise machine, and where it comes from")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .diagnostics import CompileError, render_json, render_text

    fmt = getattr(args, "format", "text")
    try:
        if args.command == "lint":
            return _lint(args.paths, fmt)
        if args.command == "show":
            return _show(args.machine, args.option, fmt, args.why)
        if args.command == "compile":
            return _compile(args.spec, args.emit, args.output, args.why)
    except CompileError as exc:
        # lint's findings are its output (stdout); elsewhere diagnostics go to stderr
        stream = sys.stdout if args.command == "lint" and fmt == "json" else sys.stderr
        stream.write(render_json(exc.diagnostics) if fmt == "json" else
                     render_text(exc.diagnostics))
        return 1
    raise AssertionError(f"unhandled command {args.command}")


def _lint(paths: list[Path], fmt: str) -> int:
    from . import driver

    driver.lint(paths)
    if fmt == "json":
        sys.stdout.write("[]\n")
    return 0


def _show(machine: str, options: list[str], fmt: str, why: bool) -> int:
    from . import driver
    from .emit import blob, text

    result = driver.show(machine, options)
    sys.stdout.write(blob.show_json(result) if fmt == "json" else text.show_text(result, why=why))
    return 0


def _compile(path: Path, emits: list[str], output: Path | None, why: str | None) -> int:
    import json

    from . import driver
    from .emit import argv, blob, text

    machine = driver.compile_input(path)
    if why is not None:
        from .diagnostics import CompileError, error, quote_list
        from .source import SourceFile
        from .tree import walk

        ids = [d.id for _b, d, _n in walk(machine.root)]
        if why not in ids:
            span = SourceFile.from_text("<command line>", why).span(0, len(why))
            raise CompileError([error("E1501", f"no device `{why}` in this machine", span,
                                      notes=[f"its devices are {quote_list(ids, 40)}"])])
        sys.stdout.write(text.why(machine, why))
        return 0
    outputs = {
        "json": lambda: blob.blob(machine),
        "argv": lambda: json.dumps(argv.argv(machine)) + "\n",
        "shell": lambda: argv.shell(argv.argv(machine)) + "\n",
    }
    if len(emits) == 1 and output is None:
        sys.stdout.write(outputs[emits[0]]())
        return 0
    kinds = emits or list(outputs)
    name = machine.name or path.stem
    if len(emits) == 1 and output is not None:
        _write_atomically({output: outputs[emits[0]]()})
        return 0
    directory = output or Path("build") / name
    suffix = {"json": ".json", "argv": ".argv.json", "shell": ".sh"}
    _write_atomically({directory / f"{name}{suffix[k]}": outputs[k]() for k in kinds})
    return 0


def _write_atomically(files: dict[Path, str]) -> None:
    """Everything is rendered before anything is written; each file appears whole."""
    import os
    import tempfile

    for target, text in files.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
