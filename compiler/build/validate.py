"""Checks on the precise tree before anything is emitted: a table of named rules
(`compiler.base.checks`), one stable code each (E14xx), each run only when the rules it needs
found nothing, over a networkx graph of devices, buses and backends. Checks only read; every
error names its rule and points at the statement or spec line that brought the device.

Runs after `address` on compiled specs, and on precise blobs given as input, where a hand
edit can break any of these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs

from compiler.base import backends, checks, notations
from compiler.base.diagnostics import Collector, Label, quote_list
from compiler.base.source import Span
from compiler.build import tree
from compiler.lang import model

if TYPE_CHECKING:
    import networkx as nx


@attrs.frozen
class Placed:
    device: tree.Device
    bus: tree.Bus
    parent: tree.Device | None


@attrs.define
class Context:
    machine: tree.Machine
    library: model.Library
    fallback: Span
    placed: list[Placed] = attrs.Factory(list)
    backend_spans: dict[str, Span] = attrs.Factory(dict)
    option_spans: dict[str, Span] = attrs.Factory(dict)
    prop_spans: dict[tuple[str, str], Span] = attrs.Factory(dict)  # (device id, prop)
    # machine-wide settings by blob path (`("numa", 0, "cpus")`, `("memory", "size")`)
    setting_spans: dict[tuple[object, ...], Span] = attrs.Factory(dict)
    _graph: nx.DiGraph[str] | None = None
    _successors: dict[str, list[str]] | None = None
    _spaces: dict[int, tuple[tree.Bus, notations.AddressSpace]] | None = None

    def span(self, d: tree.Device) -> Span:
        """Where to point for a device: the spec entry that asked for it, else the
        statement that brought it."""
        return d.why.cause or d.why.span or self.fallback

    def type(self, d: tree.Device) -> model.DeviceType | None:
        return self.library.devices.get(d.type)

    def setting(self, *path: object) -> Span:
        """Where a machine-wide setting is written (the nearest enclosing one that is)."""
        while path and path not in self.setting_spans:
            path = path[:-1]
        return self.setting_spans.get(path, self.fallback)

    @property
    def schema(self) -> model.MachineSchema | None:
        """The machine version the tree is of."""
        return next((s for s in self.library.machines.values()
                     if s.qemu_machine == self.machine.info.qemu), None)

    @property
    def graph(self) -> nx.DiGraph[str]:
        """device → the device its bus belongs to, → its backends, → what it requires."""
        if self._graph is None:
            self._graph = dependency_graph(self)
        return self._graph

    @property
    def successors(self) -> dict[str, list[str]]:
        """The same graph as plain lists (node → its successors): for checks that need no
        networkx unless they find something (importing it costs a fifth of a second)."""
        if self._successors is None:
            succ: dict[str, list[str]] = {}
            for node, target, _why in _dependencies(self):
                succ.setdefault(node, [])
                if target is not None:
                    succ[node].append(target)
                    succ.setdefault(target, [])
            self._successors = succ
        return self._successors


TABLE: checks.Registry[Context] = checks.Registry("precise-tree checks")
check = TABLE.check


def _placed(bus: tree.Bus, parent: tree.Device | None) -> Iterator[Placed]:
    for d in bus.devices:
        yield Placed(d, bus, parent)
        for child in d.buses:
            yield from _placed(child, d)


def validate(machine: tree.Machine, library: model.Library, fallback: Span,
             diags: Collector, backend_spans: dict[str, Span] | None = None,
             option_spans: dict[str, Span] | None = None,
             prop_spans: dict[tuple[str, str], Span] | None = None,
             setting_spans: dict[tuple[object, ...], Span] | None = None) -> None:
    """`backend_spans`, `option_spans`, `prop_spans`, `setting_spans`: where each backend,
    machine option, device prop and machine-wide setting is written, for errors about it."""
    ctx = Context(machine, library, fallback, list(_placed(machine.root, None)),
                  dict(backend_spans or {}), dict(option_spans or {}), dict(prop_spans or {}),
                  dict(setting_spans or {}))
    TABLE.run(ctx, diags)


def _rule(name: str) -> str:
    return f"rule `{name}`"


def dependency_graph(ctx: Context) -> nx.DiGraph[str]:
    import networkx as nx

    g: nx.DiGraph[str] = nx.DiGraph()
    for node, target, why in _dependencies(ctx):
        if target is None:
            g.add_node(node)
        else:
            g.add_edge(node, target, why=why)
    return g


def _dependencies(ctx: Context) -> Iterator[tuple[str, str | None, str]]:
    """The graph's nodes `(node, None, "")` and edges `(node, target, why)`, in order."""
    providers: dict[str, list[str]] = {}
    for p in ctx.placed:
        t = ctx.type(p.device)
        for cap in t.provides if t else ():
            providers.setdefault(cap, []).append(p.device.id)
    for p in ctx.placed:
        node = f"device:{p.device.id}"
        yield node, None, ""
        if p.parent is not None:
            yield node, f"device:{p.parent.id}", "sits on a bus of"
        for _link, backend in p.device.backend:
            yield node, f"backend:{backend}", "uses"
        t = ctx.type(p.device)
        for cap in t.requires if t else ():
            for provider in providers.get(cap, []):
                yield node, f"device:{provider}", f"requires `{cap}` from"
    for ident, _body in ctx.machine.backends:
        yield f"backend:{ident}", None, ""


