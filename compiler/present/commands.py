"""The presentation commands' arguments and their work (`graph`, `docs`, `explain`), kept out of
`cli.py`: `add_parsers` adds them, `run` runs one. Nothing here imports jinja2 or starts a
program at import time."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compiler.base.diagnostics import Diagnostic
    from compiler.build import tree
    from compiler.ops import migrate
    from compiler.spec.policy import Policy

COMMANDS = ("graph", "docs", "explain")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gr = sub.add_parser("graph", help="a picture of a machine: dot, svg, mermaid or an html "
                        "page")
    gr.add_argument("target", metavar="SPEC|BLOB|MACHINE",
                    help="a loose spec (.toml), a precise blob (.json) or a machine name")
    gr.add_argument("--option", action="append", default=[], metavar="K=V",
                    help="a machine option, for a machine name (repeatable)")
    gr.add_argument("--format", choices=("dot", "svg", "png", "mermaid", "html"),
                    default="dot", help="dot (default), svg or png (through Graphviz's "
                    "`dot`; png needs -o), mermaid, or html (one page: the svg, a device tree "
                    "and each device's --why)")
    gr.add_argument("-o", "--output", type=Path, metavar="FILE",
                    help="write here (default: stdout)")


    docs = sub.add_parser("docs", help="write the reference (machines, options, device "
                          "types, diagnostics) generated from the shipped files")
    docs.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                      help="the folder to write (the repository keeps docs/reference)")
    docs.add_argument("--html", action="store_true",
                      help="also a page per machine version with its picture (needs "
                      "Graphviz's `dot`)")
    explain = sub.add_parser("explain", help="what a diagnostic code means (with a case that "
                             "triggers it), a device type or a machine: its reference page")
    explain.add_argument("code", metavar="CODE|TYPE|MACHINE",
                         help="e.g. E0203, virtio-blk-pci, pc-q35-7.1")


def run(args: argparse.Namespace) -> int:
    if args.command == "graph":
        return _graph(args.target, args.option, args.format, args.output)
    if args.command == "docs":
        from compiler.present import reference

        reference.write(args.output, html=args.html)
        return 0
    if args.command == "explain":
        from compiler.present import reference

        sys.stdout.write(reference.explain(args.code))
        return 0
    raise AssertionError(args.command)


def graph_machine(target: str, options: list[str]) -> tree.Machine:
    """The precise machine to draw: a spec or blob compiled, or a machine expanded under
    `options` (as `show`). `--option` with a file is E2202: its options are the file's."""
    from compiler import driver
    from compiler.base.diagnostics import CompileError, error
    from compiler.base.source import SourceFile

    path = Path(target)
    if path.suffix in (".toml", ".json") or path.exists():
        if options:
            text = " ".join(options)
            raise CompileError([error(
                "E2202", "`--option` applies to a machine name, not to a spec or blob",
                SourceFile.from_text("<command line>", text).span(0, len(text)),
                help="set machine options in the spec's `[options]` table")])
        return driver.compile_input(path)
    return driver.show(target, options)


def _graph(target: str, options: list[str], fmt: str, output: Path | None) -> int:
    from compiler.ops import hotplug
    from compiler.present import graph

    if fmt == "png" and output is None:
        sys.stderr.write("mschema graph: error: `--format png` is binary: give `-o FILE`\n")
        return 2
    machine = graph_machine(target, options)
    picture = graph.render(machine, hotplug.capacity(machine), fmt)
    if output is None:
        assert isinstance(picture, str)
        sys.stdout.write(picture)
    else:
        from compiler.base import outputs

        outputs.write([outputs.Output(output, picture.encode("utf-8")
                                      if isinstance(picture, str) else picture)])
    return 0


# ---- diagnostics for CI (`--format sarif|github` of lint, compile, verify, migrate-check) --
CI_FORMATS = ("sarif", "github")


def ci_report(fmt: str, diagnostics: Sequence[Diagnostic], argv: Sequence[str]) -> None:
    """The run's diagnostics (none for a clean run: an empty SARIF log, no annotation) on
    stdout, where CI steps collect them."""
    from compiler.present import ci

    sys.stdout.write(ci.render(fmt, diagnostics, argv))


def migrate_diagnostics(found: Sequence[migrate.Difference], destination: Path
                        ) -> list[Diagnostic]:
    """`migrate-check`'s differences as diagnostics at the destination blob: a guest-visible
    one is an error (E2204), a backend one a warning (E2205)."""
    from compiler.base.diagnostics import Diagnostic as Diag
    from compiler.base.source import whole_file

    out = []
    for d in found:
        kind, text = d.kind, d.text
        guest = kind == "guest-visible"
        out.append(Diag("error" if guest else "warning", "E2204" if guest else "E2205",
                        f"{kind} difference: {text}", whole_file(str(destination))))
    return out


def ci_command(args: argparse.Namespace, compile_: Callable[..., int],
               policy: Policy) -> list[Diagnostic]:
    """lint, compile, verify or migrate-check with `--format sarif|github`: the command's
    work as with `text`; its findings (an error raises, as there). `migrate-check` gives
    its differences (E2204, E2205); `compile_` is cli's, which writes the outputs."""
    from compiler import driver
    from compiler.base.diagnostics import CompileError

    if args.command == "lint":
        driver.lint(args.paths)
    elif args.command == "compile":
        compile_(args.spec[0], args.emit, args.output, None, policy)
    elif args.command == "verify":
        outcome = driver.verify(args.spec[0], args.qemu, args.timeout, args.user_net, policy)
        if outcome.diagnostics:
            raise CompileError(outcome.diagnostics)
    else:
        from compiler.lang import resolve
        from compiler.ops import migrate

        src = driver.compile_input(args.source, policy)
        dst = driver.compile_input(args.destination, policy)
        return migrate_diagnostics(migrate.differences(src, dst, resolve.load_library()),
                                   args.destination)
    return []
