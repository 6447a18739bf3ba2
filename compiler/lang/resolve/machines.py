"""Machines: `extends` flattened (parents first, cycles reported) and each `machine`
declaration → `model.MachineSchema`: its header statements, its options (the scope of its
conditions), its devices and checks, and the parts `machine_parts` resolves. Ends at machine
schemas: whole-machine rules (collisions, dead rules) are `schema_checks`' job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from compiler.base import notations
from compiler.base.diagnostics import Label, quote_list
from compiler.base.source import Span
from compiler.base.units import parse_size
from compiler.lang import ast, expr, model
from compiler.lang.resolve.conditions import Conditions, Options
from compiler.lang.resolve.fdt import FdtNames
from compiler.lang.resolve.fdt_edit import FdtEdits, FdtNaming
from compiler.lang.resolve.instances import Instances
from compiler.lang.resolve.loading import report_cycles
from compiler.lang.resolve.machine_parts import MachineParts
from compiler.lang.resolve.releases import release
from compiler.lang.resolve.scope import Part, Scope
from compiler.lang.resolve.values import Values

ROOT_BUS_KIND = "system"
ROOT_BUS_NAME = "main-system-bus"


@attrs.frozen
class _Header:
    """The statements a machine gives at most once, each None where it gives none."""

    doc: ast.Doc | None
    alias: ast.Alias | None
    family: ast.Family | None
    arch: ast.Arch | None
    binary: ast.Binary | None
    qemu: ast.QemuMachine | None
    placement: ast.Placement | None
    memory: ast.DefaultMemory | None
    since: ast.Since | None


def _edited_items(changes: Sequence[ast.FdtChange]) -> list[ast.FdtItem]:
    """The items an edit brings in (their names are checked like a block's)."""
    out: list[ast.FdtItem] = []
    for c in changes:
        if isinstance(c, ast.FdtIn):
            out += _edited_items(c.changes)
        elif isinstance(c, (ast.FdtReplace, ast.FdtAdd)):
            out.append(c.item)
    return out


class Machines(Part):
    def __init__(self, scope: Scope, values: Values, conditions: Conditions,
                 instances: Instances, fdt: FdtNames) -> None:
        super().__init__(scope)
        self.values, self.conditions, self.instances, self.fdt = (values, conditions,
                                                                   instances, fdt)
        self.parts = MachineParts(scope, values)
        self.edits = FdtEdits(scope)
        # per machine, the options declared with a problem already reported (inherited)
        self.broken_options: dict[str, frozenset[str]] = {}

    def machines(self, decls: Mapping[str, ast.MachineDecl]) -> dict[str, model.MachineSchema]:
        import networkx as nx

        graph: nx.DiGraph[str] = nx.DiGraph()
        spans: dict[tuple[str, str], Span] = {}
        for name, d in decls.items():
            graph.add_node(name)
            if d.extends is not None:
                if d.extends.text not in decls:
                    self.unknown("E0204", "machine", d.extends,
                                 [n for n in decls if n != name])
                    continue
                graph.add_edge(name, d.extends.text)
                spans[(name, d.extends.text)] = d.extends.span
        report_cycles(graph, spans, self.diags, "E0602", "extends")
        if not nx.is_directed_acyclic_graph(graph):
            return {}
        result: dict[str, model.MachineSchema] = {}
        # parents first
        for name in reversed(list(nx.lexicographical_topological_sort(graph))):
            d = decls[name]
            parent = result.get(d.extends.text) if d.extends else None
            if d.extends is not None and parent is None:
                continue
            result[name] = self.machine(d, parent)
        return dict(sorted(result.items()))

    def header(self, body: Sequence[ast.MachineStmt]) -> _Header:
        one = self.single
        return _Header(
            doc=one(body, ast.Doc, "doc"), alias=one(body, ast.Alias, "alias"),
            family=one(body, ast.Family, "family"), arch=one(body, ast.Arch, "arch"),
            binary=one(body, ast.Binary, "binary"),
            qemu=one(body, ast.QemuMachine, "qemu-machine"),
            placement=one([s for s in body if not (isinstance(s, ast.Placement)
                                                   and (s.name or s.condition))],
                          ast.Placement, "placement"),
            memory=one(body, ast.DefaultMemory, "default-memory"),
            since=one(body, ast.Since, "since"))

    def machine(self, d: ast.MachineDecl, parent: model.MachineSchema | None
                ) -> model.MachineSchema:
        body = d.body
        h = self.header(body)
        default_memory = self.default_memory(d, h.memory, parent)
        since = self.since(h.since)
        if parent is None:
            for given, kw in ((h.arch, "arch"), (h.binary, "binary"),
                              (h.qemu, "qemu-machine")):
                if given is None:
                    self.diags.error("E0901", f"machine `{d.name.text}` has no `{kw}`",
                                     d.name.span)
        options = self.options(d, parent)
        ids: set[str] = set()
        devices = list(parent.devices) if parent else []
        for stmt in body:
            if isinstance(stmt, ast.Devices):
                for u in (u for i in stmt.instances for u in self.instances.unrolled(i)):
                    inst = self.instances.instance(u, ROOT_BUS_KIND, self.root_space(),
                                                   options, ids)
                    if inst:
                        devices.append(inst)
        implementations = dict(parent.implementations) if parent else {}
        for stmt in body:
            if isinstance(stmt, ast.Implement):
                impl = self.parts.implementation(stmt)
                if impl:
                    implementations[impl.kind] = impl
        providers = dict(parent.providers) if parent else {}
        for stmt in body:
            if isinstance(stmt, ast.Provide):
                p = self.parts.provider(stmt)
                if p:
                    providers[p.bus] = p
        # a version's check replaces its parent's of the same name in place (a newer
        # version's larger cpu limit), as a compat line replaces its parent's
        checks = {c.name: c for c in parent.checks} if parent else {}
        own_checks: dict[str, Span] = {}
        for stmt in body:
            if isinstance(stmt, ast.Check):
                if stmt.name.text in own_checks:
                    self.diags.error("E0401", f"check `{stmt.name.text}` is defined twice",
                                     stmt.name.span, labels=[Label(own_checks[stmt.name.text],
                                                                   "first defined here")])
                    continue
                own_checks[stmt.name.text] = stmt.name.span
                checks[stmt.name.text] = model.Check(
                    stmt.name.text, self.conditions.condition(stmt.condition, options),
                    stmt.message, stmt.name.span)
        compat = self.parts.compat_props(body, parent)
        quirks = self.parts.quirks(body, parent)
        fdt_stmt = self.single(body, ast.FdtBlock, "fdt")
        fdt_items = parent.fdt if parent else ()
        if fdt_stmt is not None:
            fdt_items = fdt_stmt.items
            self.fdt.fdt_items(fdt_items)
        fdt_items, device_fdt, renamed = self.fdt_edits(
            body, fdt_items, parent.device_fdt if parent else (),
            parent.fdt_renamed if parent else ())
        placement = parent.placement if parent else model.Placement()
        if h.placement is not None:
            placement = self.parts.placement(h.placement)
        cases = self.placement_cases(body, options, parent)
        # named styles (`placement NAME { … }`): a child's replaces its parent's
        styles = dict(parent.placement_styles) if parent else {}
        here: dict[str, ast.Placement] = {}
        for stmt in body:
            if isinstance(stmt, ast.Placement) and stmt.name is not None:
                if stmt.condition is not None:
                    self.diags.error("E0902", "`when` is not supported on a placement style",
                                     stmt.condition.span,
                                     notes=[f"a spec selects style `{stmt.name.text}` by name"],
                                     help="write `placement when COND { … }` for the "
                                     "machine's own placement")
                first = here.setdefault(stmt.name.text, stmt)
                if first is not stmt:
                    self.diags.error("E2151", f"placement style `{stmt.name.text}` is "
                                     "defined twice", stmt.name.span,
                                     labels=[Label(first.span, "first defined here")])
                    continue
                styles[stmt.name.text] = self.parts.placement(stmt)
        return model.MachineSchema(
            name=d.name.text,
            family=(h.family.name.text if h.family else
                    parent.family if parent else d.name.text),
            aliases=tuple(n.text for n in h.alias.names) if h.alias else (),
            arch=h.arch.name.text if h.arch else (parent.arch if parent else ""),
            binary=h.binary.path if h.binary else (parent.binary if parent else ""),
            qemu_machine=h.qemu.name if h.qemu else (parent.qemu_machine if parent else ""),
            extends=parent.name if parent else None,
            options=options.declared, devices=tuple(devices),
            implementations=implementations, providers=providers,
            checks=tuple(checks.values()),
            compat=tuple(compat), placement=placement, default_memory=default_memory,
            doc=h.doc.text if h.doc else "", span=d.name.span, fdt=fdt_items, quirks=quirks,
            device_fdt=device_fdt, since=since, placement_styles=tuple(sorted(styles.items())),
            placement_cases=cases, fdt_renamed=renamed)

    def placement_cases(self, body: Sequence[ast.MachineStmt], options: Options,
                        parent: model.MachineSchema | None
                        ) -> tuple[model.PlacementCase, ...]:
        """`placement when COND { … }` blocks, in order; a machine that writes none keeps
        its parent's. A condition reads the machine's options only (E0175): a placement
        that followed the spec's devices would move devices when one is added."""
        own = [s for s in body if isinstance(s, ast.Placement) and s.name is None
               and s.condition is not None]
        if not own:
            return parent.placement_cases if parent else ()
        cases = []
        for stmt in own:
            assert stmt.condition is not None
            condition = self.conditions.condition(stmt.condition, options)
            facts = sorted(set(expr.facts_in(condition)))
            if facts:
                self.diags.error("E0175", "a placement's condition reads "
                                 f"{quote_list(facts)}, not only the machine's options",
                                 stmt.condition.span,
                                 notes=["where devices go may depend on the machine's "
                                        "options only: one that followed the spec's facts "
                                        "would move devices when a device is added"],
                                 help="read the machine's options only, as `when acpi == off`")
                continue
            cases.append(model.PlacementCase(condition, self.parts.placement(stmt),
                                             stmt.condition.span))
        return tuple(cases)

    def fdt_edits(self, body: Sequence[ast.MachineStmt], root: tuple[ast.FdtItem, ...],
                  inherited: tuple[tuple[str, tuple[ast.FdtItem, ...]], ...],
                  renamed: tuple[model.FdtRename, ...]
                  ) -> tuple[tuple[ast.FdtItem, ...],
                             tuple[tuple[str, tuple[ast.FdtItem, ...]], ...],
                             tuple[model.FdtRename, ...]]:
        """The root node's items and the device types' items on this machine after the
        machine's `fdt edit` blocks and `fdt name` statements, in the order written, and
        the types it names (its parents' too)."""
        types = dict(inherited)
        names = FdtNaming(self.scope, self.fdt, bool(root), renamed)
        for stmt in body:
            if isinstance(stmt, ast.FdtName):
                names.rename(stmt, types)
                continue
            if not isinstance(stmt, ast.FdtEdit):
                continue
            self.fdt.fdt_items(_edited_items(stmt.changes))
            if stmt.type is None:
                if not root:
                    self.diags.error("E0189", "`fdt edit` has no device tree to change",
                                     stmt.span, help="`fdt edit` changes what the machine "
                                     "`extends`; a machine of its own writes `fdt { … }`")
                    continue
                root = self.edits.apply(root, stmt.changes, "the root node")
                continue
            name = stmt.type.text
            dtype = self.scope.devices.get(name)
            if dtype is None:
                if name not in self.scope.device_decls:
                    self.unknown("E0202", "device type", stmt.type, self.scope.device_decls)
                continue
            items = types.get(name, dtype.fdt_items)
            if not items:
                self.diags.error("E0188", f"device type `{name}` has no device tree items "
                                 "to change", stmt.type.span,
                                 help=f"give `{name}` an `fdt {{ … }}` block in the stdlib")
                continue
            types[name] = self.edits.apply(items, stmt.changes, f"the node of a `{name}`")
        return root, tuple(sorted(types.items())), names.renamed

    def since(self, stmt: ast.Since | None) -> str:
        """`since "8.0"`: a QEMU release, MAJOR.MINOR; "" where the machine names none (or a
        malformed one, reported as E1730)."""
        return release(self.diags, stmt.release, stmt.span, "since") if stmt else ""

    def default_memory(self, d: ast.MachineDecl, stmt: ast.DefaultMemory | None,
                       parent: model.MachineSchema | None) -> int:
        if stmt is not None:
            size = parse_size(stmt.size)
            if size is not None:
                return size
            self.diags.error("E0301", f"`default-memory` must be a size, not "
                             f"`{stmt.size}`", stmt.span,
                             help='write bytes, or a number with K, M, G or T: "128M"')
        elif parent is None:
            self.diags.error("E0901", f"machine `{d.name.text}` has no `default-memory`",
                             d.name.span, help="add what QEMU gives without -m, e.g. "
                             '`default-memory "128M"`')
        return parent.default_memory if parent else 0

    def options(self, d: ast.MachineDecl, parent: model.MachineSchema | None) -> Options:
        """The parent's options and this machine's, and those declared with a problem
        already reported (the parent's too): the scope of this machine's conditions."""
        options = dict(parent.options) if parent else {}
        broken = set(self.broken_options.get(parent.name, ()) if parent else ())
        own: dict[str, Span] = {}
        for stmt in d.body:
            if not isinstance(stmt, ast.OptionDecl):
                continue
            n = stmt.name
            if n.text in own:
                self.diags.error("E0401", f"option `{n.text}` is defined twice", n.span,
                                 labels=[Label(own[n.text], "first defined here")])
                continue
            own[n.text] = n.span
            t = self.values.value_type(stmt.type)
            if t is None:
                broken.add(n.text)
                continue
            if stmt.default is None:
                self.diags.error("E0901", f"option `{n.text}` has no default", n.span,
                                 help="add `= VALUE`: what QEMU uses when it is not given")
                broken.add(n.text)
                continue
            default = self.values.typed_value(stmt.default, t, f"the default of `{n.text}`")
            if default is not None:
                options[n.text] = model.OptionSpec(n.text, t, default, n.span)
            else:
                broken.add(n.text)
        self.broken_options[d.name.text] = frozenset(broken)
        return Options(declared=options, broken=frozenset(broken))

    def root_space(self) -> notations.AddressSpace:
        root = self.scope.buses.get(ROOT_BUS_KIND)
        return root.address if root else notations.AddressSpace("none")