def _cyclic(successors: dict[str, list[str]]) -> bool:
    """Does the graph have a cycle? An iterative depth-first search, O(nodes + edges)."""
    done: set[str] = set()
    for start in successors:
        if start in done:
            continue
        on_path = {start}
        stack = [(start, iter(successors[start]))]
        while stack:
            node, targets = stack[-1]
            target = next(targets, None)
            if target is None:
                stack.pop()
                on_path.discard(node)
                done.add(node)
            elif target in on_path:
                return True
            elif target not in done:
                on_path.add(target)
                stack.append((target, iter(successors[target])))
    return False


@check("known-type", "E1401", "every device type exists in the stdlib")
def known_type(ctx: Context, diags: Collector) -> None:
    for p in ctx.placed:
        if ctx.type(p.device) is None:
            diags.error("E1401", f"unknown device type `{p.device.type}`", ctx.span(p.device),
                        notes=[f"expected one of {quote_list(ctx.library.devices)}"])


@check("props-declared", "E2040", "a device sets only props its type declares, each of its "
       "type", needs=["known-type"])
def props_declared(ctx: Context, diags: Collector) -> None:
    """A blob is untrusted: a prop the stdlib does not declare would reach `-device` unchecked
    (QEMU's `x-` props, a block size the guest then sees); so would a value of another type."""
    for p in ctx.placed:
        d, t = p.device, ctx.type(p.device)
        if t is None:
            continue
        for name, value in d.props:
            span = ctx.prop_spans.get((d.id, name)) or ctx.span(d)
            spec = t.props.get(name)
            if spec is None:
                diags.error("E2040", f"`{d.id}` ({d.type}) sets prop `{name}`, which the "
                            "stdlib does not declare for its type", span,
                            notes=[f"`{d.type}` declares {quote_list(t.props, 40)}"
                                   if t.props else f"`{d.type}` declares no props",
                                   "a blob is untrusted: only declared props reach QEMU",
                                   _rule("props-declared")])
            elif not spec.type.check(value):
                diags.error("E2040", f"`{d.id}` ({d.type}) prop `{name}` must be "
                            f"{spec.type.describe()}, not {value!r}", span,
                            notes=[_rule("props-declared")])


@check("machine-only", "E1430", "a device type only machines create is not added by a spec",
       needs=["known-type"])
