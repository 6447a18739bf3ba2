"""The flattened device tree of a precise machine: a pure function of the tree and of the
`fdt { … }` declarations of its machine schema and device types.

What the nodes are, their names, properties and values is data: the machine's `fdt` block
is the root node (with `children TYPE` marking where device nodes go among its static
nodes), a device type's block is the node of each device of that type, and `each KIND { … }`
in a device's block is the template of every device node on its KIND buses and below
(`own` marks where the device's own items go). This module only evaluates them: variables
(`let`, `pass`, the device's props and address), expressions, loops, and generic mechanics
(cells, strings, a PCI `reg` from its BAR list, PCI bus numbering, sorting by unit
address). Problems found while evaluating are E1901 at the declaration.

`fdt_out.py` encodes the result as DTB (libfdt) or DTS.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Union

import attrs

from compiler.base import notations, settings
from compiler.base.diagnostics import CompileError, error
from compiler.base.source import Span
from compiler.build import tree
from compiler.emit.fdt_out import Node, Prop, Segment
from compiler.lang import ast, model
from compiler.lang.resolve.fdt_edit import NODE_NAME

Val = Union[int, bool, str, bytes, tuple[object, ...]]
Scope = MutableMapping[str, object]
CELL_MASK = 0xFFFFFFFF


class FdtError(Exception):
    def __init__(self, span: Span | None, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.span = span
        self.message = message
        self.help = help


# ---- the node being built (props evaluated once the whole tree stands) ------------------
class _Node:
    def __init__(self, name: str, parent: _Node | None, comment: str = "",
                 qom: str = "") -> None:
        self.name = name
        self.parent = parent
        self.comment = comment
        self.qom = qom  # the QOM type of the device it describes
        self.props: list[Callable[[], Prop | None]] = []
        self.children: list[_Node] = []

    def path(self) -> str:
        if self.parent is None:
            return "/"
        return self.parent.path().rstrip("/") + "/" + self.name

    def walk(self) -> Iterator[_Node]:
        yield self
        for c in self.children:
            yield from c.walk()

    def freeze(self) -> Node:
        props = tuple(p for p in (thunk() for thunk in self.props) if p is not None)
        names = [p.name for p in props]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise FdtError(None, f"property `{name}` is set twice in "
                               f"`{self.path()}`")
        return Node(self.name, props, tuple(c.freeze() for c in self.children), self.comment)


@attrs.frozen
class _Template:
    each: ast.FdtEach


@attrs.frozen
class _Ctx:
    """What a device below inherits: `pass`ed variables and templates by bus kind."""

    passes: Mapping[str, object]
    templates: Mapping[str, _Template]


# ---- generic functions ---------------------------------------------------------------------
def _log2ceil(x: int) -> int:
    return max(0, (x - 1).bit_length())


def _pow2_blocks(start: int, end: int) -> tuple[object, ...]:
    """[start, end) as naturally aligned power-of-two (base, size) blocks, largest first."""
    blocks: list[tuple[int, int]] = []
    while start < end:
        size = 1 << ((end - start).bit_length() - 1)
        if start:
            size = min(size, start & -start)
        blocks.append((start, size))
        start += size
    return tuple(blocks)


def _mac_bytes(mac: object) -> bytes:
    return bytes(int(p, 16) for p in str(mac).split(":"))


def _pci_reg(bus: int, devfn: int, bars: Sequence[object]) -> tuple[object, ...]:
    """The `reg` of a PCI function (IEEE 1275 PCI binding): its config space, then one
    entry per BAR given as (register, space 1 io / 2 mem32 / 3 mem64, size) triples."""
    hi = (bus << 16) | (devfn << 8)
    cells: list[object] = [hi, 0, 0, 0, 0]
    if len(bars) % 3:
        raise ValueError("the BAR list is (register, space, size) triples")
    for i in range(0, len(bars), 3):
        reg, space, size = (int(str(v), 0) if isinstance(v, str) else int(v)  # type: ignore[call-overload]
                            for v in bars[i:i + 3])
        cells += [(space << 24) | hi | reg, 0, 0, size >> 32, size & CELL_MASK]
    return tuple(cells)


def _unit(notation: str, addr: notations.Address | None) -> tuple[str, tuple[int, ...]]:
    """The unit address of a device node (IEEE 1275: PCI `slot[,fn]`, VIO the reg), and
    a key that sorts it numerically."""
    rules = notations.get(notation)
    if addr is None or not rules.addressed:
        return "", ()
    return rules.fdt_unit(addr.value), rules.fdt_key(addr.value)


def _address_vars(notation: str, addr: notations.Address | None) -> dict[str, object]:
    rules = notations.get(notation)
    if addr is None or not rules.addressed:
        return {}
    return rules.fdt_vars(addr.value)


def _pci_bus_numbers(root: tree.Bus) -> dict[str, int]:
    """Bus numbers as firmware (and QEMU's sPAPR PHB) enumerate them: each PCI hierarchy's
    root bus is 0, bridges' secondary buses are numbered depth first by ascending devfn."""
    numbers: dict[str, int] = {}

    def hierarchy(bus: tree.Bus) -> None:
        counter = [0]
        numbers[bus.name] = 0

        def below(b: tree.Bus) -> None:
            for d in sorted(b.devices, key=lambda d: _unit(b.notation, d.addr)[1]):
                for child in d.buses:
                    if notations.get(child.notation).pci_hierarchy:
                        counter[0] += 1
                        numbers[child.name] = counter[0]
                        below(child)

        below(bus)

    def walk(bus: tree.Bus, in_pci: bool) -> None:
        for d in bus.devices:
            for child in d.buses:
                pci = notations.get(child.notation).pci_hierarchy
                if pci and not in_pci:
                    hierarchy(child)
                walk(child, in_pci or pci)

    walk(root, notations.get(root.notation).pci_hierarchy)
    return numbers


# ---- the builder -------------------------------------------------------------------------
class _Expressions:
    """The values of fdt expressions, cells and strings in a scope. `has`, `count`,
    `first-path` and `boot-list` read the machine's devices and, lazily, the nodes built."""

    def __init__(self, devices: Sequence[tree.Device], *, first_path: Callable[[str], str],
                 boot_list: Callable[[], str]) -> None:
        self.devices = devices
        self.first_path = first_path
        self.boot_list = boot_list

    def eval(self, e: ast.Fx, scope: Mapping[str, object]) -> object:
        if isinstance(e, (ast.FxInt, ast.FxBool)):
            return e.value
        if isinstance(e, ast.FxStr):
            return self.text(e, scope)
        if isinstance(e, ast.FxName):
            if e.name not in scope:
                raise FdtError(e.span, f"unknown variable `{e.name}`")
            return scope[e.name]
        if isinstance(e, ast.FxNot):
            return not self.eval(e.operand, scope)
        if isinstance(e, ast.FxCall):
            return self.call(e, scope)
        if e.op == "and":
            return bool(self.eval(e.left, scope)) and bool(self.eval(e.right, scope))
        if e.op == "or":
            return bool(self.eval(e.left, scope)) or bool(self.eval(e.right, scope))
        left, right = _force(self.eval(e.left, scope)), _force(self.eval(e.right, scope))
        if e.op == "==":
            return left == right
        if e.op == "!=":
            return left != right
        a, b = self.number(left, e.left), self.number(right, e.right)
        ops: dict[str, Callable[[int, int], object]] = {
            "<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y,
            ">=": lambda x, y: x >= y, "+": lambda x, y: x + y, "-": lambda x, y: x - y,
            "*": lambda x, y: x * y, "/": lambda x, y: x // y, "%": lambda x, y: x % y,
            "<<": lambda x, y: x << y, ">>": lambda x, y: x >> y, "|": lambda x, y: x | y,
            "&": lambda x, y: x & y}
        try:
            return ops[e.op](a, b)
        except ZeroDivisionError:
            raise FdtError(e.span, "division by zero") from None

    def number(self, v: object, e: ast.Fx) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise FdtError(e.span, f"`{_show(v)}` is not a number")
        return v

    def call(self, e: ast.FxCall, scope: Mapping[str, object]) -> object:
        f = e.func.text
        if f == "defined":
            arg = e.args[0]
            if not isinstance(arg, ast.FxName):
                raise FdtError(e.span, "`defined` takes a variable name")
            return arg.name in scope
        if f in ("has", "count", "first-path"):
            arg = e.args[0]
            if not isinstance(arg, ast.FxName):
                raise FdtError(e.span, f"`{f}` takes a device type name")
            if f == "has":
                return any(d.type == arg.name for d in self.devices)
            if f == "count":
                return sum(d.type == arg.name for d in self.devices)
            return _Lazy(lambda: self.first_path(arg.name))
        if f == "boot-list":
            return _Lazy(self.boot_list)
        args = [self.eval(a, scope) for a in e.args]
        try:
            if f == "u64":
                v = self.number(args[0], e.args[0])
                return ((v >> 32) & CELL_MASK, v & CELL_MASK)
            if f in ("min", "max"):
                nums = [self.number(a, x) for a, x in zip(args, e.args, strict=True)]
                return min(nums) if f == "min" else max(nums)
            if f == "log2ceil":
                return _log2ceil(self.number(args[0], e.args[0]))
            if f == "pow2floor":
                v = self.number(args[0], e.args[0])
                return 1 << (v.bit_length() - 1) if v > 0 else 0
            if f == "pow2-blocks":
                return _pow2_blocks(self.number(args[0], e.args[0]),
                                    self.number(args[1], e.args[1]))
            if f == "reversed":
                if not isinstance(args[0], tuple):
                    raise FdtError(e.span, "`reversed` takes a list")
                return tuple(reversed(args[0]))
            if f == "mac-bytes":
                return _mac_bytes(args[0])
            if f == "pci-reg":
                bars = args[2]
                if not isinstance(bars, tuple):
                    raise FdtError(e.args[2].span, "the BAR list must be cells `<…>`")
                return _pci_reg(self.number(args[0], e.args[0]),
                                self.number(args[1], e.args[1]), bars)
        except ValueError as exc:
            raise FdtError(e.span, f"`{f}`: {exc}") from None
        raise FdtError(e.func.span, f"unknown function `{f}`")

    def text(self, s: ast.FxStr, scope: Mapping[str, object]) -> str:
        out = []
        for part in s.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            v = _force(self.eval(part.expr, scope))
            try:
                out.append(format(v, part.format))
            except (ValueError, TypeError):
                raise FdtError(part.span, f"cannot format `{_show(v)}` as "
                               f"`{part.format}`") from None
        return "".join(out)

    def truth(self, when: ast.Fx | None, scope: Mapping[str, object]) -> bool:
        return when is None or bool(_force(self.eval(when, scope)))

    def loop(self, loop: ast.FdtFor | None, scope: Scope) -> Iterator[Scope]:
        if loop is None:
            yield scope
            return
        lo = self.eval(loop.lo, scope)
        if loop.hi is not None:
            values: Iterable[object] = range(self.number(lo, loop.lo),
                                             self.number(self.eval(loop.hi, scope), loop.hi) + 1)
        elif isinstance(lo, tuple):
            values = lo
        else:
            raise FdtError(loop.lo.span, f"cannot loop over `{_show(lo)}`")
        for v in values:
            if len(loop.names) == 1:
                yield ChainMap({loop.names[0].text: v}, scope)
                continue
            if not isinstance(v, tuple) or len(v) != len(loop.names):
                raise FdtError(loop.span, f"`{_show(v)}` does not have "
                               f"{len(loop.names)} parts")
            yield ChainMap({n.text: x for n, x in zip(loop.names, v, strict=True)}, scope)

    # -- values
    def cells(self, cells: Iterable[ast.Cell], scope: Scope) -> list[int]:
        out: list[int] = []
        for c in cells:
            if isinstance(c, ast.CellFor):
                for inner in self.loop(c.loop, scope):
                    out += self.cells(c.cells, inner)
                continue
            out += _to_cells(self.eval(c, scope), c.span)
        return out

    def segments(self, values: Iterable[ast.FdtValue], scope: Scope) -> tuple[Segment, ...]:
        out: list[Segment] = []
        for v in values:
            if isinstance(v, ast.FdtCells):
                out.append(Segment("cells", tuple(self.cells(v.cells, scope))))
            elif isinstance(v, ast.FdtString):
                out += [Segment("string", text=self.text(v.text, inner))
                        for inner in self.loop(v.loop, scope)]
            elif isinstance(v, ast.FdtBytes):
                out.append(Segment("bytes", data=bytes(v.values)))
            else:
                r = _force(self.eval(v, scope))
                if isinstance(r, str):
                    out.append(Segment("string", text=r))
                elif isinstance(r, bytes):
                    out.append(Segment("bytes", data=r))
                else:
                    out.append(Segment("cells", tuple(_to_cells(r, v.span))))
        return tuple(out)

    def let_value(self, item: ast.FdtLet, scope: Scope) -> object:
        if isinstance(item.value, ast.FdtCells):
            return tuple(self.cells(item.value.cells, scope))
        return self.eval(item.value, scope)


class _Builder:
    def __init__(self, m: tree.Machine, library: model.Library,
                 schema: model.MachineSchema) -> None:
        self.m = m
        self.library = library
        self.schema = schema
        self.bus_numbers = _pci_bus_numbers(m.root)
        self.devices = [d for _b, d, _n in tree.walk(m.root)]
        self.device_nodes: dict[str, _Node] = {}
        cpus = dict(m.cpus)
        self.machine_scope: dict[str, object] = {
            **dict(m.info.options),
            "cpus.count": cpus.get("count", 1),
            "cpus.maxcpus": cpus.get("maxcpus", cpus.get("count", 1)),
            "cpus.sockets": cpus.get("sockets", 1),
            "cpus.cores": cpus.get("cores", 1), "cpus.threads": cpus.get("threads", 1),
            "cpus.model": cpus.get("model", ""), "memory": dict(m.memory).get("size", 0),
            "uuid": m.uuid or settings.NO_UUID,
        }
        self.x = _Expressions(self.devices, first_path=self.first_path,
                              boot_list=self.boot_list)

    # -- lazily resolved values
    def first_path(self, qom: str) -> str:
        for n in self.root.walk():
            if n.qom == qom:
                return n.path()
        return ""

    def boot_list(self) -> str:
        boot = sorted((int(v), i, d.id) for i, d in enumerate(self.devices)
                      for k, v in d.props if k == "bootindex" and isinstance(v, int))
        return " ".join(self.device_nodes[ident].path() for _b, _i, ident in boot
                        if ident in self.device_nodes)

    # -- nodes
    def build(self) -> Node:
        self.root = _Node("", None)
        scope: Scope = ChainMap({}, self.machine_scope)
        self.lets(self.schema.fdt, scope)
        ctx = _Ctx(self.passes(self.schema.fdt, scope, {}), {})
        devices = self.device_children([self.m.root], ctx, self.root)
        self.items(self.root, self.schema.fdt, scope, (), devices)
        try:
            return self.root.freeze()
        except FdtError as exc:
            if exc.span is None:
                exc.span = self.schema.span
            raise

    def lets(self, items: Iterable[ast.FdtItem], scope: Scope) -> None:
        for item in items:
            if isinstance(item, ast.FdtProp):
                scope[item.name.text] = item.value.value
            elif isinstance(item, ast.FdtLet) and self.x.truth(item.when, scope):
                scope[item.name.text] = self.x.let_value(item, scope)

    def passes(self, items: Iterable[ast.FdtItem], scope: Scope,
               inherited: Mapping[str, object]) -> Mapping[str, object]:
        out = dict(inherited)
        for item in items:
            if isinstance(item, ast.FdtPass):
                out[item.name.text] = self.x.eval(item.value, scope)
        return out

    def items(self, node: _Node, items: Sequence[ast.FdtItem], scope: Scope,
              own: Sequence[ast.FdtItem], devices: list[tuple[tree.Device, _Node]],
              top: bool = True) -> None:
        """Add `items` to `node`: properties, static nodes, the device nodes at `children`
        (the rest at the end of the top call) and `own` items at `own`."""
        for item in items:
            if isinstance(item, ast.FdtSet):
                node.props.append(self.prop_thunk(item, scope))
            elif isinstance(item, ast.FdtNode):
                for inner in self.x.loop(item.loop, scope):
                    if not self.x.truth(item.when, inner):
                        continue
                    child = _Node(self.x.text(item.name, inner), node)
                    child_scope: Scope = ChainMap({}, inner)
                    self.lets(item.items, child_scope)
                    self.items(child, item.items, child_scope, (), [], top=False)
                    node.children.append(child)
            elif isinstance(item, ast.FdtOwn):
                self.items(node, own, scope, (), devices, top=False)
            elif isinstance(item, ast.FdtChildren):
                wanted = {t.text for t in item.types}
                for device, child in list(devices):
                    if not wanted or device.type in wanted:
                        node.children.append(child)
                        devices.remove((device, child))
        if top:
            node.children += [child for _d, child in devices]
            devices.clear()

    def prop_thunk(self, item: ast.FdtSet, scope: Scope) -> Callable[[], Prop | None]:
        def thunk() -> Prop | None:
            if not self.x.truth(item.when, scope):
                return None
            return Prop(item.name, self.x.segments(item.values, scope))

        def checked() -> Prop | None:
            try:
                return thunk()
            except FdtError as exc:
                if exc.span is None:
                    exc.span = item.span
                raise

        return checked

    def device_children(self, buses: Iterable[tree.Bus], ctx: _Ctx,
                        parent: _Node) -> list[tuple[tree.Device, _Node]]:
        """The nodes of the devices on `buses` (through devices that have none), in tree
        order, or sorted by unit address where their template says so."""
        out: list[tuple[tree.Device, _Node]] = []
        for bus in buses:
            template = ctx.templates.get(bus.kind)
            found: list[tuple[tuple[int, ...], tree.Device, _Node]] = []
            for device in bus.devices:
                for d, n in self.device(device, bus, ctx, template, parent):
                    found.append((_unit(bus.notation, d.addr)[1] if d is device else (),
                                  d, n))
            if template is not None and template.each.sorted:
                found.sort(key=lambda f: f[0])
            out += [(d, n) for _k, d, n in found]
        return out

    def device(self, device: tree.Device, bus: tree.Bus, ctx: _Ctx,
               template: _Template | None, parent: _Node
               ) -> list[tuple[tree.Device, _Node]]:
        dtype = self.library.devices.get(device.type)
        own = self.schema.fdt_items_of(dtype) if dtype else ()
        titems = template.each.items if template else ()
        if not own and not titems:
            return self.device_children(device.buses, ctx, parent)
        unit, _key = _unit(bus.notation, device.addr)
        local: dict[str, object] = {}
        if dtype:
            local.update({p.name: p.default for p in dtype.props.values()
                          if p.default is not None})
        local.update(dict(device.props))
        local.update(id=device.id, type=device.type, unit=unit, addr=str(device.addr or ""))
        # its place among its bus's devices in the precise tree, which is QEMU's creation
        # order (machine devices first, then the command line's)
        local["bus-index"] = next(i for i, d in enumerate(bus.devices) if d is device)
        local.update(_address_vars(bus.notation, device.addr))
        if notations.get(bus.notation).pci_hierarchy:
            local["bus"] = self.bus_numbers.get(bus.name, 0)
        scope: Scope = ChainMap(local, dict(ctx.passes), self.machine_scope)
        try:
            self.lets(titems, scope)
            self.lets(own, scope)
            passes = self.passes([*titems, *own], scope, ctx.passes)
        except FdtError as exc:
            exc.message += f" (in the node of `{device.id}`, a `{device.type}`)"
            raise
        templates = dict(ctx.templates)
        for item in own:
            if isinstance(item, ast.FdtEach):
                templates.update((k.text, _Template(item)) for k in item.kinds)
        child_ctx = _Ctx(passes, templates)
        if "name" not in scope:
            if template is not None:
                raise FdtError(device.why.span or template.each.span,
                               f"device type `{device.type}` has no device tree data",
                               help=f"give `{device.type}` an `fdt {{ name = … }}` block")
            return self.device_children(device.buses, child_ctx, parent)
        name = str(_force(scope["name"]))
        if not NODE_NAME.fullmatch(name):
            raise FdtError(device.why.span, f"`{name}` is not a device tree node name (the "
                           f"node of `{device.id}`, a `{device.type}`)",
                           help="a node name is 1 to 31 letters, digits and `,._+-`, a letter "
                           "first")
        node = _Node(f"{name}@{unit}" if unit else name, parent,
                     f"{device.id}: {device.type}", device.type)
        self.device_nodes[device.id] = node
        children = self.device_children(device.buses, child_ctx, node)
        if titems:
            self.items(node, titems, scope, own, children)
        else:
            self.items(node, own, scope, (), children)
        return [(device, node)]


class _Lazy:
    """A value known once the whole tree is built (a node's path)."""

    def __init__(self, get: Callable[[], object]) -> None:
        self.get = get


def _force(v: object) -> object:
    return v.get() if isinstance(v, _Lazy) else v


def _show(v: object) -> str:
    return v.hex() if isinstance(v, bytes) else str(v)


def _to_cells(v: object, span: Span) -> list[int]:
    v = _force(v)
    if isinstance(v, bool):
        return [int(v)]
    if isinstance(v, int):
        if not -(1 << 31) <= v <= CELL_MASK:
            raise FdtError(span, f"`{v:#x}` does not fit a cell",
                           help="split it with `u64(…)`, or mask it")
        return [v & CELL_MASK]
    if isinstance(v, tuple):
        return [c for x in v for c in _to_cells(x, span)]
    raise FdtError(span, f"`{_show(v)}` is not a number")


def find_schema(library: model.Library, info: tree.MachineInfo) -> model.MachineSchema:
    for schema in library.machines.values():
        if schema.qemu_machine == info.qemu and schema.family == info.schema:
            return schema
    found = library.machine(info.qemu)
    if found is None:
        raise KeyError(info.qemu)
    return found


def build(m: tree.Machine, library: model.Library | None = None) -> Node:
    """The device tree of `m`; raises `CompileError` (E1901) where a declaration cannot be
    evaluated for it."""
    from compiler.lang import resolve

    library = library or resolve.load_library()
    schema = find_schema(library, m.info)
    try:
        return _Builder(m, library, schema).build()
    except FdtError as exc:
        span = exc.span or schema.span
        raise CompileError([error("E1901", exc.message, span, help=exc.help)]) from None


def dtb(m: tree.Machine) -> bytes:
    from compiler.emit import fdt_out

    return fdt_out.dtb(build(m))


def dts(m: tree.Machine) -> str:
    from compiler.emit import fdt_out
    from compiler.lang import resolve

    # the machine's `quirk dumpdtb` says whether QEMU hands its guests a device tree
    schema = find_schema(resolve.load_library(), m.info)
    handed = {q.name: q.value for q in schema.quirks}.get("dumpdtb") is True
    header = (f"{m.name or 'machine'}: {m.info.qemu}, as mschema describes it"
              + ("" if handed else
                 f"\n(a hardware description for tools: QEMU hands {m.info.arch} guests of "
                 f"`{m.info.qemu}` no device tree)"))
    return fdt_out.dts(build(m), header)
