"""The resolved model: bus kinds, device types and machine schemas with every name looked
up, every value typed and `extends` flattened. Built by `resolve`; read by `expand`, `lint`
and the emitters. Frozen all the way down; spans are kept (eq=False) for diagnostics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, Union

import attrs

from compiler.base import backends
from compiler.base.diagnostics import Collector, quote_list
from compiler.base.notations import AddressSpace
from compiler.base.source import Span
from compiler.lang.ast import FdtItem
from compiler.lang.expr import Env, Expr, Scalar, holds

# The QEMU release a spec targets when it names none: what Debian 12 ships (CONTRACT). A
# family name (`pc-q35`) means its newest version this release has.
DEFAULT_RELEASE = "7.2"

_span = attrs.field(eq=False, repr=False)

BACKEND_KINDS = backends.KINDS  # `link NAME -> KIND`: the registry's kinds

_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
# The words QEMU takes for a bool machine option (`-machine q35,sata=on`), any case.
OPTION_WORDS = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


def is_mac(text: object) -> bool:
    """Six hex bytes with colons: `52:54:00:12:34:56`."""
    return isinstance(text, str) and _MAC.fullmatch(text) is not None


def is_multicast_mac(text: str) -> bool:
    """The lowest bit of the first byte: a NIC never receives frames sent to such an address."""
    return bool(int(text[:2], 16) & 1)


# the most values of a bounded int that lint enumerates (u8 and wider are not enumerated)
DOMAIN_LIMIT = 64


@attrs.frozen
class ValueType:
    """The type of a property or option: bool, int (with bounds), str, mac, size, enum."""

    # `backend`: the id of a backend of kind `members[0]` (or "", none)
    kind: Literal["bool", "int", "str", "mac", "size", "enum", "backend"]
    lo: int | None = None
    hi: int | None = None
    members: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "enum":
            return "one of " + ", ".join(f"`{m}`" for m in self.members)
        if self.kind == "int" and self.lo is not None:
            return f"an integer in {self.lo}..{self.hi}"
        if self.kind == "backend":
            return f"the id of a `{self.members[0]}` backend, or \"\""
        return {"bool": "`true` or `false`", "int": "an integer", "str": "a string",
                "mac": "a MAC address string", "size": "a size in bytes"}.get(self.kind,
                                                                              self.kind)

    def check(self, value: object) -> bool:
        """Is `value` (already a bool, int or str) one of this type's values? The one place
        that says so, for the schemas' literals, the spec's properties and QEMU's answers."""
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind in ("int", "size"):
            return (isinstance(value, int) and not isinstance(value, bool)
                    and (self.lo is None or self.lo <= value)
                    and (self.hi is None or value <= self.hi))
        if self.kind in ("str", "backend"):
            return isinstance(value, str)
        if self.kind == "mac":
            return is_mac(value)
        return isinstance(value, str) and value in self.members

    def parse(self, text: str) -> Scalar | None:
        """A value written as text (`--option K=V`, a machine option QEMU shows), or None
        when the text is not one of this type's values."""
        value: Scalar | None = text
        if self.kind == "bool":
            value = OPTION_WORDS.get(text.lower())
        elif self.kind in ("int", "size"):
            try:
                value = int(text, 0)
            except ValueError:
                return None
        return value if value is not None and self.check(value) else None

    def domain(self) -> tuple[Scalar, ...] | None:
        """All values, for the finite types lint enumerates: bool, enum, and an int whose
        bounds hold at most `DOMAIN_LIMIT` values (`int(2..3)`, arm virt's gic-version)."""
        if self.kind == "bool":
            return (False, True)
        if self.kind == "enum":
            return self.members
        if (self.kind == "int" and self.lo is not None and self.hi is not None
                and self.hi - self.lo < DOMAIN_LIMIT):
            return tuple(range(self.lo, self.hi + 1))
        return None


@attrs.frozen
class BusKind:
    name: str
    qtree: str
    address: AddressSpace
    hotplug: bool  # may devices be hot-plugged onto buses of this kind (unless one says)
    doc: str
    span: Span = _span


