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
    except CompileError as exc:
        if fmt == "json" and args.command == "lint":
            sys.stdout.write(render_json(exc.diagnostics))
        else:
            sys.stderr.write(render_text(exc.diagnostics))
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
