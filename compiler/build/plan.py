"""Loose spec items → planned devices and backends (`expand`'s spec half). Ends before
addresses: a `Planned` device knows its type, props and links, and optionally the bus and
address the user fixed; `address` places the rest.

Which device type implements an item is the schema's `implement` data; Python only maps
the CONTRACT's spec keys (file, network, backend, …) to QEMU backends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import attrs

from compiler.base.diagnostics import Collector, Label, quote_list
from compiler.base.source import Span
from compiler.build import tree
from compiler.lang import expr, model
from compiler.spec.loose import Item, LooseSpec, Value, describe, suggest

QEMU_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
Backend = tuple[tuple[str, tree.PropValue], ...]


@attrs.frozen
class Planned:
    id: str
    type: str
    origin: tree.Origin
    props: tuple[tuple[str, tree.PropValue], ...]
    backend: tuple[tuple[str, str], ...]
    bus: str | None
    addr: str | None
    why: tree.Provenance = attrs.field(eq=False)
    span: Span = attrs.field(eq=False, repr=False)


@attrs.frozen
class Plan:
    devices: tuple[Planned, ...]
    backends: tuple[tuple[str, Backend], ...]
    # QEMU's -global: "TYPE.PROPERTY" → value, for every device of TYPE
    globals: tuple[tuple[str, tree.PropValue], ...] = ()


def plan(schema: model.MachineSchema, library: model.Library, spec: LooseSpec,
         diags: Collector) -> Plan:
    devices: list[Planned] = []
    backends: list[tuple[str, Backend]] = []
    ids = _ids(schema, spec, diags)
    macs = _macs(spec)
    _unique_values(spec, diags)
    _unique_props(library, spec, diags)
    for item in spec.items:
        if item.kind == "pflash":  # the machine maps the chip; the spec gives its image
            backends.append((ids[(item.kind, item.index)], _flash_image(item)))
            continue
        planned = _item(schema, library, item, ids[(item.kind, item.index)], diags, backends,
                        macs)
        if planned is not None:
            devices.append(planned)
    return Plan(tuple(devices), tuple(backends), _globals(library, spec, diags))


def _flash_image(item: Item) -> Backend:
    """A `[[pflash]]`'s image, as a blockdev (read-only where the spec says)."""
    file = str(item.get("file"))
    body: dict[str, tree.PropValue] = {
        "kind": "blockdev", "file": file,
        "driver": item.get("format") or ("qcow2" if file.endswith(".qcow2") else "raw")}
    if item.get("readonly"):
        body["read-only"] = True
    return tuple(sorted(body.items()))


def _globals(library: model.Library, spec: LooseSpec, diags: Collector
             ) -> tuple[tuple[str, tree.PropValue], ...]:
    """`[globals]`: each key a stdlib device type and one of its declared props (split at
    the last dot: type names have dots, `cfi.pflash01`), each value of that prop's type."""
    found: dict[str, tree.PropValue] = {}
    for key, v in spec.globals.items():
        type_name, dot, prop = key.rpartition(".")
        if not dot or not type_name or not prop:
            diags.error("E1006", f"global `{key}` must be `TYPE.PROPERTY`", v.key_span,
                        help='e.g. `"ICH9-LPC.disable_s3" = 1`')
            continue
        dtype = library.devices.get(type_name)
        if dtype is None:
            diags.error("E0202", f"unknown device type `{type_name}`", v.key_span,
                        help=suggest(type_name, list(library.devices)))
            continue
        if _prop(dtype, prop, v, diags):
            found[key] = v.value
    return tuple(sorted(found.items()))


def check_span(condition: expr.Expr, spec: LooseSpec) -> Span:
    """Where the spec sets what a failed `check` reads: the first spec fact, option or item
    kind of `condition` that the spec writes; else its `machine` value."""
    def where(e: expr.Expr) -> Span | None:
        if isinstance(e, expr.Fact):
            return spec.fact_span(e.name)
        if isinstance(e, expr.Option):
            return spec.option_span(e.name)
        if isinstance(e, expr.Count):
            kind = [it for it in spec.items if it.kind == e.kind]
            return kind[-1].span if kind else None
        parts: tuple[expr.Expr, ...] = ()
        if isinstance(e, expr.Not):
            parts = (e.operand,)
        elif isinstance(e, (expr.And, expr.Or)):
            parts = e.operands
        elif isinstance(e, expr.Cmp):
            parts = (e.left, e.right)
        return next((s for s in map(where, parts) if s is not None), None)

    return where(condition) or spec.top["machine"].span


