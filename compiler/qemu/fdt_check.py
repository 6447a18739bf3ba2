"""`mschema verify` on machines with a flattened device tree (pseries): QEMU's DTB
(`dumpdtb`) against the precise tree. Ends at a list of `compare.Difference`s.

With the FDT emitter (`compiler/emit/fdt.py`), the whole tree: every node and every
property as bytes, after normalising only what QEMU randomises (the properties the
machine's `quirk fdt-random` lists: pseries' `/chosen/rng-seed`) or orders by hash (the four
`ibm,drc-*` arrays, sorted together by index).

Where the emitter cannot evaluate its declarations for a machine, what generic device-tree
conventions and the stdlib's `fdt` names allow, no machine-specific paths:

- VIO devices: every device on a bus of notation `vio` whose type declares an FDT `name` is
  a node `NAME@REG` (REG in hex), and no other node carries one of those names;
- PCI: under each PCI host bridge node (a child of `/` with `device_type = "pci"`, in
  unit-address order, matched with the tree's host bridges in the order of their `index`),
  the nodes with a unit address are exactly the tree's functions (`SLOT` or `SLOT,FN`,
  hex), recursively below bridges;
- cpus: as many nodes with `device_type = "cpu"` as `cpus.count`;
- memory: the sizes in the `reg` of the `device_type = "memory"` nodes add up to
  `memory.size`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence

import attrs

from compiler.base import notations
from compiler.build import tree
from compiler.lang import model
from compiler.qemu.compare import BusInfo, Difference, Json, blob_walk

_MAGIC = 0xD00DFEED


@attrs.frozen
class DtNode:
    name: str
    props: tuple[tuple[str, bytes], ...] = ()
    children: tuple[DtNode, ...] = ()

    def prop(self, name: str) -> bytes | None:
        return next((v for k, v in self.props if k == name), None)

    def text(self, name: str) -> str | None:
        v = self.prop(name)
        return None if v is None else v.rstrip(b"\0").decode("utf-8", "replace")

    @property
    def unit(self) -> str | None:
        """The unit address: `1f` of `pci@1f`."""
        _, at, unit = self.name.partition("@")
        return unit if at else None

    def walk(self) -> Iterator[DtNode]:
        yield self
        for c in self.children:
            yield from c.walk()


def read_dtb(data: bytes) -> DtNode:
    """Parse a DTB (with pylibfdt, like everything that reads or writes one here); raises
    ValueError if it is not one."""
    from compiler.emit.fdt_out import Node
    from compiler.emit.fdt_out import read_dtb as read_nodes

    if len(data) < 40 or struct.unpack_from(">I", data, 0)[0] != _MAGIC:
        raise ValueError("not a flattened device tree (bad magic)")

    def convert(node: Node) -> DtNode:
        props = tuple((p.name, b"".join(seg.encode() for seg in p.segments))
                      for p in node.props)
        return DtNode(node.name, props, tuple(convert(c) for c in node.children))

    try:
        return convert(read_nodes(data))
    except Exception as exc:  # libfdt.FdtException: a damaged tree
        raise ValueError(f"not a valid flattened device tree: {exc}") from None


def _cells(value: bytes | None, default: int) -> int:
    return default if value is None or len(value) != 4 else int(int.from_bytes(value, "big"))


def expected_tree(machine: tree.Machine, library: model.Library) -> DtNode | None:
    """The device tree the FDT emitter predicts, or None where it cannot evaluate its
    declarations for this machine (E1901: then the nodes above are compared instead)."""
    from compiler.base.diagnostics import CompileError
    from compiler.emit import fdt
    from compiler.emit.fdt_out import Node

    try:
        built = fdt.build(machine, library)
    except CompileError:
        return None

    def convert(node: Node) -> DtNode:
        return DtNode(node.name, tuple((p.name, p.value) for p in node.props),
                      tuple(convert(c) for c in node.children))

    return convert(built)


def fdt_differences(machine: tree.Machine, blob: Mapping[str, Json], dtb: bytes,
                    library: model.Library, info: BusInfo) -> tuple[list[Difference], bool]:
    """The differences, and whether the whole tree was compared (else the nodes above)."""
    from compiler.emit import fdt

    root = read_dtb(dtb)
    expected = expected_tree(machine, library)
    if expected is not None:
        random = random_props(fdt.find_schema(library, machine.info))
        return whole_tree_differences(expected, root, random), True
    return node_differences(blob, root, library, info), False


_DRC = ("ibm,drc-indexes", "ibm,drc-power-domains", "ibm,drc-names", "ibm,drc-types")


def random_props(schema: model.MachineSchema) -> frozenset[str]:
    """The properties QEMU fills with random bytes at every start, as the machine's
    `quirk fdt-random = "/chosen/rng-seed /chosen/kaslr-seed"` lists them (NODE/PROP)."""
    value = {q.name: q.value for q in schema.quirks}.get("fdt-random", "")
    return frozenset(str(value).split())


def _normalised(node: DtNode, random: frozenset[str] = frozenset(), path: str = "/"
                ) -> dict[str, tuple[list[str], dict[str, bytes]]]:
    """path → (subnode names, props): the `random` props blanked (their size kept), the DRC
    arrays sorted by index."""
    props = dict(node.props)
    for name in props:
        if f"{path.rstrip('/')}/{name}" in random:
            props[name] = b"<%d random bytes>" % len(props[name])
    if all(n in props for n in _DRC) and len(props[_DRC[0]]) >= 4:
        count = int.from_bytes(props[_DRC[0]][:4], "big")
        cells = [[v[4:][i:i + 4] for i in range(0, 4 * count, 4)]
                 for v in (props[_DRC[0]], props[_DRC[1]])]
        strings = [v[4:].split(b"\0")[:count] for v in (props[_DRC[2]], props[_DRC[3]])]
        if all(len(c) == count for c in [*cells, *strings]):
            rows = sorted(zip(*cells, *strings, strict=True))
            head = props[_DRC[0]][:4]
            props[_DRC[0]] = head + b"".join(r[0] for r in rows)
            props[_DRC[1]] = head + b"".join(r[1] for r in rows)
            props[_DRC[2]] = head + b"".join(r[2] + b"\0" for r in rows)
            props[_DRC[3]] = head + b"".join(r[3] + b"\0" for r in rows)
    flat = {path: ([c.name for c in node.children], props)}
    for c in node.children:
        flat.update(_normalised(c, random, path.rstrip("/") + "/" + c.name))
    return flat


@attrs.frozen
class TreeChange:
    """One difference between two device trees (normalised as `_normalised` says): a node
    only one has (`prop` None), subnodes or props in another order, or a prop's value (None
    where that side lacks it)."""

    path: str
    what: str  # "node", "subnode-order", "prop-order", "prop"
    prop: str | None = None
    a: bytes | None = None
    b: bytes | None = None


def tree_changes(a_root: DtNode, b_root: DtNode,
                 random: frozenset[str] = frozenset()) -> list[TreeChange]:
    a, b = _normalised(a_root, random), _normalised(b_root, random)
    found = []
    for path in sorted(set(a) | set(b)):
        if path not in a or path not in b:
            found.append(TreeChange(path, "node", None, b"" if path in a else None,
                                    b"" if path in b else None))
            continue
        (ka, pa), (kb, pb) = a[path], b[path]
        if ka != kb and sorted(ka) == sorted(kb):
            found.append(TreeChange(path, "subnode-order"))
        if [n for n in pa if n in pb] != [n for n in pb if n in pa]:
            found.append(TreeChange(path, "prop-order"))
        for name in sorted(set(pa) | set(pb)):
            if pa.get(name) != pb.get(name):
                found.append(TreeChange(path, "prop", name, pa.get(name), pb.get(name)))
    return found


def whole_tree_differences(ours: DtNode, theirs: DtNode,
                           random: frozenset[str] = frozenset()) -> list[Difference]:
    """The predicted tree (`ours`) against QEMU's, one difference each; the `random`
    props (`random_props`) compared by size only."""
    return [Difference("fdt", _predicted_vs_qemu(c))
            for c in tree_changes(ours, theirs, random)]


def _predicted_vs_qemu(c: TreeChange) -> str:
    where = f"`{c.path}`"
    if c.what == "node":
        return (f"{where}: a node QEMU's device tree does not have" if c.b is None else
                f"{where}: a node of QEMU's device tree that the prediction lacks")
    if c.what == "subnode-order":
        return f"{where}: subnodes in another order than QEMU's"
    if c.what == "prop-order":
        return f"{where}: properties in another order than QEMU's"
    if c.b is None:
        return f"{where}: property `{c.prop}` QEMU does not have"
    if c.a is None:
        return f"{where}: QEMU's property `{c.prop}` is not predicted"
    return f"{where}: `{c.prop}` is {show(c.b)} in QEMU, {show(c.a)} predicted"


def show(value: bytes) -> str:
    text = value.hex()
    return f"<{text[:64]}…>" if len(text) > 64 else f"<{text}>"


def node_differences(blob: Mapping[str, Json], root: DtNode, library: model.Library,
                     info: BusInfo) -> list[Difference]:
    found = _vio(blob, root, library, info) + _pci(blob, root, info)
    cpus = sum(1 for n in root.walk() if n.text("device_type") == "cpu")
    want = blob.get("cpus", {}).get("count")
    if want is not None and cpus != want:
        found.append(Difference("fdt", f"the device tree has {cpus} cpu node(s), the blob "
                                f"{want} cpus"))
    size = blob.get("memory", {}).get("size")
    if size is not None:
        acells = _cells(root.prop("#address-cells"), 2)
        scells = _cells(root.prop("#size-cells"), 1)
        total = 0
        for n in root.walk():
            reg = n.prop("reg") if n.text("device_type") == "memory" else None
            step = 4 * (acells + scells)
            for i in range(0, len(reg or b"") - step + 1, step):
                assert reg is not None
                total += int.from_bytes(reg[i + 4 * acells:i + step], "big")
        if total != size:
            found.append(Difference("fdt", f"the device tree's memory nodes hold {total} "
                                    f"bytes, the blob {size}"))
    return found


def _vio(blob: Mapping[str, Json], root: DtNode, library: model.Library,
         info: BusInfo) -> list[Difference]:
    names = {str(v) for t in library.devices.values() for k, v in t.fdt if k == "name"
             and any(notations.get(info.notation(p.bus)).fdt_named_nodes for p in t.plugs)}
    want: dict[str, str] = {}
    for _, kind, d in blob_walk(blob["devices"]):
        t = library.devices.get(str(d["type"]))
        name = dict(t.fdt).get("name") if t else None
        rules = notations.get(info.notation(kind))
        if rules.fdt_named_nodes and name is not None and d.get("addr"):
            want[f"{name}@{rules.fdt_unit(rules.parse(str(d['addr'])))}"] = str(d["id"])
    have = {n.name for n in root.walk() if n.name.partition("@")[0] in names and n.unit}
    return ([Difference("fdt", f"the device tree has no node `{n}` for `{i}`", i)
             for n, i in sorted(want.items()) if n not in have] +
            [Difference("fdt", f"the device tree has a node `{n}` that the blob does not "
                        "predict") for n in sorted(have - set(want))])


def _pci(blob: Mapping[str, Json], root: DtNode, info: BusInfo) -> list[Difference]:
    hosts: list[tuple[int, str, Mapping[str, Json]]] = []
    for d in blob["devices"]:
        pci = [b for b in d.get("buses", ())
               if notations.get(info.notation(b["kind"])).pci_hierarchy]
        if pci:
            index = next((v for k, v in sorted(d.get("props", {}).items())
                          if k == "index" and isinstance(v, int)), len(hosts))
            hosts.append((index, str(d["id"]), pci[0]))
    hosts.sort(key=lambda h: h[0])
    nodes = sorted((n for n in root.children if n.text("device_type") == "pci" and n.unit),
                   key=lambda n: int(n.unit or "0", 16))
    found = []
    if len(nodes) != len(hosts):
        found.append(Difference("fdt", f"the device tree has {len(nodes)} PCI host bridge "
                                f"node(s), the blob {len(hosts)} host bridge(s)"))
    for (_, ident, bus), node in zip(hosts, nodes, strict=False):
        found += _pci_bus(bus, node, f"/{node.name}", ident, info)
    return found


def _pci_bus(bus: Mapping[str, Json], node: DtNode, path: str, owner: str,
             info: BusInfo) -> list[Difference]:
    rules = notations.get(info.notation(bus["kind"]))
    want = {rules.fdt_unit(rules.parse(str(d["addr"]))): d
            for d in bus["devices"] if d.get("addr")}
    have = {c.unit: c for c in node.children if c.unit is not None}
    found = [Difference("fdt", f"`{path}` has no node for `{d['id']}` ({d['type']}) at "
                        f"{d['addr']}", str(d["id"]))
             for unit, d in sorted(want.items()) if unit not in have]
    found += [Difference("fdt", f"`{path}` has a node `{have[u].name}` that the blob does "
                         f"not predict on `{bus['name']}`", owner)
              for u in sorted(k for k in have if k not in want)]
    for unit, d in sorted(want.items()):
        child = have.get(unit)
        sub: Sequence[Mapping[str, Json]] = [
            b for b in d.get("buses", ())
            if notations.get(info.notation(b["kind"])).pci_hierarchy]
        if child is not None and sub:
            found += _pci_bus(sub[0], child, f"{path}/{child.name}", str(d["id"]), info)
    return found