@attrs.frozen
class PropSpec:
    name: str
    type: ValueType
    default: Scalar | None
    unique: str | None  # the group whose devices never share a value
    span: Span = _span
    derived: bool = attrs.field(default=False, kw_only=True)  # QEMU computes it when unset
    # the value names a guest NUMA node (`-numa node`, the machine's `numa`); the default is
    # QEMU's "none" (pxb-pcie's numa_node: 128)
    numa_node: bool = attrs.field(default=False, kw_only=True)
    unique_per_bus: bool = attrs.field(default=False, kw_only=True)  # on one bus only
    # the first QEMU release whose device type has the prop ("" : every release), and the
    # first that no longer has it ("": none)
    since: str = attrs.field(default="", kw_only=True)
    removed: str = attrs.field(default="", kw_only=True)
    # (release, default): the default QEMU gives from that release on, oldest first
    changes: tuple[tuple[str, Scalar], ...] = attrs.field(default=(), kw_only=True)

    def exists_in(self, release: str) -> bool:
        """Does QEMU `release` ("7.2") have this prop?"""
        return _not_after(self.since, release) and not (
            self.removed and _not_after(self.removed, release))

    def default_in(self, release: str) -> Scalar | None:
        """The default QEMU `release` gives the prop: the latest `changed` value up to that
        release, else the declared default."""
        value = self.default
        for changed, new in self.changes:
            if _not_after(changed, release):
                value = new
        return value


@attrs.frozen
class LinkSpec:
    name: str
    backend: str
    optional: bool
    writable: bool
    span: Span = _span


@attrs.frozen
class Plug:
    bus: str
    tag: str | None = None


@attrs.frozen
class BusBinding:
    """A bus that an instance provides: its kind, name, usable addresses, and the devices on
    it: `children` come with the device type (ids relative to the owner), `devices` are
    placed by the machine schema (ids as written)."""

    kind: str
    name: str
    address: AddressSpace
    children: tuple[Instance, ...]
    devices: tuple[Instance, ...]
    span: Span = _span
    # a machine's word on hot-plug onto this bus: (value, condition) of its `hotplug V when
    # COND`; None: as the device type's bus and the bus kind say
    hotplug: tuple[bool, Expr | None] | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class Instance:
    """A device the schema places itself (machine devices; children in device types)."""

    id: str
    type: str
    address: tuple[int, ...] | None
    condition: Expr | None
    props: tuple[tuple[str, Scalar], ...]
    buses: tuple[BusBinding, ...]
    span: Span = _span
    # props written `NAME = (EXPR)`: evaluated over the options and facts at expand
    computed: tuple[tuple[str, Expr], ...] = attrs.field(default=(), kw_only=True)


@attrs.frozen
class BusTemplate:
    """A bus a device type provides. `name` may use `{id}` (the nearest QEMU id) and `{n}`."""

    kind: str
    name: str
    count: int
    address: AddressSpace
    children: tuple[Instance, ...]
    hotplug: bool | None  # None: as the bus kind says
    span: Span = _span

    def names(self, qemu_id: str) -> tuple[str, ...]:
        return tuple(self.name.format(id=qemu_id, n=n) for n in range(self.count))


@attrs.frozen
class DeviceType:
    name: str
    plugs: tuple[Plug, ...]
    hotplug: bool
    internal: bool
    multifunction: bool
    props: Mapping[str, PropSpec]
    links: Mapping[str, LinkSpec]
    buses: tuple[BusTemplate, ...]
    requires: tuple[str, ...]
    provides: tuple[str, ...]
    fdt: tuple[tuple[str, Scalar], ...]  # the `NAME = value` variables of its fdt block
    doc: str
    span: Span = _span
    # every item of its fdt blocks, names checked (`emit/fdt.py` evaluates them)
    fdt_items: tuple[FdtItem, ...] = ()
    # created only by a machine's board code (QEMU: not user-creatable): never by a spec
    machine_only: bool = attrs.field(default=False, kw_only=True)
    # the type of the system-bus device QEMU's qtree shows this device's buses under
    qtree_parent: str | None = attrs.field(default=None, kw_only=True)
    # the first QEMU release that has the type ("": every release)
    since: str = attrs.field(default="", kw_only=True)

    def exists_in(self, release: str) -> bool:
        """Does QEMU `release` ("7.2") have this device type?"""
        return _not_after(self.since, release)

    def plugs_into(self, bus_kind: str) -> Plug | None:
        for plug in self.plugs:
            if plug.bus == bus_kind:
                return plug
        return None


