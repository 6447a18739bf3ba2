"""The syntax tree of mschema files, exactly as written (no defaults, no lookups).

Built by `parse`; read by `resolve`. Every node carries its span (`eq=False`, so equality is
about content). Bodies stay tuples of statements in source order, so `resolve` can report
a repeated or misplaced statement at its own place.
"""

from __future__ import annotations

from typing import Literal, Union

import attrs

from compiler.base.source import Span

_span = attrs.field(eq=False, repr=False)


@attrs.frozen
class Name:
    text: str
    span: Span = _span


@attrs.frozen
class Value:
    kind: Literal["int", "str", "bool", "name"]
    value: int | str | bool
    span: Span = _span

    def show(self) -> str:
        if self.kind == "str":
            return f'"{self.value}"'
        if self.kind == "bool":
            return "true" if self.value else "false"
        return str(self.value)


@attrs.frozen
class Range:
    lo: int
    hi: int
    span: Span = _span


# ---- types -----------------------------------------------------------------------------
@attrs.frozen
class NamedType:
    name: Name
    span: Span = _span


@attrs.frozen
class EnumType:
    members: tuple[Name, ...]
    span: Span = _span


@attrs.frozen
class RangedType:
    name: Name
    range: Range
    span: Span = _span


TypeExpr = Union[NamedType, EnumType, RangedType]


# ---- expressions -----------------------------------------------------------------------
@attrs.frozen
class Ref:
    name: Name
    span: Span = _span


@attrs.frozen
class Literal_:
    value: Value
    span: Span = _span


@attrs.frozen
class Call:
    func: Name
    arg: Name
    span: Span = _span


@attrs.frozen
class Not:
    operand: Expr
    span: Span = _span


@attrs.frozen
class BoolOp:
    op: Literal["and", "or"]
    operands: tuple[Expr, ...]
    span: Span = _span


@attrs.frozen
class Compare:
    left: Expr
    op: str
    right: Expr
    span: Span = _span


Expr = Union[Ref, Literal_, Call, Not, BoolOp, Compare]


# ---- statements ------------------------------------------------------------------------
@attrs.frozen
class Doc:
    text: str
    span: Span = _span


@attrs.frozen
class Qtree:
    name: str
    span: Span = _span


@attrs.frozen
class FieldRange:
    field: Name
    range: Range
    tag: Name | None
    span: Span = _span


@attrs.frozen
class AddressDecl:
    notation: Name
    fields: tuple[FieldRange, ...]
    span: Span = _span


@attrs.frozen
class Plug:
    bus: Name
    tag: Name | None
    span: Span = _span


@attrs.frozen
class Plugs:
    plugs: tuple[Plug, ...]
    span: Span = _span


@attrs.frozen
class Hotplug:
    value: bool
    span: Span = _span
    condition: Expr | None = None  # a machine's bus block only: when it applies


@attrs.frozen
class Internal:
    span: Span = _span


@attrs.frozen
class Multifunction:
    span: Span = _span


@attrs.frozen
class MachineOnly:
    span: Span = _span


@attrs.frozen
class QtreeParent:
    type: Name
    span: Span = _span


@attrs.frozen
class PropDecl:
    name: Name
    type: TypeExpr
    default: Value | None
    unique: Name | None  # the group; `Name("")` when `unique` has no group
    derived: bool = attrs.field(default=False, kw_only=True)
    # `numa-node`: where it is written (the value names a guest NUMA node), or None
    numa_node: Span | None = attrs.field(default=None, kw_only=True, eq=False)
    per_bus: bool = attrs.field(default=False, kw_only=True)  # `unique … per-bus`
    span: Span = _span
    since: Since | None = attrs.field(default=None, kw_only=True)
    removed: Removed | None = attrs.field(default=None, kw_only=True)
    changes: tuple[PropChange, ...] = attrs.field(default=(), kw_only=True)


@attrs.frozen
class Removed:
    """`removed "10.0"`: the first QEMU release without the prop."""

    release: str
    span: Span = _span


@attrs.frozen
class PropChange:
    """`changed "10.0" = VALUE`: the default from that QEMU release on."""

    release: str
    value: Value
    span: Span = _span


@attrs.frozen
class LinkDecl:
    name: Name
    backend: Name
    optional: bool
    writable: bool
    span: Span = _span


@attrs.frozen
class Requires:
    names: tuple[Name, ...]
    span: Span = _span


@attrs.frozen
class Provides:
    names: tuple[Name, ...]
    span: Span = _span


@attrs.frozen
class FdtProp:
    """`NAME = value` in an fdt block: a variable of the node (`name`, `compatible`, …)."""

    name: Name
    value: Value
    span: Span = _span


# ---- fdt expressions (over the variables of a device tree node) ---------------------------
@attrs.frozen
class FxInt:
    value: int
    span: Span = _span


@attrs.frozen
class FxBool:
    value: bool
    span: Span = _span


@attrs.frozen
class FxInterp:
    """`{EXPR}` or `{EXPR:FORMAT}` inside an fdt string."""

    expr: Fx
    format: str
    span: Span = _span


