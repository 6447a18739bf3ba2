"""AST modules → `model.Library`: follows `use`, flattens `extends`, looks up every name,
types every value and condition. Ends at a well-formed model; whole-model rules (collisions,
dead rules, attachability) are `schema_checks`' job.

Every problem of every file is collected before `CompileError` is raised.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from compiler.base import notations
from compiler.base.diagnostics import Collector, CompileError, Label, quote_list
from compiler.base.source import SourceFile, Span, whole_file
from compiler.base.units import parse_size
from compiler.lang import ast, expr, model
from compiler.lang.parse import parse_module

DATA_ROOT_CANDIDATES = (Path(__file__).parents[1], Path(__file__).parents[2])

NAMED_TYPES: dict[str, model.ValueType] = {
    "bool": model.ValueType("bool"),
    "int": model.ValueType("int"),
    "u8": model.ValueType("int", 0, 0xFF),
    "u16": model.ValueType("int", 0, 0xFFFF),
    "u32": model.ValueType("int", 0, 0xFFFFFFFF),
    "u64": model.ValueType("int", 0, 0xFFFFFFFFFFFFFFFF),
    "str": model.ValueType("str"),
    "mac": model.ValueType("mac"),
    "size": model.ValueType("size", 0, 2**64 - 1),
    "onoffauto": model.ValueType("enum", members=("on", "off", "auto")),
}
# The functions of fdt expressions, with their numbers of arguments (`emit/fdt.py` has
# them); those taking a device type name instead of a value are listed again below.
FDT_FUNCTIONS: dict[str, tuple[int, int]] = {
    "u64": (1, 1), "min": (2, 2), "max": (2, 2), "log2ceil": (1, 1), "pow2floor": (1, 1),
    "pow2-blocks": (2, 2),
    "reversed": (1, 1), "mac-bytes": (1, 1), "pci-reg": (3, 3), "has": (1, 1),
    "first-path": (1, 1), "boot-list": (0, 0), "defined": (1, 1), "count": (1, 1),
}
FDT_TYPE_FUNCTIONS = ("has", "first-path", "count")
ROOT_BUS_KIND = "system"
ROOT_BUS_NAME = "main-system-bus"


def data_dir(name: str) -> Path:
    """`stdlib` or `schemas`: inside the installed package, or beside it in a checkout."""
    for root in DATA_ROOT_CANDIDATES:
        if (root / name).is_dir():
            return root / name
    return DATA_ROOT_CANDIDATES[-1] / name


SHIPPED_GLOBS = (("stdlib", "*.mschema"), ("schemas", "*/*.machine"))


def shipped_files() -> list[Path]:
    return [p for name, pattern in SHIPPED_GLOBS for p in sorted(data_dir(name).glob(pattern))]


def shipped_questions() -> list[tuple[str, str]]:
    """What `shipped_files` depends on, as questions `cache.answer` can ask again: which
    candidate data directories exist, and what each glob matches."""
    questions = [("isdir", str(root / name)) for name, _ in SHIPPED_GLOBS
                 for root in DATA_ROOT_CANDIDATES]
    return questions + [("glob", f"{data_dir(name)}\0{pattern}")
                        for name, pattern in SHIPPED_GLOBS]


def use_targets(modules: Iterable[ast.Module]) -> list[Path]:
    """The paths `load_modules` followed for the `use`s of `modules`, before symlinks are
    resolved: the cache asks again where they lead."""
    stdlib = data_dir("stdlib")
    targets = []
    for m in modules:
        here = Path(m.path).resolve().parent
        for decl in m.decls:
            if isinstance(decl, ast.UseDecl):
                target = _use_target(decl.path, here, stdlib)
                if target is not None:
                    targets.append(target)
    return targets


# ---- loading ---------------------------------------------------------------------------
def load_modules(paths: Sequence[Path], diags: Collector) -> list[ast.Module]:
    """Parse `paths` and every file they `use`, transitively; report `use` cycles."""
    import networkx as nx

    stdlib = data_dir("stdlib")
    modules: dict[str, ast.Module] = {}
    graph: nx.DiGraph[str] = nx.DiGraph()
    use_spans: dict[tuple[str, str], Span] = {}
    queue: list[tuple[Path, Span | None]] = [(p.resolve(), None) for p in paths]
    while queue:
        path, used_at = queue.pop(0)
        key = str(path)
        if key in modules or (key in graph and graph.nodes[key].get("failed")):
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            span = used_at or whole_file(str(path))
            reason = exc.strerror or str(exc)
            diags.error("E0205", f"cannot read `{_display(path)}`: {reason.lower()}", span)
            graph.add_node(key, failed=True)
            continue
        try:
            source = SourceFile.from_text(_display(path), data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            text = data.decode("utf-8", errors="replace")
            at = len(data[:exc.start].decode("utf-8", errors="replace"))
            bad = SourceFile.from_text(_display(path), text)
            diags.error("E0205", f"cannot read `{_display(path)}`: byte "
                        f"`0x{data[exc.start]:02x}` is not utf-8", bad.span(at, at + 1),
                        help="save the file as utf-8")
            graph.add_node(key, failed=True)
            continue
        try:
            module = parse_module(source)
        except CompileError as exc:
            diags.extend(exc.diagnostics)
            graph.add_node(key, failed=True)
            continue
        modules[key] = module
        graph.add_node(key, display=_display(path))
        for decl in module.decls:
            if not isinstance(decl, ast.UseDecl):
                continue
            target = _use_target(decl.path, path.parent, stdlib)
            if target is None and _is_stdlib_name(decl.path):
                names = [p.stem for p in stdlib.glob("*.mschema")]
                diags.error("E0205", f"unknown stdlib file `{decl.path}`", decl.span,
                            notes=[f"the stdlib has {quote_list(names)}"])
                continue
            if target is None:
                diags.error("E0205", f"cannot find `{decl.path}`", decl.span,
                            notes=[f"a path is relative to `{_display(path.parent)}`, "
                                   "the directory of this file"])
                continue
            tkey = str(target.resolve())
            graph.add_edge(key, tkey)
            use_spans[(key, tkey)] = decl.span
            queue.append((target.resolve(), decl.span))
    _report_cycles(graph, use_spans, diags, "E0601", "uses", keyword="use")
    return _dependencies_first(graph, modules)


def _dependencies_first(graph: object, modules: Mapping[str, ast.Module]) -> list[ast.Module]:
    """Modules with each one after the files it uses, the shipped ones first, so that a
    name defined twice is reported at the definition that comes later in that order (a
    user file redefining a stdlib bus kind, not the stdlib)."""
    import networkx as nx

    g: nx.DiGraph[str] = graph  # type: ignore[assignment]
    loaded = list(modules)
    if not nx.is_directed_acyclic_graph(g):
        return [modules[k] for k in loaded]
    shipped = {str(p.resolve()) for p in shipped_files()}
    rank = {k: (k not in shipped, loaded.index(k) if k in modules else len(loaded), k)
            for k in g.nodes}
    order = nx.lexicographical_topological_sort(g.reverse(copy=False), key=rank.__getitem__)
    return [modules[k] for k in order if k in modules]


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _is_stdlib_name(name: str) -> bool:
    return "/" not in name and not name.endswith((".mschema", ".machine"))


def _use_target(name: str, here: Path, stdlib: Path) -> Path | None:
    candidate = stdlib / f"{name}.mschema" if _is_stdlib_name(name) else here / name
    return candidate if candidate.is_file() else None


def _report_cycles(graph: object, spans: Mapping[tuple[str, str], Span], diags: Collector,
                   code: str, verb: str, label: Mapping[str, str] | None = None,
                   keyword: str | None = None) -> None:
    """One diagnostic per cycle, walking the chain with the place of each link. The chain
    starts at the node added to the graph first (for `use`, the file given on the command
    line), so the error is reported where the user started."""
    import networkx as nx

    g: nx.DiGraph[str] = graph  # type: ignore[assignment]
    added = {node: i for i, node in enumerate(g.nodes)}

    def show(node: str) -> str:
        return (label or {}).get(node, g.nodes[node].get("display", node))

    for component in sorted(nx.strongly_connected_components(g), key=sorted):
        nodes = sorted(component)
        if len(nodes) == 1 and not g.has_edge(nodes[0], nodes[0]):
            continue
        cycle = nx.find_cycle(g.subgraph(nodes), source=min(nodes, key=added.__getitem__))
        chain = " → ".join(f"`{show(a)}`" for a, _ in cycle + cycle[:1])
        links = [Label(spans[(a, b)], f"`{show(a)}` {verb} `{show(b)}` here")
                 for a, b in cycle[1:]]
        diags.error(code, f"cycle: {chain}", spans[cycle[0]], labels=links,
                    help=f"remove one of the `{keyword or verb}` links of this chain")


# ---- resolving ---------------------------------------------------------------------------
D = TypeVar("D", ast.BusDecl, ast.DeviceDecl, ast.MachineDecl)


def resolve(modules: Iterable[ast.Module], diags: Collector) -> model.Library:
    modules = list(modules)
    bus_decls = _collect(modules, ast.BusDecl, "bus kind", diags)
    device_decls = _collect(modules, ast.DeviceDecl, "device type", diags)
    machine_decls = _collect(modules, ast.MachineDecl, "machine", diags)
    r = _Resolver(diags, bus_decls, device_decls)
    buses = {name: r.bus_kind(d) for name, d in bus_decls.items()}
    r.buses = buses
    # Two passes: device types name each other (children, bus blocks inside children), so
    # the first pass only collects them and the second resolves children against them.
    r.diags = Collector()
    r.devices = {name: r.device_type(d) for name, d in device_decls.items()}
    r.diags = diags
    devices = {name: r.device_type(d) for name, d in device_decls.items()}
    r.devices = devices
    machines = r.machines(machine_decls)
    return model.Library(buses, devices, machines)


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


class _Resolver:
    def __init__(self, diags: Collector, bus_decls: Mapping[str, ast.BusDecl],
                 device_decls: Mapping[str, ast.DeviceDecl]) -> None:
        self.diags = diags
        self.bus_decls = bus_decls
        self.device_decls = device_decls
        self.buses: dict[str, model.BusKind] = {}
        self.devices: dict[str, model.DeviceType] = {}
        # Names declared with a problem already reported: uses of them stay quiet.
        self.broken_props: dict[str, set[str]] = {}
        self.broken_options: dict[str, set[str]] = {}
        self.poisoned: set[str] = set()

    # -- shared helpers
    def unknown(self, code: str, what: str, name: ast.Name, known: Iterable[str],
                of: str = "", empty: str = "there is none to choose from") -> None:
        """unknown WHAT `NAME` [OF], listing what is allowed there (or `empty` if nothing)."""
        known = list(known)
        note = f"expected one of {quote_list(known)}" if known else empty
        self.diags.error(code, f"unknown {what} `{name.text}`{' ' + of if of else ''}",
                         name.span, notes=[note])

    def single(self, body: Sequence[object], cls: type, keyword: str) -> object | None:
        found = [s for s in body if isinstance(s, cls)]
        for extra in found[1:]:
            self.diags.error("E0402", f"`{keyword}` is given twice", extra.span,  # type: ignore[attr-defined]
                             labels=[Label(found[0].span, "first given here")])  # type: ignore[attr-defined]
        return found[0] if found else None

    def value_type(self, t: ast.TypeExpr) -> model.ValueType | None:
        if isinstance(t, ast.EnumType):
            members = [m.text for m in t.members]
            for i, m in enumerate(t.members):
                if m.text in members[:i]:
                    first = t.members[members.index(m.text)]
                    self.diags.error("E0401", f"enum member `{m.text}` is listed twice",
                                     m.span, labels=[Label(first.span, "first listed here")])
            return model.ValueType("enum", members=tuple(dict.fromkeys(members)))
        if isinstance(t, ast.RangedType):
            if t.name.text != "int":
                self.diags.error("E0303", f"`{t.name.text}` takes no range", t.name.span,
                                 help="only `int(LO..HI)` has a range")
                return None
            if t.range.lo > t.range.hi:
                self.diags.error("E0303", "empty range: the low end is above the high end",
                                 t.range.span)
                return None
            return model.ValueType("int", t.range.lo, t.range.hi)
        if t.name.text not in NAMED_TYPES:
            self.unknown("E0303", "type", t.name, [*NAMED_TYPES, "enum(…)", "int(LO..HI)"])
            return None
        return NAMED_TYPES[t.name.text]

    def typed_value(self, v: ast.Value, t: model.ValueType, what: str) -> expr.Scalar | None:
        ok: expr.Scalar | None = None
        if t.kind == "bool" and v.kind == "bool":
            ok = v.value
        elif t.kind in ("int", "size") and v.kind == "int":
            assert isinstance(v.value, int)
            if t.lo is None or t.hi is None or t.lo <= v.value <= t.hi:
                ok = v.value
        elif ((t.kind == "str" and v.kind == "str")
              or (t.kind == "mac" and v.kind == "str" and _is_mac(str(v.value)))
              or (t.kind == "enum" and v.kind in ("name", "str") and v.value in t.members)):
            ok = v.value
        if ok is None:
            self.diags.error("E0301", f"{what} must be {t.describe()}, not `{v.show()}`",
                             v.span)
        return ok

    # -- bus kinds
    def bus_kind(self, d: ast.BusDecl) -> model.BusKind:
        doc = self.single(d.body, ast.Doc, "doc")
        qtree = self.single(d.body, ast.Qtree, "qtree")
        decl = self.single(d.body, ast.AddressDecl, "address")
        if qtree is None:
            self.diags.error("E0901", f"bus kind `{d.name.text}` has no `qtree` name",
                             d.name.span, help='add `qtree "TYPE"`: the bus type '
                             "that QEMU's `info qtree` prints")
        space = notations.AddressSpace("none")
        if isinstance(decl, ast.AddressDecl):
            notation = decl.notation.text
            if notation not in notations.NOTATIONS:
                self.unknown("E0208", "address notation", decl.notation, notations.NOTATIONS)
            else:
                space = notations.AddressSpace(notation, tuple(
                    (f, self.field_ranges(notation, decl.fields, f)) for f in
                    notations.NOTATIONS[notation]))
                self.check_fields(notation, decl.fields, d.name.text)
        hotplug = self.single(d.body, ast.Hotplug, "hotplug")
        return model.BusKind(d.name.text, qtree.name if isinstance(qtree, ast.Qtree) else "",
                             space, hotplug.value if isinstance(hotplug, ast.Hotplug) else True,
                             doc.text if isinstance(doc, ast.Doc) else "", d.name.span)

    def check_fields(self, notation: str, fields: Iterable[ast.FieldRange],
                     bus_kind: str) -> None:
        for f in fields:
            if not notations.NOTATIONS[notation]:
                self.diags.error("E0209", f"unknown field `{f.field.text}`: devices on "
                                 f"`{bus_kind}` buses have no address", f.field.span,
                                 help="remove the address range")
            elif f.field.text not in notations.NOTATIONS[notation]:
                self.unknown("E0209", "field", f.field, notations.NOTATIONS[notation],
                             of=f"of `{notation}` addresses")
            if f.range.lo > f.range.hi:
                self.diags.error("E0303", "empty range: the low end is above the high end",
                                 f.range.span)

    @staticmethod
    def field_ranges(notation: str, fields: Iterable[ast.FieldRange],
                     name: str) -> tuple[notations.FieldRange, ...]:
        return tuple(notations.FieldRange(f.range.lo, f.range.hi,
                                          f.tag.text if f.tag else None)
                     for f in fields if f.field.text == name)

    def narrowed(self, space: notations.AddressSpace, items: Iterable[object],
                 bus_kind: str) -> notations.AddressSpace:
        fields = [i for i in items if isinstance(i, ast.FieldRange)]
        if not fields:
            return space
        if space.notation in notations.NOTATIONS:
            self.check_fields(space.notation, fields, bus_kind)
        overrides = {name: self.field_ranges(space.notation, fields, name)
                     for name in {f.field.text for f in fields}}
        return space.narrowed(overrides)

    # -- device types
    def device_type(self, d: ast.DeviceDecl) -> model.DeviceType:
        doc = self.single(d.body, ast.Doc, "doc")
        hotplug = self.single(d.body, ast.Hotplug, "hotplug")
        self.single(d.body, ast.Internal, "internal")
        self.single(d.body, ast.Multifunction, "multifunction")
        plugs: list[model.Plug] = []
        for stmt in d.body:
            if isinstance(stmt, ast.Plugs):
                for p in stmt.plugs:
                    plugs.append(self.plug(p))
        props: dict[str, model.PropSpec] = {}
        links: dict[str, model.LinkSpec] = {}
        names: dict[str, Span] = {}
        for stmt in d.body:
            if isinstance(stmt, (ast.PropDecl, ast.LinkDecl)):
                n = stmt.name
                if n.text in names:
                    self.diags.error("E0401", f"property `{n.text}` is defined twice",
                                     n.span, labels=[Label(names[n.text], "first defined here")])
                    continue
                names[n.text] = n.span
                if isinstance(stmt, ast.PropDecl):
                    t = self.value_type(stmt.type)
                    if t is None:
                        self.broken_props.setdefault(d.name.text, set()).add(n.text)
                        continue
                    default = (None if stmt.default is None else
                               self.typed_value(stmt.default, t, f"the default of `{n.text}`"))
                    unique = None
                    if stmt.unique is not None:
                        unique = stmt.unique.text or f"{d.name.text}.{n.text}"
                        if t.kind != "int" or t.lo is None:
                            self.diags.error("E0303", "`unique` needs an integer type with a "
                                             "range", stmt.unique.span,
                                             help="e.g. `prop chassis: u8 unique`")
                            unique = None
                    props[n.text] = model.PropSpec(n.text, t, default, unique, n.span,
                                                   derived=stmt.derived)
                else:
                    if stmt.backend.text not in model.BACKEND_KINDS:
                        self.unknown("E0201", "backend kind", stmt.backend,
                                     model.BACKEND_KINDS)
                    links[n.text] = model.LinkSpec(n.text, stmt.backend.text, stmt.optional,
                                                   stmt.writable, n.span)
        buses = tuple(b for b in (self.bus_template(d.name.text, s) for s in d.body
                                  if isinstance(s, ast.BusBlock)) if b is not None)
        requires = tuple(n.text for s in d.body if isinstance(s, ast.Requires) for n in s.names)
        provides = tuple(n.text for s in d.body if isinstance(s, ast.Provides) for n in s.names)
        blocks = [s for s in d.body if isinstance(s, ast.FdtBlock)]
        fdt = tuple((p.name.text, p.value.value) for s in blocks for p in s.items
                    if isinstance(p, ast.FdtProp))
        fdt_items = tuple(item for s in blocks for item in s.items)
        self.fdt_items(fdt_items)
        if not plugs:
            self.diags.error("E0901", f"device type `{d.name.text}` plugs into no bus",
                             d.name.span, help="add `plugs KIND`, e.g. `plugs pcie, pci`")
        return model.DeviceType(
            d.name.text, tuple(plugs),
            hotplug.value if isinstance(hotplug, ast.Hotplug) else False,
            any(isinstance(s, ast.Internal) for s in d.body),
            any(isinstance(s, ast.Multifunction) for s in d.body),
            props, links, buses, requires, provides, fdt,
            doc.text if isinstance(doc, ast.Doc) else "", d.name.span, fdt_items)

    # -- device tree items: names of functions, device types and bus kinds (variables are
    # scoped by the tree being built, so `emit/fdt.py` reports an unknown one)
    def fdt_items(self, items: Iterable[ast.FdtItem]) -> None:
        for item in items:
            if isinstance(item, ast.FdtSet):
                for v in item.values:
                    self.fdt_value(v)
                self.fx(item.when)
            elif isinstance(item, ast.FdtNode):
                self.fx_str(item.name)
                self.fdt_for(item.loop)
                self.fx(item.when)
                self.fdt_items(item.items)
            elif isinstance(item, ast.FdtLet):
                if isinstance(item.value, ast.FdtCells):
                    self.fdt_value(item.value)
                else:
                    self.fx(item.value)
                self.fx(item.when)
            elif isinstance(item, ast.FdtPass):
                self.fx(item.value)
            elif isinstance(item, ast.FdtEach):
                for kind in item.kinds:
                    if kind.text not in self.bus_decls:
                        self.unknown("E0201", "bus kind", kind, self.bus_decls)
                self.fdt_items(item.items)
            elif isinstance(item, ast.FdtChildren):
                for t in item.types:
                    if t.text not in self.device_decls:
                        self.unknown("E0202", "device type", t, self.device_decls)

    def fdt_value(self, v: ast.FdtValue | ast.Cell) -> None:
        if isinstance(v, ast.FdtCells):
            for c in v.cells:
                self.fdt_value(c)
        elif isinstance(v, ast.CellFor):
            self.fdt_for(v.loop)
            for c in v.cells:
                self.fdt_value(c)
        elif isinstance(v, ast.FdtString):
            self.fx_str(v.text)
            self.fdt_for(v.loop)
        elif not isinstance(v, ast.FdtBytes):
            self.fx(v)

    def fdt_for(self, loop: ast.FdtFor | None) -> None:
        if loop is not None:
            self.fx(loop.lo)
            self.fx(loop.hi)

    def fx_str(self, s: ast.FxStr) -> None:
        for part in s.parts:
            if isinstance(part, ast.FxInterp):
                self.fx(part.expr)

    def fx(self, e: ast.Fx | None) -> None:
        if isinstance(e, ast.FxCall):
            arity = FDT_FUNCTIONS.get(e.func.text)
            if arity is None:
                self.unknown("E0201", "function", e.func, FDT_FUNCTIONS)
            elif not arity[0] <= len(e.args) <= arity[1]:
                want = str(arity[0]) if arity[0] == arity[1] else f"{arity[0]} to {arity[1]}"
                self.diags.error("E0302", f"`{e.func.text}` takes {want} argument(s), not "
                                 f"{len(e.args)}", e.span)
            if e.func.text in FDT_TYPE_FUNCTIONS:
                for a in e.args:
                    if isinstance(a, ast.FxName) and a.name not in self.device_decls:
                        self.unknown("E0202", "device type", ast.Name(a.name, a.span),
                                     self.device_decls)
                return
            for a in e.args:
                self.fx(a)
        elif isinstance(e, ast.FxBin):
            self.fx(e.left)
            self.fx(e.right)
        elif isinstance(e, ast.FxNot):
            self.fx(e.operand)
        elif isinstance(e, ast.FxStr):
            self.fx_str(e)

    def plug(self, p: ast.Plug) -> model.Plug:
        decl = self.bus_decls.get(p.bus.text)
        if decl is None:
            self.unknown("E0201", "bus kind", p.bus, self.bus_decls)
        elif p.tag is not None:
            tags = self.address_tags(p.bus.text)
            if p.tag.text not in tags:
                self.unknown("E0210", "address tag", p.tag, tags,
                             of=f"on `{p.bus.text}` buses",
                             empty=f"no `{p.bus.text}` bus has tagged address ranges")
        return model.Plug(p.bus.text, p.tag.text if p.tag else None)

    def bus_name(self, name: str, span: Span) -> str | None:
        """A bus name whose only placeholders are `{id}` and `{n}`, or None (reported)."""
        try:
            parts = list(string.Formatter().parse(name))
        except ValueError:
            self.diags.error("E0201", f"unmatched brace in bus name `{name}`", span,
                             help="placeholders are written `{id}` and `{n}`")
            return None
        for _, field, spec, conv in parts:
            if field is None or (field in ("id", "n") and not spec and not conv):
                continue
            shown = "{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            self.diags.error("E0201", f"unknown placeholder `{shown}` in bus name", span,
                             notes=["expected one of `{id}`, `{n}`"])
            return None
        return name

    def address_tags(self, bus_kind: str) -> set[str]:
        """Tags of the kind's own ranges and of the ranges device types narrow it to
        (`bus usb "{id}.0" { port 1..4 as usb2 }`)."""
        decl = self.bus_decls[bus_kind]
        fields = [f for s in decl.body if isinstance(s, ast.AddressDecl) for f in s.fields]

        def walk(items: Iterable[object]) -> None:
            for item in items:
                if isinstance(item, ast.BusBlock):
                    if item.kind.text == bus_kind:
                        fields.extend(i for i in item.items if isinstance(i, ast.FieldRange))
                    walk(item.items)
                elif isinstance(item, ast.Instance):
                    walk(item.body)

        for d in self.device_decls.values():
            walk(d.body)
        return {f.tag.text for f in fields if f.tag}

    def bus_template(self, owner: str, b: ast.BusBlock) -> model.BusTemplate | None:
        kind = self.buses.get(b.kind.text)
        if kind is None:
            self.unknown("E0201", "bus kind", b.kind, self.buses)
            return None
        if b.name is None:
            self.diags.error("E0901", f"bus of `{owner}` has no name", b.kind.span,
                             help='name it as QEMU does, e.g. `bus pcie "{id}"` or '
                             '`bus ide "{id}.{n}" count 6`')
            return None
        name = self.bus_name(b.name, b.name_span or b.span)
        if name is None:
            return None
        count = b.count or 1
        if count > 1 and "{n}" not in b.name:
            self.diags.error("E0901", f"`count {count}` needs `{{n}}` in the bus name",
                             b.name_span or b.span)
        space = self.narrowed(kind.address, b.items, b.kind.text)
        children = tuple(self.instance(i, b.kind.text, space, {}, set())
                         for i in b.items if isinstance(i, ast.Instance))
        hotplug = self.single(b.items, ast.Hotplug, "hotplug")
        return model.BusTemplate(b.kind.text, name, count, space,
                                 tuple(c for c in children if c is not None),
                                 hotplug.value if isinstance(hotplug, ast.Hotplug) else None,
                                 b.span)

    # -- instances (machine devices, and children in device types)
    def instance(self, i: ast.Instance, bus_kind: str, space: notations.AddressSpace,
                 options: Mapping[str, model.OptionSpec],
                 ids: set[str]) -> model.Instance | None:
        dtype = self.devices.get(i.type.text) if self.devices else None
        if self.devices and dtype is None:
            self.unknown("E0202", "device type", i.type, self.devices)
        iid = i.id.text if i.id else i.type.text
        address: tuple[int, ...] | None = None
        if i.address is not None:
            if not space.rules.addressed:
                self.diags.error("E0503", f"devices on `{bus_kind}` buses have no address",
                                 i.address.span, help="remove `at …`")
            else:
                try:
                    address = notations.parse(space.notation, i.address.text)
                except notations.AddressSyntaxError as exc:
                    self.diags.error("E0503", f"`{i.address.text}` is not a "
                                     f"{space.notation} address", i.address.span,
                                     help=str(exc))
        condition = None if i.condition is None else self.condition(i.condition, options)
        props: list[tuple[str, expr.Scalar]] = []
        buses: list[model.BusBinding] = []
        for stmt in i.body:
            if isinstance(stmt, ast.PropSet):
                spec = dtype.props.get(stmt.name.text) if dtype else None
                if dtype is not None and spec is None and (
                        stmt.name.text not in self.broken_props.get(dtype.name, ())):
                    self.unknown("E0207", "property", stmt.name, dtype.props,
                                 of=f"of `{dtype.name}`",
                                 empty=f"`{dtype.name}` has no properties")
                elif spec is not None:
                    v = self.typed_value(stmt.value, spec.type, f"`{stmt.name.text}`")
                    if v is not None:
                        props.append((stmt.name.text, v))
            else:
                binding = self.bus_binding(stmt, dtype, iid, options, ids)
                if binding:
                    buses.extend(binding)
        if dtype is not None:
            bound = {b.kind for b in buses}
            for t in dtype.buses:
                if t.kind not in bound:
                    buses.extend(self.template_buses(t, iid))
        return model.Instance(iid, i.type.text, address, condition, tuple(props), tuple(buses),
                              i.span)

    def template_buses(self, t: model.BusTemplate, qemu_id: str) -> list[model.BusBinding]:
        return [model.BusBinding(t.kind, name, t.address, t.children, (), t.span)
                for name in t.names(qemu_id)]

    def bus_binding(self, b: ast.BusBlock, dtype: model.DeviceType | None, qemu_id: str,
                    options: Mapping[str, model.OptionSpec],
                    ids: set[str]) -> list[model.BusBinding]:
        if dtype is None:
            return []
        template = next((t for t in dtype.buses if t.kind == b.kind.text), None)
        if template is None:
            self.diags.error("E0505", f"`{dtype.name}` provides no `{b.kind.text}` bus",
                             b.kind.span, notes=[_provided_buses(dtype)])
            return []
        name = template.name
        if b.name is not None:
            name = self.bus_name(b.name, b.name_span or b.span) or ""
        count = b.count or template.count
        space = self.narrowed(template.address, b.items, b.kind.text)
        devices = tuple(x for x in (self.instance(i, b.kind.text, space, options, ids)
                                    for i in b.items if isinstance(i, ast.Instance)) if x)
        names = [name.format(n=n, id=qemu_id) for n in range(count)]
        return [model.BusBinding(b.kind.text, n, space, template.children,
                                 devices if k == 0 else (), b.span)
                for k, n in enumerate(names)]

    # -- conditions
    def condition(self, e: ast.Expr, options: Mapping[str, model.OptionSpec]) -> expr.Expr:
        result, rtype = self.typed_expr(e, options)
        if rtype is not None and rtype.kind != "bool":
            self.diags.error("E0302", f"this condition is {_a(rtype)}, not a bool", e.span,
                             notes=[f"it takes {rtype.describe()}"] if rtype.kind == "enum"
                             else [], help=_compare_help(e, rtype))
        return result

    def typed_expr(self, e: ast.Expr, options: Mapping[str, model.OptionSpec]
             ) -> tuple[expr.Expr, model.ValueType | None]:
        BOOL = NAMED_TYPES["bool"]
        if isinstance(e, ast.Literal_):
            t = {"int": NAMED_TYPES["int"], "str": NAMED_TYPES["str"], "bool": BOOL}[e.value.kind]
            return expr.Const(e.value.value, e.span), t
        if isinstance(e, ast.Ref):
            name = e.name.text
            if name in options:
                return expr.Option(name, e.span), options[name].type
            if name in expr.SPEC_FACTS:
                return expr.Fact(name, e.span), NAMED_TYPES["int"]
            if name in self.poisoned:
                return expr.Const(False, e.span), None
            self.unknown("E0203", "option", e.name, list(options) + list(expr.SPEC_FACTS))
            return expr.Const(False, e.span), None
        if isinstance(e, ast.Call):
            if e.func.text != "count":
                self.unknown("E0201", "function", e.func, ["count"])
            elif e.arg.text not in expr.SPEC_KINDS:
                self.unknown("E0201", "loose kind", e.arg, expr.SPEC_KINDS)
            return expr.Count(e.arg.text, e.span), NAMED_TYPES["int"]
        if isinstance(e, ast.Not):
            return expr.Not(self.condition(e.operand, options), e.span), BOOL
        if isinstance(e, ast.BoolOp):
            ops = tuple(self.condition(o, options) for o in e.operands)
            return (expr.And(ops, e.span) if e.op == "and" else expr.Or(ops, e.span)), BOOL
        return self.compare(e, options), BOOL

    def compare(self, e: ast.Compare, options: Mapping[str, model.OptionSpec]) -> expr.Expr:
        sides: list[tuple[expr.Expr, model.ValueType | None]] = []
        for side, other in ((e.left, e.right), (e.right, e.left)):
            enum_member = (isinstance(side, ast.Ref) and side.name.text not in options
                           and isinstance(other, ast.Ref) and (
                               other.name.text in self.poisoned or
                               (other.name.text in options
                               and options[other.name.text].type.kind == "enum")))
            if enum_member:
                assert isinstance(side, ast.Ref)
                sides.append((expr.Const(side.name.text, side.span), None))
            else:
                sides.append(self.typed_expr(side, options))
        (left, lt), (right, rt) = sides
        known = lt or rt
        option = next((f"`{n.name.text}`" for n in (e.left, e.right)
                       if isinstance(n, ast.Ref) and n.name.text in options), "this option")
        for (value, vt), node in ((sides[0], e.left), (sides[1], e.right)):
            if (vt is None and isinstance(value, expr.Const) and known
                    and known.kind == "enum" and value.value not in known.members):
                self.diags.error("E0302", f"`{value.value}` is not a value of {option}",
                                 node.span, notes=[f"it takes {known.describe()}"])
        if lt and rt and not _comparable(lt, rt):
            self.diags.error("E0302", f"cannot compare {_a(lt)} with {_a(rt)}", e.span,
                             help=_bool_help(e, options))
        elif lt and rt and {lt.kind, rt.kind} == {"enum", "str"}:
            enum_type = lt if lt.kind == "enum" else rt
            literal = right if rt.kind == "str" else left
            if isinstance(literal, expr.Const) and literal.value not in enum_type.members:
                self.diags.error("E0302", f"`{literal.value}` is not a value of {option}",
                                 literal.span, notes=[f"it takes {enum_type.describe()}"])
        if e.op not in ("==", "!=") and known and known.kind not in ("int", "size"):
            self.diags.error("E0302", f"`{e.op}` compares numbers, not {_a(known, plural=True)}",
                             e.span, help=_bool_help(e, options))
        return expr.Cmp(left, e.op, right, e.span)

    # -- machines
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
        _report_cycles(graph, spans, self.diags, "E0602", "extends")
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

    def machine(self, d: ast.MachineDecl, parent: model.MachineSchema | None
                ) -> model.MachineSchema:
        body = d.body
        doc = self.single(body, ast.Doc, "doc")
        alias = self.single(body, ast.Alias, "alias")
        family_stmt = self.single(body, ast.Family, "family")
        family = (family_stmt.name.text if isinstance(family_stmt, ast.Family)
                  else parent.family if parent else d.name.text)
        arch = self.single(body, ast.Arch, "arch")
        binary = self.single(body, ast.Binary, "binary")
        qemu = self.single(body, ast.QemuMachine, "qemu-machine")
        placement_stmt = self.single(body, ast.Placement, "placement")
        memory_stmt = self.single(body, ast.DefaultMemory, "default-memory")
        default_memory = parent.default_memory if parent else 0
        if isinstance(memory_stmt, ast.DefaultMemory):
            size = parse_size(memory_stmt.size)
            if size is None:
                self.diags.error("E0301", f"`default-memory` must be a size, not "
                                 f"`{memory_stmt.size}`", memory_stmt.span,
                                 help='write bytes, or a number with K, M, G or T: "128M"')
            else:
                default_memory = size
        elif parent is None:
            self.diags.error("E0901", f"machine `{d.name.text}` has no `default-memory`",
                             d.name.span, help="add what QEMU gives without -m, e.g. "
                             '`default-memory "128M"`')
        if parent is None:
            for stmt, kw in ((arch, "arch"), (binary, "binary"), (qemu, "qemu-machine")):
                if stmt is None:
                    self.diags.error("E0901", f"machine `{d.name.text}` has no `{kw}`",
                                     d.name.span)
        options = dict(parent.options) if parent else {}
        broken = self.broken_options.setdefault(d.name.text, set(
            self.broken_options.get(parent.name, ()) if parent else ()))
        own: dict[str, Span] = {}
        for stmt in body:
            if isinstance(stmt, ast.OptionDecl):
                n = stmt.name
                if n.text in own:
                    self.diags.error("E0401", f"option `{n.text}` is defined twice", n.span,
                                     labels=[Label(own[n.text], "first defined here")])
                    continue
                own[n.text] = n.span
                t = self.value_type(stmt.type)
                if t is None:
                    broken.add(n.text)
                    continue
                if stmt.default is None:
                    self.diags.error("E0901", f"option `{n.text}` has no default", n.span,
                                     help="add `= VALUE`: what QEMU uses when it is not given")
                    broken.add(n.text)
                    continue
                default = self.typed_value(stmt.default, t, f"the default of `{n.text}`")
                if default is not None:
                    options[n.text] = model.OptionSpec(n.text, t, default, n.span)
                else:
                    broken.add(n.text)
        self.poisoned = broken
        ids: set[str] = set()
        devices = list(parent.devices) if parent else []
        for stmt in body:
            if isinstance(stmt, ast.Devices):
                for i in stmt.instances:
                    inst = self.instance(i, ROOT_BUS_KIND, self.root_space(), options, ids)
                    if inst:
                        devices.append(inst)
        implementations = dict(parent.implementations) if parent else {}
        for stmt in body:
            if isinstance(stmt, ast.Implement):
                impl = self.implementation(stmt)
                if impl:
                    implementations[impl.kind] = impl
        providers = dict(parent.providers) if parent else {}
        for stmt in body:
            if isinstance(stmt, ast.Provide):
                p = self.provider(stmt)
                if p:
                    providers[p.bus] = p
        checks = list(parent.checks) if parent else []
        for stmt in body:
            if isinstance(stmt, ast.Check):
                checks.append(model.Check(stmt.name.text, self.condition(stmt.condition, options),
                                          stmt.message, stmt.name.span))
        compat = self.compat_props(body, parent)
        quirks = self.quirks(body, parent)
        fdt_stmt = self.single(body, ast.FdtBlock, "fdt")
        fdt_items = parent.fdt if parent else ()
        if isinstance(fdt_stmt, ast.FdtBlock):
            fdt_items = fdt_stmt.items
            self.fdt_items(fdt_items)
        placement = parent.placement if parent else model.Placement()
        if isinstance(placement_stmt, ast.Placement):
            placement = self.placement(placement_stmt)
        return model.MachineSchema(
            d.name.text,
            family,
            tuple(n.text for n in alias.names) if isinstance(alias, ast.Alias) else (),
            arch.name.text if isinstance(arch, ast.Arch) else (parent.arch if parent else ""),
            binary.path if isinstance(binary, ast.Binary) else (parent.binary if parent else ""),
            qemu.name if isinstance(qemu, ast.QemuMachine) else (parent.qemu_machine if parent
                                                                 else ""),
            parent.name if parent else None,
            options, tuple(devices), implementations, providers, tuple(checks), tuple(compat),
            placement, default_memory, doc.text if isinstance(doc, ast.Doc) else "",
            d.name.span, fdt_items, quirks)

    def compat_props(self, body: Sequence[ast.MachineStmt], parent: model.MachineSchema | None
                     ) -> tuple[model.CompatProp, ...]:
        """The parent's compat props, then this machine's; one of this machine's for the
        same device type and property replaces the parent's in place (QEMU applies compat
        properties in order, so the later one wins)."""
        compat = {(c.device, c.prop): c for c in parent.compat} if parent else {}
        own: dict[tuple[str, str], Span] = {}
        for stmt in body:
            if not isinstance(stmt, ast.Compat):
                continue
            key = (stmt.device.text, stmt.prop.text)
            if key in own:
                self.diags.error("E0401", f"`compat {key[0]} {key[1]}` is set twice",
                                 stmt.span, labels=[Label(own[key], "first set here")])
                continue
            own[key] = stmt.span
            c = self.compat(stmt)
            if c:
                compat[key] = c
        return tuple(compat.values())

    def quirks(self, body: Sequence[ast.MachineStmt], parent: model.MachineSchema | None
               ) -> tuple[model.Quirk, ...]:
        """`quirk NAME = VALUE`: a machine without a parent declares its quirks; a version
        that `extends` one may only change their values, keeping each one's kind of value."""
        inherited = {q.name: q for q in parent.quirks} if parent else {}
        quirks = dict(inherited)
        own: dict[str, Span] = {}
        for stmt in body:
            if not isinstance(stmt, ast.Quirk):
                continue
            name = stmt.name.text
            if name in own:
                self.diags.error("E0401", f"quirk `{name}` is set twice", stmt.name.span,
                                 labels=[Label(own[name], "first set here")])
                continue
            own[name] = stmt.name.span
            if parent is not None and name not in inherited:
                self.unknown("E0201", "quirk", stmt.name, inherited,
                             of=f"of `{parent.name}`",
                             empty=f"`{parent.name}` declares no quirks: the first version "
                             "of a machine declares them all")
                continue
            value = stmt.value.value
            before = inherited.get(name)
            if before is not None and _scalar_kind(before.value) != _scalar_kind(value):
                kind = _scalar_kind(before.value)
                self.diags.error("E0301", f"quirk `{name}` must be {kind}, not "
                                 f"`{stmt.value.show()}`", stmt.value.span,
                                 labels=[Label(before.span, f"declared {kind} here")])
                continue
            quirks[name] = model.Quirk(name, value, stmt.span)
        return tuple(quirks.values())

    def root_space(self) -> notations.AddressSpace:
        root = self.buses.get(ROOT_BUS_KIND)
        return root.address if root else notations.AddressSpace("none")

    def implementation(self, s: ast.Implement) -> model.Implementation | None:
        if s.kind.text not in expr.SPEC_KINDS:
            self.unknown("E0201", "loose kind", s.kind, expr.SPEC_KINDS)
            return None
        cases: dict[str, str] = {}
        spans: dict[str, Span] = {}
        firsts: dict[str, Span] = {}
        for c in s.cases:
            if c.value.text in firsts:
                self.diags.error("E0401", f"case `{c.value.text}` is implemented twice",
                                 c.value.span,
                                 labels=[Label(firsts[c.value.text], "first implemented here")])
                continue
            firsts[c.value.text] = c.value.span
            if c.device.text not in self.devices:
                self.unknown("E0202", "device type", c.device, self.devices)
                continue
            cases[c.value.text] = c.device.text
            spans[c.value.text] = c.device.span
        if s.default.text not in firsts:
            self.diags.error("E0802", f"the default `{s.default.text}` is not one of the cases",
                             s.default.span,
                             notes=[f"the cases are {quote_list(firsts)}" if firsts
                                    else "there are no cases"])
        return model.Implementation(s.kind.text, s.by.text, s.default.text, cases, spans,
                                    s.kind.span)

    def provider(self, s: ast.Provide) -> model.Provider | None:
        if s.bus.text not in self.buses:
            self.unknown("E0201", "bus kind", s.bus, self.buses)
            return None
        dtype = self.devices.get(s.device.text)
        if dtype is None:
            self.unknown("E0202", "device type", s.device, self.devices)
            return None
        if s.bus.text not in provided_bus_kinds(self.devices, dtype.name):
            self.diags.error("E0505", f"`{dtype.name}` provides no `{s.bus.text}` bus",
                             s.device.span, notes=[_provided_buses(dtype)])
            return None
        return model.Provider(s.bus.text, s.device.text, s.span)

    def compat(self, s: ast.Compat) -> model.CompatProp | None:
        dtype = self.devices.get(s.device.text)
        if dtype is None:
            self.unknown("E0202", "device type", s.device, self.devices)
            return None
        spec = dtype.props.get(s.prop.text)
        if spec is None:
            if s.prop.text in self.broken_props.get(dtype.name, ()):
                return None
            self.unknown("E0207", "property", s.prop, dtype.props, of=f"of `{dtype.name}`",
                         empty=f"`{dtype.name}` has no properties")
            return None
        v = self.typed_value(s.value, spec.type, f"`{s.prop.text}`")
        return None if v is None else model.CompatProp(dtype.name, spec.name, v, s.span)

    def placement(self, p: ast.Placement) -> model.Placement:
        order = self.single(p.stmts, ast.Order, "order")
        ports = self.single(p.stmts, ast.Ports, "ports")
        spare = self.single(p.stmts, ast.SparePorts, "spare-ports")
        vio = self.single(p.stmts, ast.VioBase, "vio-base")
        root = self.single(p.stmts, ast.PciRoot, "pci-root")
        if isinstance(order, ast.Order):
            for n in order.kinds:
                if n.text not in expr.SPEC_KINDS:
                    self.unknown("E0201", "loose kind", n, expr.SPEC_KINDS)
        if isinstance(ports, ast.Ports) and ports.device.text not in self.devices:
            self.unknown("E0202", "device type", ports.device, self.devices)
        overflow = []
        for stmt in p.stmts:
            if isinstance(stmt, ast.Overflow):
                if stmt.device.text not in self.devices:
                    self.unknown("E0202", "device type", stmt.device, self.devices)
                    continue
                overflow.append(model.Container(stmt.device.text, stmt.bus,
                                                (stmt.slots.lo, stmt.slots.hi)))
        return model.Placement(
            order=tuple(n.text for n in order.kinds) if isinstance(order, ast.Order) else (),
            port_device=ports.device.text if isinstance(ports, ast.Ports) else None,
            port_bus=ports.bus if isinstance(ports, ast.Ports) else None,
            port_slots=((ports.slots.lo, ports.slots.hi) if isinstance(ports, ast.Ports)
                        else None),
            spare_ports=spare.count if isinstance(spare, ast.SparePorts) else 0,
            overflow=tuple(overflow),
            vio_base=vio.reg if isinstance(vio, ast.VioBase) else None,
            pci_root=root.bus if isinstance(root, ast.PciRoot) else None,
            pci_root_slots=((root.slots.lo, root.slots.hi) if isinstance(root, ast.PciRoot)
                            else None),
            span=p.span)


