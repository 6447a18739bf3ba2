"""The pipeline, as a list of stage calls. Each public function is one CLI command's work,
returning data (never printing); problems come out as `CompileError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import expand, expr, model, resolve, schema_checks, tree
from .diagnostics import Collector, quote_list
from .source import SourceFile


def lint(paths: Sequence[Path]) -> model.Library:
    """Parse, resolve and check `paths` together with every shipped file (for `use` and
    `extends`); raise with every problem found."""
    diags = Collector()
    files = list(dict.fromkeys(p.resolve() for p in [*paths, *resolve.shipped_files()]))
    modules = resolve.load_modules(files, diags)
    library = resolve.resolve(modules, diags)
    if not diags.has_errors:
        schema_checks.run_all(library, diags)
    diags.check()
    return library


def find_machine(library: model.Library, name: str, diags: Collector) -> model.MachineSchema:
    m = library.machine(name)
    if m is None:
        source = SourceFile.from_text("<command line>", name)
        names = list(library.machines) + [a for s in library.machines.values() for a in s.aliases]
        diags.error("E0204", f"unknown machine `{name}`", source.span(0, len(name)),
                    notes=[f"expected one of {quote_list(names)}"])
        diags.check()
        raise AssertionError("unreachable")
    return m


def show(machine: str, option_pairs: Sequence[str]) -> tree.Machine:
    """What `machine` creates by itself under these options."""
    diags = Collector()
    library = resolve.load_library()
    schema = find_machine(library, machine, diags)
    given = expand.command_line_options(list(option_pairs), diags)
    options = expand.option_values(schema, given, diags)
    diags.check()
    return expand.show(schema, options)


def option_env(options: dict[str, expr.Scalar]) -> expr.Env:
    return expr.Env(options)