@attrs.frozen
class FxStr:
    """A string with interpolations, as literal parts and `FxInterp`s."""

    parts: tuple[str | FxInterp, ...]
    span: Span = _span


@attrs.frozen
class FxName:
    name: str
    span: Span = _span


@attrs.frozen
class FxCall:
    func: Name
    args: tuple[Fx, ...]
    span: Span = _span


@attrs.frozen
class FxBin:
    """A binary operator: arithmetic, bitwise, comparison, `and`, `or`."""

    op: str
    left: Fx
    right: Fx
    span: Span = _span


@attrs.frozen
class FxNot:
    operand: Fx
    span: Span = _span


Fx = Union[FxInt, FxBool, FxStr, FxName, FxCall, FxBin, FxNot]


@attrs.frozen
class FdtFor:
    """`for NAME[, NAME] in LO..HI` (inclusive) or `in LIST`."""

    names: tuple[Name, ...]
    lo: Fx
    hi: Fx | None
    span: Span = _span


@attrs.frozen
class CellFor:
    """`(for … : CELL…)` inside `<…>`: the cells once per loop value."""

    loop: FdtFor
    cells: tuple[Cell, ...]
    span: Span = _span


Cell = Union[Fx, CellFor]


@attrs.frozen
class FdtCells:
    cells: tuple[Cell, ...]
    span: Span = _span


@attrs.frozen
class FdtString:
    text: FxStr
    loop: FdtFor | None
    span: Span = _span


@attrs.frozen
class FdtBytes:
    values: tuple[int, ...]
    span: Span = _span


FdtValue = Union[FdtCells, FdtString, FdtBytes, FxCall, FxName]


@attrs.frozen
class FdtSet:
    """`prop "NAME" [= VALUE, …] [when COND]`."""

    name: str
    values: tuple[FdtValue, ...]
    when: Fx | None
    span: Span = _span


@attrs.frozen
class FdtNode:
    """`node "NAME" [for …] [when COND] { … }`: a static child node."""

    name: FxStr
    loop: FdtFor | None
    when: Fx | None
    items: tuple[FdtItem, ...]
    span: Span = _span


@attrs.frozen
class FdtLet:
    name: Name
    value: FdtCells | Fx
    when: Fx | None
    span: Span = _span


@attrs.frozen
class FdtPass:
    name: Name
    value: Fx
    span: Span = _span


@attrs.frozen
class FdtEach:
    """`each KIND, … [sorted] { … }`: the template of device nodes on KIND buses below."""

    kinds: tuple[Name, ...]
    sorted: bool
    items: tuple[FdtItem, ...]
    span: Span = _span


@attrs.frozen
class FdtOwn:
    span: Span = _span


@attrs.frozen
class FdtChildren:
    """`children [TYPE, …]`: where device nodes go among the static ones."""

    types: tuple[Name, ...]
    span: Span = _span


FdtItem = Union[FdtProp, FdtSet, FdtNode, FdtLet, FdtPass, FdtEach, FdtOwn, FdtChildren]


@attrs.frozen
class FdtBlock:
    items: tuple[FdtItem, ...]
    span: Span = _span


@attrs.frozen
class FdtRef:
    """`prop "NAME"`, `node "NAME"` or `let NAME` in an `fdt edit`: the items of that kind
    and name (a node by its name as written, `{…}` included)."""

    kind: Literal["prop", "node", "let"]
    name: str
    span: Span = _span


@attrs.frozen
class FdtReplace:
    item: FdtItem
    span: Span = _span


@attrs.frozen
class FdtAdd:
    """`add [before|after REF] ITEM`."""

    where: Literal["before", "after", "end"]
    ref: FdtRef | None
    item: FdtItem
    span: Span = _span


@attrs.frozen
class FdtDelete:
    ref: FdtRef
    span: Span = _span


@attrs.frozen
class FdtIn:
    """`in "PATH" { … }`: the changes to the node at PATH (names as written, `/` between)."""

    path: str
    changes: tuple[FdtChange, ...]
    span: Span = _span


FdtChange = Union[FdtIn, FdtReplace, FdtAdd, FdtDelete]


@attrs.frozen
class FdtEdit:
    """`fdt edit [TYPE] { … }` in a machine: changes to the inherited root node, or to a
    device type's items on this machine."""

    type: Name | None
    changes: tuple[FdtChange, ...]
    span: Span = _span


@attrs.frozen
class FdtName:
    """`fdt name TYPE, … = VALUE` in a machine: the node name of those types' devices."""

    types: tuple[Name, ...]
    value: Fx
    span: Span = _span


@attrs.frozen
class PropSet:
    name: Name
    value: Value | Expr  # an Expr: written `(EXPR)`, computed when the machine is built
    span: Span = _span


@attrs.frozen
class Instance:
    """A device placed by the schema itself: `id: TYPE at ADDR when EXPR { ... }`."""

    id: Name | None
    type: Name
    address: Name | None
    condition: Expr | None
    body: tuple[PropSet | BusBlock, ...]
    span: Span = _span
    loop: InstFor | None = None  # `for I in LO..HI`: one instance per value