def machine_only(ctx: Context, diags: Collector) -> None:
    for p in ctx.placed:
        t = ctx.type(p.device)
        if t is not None and t.machine_only and p.device.origin != "machine":
            made = sorted({m.family for m in ctx.library.machines.values()
                           if _creates(m.devices, t.name)})
            diags.error("E1430", f"`{t.name}` is created only by a machine's board code",
                        ctx.span(p.device),
                        notes=[f"QEMU refuses `-device {t.name}` (not user-creatable)",
                               f"it comes with {quote_list(made)}" if made
                               else "no shipped machine creates it", _rule("machine-only")],
                        help="leave it out: the machine that has it creates it by itself")


def _creates(instances: tuple[model.Instance, ...], type_name: str) -> bool:
    return any(i.type == type_name or any(_creates(b.devices, type_name) for b in i.buses)
               for i in instances)


@check("release", "E1093", "every device type and prop exists in the QEMU release the machine "
       "is compiled for", needs=["known-type"])
def release(ctx: Context, diags: Collector) -> None:
    """A type or prop newer than the release (`since`), or one it no longer has (`removed`):
    QEMU of that release would refuse it."""
    target = ctx.machine.info.release or model.DEFAULT_RELEASE
    for p in ctx.placed:
        dtype = ctx.type(p.device)
        if dtype is None:
            continue
        if not dtype.exists_in(target):
            diags.error("E1093", f"device type `{dtype.name}` is QEMU {dtype.since}'s; the "
                        f"machine is compiled for QEMU {target}", ctx.span(p.device),
                        labels=[Label(dtype.span, f"`{dtype.name}` since {dtype.since}")],
                        notes=[_rule("release")],
                        help=f'target a newer QEMU: `qemu = "{dtype.since}"`')
            continue
        for name, _value in p.device.props:
            spec = dtype.props.get(name)
            if spec is None or spec.exists_in(target):
                continue
            when = (f"is gone from QEMU {spec.removed} on"
                    if spec.removed and _removed_by(spec.removed, target)
                    else f"is QEMU {spec.since}'s")
            diags.error("E1093", f"prop `{name}` of `{dtype.name}` {when}; the machine is "
                        f"compiled for QEMU {target}", ctx.span(p.device),
                        labels=[Label(spec.span, f"`{name}` declared here")],
                        notes=[_rule("release")],
                        help="leave the prop out, or target a QEMU release that has it")


def _removed_by(removed: str, target: str) -> bool:
    have, want = model.release_key(removed), model.release_key(target)
    return have is not None and want is not None and have <= want


@check("unique-ids", "E1402", "device ids are unique")
def unique_ids(ctx: Context, diags: Collector) -> None:
    seen: dict[str, tree.Device] = {}
    for p in ctx.placed:
        first = seen.setdefault(p.device.id, p.device)
        if first is not p.device:
            diags.error("E1402", f"device id `{p.device.id}` is used twice", ctx.span(p.device),
                        labels=[Label(ctx.span(first), "first used here")],
                        notes=[_rule("unique-ids")])


@check("bus-kind", "E1403", "each device sits on a bus kind it plugs into",
       needs=["known-type"])
def bus_kind(ctx: Context, diags: Collector) -> None:
    for p in ctx.placed:
        t = ctx.type(p.device)
        if t is not None and t.plugs_into(p.bus.kind) is None:
            diags.error("E1403", f"`{p.device.id}` ({t.name}) cannot go on `{p.bus.name}`, "
                        f"a `{p.bus.kind}` bus", ctx.span(p.device),
                        notes=[f"`{t.name}` plugs into {quote_list(pl.bus for pl in t.plugs)}",
                               _rule("bus-kind")])


@check("address", "E1404", "addresses are well formed, in range and distinct",
       needs=["known-type"])
