"""The flattened device tree as bytes (DTB, through libfdt's Python binding) and as source
(DTS that `dtc -I dts -O dtb` compiles back to the same bytes), and a DTB read back into
the same shape. Generic FDT mechanics only: which nodes and values exist is `fdt.py`'s job.

The DTB is laid out as dtc lays out what it compiles: header, an empty reserve map, the
structure block in tree order, then the strings block with every property name in order of
first use (dtc and libfdt share a name that is the tail of an earlier one). libfdt's
read-write calls insert a property or a subnode *before* its siblings, so nodes are added
in reverse, the names are registered first on a scratch node, and each node's properties
are set last to first (and zeroed first: libfdt leaves stale bytes in a value's padding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, TypeVar

import attrs

if TYPE_CHECKING:
    import libfdt  # type: ignore[import-untyped]

SegmentKind = Literal["cells", "string", "bytes"]
T = TypeVar("T")


@attrs.frozen
class Segment:
    """A piece of a property value, as DTS writes it: `<cells>`, `"string"`, `[bytes]`."""

    kind: SegmentKind
    cells: tuple[int, ...] = ()
    text: str = ""
    data: bytes = b""

    def encode(self) -> bytes:
        if self.kind == "cells":
            return b"".join(c.to_bytes(4, "big") for c in self.cells)
        if self.kind == "string":
            return self.text.encode("utf-8") + b"\0"
        return self.data


@attrs.frozen
class Prop:
    name: str
    segments: tuple[Segment, ...]

    @property
    def value(self) -> bytes:
        return b"".join(s.encode() for s in self.segments)


@attrs.frozen
class Node:
    """A node: its full name (`vty@71000001`), properties and subnodes, in tree order.
    `comment` says where it comes from (DTS only)."""

    name: str
    props: tuple[Prop, ...] = ()
    children: tuple[Node, ...] = ()
    comment: str = ""

    def walk(self, path: str = "") -> Iterator[tuple[str, Node]]:
        here = path.rstrip("/") + "/" + self.name if path else "/"
        yield here, self
        for child in self.children:
            yield from child.walk(here)


# ---- DTB ---------------------------------------------------------------------------------
def _grow(fdt: libfdt.Fdt, call: Callable[[], T]) -> T:
    """Run a libfdt call, doubling the buffer while it says there is no space."""
    import libfdt

    while True:
        try:
            return call()
        except libfdt.FdtException as exc:
            if exc.err != -libfdt.NOSPACE:
                raise
            fdt.resize(fdt.totalsize() * 2)


def dtb(root: Node) -> bytes:
    import libfdt

    fdt = libfdt.Fdt.create_empty_tree(1 << 16)
    nodes = list(root.walk())

    def add_node(path: str, name: str) -> None:
        _grow(fdt, lambda: fdt.add_subnode(fdt.path_offset(path), name))

    def set_prop(path: str, name: str, value: bytes) -> None:
        _grow(fdt, lambda: fdt.setprop(fdt.path_offset(path), name, value))

    # 1. every node, subnodes last to first (add_subnode puts a node before its siblings)
    for path, node in nodes:
        for child in reversed(node.children):
            add_node(path, child.name)
    # 2. the strings block in dtc's order: each name at its first use in tree order
    scratch = "mschema-strings"
    add_node("/", scratch)
    for _path, node in nodes:
        for prop in node.props:
            set_prop("/" + scratch, prop.name, b"")
    fdt.del_node(fdt.path_offset("/" + scratch))
    # 3. the values, each node's last to first (setprop puts a new property first); each
    # first as zeros to its aligned length, so its padding is zeros as dtc writes it
    for path, node in nodes:
        for prop in reversed(node.props):
            value = prop.value
            set_prop(path, prop.name, bytes(-(-len(value) // 4) * 4))
            set_prop(path, prop.name, value)
    fdt.pack()
    return bytes(fdt.as_bytearray())


def read_dtb(data: bytes) -> Node:
    """A DTB as a `Node` tree; every value is one `bytes` segment."""
    import libfdt

    fdt = libfdt.Fdt(bytearray(data))

    def node(offset: int, name: str) -> Node:
        props = []
        p = fdt.first_property_offset(offset, quiet=(libfdt.NOTFOUND,))
        while p >= 0:
            prop = fdt.get_property_by_offset(p)
            props.append(Prop(prop.name, (Segment("bytes", data=bytes(prop)),)))
            p = fdt.next_property_offset(p, quiet=(libfdt.NOTFOUND,))
        children = []
        c = fdt.first_subnode(offset, quiet=(libfdt.NOTFOUND,))
        while c >= 0:
            children.append(node(c, fdt.get_name(c)))
            c = fdt.next_subnode(c, quiet=(libfdt.NOTFOUND,))
        return Node(name, tuple(props), tuple(children))

    return node(0, "")


# ---- DTS ---------------------------------------------------------------------------------
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() and ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _segment(s: Segment) -> str:
    if s.kind == "cells":
        return "<" + " ".join(f"{c:#x}" for c in s.cells) + ">"
    if s.kind == "string":
        return _string(s.text)
    return "[" + " ".join(f"{b:02x}" for b in s.data) + "]"


def _dts_node(node: Node, depth: int, out: list[str]) -> None:
    tab = "\t" * depth
    if node.comment:
        out.append(f"{tab}/* {node.comment} */")
    out.append(f"{tab}{node.name or '/'} {{")
    for prop in node.props:
        values = [_segment(s) for s in prop.segments if s.kind == "string" or s.encode()]
        line = f"{tab}\t{prop.name}"
        out.append(f"{line} = {', '.join(values)};" if values else f"{line};")
    for child in node.children:
        out.append("")
        _dts_node(child, depth + 1, out)
    out.append(f"{tab}}};")


def dts(root: Node, header: str = "") -> str:
    out = ["/dts-v1/;"]
    if header:
        out += ["", *(f"// {line}" if line else "//" for line in header.splitlines())]
    out.append("")
    _dts_node(root, 0, out)
    return "\n".join(out) + "\n"