@attrs.frozen
class InstFor:
    var: Name
    lo: int
    hi: int
    span: Span = _span


@attrs.frozen
class BusBlock:
    kind: Name
    name: str | None
    name_span: Span | None = attrs.field(eq=False, repr=False)
    count: int | None
    items: tuple[FieldRange | Instance | Hotplug, ...]
    span: Span = _span


@attrs.frozen
class Family:
    name: Name
    span: Span = _span


@attrs.frozen
class Alias:
    names: tuple[Name, ...]
    span: Span = _span


@attrs.frozen
class Arch:
    name: Name
    span: Span = _span


@attrs.frozen
class Binary:
    path: str
    span: Span = _span


@attrs.frozen
class QemuMachine:
    name: str
    span: Span = _span


@attrs.frozen
class Since:
    """`since "8.0"`: the first QEMU release that has the machine version."""

    release: str
    span: Span = _span


@attrs.frozen
class DefaultMemory:
    size: str
    span: Span = _span


@attrs.frozen
class OptionDecl:
    name: Name
    type: TypeExpr
    default: Value | None
    span: Span = _span


@attrs.frozen
class Devices:
    instances: tuple[Instance, ...]
    span: Span = _span


@attrs.frozen
class ImplCase:
    value: Name
    device: Name
    span: Span = _span


@attrs.frozen
class Implement:
    kind: Name
    by: Name
    default: Name
    cases: tuple[ImplCase, ...]
    span: Span = _span


@attrs.frozen
class Provide:
    bus: Name
    device: Name
    span: Span = _span


@attrs.frozen
class Check:
    name: Name
    condition: Expr
    message: str
    span: Span = _span


@attrs.frozen
class Compat:
    device: Name
    prop: Name
    value: Value
    span: Span = _span


@attrs.frozen
class Quirk:
    """`quirk NAME = VALUE`: a version-dependent behaviour of the machine type."""

    name: Name
    value: Value
    span: Span = _span


@attrs.frozen
class Order:
    kinds: tuple[Name, ...]
    span: Span = _span


@attrs.frozen
class Ports:
    device: Name
    bus: str
    slots: Range
    span: Span = _span


@attrs.frozen
class Overflow:
    device: Name
    bus: str
    slots: Range
    span: Span = _span
    inner: Range | None = None  # `inner-slots LO..HI`: the bridge's slots its devices take


@attrs.frozen
class SparePorts:
    count: int
    span: Span = _span


@attrs.frozen
class VioBase:
    reg: int
    span: Span = _span


@attrs.frozen
class PciRoot:
    bus: str
    slots: Range
    span: Span = _span


@attrs.frozen
class ChassisFrom:
    first: int
    span: Span = _span


@attrs.frozen
class PortNumber:
    rule: Name
    span: Span = _span


@attrs.frozen
class PutFirst:
    devices: tuple[Name, ...]
    addr: str
    bus: str
    span: Span = _span


@attrs.frozen
class BridgeFor:
    device: Name
    slots: Range
    types: tuple[Name, ...]
    span: Span = _span


@attrs.frozen
class FunctionFor:
    function: int
    types: tuple[Name, ...]
    span: Span = _span


PlacementStmt = Union[Order, Ports, SparePorts, VioBase, PciRoot, Overflow, ChassisFrom,
                      PortNumber, PutFirst, BridgeFor, FunctionFor]


@attrs.frozen
class Placement:
    stmts: tuple[PlacementStmt, ...]
    span: Span = _span
    name: Name | None = None  # a style's name; None: the default placement
    condition: Expr | None = None  # `placement when COND`: under those options only


BusStmt = Union[Doc, Qtree, AddressDecl, "Hotplug"]
DeviceStmt = Union[
    Doc, Plugs, Hotplug, Internal, Multifunction, MachineOnly, PropDecl, LinkDecl, BusBlock,
    Requires, Provides, FdtBlock, QtreeParent, Since,
]
MachineStmt = Union[
    Doc, Family, Alias, Arch, Binary, QemuMachine, OptionDecl, Devices, Implement, Provide,
    Check, Compat, Placement, DefaultMemory, FdtBlock, Quirk, FdtEdit, FdtName, Since,
]


# ---- declarations ----------------------------------------------------------------------
@attrs.frozen
class UseDecl:
    path: str
    span: Span = _span


@attrs.frozen
class BusDecl:
    name: Name
    body: tuple[BusStmt, ...]
    span: Span = _span


@attrs.frozen
class DeviceDecl:
    name: Name
    body: tuple[DeviceStmt, ...]
    span: Span = _span


@attrs.frozen
class MachineDecl:
    name: Name
    extends: Name | None
    body: tuple[MachineStmt, ...]
    span: Span = _span


Decl = Union[UseDecl, BusDecl, DeviceDecl, MachineDecl]


@attrs.frozen
class Module:
    """One parsed file."""

    path: str
    decls: tuple[Decl, ...]
    span: Span = _span