def address(ctx: Context, diags: Collector) -> None:
    spaces = _bus_spaces(ctx)
    for bus_id, (bus, space) in spaces.items():
        seen: dict[tuple[int, ...], tree.Device] = {}
        for d in bus.devices:
            if d.addr is None:
                if space.rules.addressed and d.origin != "machine":
                    diags.error("E1404", f"`{d.id}` on `{bus.name}` has no address",
                                ctx.span(d), notes=[_rule("address")])
                continue
            if not space.rules.addressed:
                diags.error("E1404", f"devices on `{bus.name}` have no address, but `{d.id}` "
                            f"has `{d.addr}`", ctx.span(d), notes=[_rule("address")])
                continue
            try:
                addr = (d.addr.value if d.addr.notation == space.notation and not d.addr.written
                        else notations.parse(space.notation, str(d.addr)))
            except notations.AddressSyntaxError as exc:
                diags.error("E1404", f"`{d.addr}` is not a {space.notation} address",
                            ctx.span(d), help=str(exc), notes=[_rule("address")])
                continue
            t = ctx.type(d)
            plug = t.plugs_into(bus.kind) if t else None
            why = space.out_of_range(addr, plug.tag if plug else None)
            if why:
                diags.error("E1404", f"`{d.id}` is out of range on `{bus.name}`: {why}",
                            ctx.span(d), notes=[_rule("address")])
            other = seen.setdefault(addr, d)
            if other is not d:
                diags.error("E1404", f"`{d.id}` and `{other.id}` are both at {d.addr} on "
                            f"`{bus.name}`", ctx.span(d),
                            labels=[Label(ctx.span(other), f"`{other.id}` ({other.type}): "
                                          f"{other.why.reason or 'here'}")],
                            notes=[_rule("address")])
        del bus_id


def _bus_spaces(ctx: Context) -> dict[int, tuple[tree.Bus, notations.AddressSpace]]:
    """Every bus, by `id`, with its address space (computed once per validation)."""
    if ctx._spaces is not None:
        return ctx._spaces
    result: dict[int, tuple[tree.Bus, notations.AddressSpace]] = {}
    root = ctx.library.buses.get(ctx.machine.root.kind)
    result[id(ctx.machine.root)] = (ctx.machine.root, root.address if root else
                                    notations.AddressSpace("none"))
    for p in ctx.placed:
        t = ctx.type(p.device)
        for b in p.device.buses:
            template = next((tb for tb in (t.buses if t else ()) if tb.kind == b.kind), None)
            kind = ctx.library.buses.get(b.kind)
            space = (template.address if template else kind.address if kind
                     else notations.AddressSpace(b.notation))
            result[id(b)] = (b, space)
    ctx._spaces = result
    return result


@check("address-interrupts", "E1418", "no two devices of a bus claim the interrupt QEMU derives "
       "from their addresses", needs=["address"])
def address_interrupts(ctx: Context, diags: Collector) -> None:
    """sPAPR VIO: the reg gives the interrupt (`notations.VioNotation.interrupt`); QEMU
    refuses the second device that claims one (`IRQ 4352 is not free`)."""
    for bus, space in _bus_spaces(ctx).values():
        claimed: dict[int, tree.Device] = {}
        for d in bus.devices:
            if d.addr is None or d.addr.notation != space.notation or d.addr.written:
                continue
            irq = space.rules.interrupt(d.addr.value)
            if irq is None:
                continue
            other = claimed.setdefault(irq, d)
            if other is d or other.addr == d.addr:  # one address twice is E1404's
                continue
            diags.error("E1418", f"`{d.id}` at {d.addr} gets interrupt {irq:#x}, which "
                        f"`{other.id}` at {other.addr} has already", ctx.span(d),
                        labels=[Label(ctx.span(other), f"`{other.id}` ({other.type}) "
                                      f"claims {irq:#x} here")],
                        notes=[f"QEMU: `IRQ {irq} is not free`",
                               "QEMU derives a VIO device's interrupt from its reg "
                               "(`spapr_vio_reg_to_irq`): 0x1100 | its low byte from "
                               "0x71000000 up",
                               _rule("address-interrupts")],
                        help=f"move `{d.id}` to a reg whose interrupt is free")