@attrs.frozen
class OptionSpec:
    name: str
    type: ValueType
    default: Scalar
    span: Span = _span


@attrs.frozen
class Implementation:
    """How a loose kind (disk, nic, …) becomes a device type, chosen by one of its keys."""

    kind: str
    key: str
    default: str
    cases: Mapping[str, str]
    case_spans: Mapping[str, Span] = attrs.field(eq=False, repr=False)
    span: Span = _span


@attrs.frozen
class Provider:
    bus: str
    device: str
    span: Span = _span


@attrs.frozen
class Check:
    name: str
    condition: Expr
    message: str
    span: Span = _span


@attrs.frozen
class CompatProp:
    device: str
    prop: str
    value: Scalar
    span: Span = _span


@attrs.frozen
class Quirk:
    """A version-dependent behaviour of the machine type that is neither an option nor a
    device (QEMU's machine-class flags, e.g. the memory map); inherited, overridden."""

    name: str
    value: Scalar
    span: Span = _span


@attrs.frozen
class Container:
    """Where the allocator adds a device that holds others: a type, on which bus, which
    slots (positions are packed as the functions of a slot, then the next slot)."""

    device: str
    bus: str
    slots: tuple[int, int]
    # `inner-slots LO..HI`: the slots of the container's bus its devices take (None: all)
    inner: tuple[int, int] | None = None


@attrs.frozen
class Placement:
    port_device: str | None = None
    port_bus: str | None = None
    port_slots: tuple[int, int] | None = None
    spare_ports: int = 0
    overflow: tuple[Container, ...] = ()
    vio_base: int | None = None
    span: Span | None = attrs.field(default=None, eq=False, repr=False)
    # numbering of the added ports (a style's `chassis-from`, `port-number slot-function`):
    # None / False leave them to `unique` (the lowest free value)
    chassis_from: int | None = None
    port_by_address: bool = False
    # `put TYPE, … at ADDR on "BUS"`: the first such spec device without a place goes there
    put_first: tuple[PutFirst, ...] = ()
    # `bridge DEVICE for TYPE, …`: those endpoints share one DEVICE behind the first port
    bridge: str | None = None
    bridge_slots: tuple[int, int] = (0, 31)
    bridged: tuple[str, ...] = ()
    # `bridge-function N for TYPE, …`: on the shared bridge, those take function N of their slot
    functions: tuple[tuple[str, int], ...] = ()


@attrs.frozen
class FdtRename:
    """`fdt name TYPE = …`: a device type whose node this machine names itself."""

    type: str
    span: Span = _span


@attrs.frozen
class PlacementCase:
    """`placement when COND { … }`: the placement under the machine options COND holds for
    (options only, so that the same machine always places alike)."""

    condition: Expr
    placement: Placement
    span: Span = _span


@attrs.frozen
class PutFirst:
    devices: tuple[str, ...]
    addr: str
    bus: str


