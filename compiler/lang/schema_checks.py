"""Whole-model rules over a resolved `Library`, as a table of named checks
(`compiler.base.checks`) with stable codes and the checks each needs. Checks only read the
model and report; they never change it. `lint` runs them all once resolving found nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from compiler.base import checks
from compiler.base.diagnostics import Collector, Label, quote_list
from compiler.lang import expr, model
from compiler.lang.resolve import ROOT_BUS_KIND, provided_bus_kinds

TABLE: checks.Registry[model.Library] = checks.Registry("schema checks")
check = TABLE.check


def run_all(library: model.Library, diags: Collector) -> None:
    TABLE.run(library, diags)


@attrs.frozen
class Placed:
    """An instance where it sits: its bus, and the conditions of everything around it."""

    instance: model.Instance
    bus_kind: str
    bus: model.BusBinding | None
    condition: expr.Expr | None
    machine: model.MachineSchema | None
    owner: str | None = None  # the device type, for the children of its buses

    def bus_name(self) -> str:
        """The bus in a message: its name in a machine, its kind and owner in a type."""
        assert self.bus is not None
        if self.owner is not None:
            return f"the `{self.bus_kind}` bus of `{self.owner}`"
        return f"bus `{self.bus.name}`"


def placed(library: model.Library) -> Iterator[Placed]:
    """Every instance in machines and in device types' child lists."""
    def walk(insts: tuple[model.Instance, ...], kind: str, bus: model.BusBinding | None,
             cond: expr.Expr | None, m: model.MachineSchema | None,
             owner: str | None = None) -> Iterator[Placed]:
        for inst in insts:
            c = expr.conjoin(cond, inst.condition)
            yield Placed(inst, kind, bus, c, m, owner)
            for b in inst.buses:
                yield from walk(b.devices, b.kind, b, c, m, owner)

    for m in library.machines.values():
        yield from walk(m.devices, ROOT_BUS_KIND, None, None, m)
    for t in library.devices.values():
        for tb in t.buses:
            binding = model.BusBinding(tb.kind, tb.name, tb.address, (), tb.children, tb.span)
            yield from walk(tb.children, tb.kind, binding, None, None, t.name)


def _domains(m: model.MachineSchema | None) -> dict[str, tuple[expr.Scalar, ...]]:
    if m is None:
        return {}
    return {n: d for n, o in m.options.items() if (d := o.type.domain()) is not None}


@check("plugs-into-bus", "E0504", "a device sits on a bus kind it cannot plug into")
def plugs_into_bus(library: model.Library, diags: Collector) -> None:
    for p in placed(library):
        t = library.devices.get(p.instance.type)
        if t is not None and t.plugs_into(p.bus_kind) is None:
            diags.error("E0504", f"`{t.name}` cannot go on a `{p.bus_kind}` bus",
                        p.instance.span,
                        notes=[f"`{t.name}` plugs into {quote_list(pl.bus for pl in t.plugs)}"],
                        labels=[Label(t.span, f"`{t.name}` is declared here")])


@check("address-in-range", "E0501", "an address is outside what its bus offers",
       needs=["plugs-into-bus"])
def address_in_range(library: model.Library, diags: Collector) -> None:
    for p in placed(library):
        if p.instance.address is None or p.bus is None:
            continue
        t = library.devices.get(p.instance.type)
        plug = t.plugs_into(p.bus_kind) if t else None
        why = p.bus.address.out_of_range(p.instance.address, plug.tag if plug else None)
        if why:
            diags.error("E0501", f"address out of range on {p.bus_name()}: {why}",
                        p.instance.span)


@check("address-collision", "E0502", "two devices that can exist together share an address",
       needs=["plugs-into-bus"])
def address_collision(library: model.Library, diags: Collector) -> None:
    by_bus: dict[tuple[int, str | None, int | str, tuple[int, ...]], list[Placed]] = {}
    for p in placed(library):
        if p.instance.address is None or p.bus is None:
            continue
        # in a device type, each bus it provides is its own (its name is a template)
        bus_key = p.bus.name if p.owner is None else id(p.bus)
        key = (id(p.machine), p.owner, bus_key, p.instance.address)
        for other in by_bus.get(key, []):
            both = expr.conjoin(other.condition, p.condition)
            if both is None or expr.can_hold(both, _domains(p.machine)):
                diags.error("E0502", f"`{p.instance.id}` and `{other.instance.id}` both sit at "
                            f"this address of {p.bus_name()}", p.instance.span,
                            labels=[Label(other.instance.span, f"`{other.instance.id}` is here")],
                            help="give one of them another address, or conditions that "
                            "exclude each other")
                break
        by_bus.setdefault(key, []).append(p)