@check("multifunction", "E1405", "other functions of a PCI slot need function 0 to say so",
       needs=["address"])
def multifunction(ctx: Context, diags: Collector) -> None:
    for bus, _space in _bus_spaces(ctx).values():
        rules = notations.get(bus.notation)
        if not rules.pci_hierarchy:
            continue
        slots: dict[int, dict[int, tree.Device]] = {}
        for d in bus.devices:
            if d.addr is None:
                continue
            try:
                slot, fn = rules.parse(str(d.addr))
            except notations.AddressSyntaxError:
                continue
            slots.setdefault(slot, {})[fn] = d
        for functions in slots.values():
            fn0 = functions.get(0)
            others = [d for fn, d in sorted(functions.items()) if fn != 0]
            if fn0 is None or not others or dict(fn0.props).get("multifunction"):
                continue
            if fn0.origin == "machine" and _machine_multifunction(ctx, fn0):
                continue
            diags.error("E1405", f"`{others[0].id}` is at {others[0].addr} but `{fn0.id}` at "
                        f"function 0 is not multifunction", ctx.span(others[0]),
                        labels=[Label(ctx.span(fn0), f"`{fn0.id}` is here")],
                        notes=["QEMU: `PCI: … indicates single function`", _rule("multifunction")],
                        help=f"set `multifunction = true` on `{fn0.id}`")


def _machine_multifunction(ctx: Context, d: tree.Device) -> bool:
    t = ctx.type(d)
    return bool(t and t.multifunction)


# A device's backend links, one rule each (they were one code, E1406, before).
@attrs.frozen
class Link:
    placed: Placed
    type: model.DeviceType
    name: str
    target: str


def _links(ctx: Context) -> Iterator[Link]:
    """Every backend link of a device of a known type, in tree order."""
    for p in ctx.placed:
        t = ctx.type(p.device)
        if t is not None:
            for name, target in dict(p.device.backend).items():
                yield Link(p, t, name, target)


def _sound_links(ctx: Context) -> Iterator[tuple[Link, model.LinkSpec]]:
    """The links that name a link of their type and a backend of the kind it needs: the
    ones that use a backend."""
    backends = dict(ctx.machine.backends)
    for link in _links(ctx):
        spec = link.type.links.get(link.name)
        if (spec is not None and link.target in backends
                and dict(backends[link.target]).get("kind") == spec.backend):
            yield link, spec


@check("link-name", "E1411", "a device's backend links are links its type has",
       needs=["known-type"])
def link_name(ctx: Context, diags: Collector) -> None:
    for link in _links(ctx):
        if link.name not in link.type.links:
            diags.error("E1411", f"`{link.type.name}` has no backend link `{link.name}`",
                        ctx.span(link.placed.device),
                        notes=[f"its links are {quote_list(link.type.links)}",
                               _rule("link-name")])


@check("link-target", "E1412", "a backend link names a backend of the machine",
       needs=["known-type"])
def link_target(ctx: Context, diags: Collector) -> None:
    backends = dict(ctx.machine.backends)
    for link in _links(ctx):
        if link.name in link.type.links and link.target not in backends:
            diags.error("E1412", f"`{link.placed.device.id}` links `{link.name}` to "
                        f"`{link.target}`, which is not a backend", ctx.span(link.placed.device),
                        notes=[f"the backends are {quote_list(backends)}", _rule("link-target")])


@check("link-kind", "E1413", "a backend link names a backend of the kind it needs",
       needs=["known-type"])
def link_kind(ctx: Context, diags: Collector) -> None:
    backends = dict(ctx.machine.backends)
    for link in _links(ctx):
        spec = link.type.links.get(link.name)
        if spec is None or link.target not in backends:
            continue
        kind = dict(backends[link.target]).get("kind")
        if kind != spec.backend:
            diags.error("E1413", f"`{link.placed.device.id}`'s `{link.name}` needs a "
                        f"{spec.backend}, but `{link.target}` is a {kind}",
                        ctx.span(link.placed.device), notes=[_rule("link-kind")])