def _machine_ids(instances: tuple[model.Instance, ...], prefix: str = ""
                 ) -> dict[str, model.Instance]:
    """Every id the machine may give a device of its own, whatever its options."""
    found: dict[str, model.Instance] = {}
    for inst in instances:
        ident = f"{prefix}.{inst.id}" if prefix else inst.id
        found.setdefault(ident, inst)
        for b in inst.buses:
            found.update(_machine_ids(b.children, ident))
            found.update(_machine_ids(b.devices))
    return found


def _ids(schema: model.MachineSchema, spec: LooseSpec, diags: Collector
         ) -> dict[tuple[str, int], str]:
    """The id of every item: as given (checked: a QEMU identifier, unique, not one the
    machine uses), else its kind's prefix and index, skipping ids taken otherwise."""
    machine = _machine_ids(schema.devices)
    given: dict[str, Value] = {}
    for item in spec.items:
        v = item.fields.get("id")
        if v is None:
            continue
        if not QEMU_ID.match(v.value):
            diags.error("E1102", f"`{v.value}` is not a QEMU identifier", v.span,
                        help="start with a letter; use letters, digits, `-`, `_` and `.`")
        elif v.value in given:
            diags.error("E1103", f"id `{v.value}` is used twice", v.span,
                        labels=[Label(given[v.value].span, "first used here")])
        elif v.value in machine:
            inst = machine[v.value]
            diags.error("E1103", f"id `{v.value}` is taken by a device of `{schema.name}`",
                        v.span, labels=[Label(inst.span, f"`{schema.name}` names its "
                                              f"`{inst.type}` `{v.value}` here")],
                        help="choose another id (machine devices keep theirs, whatever the "
                        "options)")
        else:
            given[v.value] = v
    result: dict[tuple[str, int], str] = {}
    taken = set(given) | set(machine)
    counters: dict[str, int] = {}
    for item in spec.items:
        n = counters.get(item.kind, 0)
        counters[item.kind] = n + 1
        v = item.fields.get("id")
        if v is not None:
            result[(item.kind, item.index)] = v.value
            continue
        while f"{PREFIX[item.kind]}{n}" in taken:
            n += 1
        result[(item.kind, item.index)] = ident = f"{PREFIX[item.kind]}{n}"
        taken.add(ident)
    return result


def _macs(spec: LooseSpec) -> Iterator[str]:
    """Generated MACs: QEMU's default one (`52:54:00:12:34:56`) and up, skipping those the
    spec gives."""
    given = {str(v).lower() for v, _ in _values(spec, "mac")}
    for n in range(0x123456, 1 << 24):
        mac = "52:54:00:" + ":".join(f"{n:06x}"[i:i + 2] for i in (0, 2, 4))
        if mac not in given:
            yield mac


def _values(spec: LooseSpec, key: str) -> Iterator[tuple[tree.PropValue, Span]]:
    """Every value the spec gives `key`: on an item, or in a `[[device]]`'s props."""
    for item in spec.items:
        v = item.fields.get(key)
        if v is None and item.kind == "device" and "props" in item.fields:
            v = item.fields["props"].parts.get(key)
        if v is not None:
            yield v.value, v.span


def _unique_values(spec: LooseSpec, diags: Collector) -> None:
    """No MAC address and no bootindex is given twice."""
    for key, code, why in (("mac", "E1107", "two NICs with one MAC address confuse every "
                            "switch and guest on the network"),
                           ("bootindex", "E1108", "QEMU refuses a bootindex used twice")):
        seen: dict[object, Span] = {}
        for value, span in _values(spec, key):
            norm = value.lower() if isinstance(value, str) else value
            if norm in seen:
                diags.error(code, f"{key} `{value}` is given twice", span,
                            labels=[Label(seen[norm], "first given here")], notes=[why],
                            help=f"leave `{key}` out of one of them" if key == "mac" else
                            "give each device its own `bootindex`")
            else:
                seen[norm] = span


# Controllers and ports mschema adds are named after their bus kind (`scsi0`, `usb0`) and
# `rp`; spec items have prefixes of their own so the two never meet.
PREFIX = {"disk": "disk", "cdrom": "cdrom", "nic": "net", "serial": "serial", "usb": "usbdev",
          "rng": "rng", "graphics": "video", "device": "dev", "filesystem": "fs",
          "pflash": "pflash"}


