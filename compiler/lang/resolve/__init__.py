"""AST modules → `model.Library`: follows `use`, flattens `extends`, looks up every name,
types every value and condition. Ends at a well-formed model; whole-model rules (collisions,
dead rules, attachability) are `schema_checks`' job.

Every problem of every file is collected before `CompileError` is raised. The parts, each
one responsibility over a shared `scope.Scope`: `loading` (files, `use`), `values` (types
and literals), `conditions`, `buses` (bus kinds), `devices` (device types), `instances`,
`fdt` (names in fdt blocks), `machines` and `machine_parts`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import attrs

from compiler.base.diagnostics import Collector, Label
from compiler.lang import ast, model
from compiler.lang.resolve.buses import BusKinds
from compiler.lang.resolve.conditions import Conditions
from compiler.lang.resolve.devices import DeviceTypes
from compiler.lang.resolve.fdt import FDT_FUNCTIONS, FDT_TYPE_FUNCTIONS, FdtNames
from compiler.lang.resolve.instances import Instances, provided_bus_kinds
from compiler.lang.resolve.loading import (
    DATA_ROOT_CANDIDATES,
    SHIPPED_GLOBS,
    _display,
    data_dir,
    load_modules,
    report_cycles,
    shipped_files,
    shipped_questions,
    use_targets,
)
from compiler.lang.resolve.machines import ROOT_BUS_KIND, ROOT_BUS_NAME, Machines
from compiler.lang.resolve.scope import Scope
from compiler.lang.resolve.values import NAMED_TYPES, Values

_report_cycles = report_cycles  # the name `schema_checks` imports

__all__ = ["DATA_ROOT_CANDIDATES", "FDT_FUNCTIONS", "FDT_TYPE_FUNCTIONS", "NAMED_TYPES",
           "ROOT_BUS_KIND", "ROOT_BUS_NAME", "SHIPPED_GLOBS", "data_dir", "load_library",
           "load_modules", "provided_bus_kinds", "resolve", "shipped_files",
           "shipped_questions", "use_targets"]

D = TypeVar("D", ast.BusDecl, ast.DeviceDecl, ast.MachineDecl)


def resolve(modules: Iterable[ast.Module], diags: Collector) -> model.Library:
    modules = list(modules)
    bus_decls = _collect(modules, ast.BusDecl, "bus kind", diags)
    device_decls = _collect(modules, ast.DeviceDecl, "device type", diags)
    machine_decls = _collect(modules, ast.MachineDecl, "machine", diags)
    scope = _buses_and_devices(Scope(diags=diags, bus_decls=bus_decls,
                                     device_decls=device_decls))
    return model.Library(buses=dict(scope.buses), devices=dict(scope.devices),
                         machines=_machines(scope, machine_decls))


# The bus kinds and device types resolved last in this process, by the identity of the
# declarations they came from: `load_modules` hands out the very same parsed declarations for
# unchanged files, so a process that resolves the same stdlib again with other machine files
# (a batch lint, the fuzzer) reuses them. Kept only when resolving them reported nothing.
_LAST_TYPES: list[tuple[tuple[tuple[str, ...], ...], tuple[object, ...], Scope]] = []


def _buses_and_devices(scope: Scope) -> Scope:
    """`scope` with its bus kinds and device types resolved."""
    names = (tuple(scope.bus_decls), tuple(scope.device_decls))
    decls = (*scope.bus_decls.values(), *scope.device_decls.values())
    for last_names, last_decls, last in _LAST_TYPES:
        if last_names == names and all(a is b for a, b in zip(last_decls, decls, strict=True)):
            return attrs.evolve(scope, buses=last.buses, devices=last.devices)
    reported = len(scope.diags.items)
    bus_kinds = BusKinds(scope)
    buses = {name: bus_kinds.bus_kind(d) for name, d in scope.bus_decls.items()}
    scope = attrs.evolve(scope, buses=buses)
    # Two passes: device types name each other (children, bus blocks inside children), so
    # the first pass, quiet, only collects them and the second resolves children against
    # them.
    quiet = attrs.evolve(scope, diags=Collector())
    first = {name: _device_types(quiet).device_type(d)
             for name, d in scope.device_decls.items()}
    scope = attrs.evolve(scope, devices=first)
    device_types = _device_types(scope)
    devices = {name: device_types.device_type(d) for name, d in scope.device_decls.items()}
    scope = attrs.evolve(scope, devices=devices)
    if len(scope.diags.items) == reported and not scope.broken_props:
        _LAST_TYPES[:] = [(names, decls, scope)]
    return scope


# The machines resolved last, likewise: by the identity of their declarations and of the
# device types and bus kinds they were resolved against (the very same objects when
# `_buses_and_devices` reused them).
_LAST_MACHINES: list[tuple[tuple[object, ...], tuple[object, ...],
                           dict[str, model.MachineSchema]]] = []


def _machines(scope: Scope, decls: Mapping[str, ast.MachineDecl]
              ) -> dict[str, model.MachineSchema]:
    names = tuple(decls)
    objects = (scope.buses, scope.devices, *decls.values())
    for last_names, last_objects, last in _LAST_MACHINES:
        if last_names == names and all(a is b for a, b in zip(last_objects, objects,
                                                               strict=True)):
            return dict(last)
    reported = len(scope.diags.items)
    values, conditions = Values(scope), Conditions(scope)
    instances = Instances(scope, values, conditions, BusKinds(scope))
    machines = Machines(scope, values, conditions, instances, FdtNames(scope))
    resolved = machines.machines(decls)
    if len(scope.diags.items) == reported and not scope.broken_props:
        _LAST_MACHINES[:] = [(names, objects, dict(resolved))]
    return resolved


def _device_types(scope: Scope) -> DeviceTypes:
    values, buses = Values(scope), BusKinds(scope)
    instances = Instances(scope, values, Conditions(scope), buses)
    return DeviceTypes(scope, values, buses, instances, FdtNames(scope))


def _collect(modules: list[ast.Module], cls: type[D], what: str,
             diags: Collector) -> dict[str, D]:
    seen: dict[str, D] = {}
    for module in modules:
        for decl in module.decls:
            if not isinstance(decl, cls):
                continue
            name = decl.name.text
            if name in seen:
                diags.error("E0401", f"{what} `{name}` is defined twice", decl.name.span,
                            labels=[Label(seen[name].name.span, "first defined here")])
                continue
            seen[name] = decl
    return seen


def load_library(paths: Sequence[Path] | None = None) -> model.Library:
    """Parse and resolve `paths` (default: every shipped file); raise on any problem."""
    if paths is None:
        return _shipped_library()
    diags = Collector()
    modules = load_modules(list(paths) if paths is not None else shipped_files(), diags)
    library = resolve(modules, diags)
    diags.check()
    return library


@functools.cache
def _shipped_library() -> model.Library:
    """The shipped files change only with the installation: resolve them once a process,
    and keep the result in the on-disk cache (`cache.py`) for the next process. The key
    holds each shipped file's path as shown in spans (relative to the working directory
    when under it); the entry, the content of every file read."""
    from compiler.lang import cache

    cache.spare_the_last_collection()
    files = shipped_files()
    key = [f"{p}\0{_display(p)}" for p in files]
    library = cache.load_library(key, lambda path: _display(Path(path)))
    if library is not None:
        return library
    diags = Collector()
    modules = load_modules(files, diags)
    library = resolve(modules, diags)
    diags.check()
    cache.store_library(key, modules, [*files, *use_targets(modules)], library)
    return library
