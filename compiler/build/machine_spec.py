"""What a loose spec asks of its machine as a whole, against the machine's schema: the
options, cpus and memory (filled in as QEMU 7.2's `-smp` does), the spare hot-plug ports,
the name; the environment the schema's conditions read; and the schema's own `check`
rules (E1301). Values of the wrong kind are E1003, a topology that does not multiply out
E1010. The devices are `plan`'s and `allocate`'s.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from compiler.base import cpu, numa
from compiler.base.diagnostics import Collector, quote_list
from compiler.base.settings import boot_problem
from compiler.base.source import Span
from compiler.base.units import parse_size, qemu_ram_size
from compiler.build import expand, plan, tree
from compiler.lang import expr, model
from compiler.spec.loose import LooseSpec

Pairs = tuple[tuple[str, tree.PropValue], ...]


@attrs.frozen
class MachineSpec:
    options: Mapping[str, expr.Scalar]  # every option of the schema, typed
    cpus: Pairs  # count, sockets, cores, threads; `maxcpus` and `model` if given
    memory: Pairs  # size
    env: expr.Env  # what the schema's conditions read: options, spec facts, item counts
    spares: int  # hot-plug ports to keep free
    spares_span: Span  # where the spec says so (else the whole spec)
    spares_required: bool  # the spec asks for them: too few is an error
    name: str
    boot: Pairs = ()  # QEMU's -boot, as the spec gives it
    rtc: Pairs = ()  # QEMU's -rtc, as the spec gives it
    uuid: str = ""  # QEMU's -uuid, lower-case as QEMU shows it; "" when not given
    numa: tuple[tree.NumaNode, ...] = ()  # `[[numa]]`: QEMU's -numa node


def placement_style(spec: LooseSpec, schema: model.MachineSchema, diags: Collector
                    ) -> model.MachineSchema:
    """`schema` placing devices by the style the spec selects (`placement = "NAME"`, one of
    the schema's `placement NAME { … }`; `"default"`: its own `placement`)."""
    value = spec.top.get("placement")
    if value is None or value.value == "default":
        return schema
    styles = dict(schema.placement_styles)
    style = styles.get(str(value.value))
    if style is None:
        names = ", ".join(f"`{n}`" for n in ["default", *sorted(styles)])
        diags.error("E2152", f"`{schema.name}` has no placement style `{value.value}`",
                    value.span, notes=[f"its placement styles are {names}"],
                    help="leave `placement` out for the schema's own")
        return schema
    return attrs.evolve(schema, placement=style, placement_cases=())


def machine_spec(spec: LooseSpec, schema: model.MachineSchema, diags: Collector) -> MachineSpec:
    given = {k: (_option_text(v.value), v.span) for k, v in spec.options.items()}
    given.update(_flash_options(spec, schema, diags))
    options = expand.option_values(schema, given, diags,
                                   {k: v.key_span for k, v in spec.options.items()})
    prefer_sockets = {q.name: q.value for q in schema.quirks}.get("smp-prefer-sockets") is True
    cpus, memory = _cpus_memory(spec, schema.default_memory, diags, prefer_sockets)
    nodes = numa_nodes(spec)
    if nodes and "memory" not in spec.top:  # the machine's RAM is its nodes'
        memory["size"] = qemu_ram_size(sum(n.memory for n in nodes))
    facts: dict[str, expr.Scalar] = {"cpus.count": int(cpus.get("count", 1)),
                                     "memory": int(memory.get("size", 0)),
                                     "cpus.model": str(cpus.get("model", ""))}
    facts["cpus.maxcpus"] = int(cpus.get("maxcpus", cpus.get("count", 1)))
    for key in ("sockets", "cores", "threads"):
        facts[f"cpus.{key}"] = int(cpus.get(key, 1))
    counts: dict[str, int] = {}
    for item in spec.items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    spares_value = spec.top.get("hotplug-slots")
    name_value = spec.top.get("name")
    uuid_value = spec.top.get("uuid")
    return MachineSpec(
        options, tuple(sorted(cpus.items())), tuple(sorted(memory.items())),
        expr.Env(options, facts, counts),
        (schema.placed_under(options).placement.spare_ports if spares_value is None
         else int(spares_value.value)),
        spares_value.span if spares_value else spec.span, spares_value is not None,
        str(name_value.value) if name_value else "", _boot(spec, schema, diags),
        tuple(sorted((k, v.value) for k, v in spec.rtc.items())),
        str(uuid_value.value).lower() if uuid_value else "", nodes)


def numa_nodes(spec: LooseSpec) -> tuple[tree.NumaNode, ...]:
    """`[[numa]]` in node order, each with its RAM backend named as libvirt names it (the
    loader checked each value: one it refused counts as none here). Whether they suit the
    machine is `validate`'s (rules `numa-*`)."""
    nodes = []
    for n, item in enumerate(spec.numa):
        cpus = numa.parse_cpus(item.get("cpus")) if "cpus" in item.fields else ()
        nodes.append(tree.NumaNode(tuple(sorted(cpus)) if isinstance(cpus, tuple) else (),
                                   parse_size(item.get("memory")) or 0, numa.memdev_id(n)))
    return tuple(nodes)


def setting_spans(spec: LooseSpec) -> dict[tuple[object, ...], Span]:
    """Where the spec sets what `validate`'s machine-wide rules read, by blob path:
    `("numa", N)` and its `cpus`, `memory`; `("memory", "size")`; `("cpus",)` (maxcpus)."""
    found: dict[tuple[object, ...], Span] = {}
    for n, item in enumerate(spec.numa):
        found["numa", n] = item.span
        for key, value in item.fields.items():
            found["numa", n, key] = value.span
    if "memory" in spec.top:
        found["memory", "size"] = spec.top["memory"].span
    cpus = spec.fact_span("cpus.maxcpus")
    if cpus is not None:
        found["cpus",] = cpus
    return found


def _flash_options(spec: LooseSpec, schema: model.MachineSchema, diags: Collector
                   ) -> dict[str, tuple[str, Span]]:
    """`[[pflash]]` images in order are the machine's `pflash0`, `pflash1`, … options,
    each naming its image's blockdev (the item's id, `pflashN` unless given)."""
    found: dict[str, tuple[str, Span]] = {}
    flashes = [item for item in spec.items if item.kind == "pflash"]
    for n, item in enumerate(flashes):
        option = f"pflash{n}"
        if option not in schema.options:
            diags.error("E1104", f"`{schema.name}` has no flash chip for this image"
                        if n else f"`{schema.name}` has no pflash devices", item.span,
                        notes=[f"it takes {n} `[[pflash]]`" if n else
                               "its firmware is not in flash (`[options] firmware`)"])
            continue
        if option not in spec.options:
            found[option] = (str(item.get("id") or option), item.span)
    return found


def check_rules(schema: model.MachineSchema, spec: LooseSpec, env: expr.Env,
                diags: Collector) -> None:
    """The schema's `check` rules (cpu limits, TCG refusals): E1301 for each that does not
    hold, where the spec sets what it reads."""
    for c in schema.checks:
        if not expr.holds(c.condition, env):
            diags.error("E1301", c.message, plan.check_span(c.condition, spec),
                        notes=[f"rule `{c.name}` of `{schema.name}` ({c.span})"])


def _boot(spec: LooseSpec, schema: model.MachineSchema, diags: Collector) -> Pairs:
    """`[boot]` as given (the spec checked each value); the drive letters of `order`
    against the machine's (`quirk boot-devices`; QEMU refuses others at start)."""
    devices = next((str(q.value) for q in schema.quirks if q.name == "boot-devices"), None)
    order = spec.boot.get("order")
    if order is not None and devices is not None:
        problem = boot_problem("order", order.value, devices)
        if problem is not None:
            diags.error("E1006", f"`boot.order` {problem}", order.span,
                        notes=[f"`{schema.name}` boots from {quote_list(list(devices))} "
                               "(its `quirk boot-devices`)"])
    return tuple(sorted((k, v.value) for k, v in spec.boot.items()))


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _cpus_memory(spec: LooseSpec, schema_memory: int, diags: Collector,
                 prefer_sockets: bool = False
                 ) -> tuple[dict[str, tree.PropValue], dict[str, tree.PropValue]]:
    cpus: dict[str, tree.PropValue] = {"count": 1}
    cv = spec.top.get("cpus")
    if cv is not None:
        if isinstance(cv.value, int) and not isinstance(cv.value, bool) and cv.value > 0:
            cpus["count"] = cv.value
        else:
            diags.error("E1003", "`cpus` must be a positive integer or a table", cv.span)
    for k, v in spec.cpus.items():
        if k == "model":
            cpus[k] = str(v.value)
        elif k == "features":
            if "model" not in spec.cpus:
                diags.error("E2031", "`cpus.features` needs a `cpus.model` to change",
                            v.span, help=cpu.MODEL_HELP)
            cpus[k] = ",".join(str(f) for f in v.value) if isinstance(v.value, list) else ""
            if not cpus[k]:
                del cpus[k]
        elif isinstance(v.value, int) and not isinstance(v.value, bool) and v.value > 0:
            cpus[k] = v.value
        else:
            diags.error("E1003", f"`cpus.{k}` must be a positive integer", v.span)
    where = cv.span if cv is not None else next(
        (v.span for v in spec.cpus.values()), spec.span)
    maxcpus = spec.cpus.get("maxcpus")
    _topology(cpus, cv is not None or "count" in spec.cpus, where,
              maxcpus.span if maxcpus is not None else where, diags, prefer_sockets)
    memory: dict[str, tree.PropValue] = {"size": schema_memory}
    mv = spec.top.get("memory")
    if mv is not None:
        size = parse_size(mv.value)
        if size is None:
            diags.error("E1003", f"`memory` must be a size, not `{mv.value}`", mv.span,
                        help='write bytes, or a number with K, M, G or T: `memory = "4G"`')
        else:
            # what QEMU makes of it (8 KiB multiples), written out in the blob
            memory["size"] = qemu_ram_size(size)
    return cpus, memory


def _topology(cpus: dict[str, tree.PropValue], count_given: bool, span: Span,
              maxcpus_span: Span, diags: Collector, prefer_sockets: bool = False) -> None:
    """Fill the topology as QEMU 7.2's -smp does (hw/core/machine-smp.c, smp_parse):
    `maxcpus` is the count when missing; machines from 6.2 on prefer cores: with cores
    missing, sockets and threads default to 1 and cores take the rest of maxcpus; with
    sockets missing, threads default to 1 and sockets take the rest. Older ones (the
    schema's `quirk smp-prefer-sockets`) prefer sockets: with sockets missing, cores and
    threads default to 1 and sockets take the rest; with cores missing, threads default
    to 1 and cores take the rest. Missing threads take what is left. The product must be
    maxcpus, and the count at most maxcpus. `maxcpus` stays in `cpus` only when it is not
    the count (then all possible cpus are present)."""
    def given(key: str) -> int:
        v = cpus.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    count = given("count") if count_given else 0
    maxcpus, sockets, cores, threads = (given(k) for k in ("maxcpus", "sockets", "cores",
                                                           "threads"))
    if count == 0 and maxcpus == 0:
        sockets, cores, threads = sockets or 1, cores or 1, threads or 1
    else:
        maxcpus = maxcpus or count
        if prefer_sockets:
            if sockets == 0:
                cores, threads = cores or 1, threads or 1
                sockets = maxcpus // (cores * threads)
            elif cores == 0:
                threads = threads or 1
                cores = maxcpus // (sockets * threads)
        elif cores == 0:
            sockets, threads = sockets or 1, threads or 1
            cores = maxcpus // (sockets * threads)
        elif sockets == 0:
            threads = threads or 1
            sockets = maxcpus // (cores * threads)
        if threads == 0:
            threads = maxcpus // (sockets * cores)
    product = sockets * cores * threads
    maxcpus = maxcpus or product
    count = count or maxcpus
    cpus.update(count=count, sockets=sockets, cores=cores, threads=threads)
    cpus.pop("maxcpus", None)
    if maxcpus != count:
        cpus["maxcpus"] = maxcpus
    shown = f"{maxcpus} possible cpus (`maxcpus`)" if "maxcpus" in cpus else f"{count} cpus"
    if product != maxcpus:
        diags.error("E1010", f"invalid CPU topology: {sockets} socket(s) × {cores} core(s) × "
                    f"{threads} thread(s) is not {shown}", maxcpus_span,
                    help=f"give a {'`maxcpus`' if 'maxcpus' in cpus else 'count'} that is "
                    "their product, or leave one of them out")
    elif count > maxcpus:
        diags.error("E1010", f"invalid CPU topology: {count} cpus are more than {maxcpus} "
                    "possible cpus (`maxcpus`)", maxcpus_span,
                    help="give a `maxcpus` of at least the count, or leave it out")