def _unique_props(library: model.Library, spec: LooseSpec, diags: Collector) -> None:
    """Props declared `unique` (a port's chassis) differ between the `[[device]]`s that set
    them; clashes with devices the machine or the compiler adds are `address`'s."""
    seen: dict[tuple[str, object], Span] = {}
    for item in spec.items:
        dtype = library.devices.get(item.get("type")) if item.kind == "device" else None
        props = item.fields.get("props")
        if dtype is None or props is None:
            continue
        for name, v in props.parts.items():
            p = dtype.props.get(name)
            if p is None or p.unique is None:
                continue
            bus = item.get("bus") if p.unique_per_bus else ""
            if bus is None:  # per bus, on a bus not known yet: `address` compares it
                continue
            key = (f"{p.unique}\0{bus}", v.value)
            if key in seen:
                diags.error("E1105", f"{name} `{v.value}` is given twice", v.span,
                            labels=[Label(seen[key], "first given here")],
                            notes=[f"`{name}` must differ between all devices of group "
                                   f"`{p.unique}`" + (f" on bus `{bus}`" if bus else "")],
                            help=f"leave `{name}` out to get a free one")
            else:
                seen[key] = v.span


def _item(schema: model.MachineSchema, library: model.Library, item: Item, ident: str,
          diags: Collector, backends: list[tuple[str, Backend]],
          macs: Iterator[str]) -> Planned | None:
    if item.kind == "device":
        dtype_name = item.get("type")
        tv = item.fields["type"]
        dtype_ = library.devices.get(dtype_name)
        if dtype_ is None:
            # what a spec can add: neither internal nor machine-only nor on the root bus
            creatable = [n for n, t in library.devices.items()
                         if not t.internal and not t.machine_only
                         and any(p.bus != "system" for p in t.plugs)]
            diags.error("E0202", f"unknown device type `{dtype_name}`", tv.span,
                        notes=[f"expected one of {quote_list(creatable, 20)}"],
                        help=suggest(dtype_name, creatable))
            return None
        if dtype_.internal:
            parents = sorted(t.name for t in library.devices.values() for b in t.buses
                             for c in b.children if c.type == dtype_name)
            diags.error("E1109", f"`{dtype_name}` cannot be added by itself", tv.span,
                        notes=[f"QEMU creates it inside {quote_list(parents)}" if parents
                               else "QEMU creates it by itself"],
                        help=f"ask for `{parents[0]}` instead" if parents else None)
            return None
        origin: tree.Origin = "spec"
        why = tree.Provenance("[[device]] in the spec", item.span)
    else:
        impl = schema.implementations.get(item.kind)
        if impl is None:
            diags.error("E1104", f"`{schema.name}` has no {item.kind} devices", item.span)
            return None
        key = item.get(impl.key) or impl.default
        if key not in impl.cases:
            kv = item.fields.get(impl.key)
            diags.error("E1101", f"`{schema.name}` has no {item.kind} {impl.key} `{key}`",
                        kv.span if kv else item.span,
                        notes=[f"expected one of {quote_list(impl.cases)}"])
            return None
        if item.kind == "graphics" and key == "none":
            return None
        dtype_name = impl.cases[key]
        origin = "spec"
        how = "given" if item.get(impl.key) else "the default"
        why = tree.Provenance(f"{item.kind} {impl.key} `{key}` ({how}) is `{dtype_name}` in "
                              f"`{schema.name}`", impl.case_spans.get(key), item.span)
    dtype = library.devices[dtype_name]
    props: dict[str, tree.PropValue] = {}
    links: dict[str, str] = {}
    given = [(k, item.fields[k]) for k in ("serial", "bootindex") if k in item.fields]
    if item.kind == "device" and "props" in item.fields:
        given += list(item.fields["props"].parts.items())
    for k, v in given:
        if _prop(dtype, k, v, diags):
            props[k] = v.value
    if not _file_fits(item, dtype, diags):
        return None
    backend = _backend(item, ident, dtype)
    if backend is not None:
        link, body = backend
        links[link] = ident
        backends.append((ident, body))
    if item.kind == "filesystem":
        props["mount_tag"] = str(item.get("tag"))
    if item.kind == "nic":
        mac = item.get("mac")
        props["mac"] = mac.lower() if mac else next(macs)
    return Planned(ident, dtype_name, origin, tuple(sorted(props.items())),
                   tuple(sorted(links.items())), item.get("bus"), item.get("addr"), why,
                   item.span)