@check("link-writable", "E1414", "a link that writes names a backend that is not read-only",
       needs=["known-type"])
def link_writable(ctx: Context, diags: Collector) -> None:
    backends = dict(ctx.machine.backends)
    for link, spec in _sound_links(ctx):
        if spec.writable and dict(backends[link.target]).get("read-only"):
            diags.error("E1414", f"`{link.placed.device.id}` ({link.type.name}) needs a "
                        f"writable {spec.backend}, but `{link.target}` is read-only",
                        ctx.span(link.placed.device), notes=[_rule("link-writable"),
                        "QEMU: `Block node is read-only`"],
                        help="drop `readonly`, or use an interface whose device "
                        "takes read-only drives (virtio, scsi)")


@check("backend-once", "E1415", "no two links use the same backend", needs=["known-type"])
def backend_once(ctx: Context, diags: Collector) -> None:
    used: set[str] = set()
    for link, _spec in _sound_links(ctx):
        if link.target in used:
            diags.error("E1415", f"backend `{link.target}` is used twice",
                        ctx.span(link.placed.device), notes=[_rule("backend-once")],
                        help="give each device its own backend")
        used.add(link.target)


@check("link-required", "E1416", "a device sets every link its type requires",
       needs=["known-type"])
def link_required(ctx: Context, diags: Collector) -> None:
    for p in ctx.placed:
        t = ctx.type(p.device)
        if t is None or p.device.origin == "machine":
            continue
        given = dict(p.device.backend)
        for spec in t.links.values():
            if not spec.optional and spec.name not in given:
                diags.error("E1416", f"`{p.device.id}` ({t.name}) needs its `{spec.name}` "
                            f"link to a {spec.backend}", ctx.span(p.device),
                            notes=[_rule("link-required")])


# A link that is misnamed, dangling, of the wrong kind or missing leaves its backend unused:
# that is the same mistake, so it is not reported twice.
@check("backend-used", "E1417", "every backend is used by some device",
       needs=["known-type", "link-name", "link-target", "link-kind", "link-required"])
def backend_used(ctx: Context, diags: Collector) -> None:
    used = {link.target for link, _spec in _sound_links(ctx)}
    used |= {ident for _name, ident, _kind in _option_backends(ctx)}
    for ident in dict(ctx.machine.backends):
        if ident not in used:
            diags.error("E1417", f"backend `{ident}` is not used by any device",
                        ctx.backend_spans.get(ident, ctx.fallback), notes=[_rule("backend-used")])


def _option_backends(ctx: Context) -> list[tuple[str, str, str]]:
    """(option, backend id, kind) of each machine option that names a backend
    (`-machine pflash0=NODE`)."""
    schema = next((s for s in ctx.library.machines.values()
                   if s.qemu_machine == ctx.machine.info.qemu), None)
    found = []
    for name, value in ctx.machine.info.options:
        spec = schema.options.get(name) if schema else None
        if spec is not None and spec.type.kind == "backend" and value != "":
            found.append((name, str(value), spec.type.members[0]))
    return found


@check("option-backend", "E1419", "a machine option that names a backend names one of its kind")
def option_backend(ctx: Context, diags: Collector) -> None:
    backends = {ident: dict(body).get("kind") for ident, body in ctx.machine.backends}
    for name, ident, kind in _option_backends(ctx):
        if backends.get(ident) != kind:
            have = backends.get(ident)
            diags.error("E1419", f"option `{name}` names `{ident}`, which is "
                        + (f"a {have} backend, not a {kind}" if have else "no backend of the "
                           "machine"), ctx.option_spans.get(name, ctx.fallback),
                        notes=[f"`{name}` takes the id of a `{kind}` backend",
                               _rule("option-backend")])