def _a(t: model.ValueType, plural: bool = False) -> str:
    """The kind of a type in a message: `a bool`, or `bools`."""
    word = {"bool": "bool", "int": "number", "size": "size", "str": "string",
            "mac": "MAC address", "enum": "enum"}[t.kind]
    if plural:
        return f"{word}s"
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _bool_help(e: ast.Compare, options: Mapping[str, model.OptionSpec]) -> str | None:
    for side in (e.left, e.right):
        if isinstance(side, ast.Ref) and side.name.text in options and (
                options[side.name.text].type.kind == "bool"):
            name = side.name.text
            return f"a bool option is a condition by itself: write `{name}` or `not {name}`"
    return None


def _provided_buses(dtype: model.DeviceType) -> str:
    if not dtype.buses:
        return f"`{dtype.name}` provides no bus at all"
    return f"it provides {quote_list(t.kind for t in dtype.buses)}"


def provided_bus_kinds(devices: Mapping[str, model.DeviceType], name: str) -> set[str]:
    """Bus kinds a device type brings, its children's included (virtio-scsi-pci's SCSI bus
    hangs under its virtio-scsi-device)."""
    t = devices.get(name)
    kinds: set[str] = set()
    for template in t.buses if t else ():
        kinds.add(template.kind)
        for child in template.children:
            kinds |= provided_bus_kinds(devices, child.type)
    return kinds


def _comparable(a: model.ValueType, b: model.ValueType) -> bool:
    if a.kind == "enum" or b.kind == "enum":
        return {a.kind, b.kind} <= {"enum", "str"}
    numeric = {"int", "size"}
    return a.kind == b.kind or (a.kind in numeric and b.kind in numeric)


def _compare_help(e: ast.Expr, t: model.ValueType) -> str | None:
    if not isinstance(e, (ast.Ref, ast.Call)):
        return None
    text = e.span.source.text[e.span.start:e.span.end]
    if t.kind == "enum":
        value = "off" if "off" in t.members else t.members[0]
        return f"compare it, e.g. `{text} != {value}`"
    if t.kind in ("int", "size"):
        return f"compare it, e.g. `{text} > 0`"
    return f'compare it, e.g. `{text} != ""`'


def _scalar_kind(value: expr.Scalar) -> str:
    """`a bool`, `a number` or `a string`: what a quirk's value is."""
    if isinstance(value, bool):
        return "a bool"
    return "a number" if isinstance(value, int) else "a string"


def _is_mac(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                   for p in parts)


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
