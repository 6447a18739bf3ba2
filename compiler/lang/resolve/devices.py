"""Device types: a `device` declaration → `model.DeviceType` (plugs, properties, links, the
buses it provides with the children on them, its fdt block). Ends at device types: the
devices a machine places are `instances`' and `machines`' job.
"""

from __future__ import annotations

from compiler.base.diagnostics import Label
from compiler.base.source import Span
from compiler.lang import ast, model
from compiler.lang.expr import Scalar
from compiler.lang.resolve.buses import BusKinds
from compiler.lang.resolve.conditions import NO_OPTIONS
from compiler.lang.resolve.fdt import FdtNames
from compiler.lang.resolve.instances import Instances
from compiler.lang.resolve.releases import older, release
from compiler.lang.resolve.scope import Part, Scope
from compiler.lang.resolve.values import Values

MULTIFUNCTION = "multifunction"


class DeviceTypes(Part):
    def __init__(self, scope: Scope, values: Values, buses: BusKinds, instances: Instances,
                 fdt: FdtNames) -> None:
        super().__init__(scope)
        self.values, self.bus_kinds, self.instances, self.fdt = values, buses, instances, fdt
        self.unique_scopes: dict[str, tuple[bool, Span]] = {}  # group → (per bus, first)

    def device_type(self, d: ast.DeviceDecl) -> model.DeviceType:
        doc = self.single(d.body, ast.Doc, "doc")
        hotplug = self.plain_hotplug(d.body, "a device type")
        self.single(d.body, ast.Internal, "internal")
        self.single(d.body, ast.Multifunction, "multifunction")
        self.single(d.body, ast.MachineOnly, "machine-only")
        qtree_parent = self.single(d.body, ast.QtreeParent, "qtree-parent")
        plugs = [self.bus_kinds.plug(p) for stmt in d.body if isinstance(stmt, ast.Plugs)
                 for p in stmt.plugs]
        since_stmt = self.single(d.body, ast.Since, "since")
        since = release(self.diags, since_stmt.release, since_stmt.span, "since") if (
            since_stmt) else ""
        props, links = self.props_and_links(d, since)
        self.pci_function_props(plugs, props, d.name.span)
        buses = tuple(b for b in (self.bus_template(d.name.text, s) for s in d.body
                                  if isinstance(s, ast.BusBlock)) if b is not None)
        requires = tuple(n.text for s in d.body if isinstance(s, ast.Requires) for n in s.names)
        provides = tuple(n.text for s in d.body if isinstance(s, ast.Provides) for n in s.names)
        blocks = [s for s in d.body if isinstance(s, ast.FdtBlock)]
        fdt = tuple((p.name.text, p.value.value) for s in blocks for p in s.items
                    if isinstance(p, ast.FdtProp))
        fdt_items = tuple(item for s in blocks for item in s.items)
        self.fdt.fdt_items(fdt_items)
        if not plugs:
            self.diags.error("E0901", f"device type `{d.name.text}` plugs into no bus",
                             d.name.span, help="add `plugs KIND`, e.g. `plugs pcie, pci`")
        return model.DeviceType(
            name=d.name.text, plugs=tuple(plugs),
            hotplug=hotplug.value if hotplug is not None else False,
            internal=any(isinstance(s, ast.Internal) for s in d.body),
            multifunction=any(isinstance(s, ast.Multifunction) for s in d.body),
            machine_only=any(isinstance(s, ast.MachineOnly) for s in d.body),
            props=props, links=links, buses=buses, requires=requires, provides=provides,
            fdt=fdt, doc=doc.text if doc is not None else "", span=d.name.span,
            fdt_items=fdt_items, since=since,
            qtree_parent=qtree_parent.type.text if qtree_parent is not None else None)

    def props_and_links(self, d: ast.DeviceDecl, type_since: str = ""
                        ) -> tuple[dict[str, model.PropSpec], dict[str, model.LinkSpec]]:
        """`prop` and `link` declarations, which share one namespace; a property whose
        type is broken is remembered in `scope.broken_props` so that setting it stays quiet."""
        props: dict[str, model.PropSpec] = {}
        links: dict[str, model.LinkSpec] = {}
        names: dict[str, Span] = {}
        for stmt in d.body:
            if not isinstance(stmt, (ast.PropDecl, ast.LinkDecl)):
                continue
            n = stmt.name
            if n.text in names:
                self.diags.error("E0401", f"property `{n.text}` is defined twice",
                                 n.span, labels=[Label(names[n.text], "first defined here")])
                continue
            names[n.text] = n.span
            if isinstance(stmt, ast.LinkDecl):
                if stmt.backend.text not in model.BACKEND_KINDS:
                    self.unknown("E0201", "backend kind", stmt.backend, model.BACKEND_KINDS)
                links[n.text] = model.LinkSpec(n.text, stmt.backend.text, stmt.optional,
                                               stmt.writable, n.span)
                continue
            t = self.values.value_type(stmt.type)
            if t is None:
                self.scope.broken_props.setdefault(d.name.text, set()).add(n.text)
                continue
            default = (None if stmt.default is None else
                       self.values.typed_value(stmt.default, t, f"the default of `{n.text}`"))
            unique = None
            if stmt.unique is not None:
                unique = stmt.unique.text or f"{d.name.text}.{n.text}"
                if t.kind != "int" or t.lo is None:
                    self.diags.error("E0303", "`unique` needs an integer type with a range",
                                     stmt.unique.span, help="e.g. `prop chassis: u8 unique`")
                    unique = None
            if unique is not None and stmt.unique is not None:
                self.unique_scope(unique, stmt.per_bus, stmt.unique.span)
            if stmt.numa_node is not None and (t.kind != "int" or default is None):
                self.diags.error("E1048", "`numa-node` needs an integer prop whose default is "
                                 "QEMU's \"no node\"", stmt.numa_node,
                                 help="e.g. `prop numa_node: u16 = 128 numa-node` (pxb-pcie)")
            since, removed, changes = self.prop_releases(stmt, t, type_since)
            props[n.text] = model.PropSpec(n.text, t, default, unique, n.span,
                                           derived=stmt.derived,
                                           numa_node=stmt.numa_node is not None,
                                           unique_per_bus=stmt.per_bus and unique is not None,
                                           since=since, removed=removed, changes=changes)
        return props, links

    def prop_releases(self, stmt: ast.PropDecl, t: model.ValueType, type_since: str
                      ) -> tuple[str, str, tuple[tuple[str, Scalar], ...]]:
        """A prop's `since`, `removed` and `changed` defaults, each a QEMU release (E1730)
        no older than what holds it: the prop no older than its type, its removal newer than
        its `since`, each change newer than the prop and the change before it (E1731)."""
        since = release(self.diags, stmt.since.release, stmt.since.span, "since") if (
            stmt.since) else ""
        removed = release(self.diags, stmt.removed.release, stmt.removed.span,
                          "removed") if stmt.removed else ""
        if removed and not older(since or type_since or "0.0", removed) and stmt.removed:
            self.diags.error("E1731", f"prop `{stmt.name.text}` cannot be removed before it "
                             f"appears (since {since or type_since})", stmt.removed.span,
                             help="`removed` names the first release without the prop")
        if older(since, type_since):
            self.diags.error("E1731", f"prop `{stmt.name.text}` cannot be older than its "
                             f"device type (since {type_since})", stmt.since.span if stmt.since
                             else stmt.span, help=f'write `since "{type_since}"` or later, '
                             "or leave it out")
        changes: list[tuple[str, Scalar]] = []
        floor = since or type_since
        for change in stmt.changes:
            when = release(self.diags, change.release, change.span, "changed")
            value = self.values.typed_value(change.value, t,
                                            f"the default of `{stmt.name.text}` in {when}")
            if not when or value is None:
                continue
            if not older(floor, when) and floor:
                self.diags.error("E1731", f"`changed \"{when}\"` must be newer than "
                                 f"{floor}, where the default of `{stmt.name.text}` is "
                                 "already set", change.span,
                                 help="list each change once, oldest first, after the "
                                 "prop's `since`")
                continue
            changes.append((when, value))
            floor = when
        return since, removed, tuple(changes)

    def unique_scope(self, group: str, per_bus: bool, span: Span) -> None:
        """A `unique` group is compared machine-wide or per bus, the same in every
        declaration of it."""
        first = self.unique_scopes.setdefault(group, (per_bus, span))
        if first[0] != per_bus:
            scope = {True: "per bus", False: "machine-wide"}
            self.diags.error("E0304", f"`unique` group `{group}` is {scope[per_bus]} here but "
                             f"{scope[first[0]]} where first declared", span,
                             labels=[Label(first[1], "first declared here")],
                             help="give the props of one group one scope, or the per-bus "
                             "ones a group of their own")

    def pci_function_props(self, plugs: list[model.Plug], props: dict[str, model.PropSpec],
                           span: Span) -> None:
        """QEMU's `multifunction` (bool, default off), which every PCI device has: function 0
        of a slot says with it that other functions follow. A type that plugs into a PCI
        hierarchy has it unless it declares it itself."""
        if MULTIFUNCTION in props:
            return
        kinds = (self.scope.buses.get(p.bus) for p in plugs)
        if any(k is not None and k.address.rules.pci_hierarchy for k in kinds):
            props[MULTIFUNCTION] = model.PropSpec(MULTIFUNCTION, model.ValueType("bool"),
                                                  False, None, span)

    def bus_template(self, owner: str, b: ast.BusBlock) -> model.BusTemplate | None:
        kind = self.scope.buses.get(b.kind.text)
        if kind is None:
            self.unknown("E0201", "bus kind", b.kind, self.scope.buses)
            return None
        if b.name is None:
            self.diags.error("E0901", f"bus of `{owner}` has no name", b.kind.span,
                             help='name it as QEMU does, e.g. `bus pcie "{id}"` or '
                             '`bus ide "{id}.{n}" count 6`')
            return None
        name = self.bus_kinds.bus_name(b.name, b.name_span or b.span)
        if name is None:
            return None
        count = b.count or 1
        if count > 1 and "{n}" not in b.name:
            self.diags.error("E0901", f"`count {count}` needs `{{n}}` in the bus name",
                             b.name_span or b.span)
        space = self.bus_kinds.narrowed(kind.address, b.items, b.kind.text)
        children = tuple(self.instances.instance(u, b.kind.text, space, NO_OPTIONS, set())
                         for i in b.items if isinstance(i, ast.Instance)
                         for u in self.instances.unrolled(i))
        hotplug = self.plain_hotplug(b.items, "a device type's `bus` block")
        return model.BusTemplate(kind=b.kind.text, name=name, count=count, address=space,
                                 children=tuple(c for c in children if c is not None),
                                 hotplug=hotplug.value if hotplug is not None else None,
                                 span=b.span)