def _prop(dtype: model.DeviceType, name: str, v: Value, diags: Collector) -> bool:
    """Is `v` a value of `dtype`'s property `name`? Say why not."""
    p = dtype.props.get(name)
    if p is None:
        diags.error("E1110", f"`{dtype.name}` has no property `{name}`", v.key_span,
                    notes=[f"`{dtype.name}` declares {quote_list(dtype.props, 40)}"
                           if dtype.props else f"`{dtype.name}` declares no properties"],
                    help=suggest(name, list(dtype.props)))
        return False
    t, x = p.type, v.value
    ok = t.check(x)
    if not ok:
        diags.error("E1111", f"property `{name}` of `{dtype.name}` must be {t.describe()}, "
                    f"not {describe(x)}", v.span)
    elif t.kind == "mac" and model.is_multicast_mac(str(x)):
        diags.error("E1111", f"property `{name}` of `{dtype.name}` must be a unicast MAC "
                    f"address, not the multicast `{x}`", v.span,
                    help="use an even first byte, e.g. `52:54:00:12:34:56`")
        return False
    return ok


def _file_fits(item: Item, dtype: model.DeviceType, diags: Collector) -> bool:
    """A `file` where the device reads one (a blockdev link), and only there."""
    if item.kind not in ("disk", "cdrom", "usb"):
        return True
    link = next((k for k in dtype.links.values() if k.backend == "blockdev"), None)
    file = item.fields.get("file")
    chosen = next((v for k, v in item.fields.items() if k in ("device", "interface")), None)
    what = f"{item.kind} `{chosen.value}`" if chosen else f"this {item.kind}"
    if file is not None and link is None:
        diags.error("E1106", f"{what} takes no `file`", file.key_span,
                    notes=[f"it is a `{dtype.name}`, which has no drive"],
                    help="leave `file` out" + (', or write `device = "storage"`'
                                               if item.kind == "usb" else ""))
        return False
    if file is None and link is not None and not link.optional:
        diags.error("E1106", f"{what} needs a `file`", chosen.span if chosen else item.span,
                    notes=[f"it is a `{dtype.name}`, which reads its data from a drive"],
                    help='add `file = "PATH"`, the image on the host')
        return False
    return True


def _backend(item: Item, ident: str, dtype: model.DeviceType
             ) -> tuple[str, Backend] | None:
    """The host side of an item and the link that points at it, or None."""
    links = {spec_.backend: spec_ for spec_ in dtype.links.values()}
    if item.kind in ("disk", "cdrom") or (item.kind == "usb" and item.get("file")):
        file = item.get("file")
        if file is None:
            return None
        fmt = item.get("format") or ("qcow2" if str(file).endswith(".qcow2") else "raw")
        body: dict[str, tree.PropValue] = {"kind": "blockdev", "driver": fmt, "file": file}
        if item.get("readonly") or item.kind == "cdrom":
            body["read-only"] = True
        link = links.get("blockdev")
        return (link.name if link else "drive"), tuple(sorted(body.items()))
    if item.kind == "nic":
        network = str(item.get("network") or "user")
        kind, _, name = network.partition(":")
        net: dict[str, tree.PropValue] = {"kind": "netdev", "type": kind}
        if kind == "tap":
            net.update({"ifname": name, "script": "no", "downscript": "no"})
        elif kind == "bridge":
            net["br"] = name
        link = links.get("netdev")
        return (link.name if link else "netdev"), tuple(sorted(net.items()))
    if item.kind == "serial":
        backend = str(item.get("backend") or "pty")
        kind, _, path = backend.partition(":")
        chr_: dict[str, tree.PropValue] = {"kind": "chardev", "backend": kind}
        if kind in ("file", "socket"):
            chr_["path"] = path
        link = links.get("chardev")
        return (link.name if link else "chardev"), tuple(sorted(chr_.items()))
    if item.kind == "filesystem":
        link = links.get("fsdev")
        fs: dict[str, tree.PropValue] = {
            "kind": "fsdev", "driver": "local", "path": str(item.get("path")),
            "security_model": str(item.get("security-model") or "none")}
        if item.get("readonly"):
            fs["readonly"] = True
        return (link.name if link else "fsdev"), tuple(sorted(fs.items()))
    if item.kind == "rng":
        link = links.get("rng")
        _kind, _, source = str(item.get("backend") or "random").partition(":")
        return (link.name if link else "rng"), (("backend", "random"),
                                                 ("filename", source or "/dev/urandom"),
                                                 ("kind", "rng"))
    audio = links.get("audiodev")
    if audio is not None:
        # the host's sound: the guest sees the same card whatever the driver, and QEMU 10
        # starts no sound card without one (QEMU 7.2 falls back to a default driver)
        return audio.name, (("driver", "none"), ("kind", "audiodev"))
    return None


def as_mapping(pairs: tuple[tuple[str, tree.PropValue], ...]) -> Mapping[str, tree.PropValue]:
    return dict(pairs)