@check("unique-ids", "E0401", "device ids are unique within a machine")
def unique_ids(library: model.Library, diags: Collector) -> None:
    for m in library.machines.values():
        seen: dict[str, model.Instance] = {}
        for p in placed(library):
            if p.machine is not m:
                continue
            first = seen.get(p.instance.id)
            if first is not None and first is not p.instance:
                if expr.can_hold(expr.conjoin(first.condition, p.condition) or expr.TRUE,
                                 _domains(m)) and first.span != p.instance.span:
                    diags.error("E0401", f"device id `{p.instance.id}` is used twice in "
                                f"`{m.name}`", p.instance.span,
                                labels=[Label(first.span, "first used here")])
                continue
            seen[p.instance.id] = p.instance


@check("rule-can-fire", "E0701", "a `when` condition or `check` can never fire")
def rule_can_fire(library: model.Library, diags: Collector) -> None:
    for p in placed(library):
        if p.condition is not None and p.instance.condition is not None and not expr.can_hold(
                p.condition, _domains(p.machine)):
            diags.error("E0701", f"`{p.instance.id}` can never be created: its condition "
                        "never holds", p.instance.condition.span,
                        help="with these option types no value makes it true; "
                        "check the values it compares against and the enclosing conditions")
    for m in library.machines.values():
        for c in m.checks:
            if not expr.can_hold(expr.Not(c.condition, c.condition.span), _domains(m)):
                diags.error("E0701", f"check `{c.name}` can never fail, so it never fires",
                            c.span, help="its condition holds for every option value")


def attachable_kinds(library: model.Library, m: model.MachineSchema) -> set[str]:
    """Bus kinds a device can reach in `m`: its own buses, plus those that on-demand
    providers and the placement's port device add once they can attach themselves."""
    kinds = {ROOT_BUS_KIND}
    for p in placed(library):
        if p.machine is m:
            kinds.update(b.kind for b in p.instance.buses)
    extra = [pr.device for pr in m.providers.values()]
    extra += [pl.port_device for pl in m.placements() if pl.port_device]
    changed = True
    while changed:
        changed = False
        for name in extra:
            t = library.devices.get(name)
            if t and any(pl.bus in kinds for pl in t.plugs):
                new = provided_bus_kinds(library.devices, name) - kinds
                if new:
                    kinds |= new
                    changed = True
    return kinds


@check("implementation-attaches", "E0801", "a default implementation has no bus to go on")
def implementation_attaches(library: model.Library, diags: Collector) -> None:
    for m in library.machines.values():
        kinds = attachable_kinds(library, m)
        for impl in m.implementations.values():
            for value, device in impl.cases.items():
                t = library.devices.get(device)
                if t is None or any(pl.bus in kinds for pl in t.plugs):
                    continue
                diags.error("E0801", f"`{device}` ({impl.kind} {impl.key} `{value}`) cannot "
                            f"attach to any bus of `{m.name}`", impl.case_spans[value],
                            notes=[f"it plugs into {quote_list(pl.bus for pl in t.plugs)}",
                                   f"`{m.name}` has buses of kind {quote_list(kinds)}"],
                            help="add a `provide KIND by DEVICE` rule, or pick another device")


@check("machine-only-not-asked", "E0170",
       "a spec's kind, a provider or a port is never a type only machines create")
def machine_only_not_asked(library: model.Library, diags: Collector) -> None:
    for m in library.machines.values():
        asked = [(device, impl.case_spans[value], f"{impl.kind} {impl.key} `{value}`")
                 for impl in m.implementations.values() for value, device in impl.cases.items()]
        asked += [(pr.device, pr.span, f"`provide {pr.bus}`") for pr in m.providers.values()]
        for pl in m.placements():
            asked += [(c.device, pl.span or m.span, "an overflow container")
                      for c in pl.overflow]
            if pl.port_device:
                asked.append((pl.port_device, pl.span or m.span, "the port device"))
        for device, span, what in asked:
            t = library.devices.get(device)
            if t is not None and t.machine_only:
                diags.error("E0170", f"`{device}` ({what}) is created only by machines",
                            span, labels=[Label(t.span, f"`{device}` is `machine-only` here")],
                            notes=["QEMU refuses `-device` and `device_add` of it"],
                            help="name a type a spec can add, or drop `machine-only` if QEMU's "
                            "`-device help` lists it")


