"""Guest NUMA nodes (QEMU's `-numa node`): the cpu lists the spec, the blob and QEMU write,
the command line of a node, and what QEMU's answers say of the nodes it built.

A node is the cpus it holds (cpu indexes, as `-numa node,cpus=` counts them: the possible
cpus in the order of `-smp`'s topology) and its RAM, a `memory-backend-ram` object of its
own (`memdev`) whose id is also the name of its RAM block in QEMU's migration stream. Node
N is the N-th of the list: QEMU refuses node ids with gaps (`numa: Node ID missing`).
Whether a machine takes nodes, and how many, is its schema's `quirk numa-max-nodes`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

# the memory backend type of a node, as libvirt writes it for QEMU 7.2 and later
BACKEND_TYPE = "memory-backend-ram"
# QEMU's default props of a `memory-backend-ram` (query-memdev), besides `merge` and
# `dump`, whose defaults are the machine's `mem-merge` and `dump-guest-core`
BACKEND_DEFAULTS: Mapping[str, object] = {"share": False, "prealloc": False,
                                          "policy": "default", "host-nodes": [],
                                          "reserve": True}
# the machine options a backend takes its `merge` and `dump` defaults from
BACKEND_MACHINE_DEFAULTS = (("merge", "mem-merge"), ("dump", "dump-guest-core"))
CPU_LIST_HELP = 'write cpu indexes and ranges, as libvirt and QEMU do: `cpus = "0-3,8"`'
_CPU_LIST = re.compile(r"^(\d{1,6})(?:-(\d{1,6}))?$")
# a bound on the cpu indexes a list may name, so that reading one stays cheap: past the
# largest `maxcpus` of any machine (4096 on pc-q35-9.0 and later), which QEMU refuses anyway
MAX_CPU_INDEX = 4095


def memdev_id(node: int) -> str:
    """The id of node `node`'s RAM backend where the spec names none: libvirt's."""
    return f"ram-node{node}"


def parse_cpus(text: object) -> tuple[int, ...] | str:
    """`"0-3,8"` → (0, 1, 2, 3, 8), in the order written; or what is wrong, in words."""
    if not isinstance(text, str):
        return "must be a string of cpu indexes and ranges"
    if not text:
        return "is empty: leave `cpus` out for a node without cpus"
    found: list[int] = []
    seen: set[int] = set()
    for part in text.split(","):
        m = _CPU_LIST.match(part)
        if m is None:
            return ("is neither cpu indexes nor ranges `A-B` separated by commas"
                    if part == text else
                    f"has `{part}`, which is neither a cpu index nor a range `A-B`")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        if last < first:
            return f"has the range `{part}`, which ends before it starts"
        if last > MAX_CPU_INDEX:
            return f"has cpu {last}, past the largest cpu index any machine takes " \
                f"({MAX_CPU_INDEX})"
        for cpu in range(first, last + 1):
            if cpu in seen:
                return f"names cpu {cpu} twice"
            seen.add(cpu)
            found.append(cpu)
    return tuple(found)


def ranges(cpus: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted cpu indexes as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for cpu in sorted(set(cpus)):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1] = (runs[-1][0], cpu)
        else:
            runs.append((cpu, cpu))
    return runs


def format_cpus(cpus: Iterable[int]) -> str:
    """The canonical cpu list of the blob: sorted runs, `0-7,9`."""
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges(cpus))


def argv(node: int, cpus: Sequence[int], memory: int, memdev: str) -> list[str]:
    """`-object` for the node's RAM and `-numa node`, as libvirt writes them (one `cpus=` per
    run: QEMU's list syntax); ids are checked identifiers, so nothing needs escaping."""
    obj = {"qom-type": BACKEND_TYPE, "id": memdev, "size": memory}
    numa = [f"node,nodeid={node}"] + [f"cpus={a}" if a == b else f"cpus={a}-{b}"
                                      for a, b in ranges(cpus)] + [f"memdev={memdev}"]
    return ["-object", json.dumps(obj, separators=(",", ":")), "-numa", ",".join(numa)]


# ---- QEMU's view ------------------------------------------------------------------------
# the topology levels of `/machine` `smp` and the ids `query-hotpluggable-cpus` gives each
# possible cpu, outermost first: a cpu's index counts through them as x86 numbers its
# possible cpus (x86_topo_ids_from_idx); the machines that take nodes here are x86 ones
# (pseries refuses them: `quirk numa-max-nodes = 0`)
TOPOLOGY = (("drawers", "drawer-id"), ("books", "book-id"), ("sockets", "socket-id"),
            ("dies", "die-id"), ("clusters", "cluster-id"), ("modules", "module-id"),
            ("cores", "core-id"), ("threads", "thread-id"))


def node_count(info_numa: str) -> int:
    """HMP `info numa`'s first line (`2 nodes`): how many nodes the guest has."""
    m = re.match(r"\s*(\d+) nodes", info_numa)
    return int(m.group(1)) if m else 0


def node_sizes(info_numa: str) -> dict[int, int]:
    """`info numa`'s `node N size: M MB` lines: node → its memory in whole MiB."""
    return {int(n): int(mb) for n, mb in re.findall(r"^node (\d+) size: (\d+) MB", info_numa,
                                                    re.MULTILINE)}


def cpu_nodes(hotpluggable: Sequence[Mapping[str, object]], smp: Mapping[str, object]
              ) -> dict[int, int] | str:
    """cpu index → node of every possible cpu, from `query-hotpluggable-cpus` and the
    topology; or what QEMU's answer does not say."""
    found: dict[int, int] = {}
    for entry in hotpluggable:
        props = entry.get("props")
        if not isinstance(props, dict):
            return "a possible cpu without `props`"
        node = props.get("node-id")
        if not isinstance(node, int) or isinstance(node, bool):
            return "a possible cpu without a `node-id`"
        index = 0
        for level, field in TOPOLOGY:
            count = smp.get(level, 1)
            ident = props.get(field, 0)
            if not isinstance(count, int) or not isinstance(ident, int):
                return f"a `{field}` or `{level}` that is no number"
            index = index * count + ident
        vcpus = entry.get("vcpus-count", 1)
        for n in range(vcpus if isinstance(vcpus, int) and vcpus > 0 else 1):
            found[index + n] = node  # a core of several threads: its first cpu, then on
    return found