@attrs.frozen
class MachineSchema:
    name: str
    family: str  # the CONTRACT's schema name; versions of one family share it
    aliases: tuple[str, ...]
    arch: str
    binary: str
    qemu_machine: str
    extends: str | None
    options: Mapping[str, OptionSpec]
    devices: tuple[Instance, ...]
    implementations: Mapping[str, Implementation]
    providers: Mapping[str, Provider]
    checks: tuple[Check, ...]
    compat: tuple[CompatProp, ...]
    placement: Placement
    default_memory: int
    doc: str
    span: Span = _span
    # the root node of its device tree (inherited through `extends` when it has none)
    fdt: tuple[FdtItem, ...] = ()
    # `quirk` statements, in declaration order (an override keeps its parent's place)
    quirks: tuple[Quirk, ...] = ()
    # device types whose device tree items differ on this machine (`fdt edit TYPE`), by
    # name: they replace the type's own `fdt_items` here and on machines extending it
    device_fdt: tuple[tuple[str, tuple[FdtItem, ...]], ...] = ()
    # `since`: the first QEMU release that has this machine version ("8.0"); "" where the
    # schema names none (every release mschema targets has it). Never inherited.
    since: str = ""
    # named placement styles (`placement NAME { … }`) a spec selects with `placement = NAME`
    placement_styles: tuple[tuple[str, Placement], ...] = ()
    # `placement when COND { … }`, in the order written: the first whose condition holds
    # under the machine's options replaces `placement` (`placed_under`)
    placement_cases: tuple[PlacementCase, ...] = ()
    # the device types whose nodes it names (`fdt name`), its parents' included: their
    # items in `device_fdt` carry the name
    fdt_renamed: tuple[FdtRename, ...] = ()

    def placements(self) -> tuple[Placement, ...]:
        """Its own placement and those of its `placement when` cases (what lint checks)."""
        return (self.placement, *(c.placement for c in self.placement_cases))

    def placed_under(self, options: Mapping[str, Scalar]) -> MachineSchema:
        """This machine with the placement its `options` select: the first `placement when`
        whose condition holds, else its own `placement`."""
        if not self.placement_cases:
            return self
        env = Env({**{n: o.default for n, o in self.options.items()}, **options})
        chosen = next((c.placement for c in self.placement_cases
                       if holds(c.condition, env)), self.placement)
        return attrs.evolve(self, placement=chosen, placement_cases=())

    def fdt_items_of(self, dtype: DeviceType) -> tuple[FdtItem, ...]:
        """`dtype`'s device tree items on this machine."""
        return dict(self.device_fdt).get(dtype.name, dtype.fdt_items)

    def runs_on(self, release: str) -> bool:
        """Does QEMU `release` ("7.2") have this machine version?"""
        return _not_after(self.since, release)

    def release_for(self, target: str = "") -> str:
        """The QEMU release a machine of this version is compiled for: the target a spec or
        blob names, else the release mschema targets (`DEFAULT_RELEASE`) or, for a version
        that release lacks, the version's own (`since`): pc-q35-10.0 → "10.0"."""
        if target:
            return target
        return DEFAULT_RELEASE if self.runs_on(DEFAULT_RELEASE) else self.since


@attrs.frozen
class Library:
    """Everything known after resolving a set of files."""

    buses: Mapping[str, BusKind]
    devices: Mapping[str, DeviceType]
    machines: Mapping[str, MachineSchema]

    def machine(self, name: str, release: str = DEFAULT_RELEASE) -> MachineSchema | None:
        """By exact name or alias; a family name means its newest version that QEMU
        `release` has (by default the release mschema targets, `DEFAULT_RELEASE`)."""
        if name in self.machines:
            return self.machines[name]
        for m in self.machines.values():
            if name in m.aliases:
                return m
        versions = [m for m in self.machines.values() if m.family == name]
        return max((m for m in versions if m.runs_on(release)),
                   key=lambda m: _version(m.name), default=None)

    def names(self) -> list[str]:
        """Every name `machine` takes, for diagnostics."""
        names = {*self.machines, *(m.family for m in self.machines.values())}
        names.update(a for m in self.machines.values() for a in m.aliases)
        return sorted(names)

    def machine_or_error(self, name: str, span: Span, diags: Collector,
                         release: str = DEFAULT_RELEASE) -> MachineSchema:
        """`machine(name, release)`; an unknown name (written at `span`) is E0204, raised
        with all that `diags` holds."""
        found = self.machine(name, release)
        if found is None:
            diags.error("E0204", f"unknown machine `{name}`", span,
                        notes=[f"expected one of {quote_list(self.names())}"])
            diags.check()
            raise AssertionError("unreachable: diags holds an error")
        return found


def release_key(release: str) -> tuple[int, int] | None:
    """`"10.0"` → (10, 0), for ordering releases; None unless MAJOR.MINOR."""
    major, dot, minor = release.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()) or len(major) > 3 or len(minor) > 3:
        return None
    return int(major), int(minor)


def _not_after(since: str, release: str) -> bool:
    """Is `since` ("8.0"; "" for always) no later than `release`?"""
    have, want = release_key(since), release_key(release)
    return have is None or want is None or have <= want


def _version(name: str) -> tuple[int, ...]:
    """`pc-q35-7.2` → (7, 2): the dotted numbers at the end of a machine name."""
    tail = name.rsplit("-", 1)[-1]
    return tuple(int(p) for p in tail.split(".") if p.isdigit())


Decl = Union[BusKind, DeviceType, MachineSchema]
