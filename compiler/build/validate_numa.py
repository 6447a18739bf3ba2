"""The precise tree's guest NUMA rules (`numa-*`, E1041–E1047): what QEMU refuses of
`-numa node` (or, for cpus left out of every node, calls obsolete), checked before
anything is emitted, for a compiled spec and a blob alike. Each error points at the spec's
`[[numa]]` entry or the blob's `numa` item (`Context.setting`). Registered in
`validate.TABLE`; how many nodes a machine takes is its schema's `quirk numa-max-nodes`.
"""

from __future__ import annotations

from compiler.base import backends, numa
from compiler.base.diagnostics import Collector, Label, quote_list
from compiler.build.plan import QEMU_ID
from compiler.build.validate import Context, check


def _rule(name: str) -> str:
    return f"rule `{name}`"


def _possible(ctx: Context) -> int:
    """The machine's possible cpus: `maxcpus`, else the count."""
    cpus = dict(ctx.machine.cpus)
    most = cpus.get("maxcpus", cpus.get("count", 1))
    return most if isinstance(most, int) and not isinstance(most, bool) else 1


def _size(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size and size % (1 << shift) == 0:
            return f"{size} bytes ({size >> shift} {unit})"
    return f"{size} bytes"


@check("numa-machine", "E1045", "a machine has no more NUMA nodes than its schema takes "
       "(`quirk numa-max-nodes`)")
def numa_machine(ctx: Context, diags: Collector) -> None:
    nodes = ctx.machine.numa
    schema = ctx.schema
    if not nodes or schema is None:
        return
    quirk = next((q for q in schema.quirks if q.name == "numa-max-nodes"), None)
    most = quirk.value if quirk is not None and isinstance(quirk.value, int) else 0
    if len(nodes) <= most:
        return
    labels = [Label(quirk.span, "the machine's schema says so here")] if quirk else []
    if most == 0:
        diags.error("E1045", f"`{schema.name}` takes no NUMA nodes", ctx.setting("numa", 0),
                    labels=labels,
                    notes=["its schema gives it `quirk numa-max-nodes = 0`; the comment "
                           "above that line says why" if quirk else
                           "its schema declares no `quirk numa-max-nodes`",
                           _rule("numa-machine")],
                    help="leave out the NUMA nodes (`[[numa]]`)")
    else:
        diags.error("E1045", f"`{schema.name}` takes at most {most} NUMA nodes, not "
                    f"{len(nodes)}", ctx.setting("numa", most), labels=labels,
                    notes=[f"QEMU refuses node {most} (`Max number of NUMA nodes reached`)",
                           _rule("numa-machine")])


@check("numa-cpus-range", "E1041", "a NUMA node's cpus are possible cpus of the machine")
def numa_cpus_range(ctx: Context, diags: Collector) -> None:
    possible = _possible(ctx)
    for n, node in enumerate(ctx.machine.numa):
        beyond = [c for c in node.cpus if c >= possible]
        if beyond:
            diags.error("E1041", f"NUMA node {n} names cpu {beyond[0]}, but the machine has "
                        f"{possible} possible cpu{'s' if possible > 1 else ''} "
                        f"({'0' if possible == 1 else f'0-{possible - 1}'})",
                        ctx.setting("numa", n, "cpus"),
                        labels=[Label(ctx.setting("cpus"), "the machine's cpus")]
                        if ("cpus",) in ctx.setting_spans else [],
                        notes=["cpus count from 0 up to `maxcpus` (the count when not given), "
                               "in the order of the topology: QEMU refuses others (`CPU index "
                               f"({beyond[0]}) should be smaller than maxcpus ({possible})`)",
                               _rule("numa-cpus-range")])


@check("numa-cpus-once", "E1042", "no cpu is in two NUMA nodes")
def numa_cpus_once(ctx: Context, diags: Collector) -> None:
    owner: dict[int, int] = {}
    for n, node in enumerate(ctx.machine.numa):
        twice = [c for c in node.cpus if c in owner]
        if twice:
            first = owner[twice[0]]
            diags.error("E1042", f"cpu {twice[0]} is in NUMA node {first} and in node {n}",
                        ctx.setting("numa", n, "cpus"),
                        labels=[Label(ctx.setting("numa", first, "cpus"),
                                      f"node {first} has it here")],
                        notes=["QEMU refuses it (`CPU is already assigned to node-id: "
                               f"{first}`)", _rule("numa-cpus-once")],
                        help=f"take cpu {twice[0]} out of one of them")
        for c in node.cpus:
            owner.setdefault(c, n)


@check("numa-cpus-all", "E1043", "every possible cpu is in a NUMA node",
       needs=["numa-cpus-range", "numa-cpus-once"])
def numa_cpus_all(ctx: Context, diags: Collector) -> None:
    nodes = ctx.machine.numa
    if not nodes:
        return
    placed = {c for node in nodes for c in node.cpus}
    possible = _possible(ctx)
    # no list names a cpu past MAX_CPU_INDEX: those of a larger machine are all missing
    limit = min(possible, numa.MAX_CPU_INDEX + 1)
    missing = [c for c in range(limit) if c not in placed]
    shown = ",".join(x for x in (numa.format_cpus(missing), f"{limit}-{possible - 1}"
                                 if possible > limit else "") if x)
    if shown:
        many = len(missing) > 1 or possible > limit
        last = len(nodes) - 1
        diags.error("E1043", f"cpu{'s' if many else ''} {shown} {'are' if many else 'is'} in "
                    "no NUMA node", ctx.setting("numa", last, "cpus"),
                    notes=["QEMU 7.2 and 10.0 put such cpus on a node of their own choosing "
                           "and warn that a partial NUMA mapping is obsolete (`All CPU(s) up "
                           "to maxcpus should be described in NUMA config`)",
                           _rule("numa-cpus-all")],
                    help="give every possible cpu (up to `maxcpus`) to a node's `cpus`")


@check("numa-memory", "E1044", "the NUMA nodes' memory adds up to the machine's")
def numa_memory(ctx: Context, diags: Collector) -> None:
    nodes = ctx.machine.numa
    size = dict(ctx.machine.memory).get("size")
    if not nodes or not isinstance(size, int):
        return
    total = sum(node.memory for node in nodes)
    if total == size:
        return
    given = ("memory", "size") in ctx.setting_spans
    span = ctx.setting("memory", "size") if given else \
        ctx.setting("numa", len(nodes) - 1, "memory")
    labels = [Label(ctx.setting("numa", n, "memory"), f"node {n}: {_size(node.memory)}")
              for n, node in enumerate(nodes)] if given else []
    diags.error("E1044", f"the NUMA nodes' memory adds up to {_size(total)}, not the "
                f"machine's {_size(size)}", span, labels=labels,
                notes=["QEMU refuses it (`total memory for NUMA nodes … should equal RAM "
                       "size`); the machine's RAM is `-m` rounded up to 8 KiB",
                       _rule("numa-memory")],
                help="leave `memory` out (the nodes' sum), or make the nodes add up to it"
                if given else "make the nodes add up to a multiple of 8 KiB")


@check("numa-memdev", "E1047", "each NUMA node's RAM backend has an id of its own")
def numa_memdev(ctx: Context, diags: Collector) -> None:
    objects = {ident for ident, body in ctx.machine.backends
               if (kind := backends.REGISTRY.get(str(dict(body).get("kind")))) is not None
               and kind.qom_object}
    seen: dict[str, int] = {}
    for n, node in enumerate(ctx.machine.numa):
        span = ctx.setting("numa", n, "memdev")
        if not QEMU_ID.match(node.memdev):
            diags.error("E1047", f"NUMA node {n}'s `memdev` `{node.memdev}` is not a QEMU "
                        "identifier", span, notes=[_rule("numa-memdev")],
                        help="a letter, then letters, digits, `-`, `_`, `.`: "
                        f"`{numa.memdev_id(n)}`")
        elif node.memdev in seen or node.memdev in objects:
            other = f"NUMA node {seen[node.memdev]}" if node.memdev in seen else \
                f"backend `{node.memdev}`"
            diags.error("E1047", f"NUMA node {n}'s `memdev` `{node.memdev}` is also {other}'s",
                        span, notes=["QEMU's objects (`-object`) share one name space",
                                     _rule("numa-memdev")],
                        help=f"name it `{numa.memdev_id(n)}`")
        seen.setdefault(node.memdev, n)


@check("numa-node-prop", "E1046", "a device's NUMA node (a `numa-node` prop) is a node of the "
       "machine", needs=["known-type"])
def numa_node_prop(ctx: Context, diags: Collector) -> None:
    count = len(ctx.machine.numa)
    for p in ctx.placed:
        t = ctx.type(p.device)
        for name, value in p.device.props:
            spec = t.props.get(name) if t else None
            if spec is None or not spec.numa_node or value == spec.default or \
                    not isinstance(value, int) or value < count:
                continue
            have = (f"its NUMA nodes are {quote_list([str(i) for i in range(count)])}"
                    if count else "the machine has no NUMA nodes (`[[numa]]`)")
            diags.error("E1046", f"`{p.device.id}` ({p.device.type}) prop `{name}` names NUMA "
                        f"node {value}, which the machine does not have",
                        ctx.prop_spans.get((p.device.id, name)) or ctx.span(p.device),
                        notes=[have, f"QEMU refuses it (`Illegal numa node {value}`)",
                               _rule("numa-node-prop")],
                        help=f"add the node, or leave `{name}` out (no node)")