@check("requirements", "E1407", "what a device requires, some device provides",
       needs=["known-type"])
def requirements(ctx: Context, diags: Collector) -> None:
    provided = {cap for p in ctx.placed if (t := ctx.type(p.device)) for cap in t.provides}
    for p in ctx.placed:
        t = ctx.type(p.device)
        for cap in t.requires if t else ():
            if cap not in provided:
                diags.error("E1407", f"`{p.device.id}` ({t.name if t else '?'}) requires "
                            f"`{cap}`, which no device of this machine provides",
                            ctx.span(p.device), notes=[_rule("requirements")])


@check("acyclic", "E1408", "no device depends on itself",
       needs=["known-type", "unique-ids"])
def acyclic(ctx: Context, diags: Collector) -> None:
    if not _cyclic(ctx.successors):
        return
    import networkx as nx

    g = ctx.graph
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    chain = " → ".join(f"`{a.split(':', 1)[1]}` {g.edges[a, b]['why']}" for a, b in cycle)
    first = cycle[0][0].split(":", 1)[1]
    device = next((p.device for p in ctx.placed if p.device.id == first), None)
    diags.error("E1408", f"dependency cycle: {chain} `{first}`",
                ctx.span(device) if device else ctx.fallback, notes=[_rule("acyclic")])


PCI_KINDS = ("pci", "pcie")


@check("bus-numbers", "E1409", "a PCI domain has at most 256 bus numbers")
def bus_numbers(ctx: Context, diags: Collector) -> None:
    """Every bridge and port takes one bus number of its PCI domain; firmware and guests
    cannot number more than 256 (bus 0 is the root). Points at the first device past it."""
    def secondary(bus: tree.Bus) -> Iterator[tree.Device]:
        for d in bus.devices:
            for child in d.buses:
                if child.kind in PCI_KINDS:
                    yield d
                    yield from secondary(child)

    for p in ctx.placed:
        if p.bus.kind in PCI_KINDS:
            continue
        for root in p.device.buses:
            if root.kind not in PCI_KINDS:
                continue
            owners = list(secondary(root))
            if len(owners) > 255:
                first = owners[255]
                diags.error("E1409", f"`{first.id}` ({first.type}) needs bus number 256 of PCI "
                            f"domain `{root.name}`, past the 256 a guest can use",
                            ctx.span(first),
                            notes=[f"the domain needs {len(owners) + 1} in all; every root "
                                   "port, switch port and bridge takes one",
                                   _rule("bus-numbers")],
                            help="put endpoints behind bridges rather than ports, or "
                            "fewer devices in this domain")


@check("backend-fields", "E1410", "every backend has what its kind needs to reach QEMU")
def backend_fields(ctx: Context, diags: Collector) -> None:
    for ident, body in ctx.machine.backends:
        fields = dict(body)
        kind = str(fields.get("kind"))
        span = ctx.backend_spans.get(ident, ctx.fallback)
        if kind not in backends.REGISTRY:
            diags.error("E1410", f"backend `{ident}` has an unknown kind `{kind}`", span,
                        notes=[f"kinds are {quote_list(backends.KINDS)}",
                               _rule("backend-fields")])
            continue
        rules = backends.get(kind)
        missing = rules.missing(fields)
        if missing:
            diags.error("E1410", f"backend `{ident}` ({kind}) has no {quote_list(missing)}",
                        span, notes=[_rule("backend-fields")])
        for _field, problem in rules.problems(fields):
            diags.error("E1410", f"backend `{ident}` ({kind}) has {problem}", span,
                        notes=["a blob is untrusted: only what the kind declares reaches QEMU",
                               _rule("backend-fields")])


# the guest NUMA rules (numa-*), in a module of their own; they register in this table
from compiler.build import validate_numa  # noqa: E402, F401

TABLE.seal()