@check("placement-case-applies", "E0176",
       "each `placement when` applies under some option values the earlier ones leave")
def placement_case_applies(library: model.Library, diags: Collector) -> None:
    seen: set[tuple[int, ...]] = set()  # the same cases inherited by versions: once
    for m in library.machines.values():
        ids = tuple(id(c) for c in m.placement_cases)
        if ids in seen:
            continue
        seen.add(ids)
        earlier: list[model.PlacementCase] = []
        for case in m.placement_cases:
            alone = expr.can_hold(case.condition, _domains(m))
            left = expr.conjoin(case.condition, expr.And(
                tuple(expr.Not(e.condition, e.span) for e in earlier), case.span)
                if earlier else None)
            if not alone or (left is not None and not expr.can_hold(left, _domains(m))):
                why = ("its condition never holds" if not alone else
                       "wherever its condition holds, an earlier one holds too")
                diags.error("E0176", f"this placement of `{m.name}` never applies: {why}",
                            case.span,
                            labels=[Label(e.span, "this one comes first") for e in earlier
                                    if alone],
                            help="the first `placement when` whose condition holds is "
                            "taken: reorder them, or remove this one")
            earlier.append(case)


def reachable_kinds(library: model.Library, m: model.MachineSchema) -> set[str]:
    """Bus kinds a device can sit on in `m`: `attachable_kinds`, then those its `implement`
    cases bring where they attach (a virtio function's virtio bus, a SCSI controller's)."""
    kinds = attachable_kinds(library, m)
    cases = {d for impl in m.implementations.values() for d in impl.cases.values()}
    changed = True
    while changed:
        changed = False
        for name in sorted(cases):
            t = library.devices.get(name)
            if t is not None and any(pl.bus in kinds for pl in t.plugs):
                new = provided_bus_kinds(library.devices, t.name) - kinds
                if new:
                    kinds |= new
                    changed = True
    return kinds


@check("fdt-name-can-apply", "E0192", "an `fdt name` names a type the machine never holds")
def fdt_name_can_apply(library: model.Library, diags: Collector) -> None:
    seen: set[int] = set()  # a statement inherited by versions: checked once
    for m in library.machines.values():
        todo = [r for r in m.fdt_renamed if id(r) not in seen]
        if not todo:
            continue
        seen.update(id(r) for r in todo)
        kinds = reachable_kinds(library, m)
        made = {p.instance.type for p in placed(library) if p.machine is m}
        for r in todo:
            t = library.devices.get(r.type)
            if t is None or t.name in made or any(pl.bus in kinds for pl in t.plugs):
                continue
            diags.error("E0192", f"`{m.name}` never holds a `{t.name}`, whose node this names",
                        r.span, notes=[f"`{t.name}` plugs into "
                                       f"{quote_list(pl.bus for pl in t.plugs)}",
                                       f"`{m.name}` has buses of kind {quote_list(kinds)}"],
                        help="name the nodes of types this machine can hold")


@check("requirement-provided", "E0206", "every `requires` names something a device provides")
def requirement_provided(library: model.Library, diags: Collector) -> None:
    provided = {c for t in library.devices.values() for c in t.provides}
    for t in library.devices.values():
        for need in t.requires:
            if need not in provided:
                diags.error("E0206", f"`{t.name}` requires `{need}`, which no device provides",
                            t.span, notes=[f"devices provide {quote_list(provided)}"])


@check("requires-acyclic", "E0603", "`requires` between device types has no cycle")
def requires_acyclic(library: model.Library, diags: Collector) -> None:
    import networkx as nx

    from compiler.lang.resolve import _report_cycles

    g: nx.DiGraph[str] = nx.DiGraph()
    spans = {}
    for t in library.devices.values():
        g.add_node(t.name)
        for need in t.requires:
            for other in library.devices.values():
                if need in other.provides:
                    g.add_edge(t.name, other.name)
                    spans[(t.name, other.name)] = t.span
    _report_cycles(g, spans, diags, "E0603", "requires")


TABLE.seal()
