"""Loose spec items → planned devices and backends (`expand`'s spec half). Ends before
addresses: a `Planned` device knows its type, props and links, and optionally the bus and
address the user fixed; `address` places the rest.

Which device type implements an item is the schema's `implement` data; Python only maps
the CONTRACT's spec keys (file, network, backend, …) to QEMU backends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from . import model, spec, tree
from .diagnostics import Collector, quote_list
from .source import Span

_QEMU_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
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


def plan(schema: model.MachineSchema, library: model.Library, loose: spec.LooseSpec,
         diags: Collector) -> Plan:
    devices: list[Planned] = []
    backends: list[tuple[str, Backend]] = []
    counters: dict[str, int] = {}
    macs = iter(range(0x56, 0x100))
    for item in loose.items:
        n = counters.get(item.kind, 0)
        counters[item.kind] = n + 1
        planned = _item(schema, library, item, n, diags, backends, macs)
        if planned is not None:
            devices.append(planned)
    seen: dict[str, Planned] = {}
    for d in devices:
        if d.id in seen:
            from .diagnostics import Label

            diags.error("E1103", f"id `{d.id}` is used twice", d.span,
                        labels=[Label(seen[d.id].span, "first used here")])
        seen[d.id] = d
    return Plan(tuple(devices), tuple(backends))


PREFIX = {"disk": "disk", "cdrom": "cdrom", "nic": "net", "serial": "serial", "usb": "usb",
          "rng": "rng", "graphics": "video", "device": "dev"}


def _item(schema: model.MachineSchema, library: model.Library, item: spec.Item, n: int,
          diags: Collector, backends: list[tuple[str, Backend]],
          macs: object) -> Planned | None:
    ident = item.get("id") or f"{PREFIX[item.kind]}{n}"
    id_value = item.fields.get("id")
    if not isinstance(ident, str) or not _QEMU_ID.match(ident):
        diags.error("E1102", f"`{ident}` is not a QEMU identifier",
                    id_value.span if id_value else item.span,
                    help="start with a letter; use letters, digits, `-`, `_` and `.`")
        return None
    if item.kind == "device":
        dtype_name = item.get("type")
        tv = item.fields.get("type")
        if not isinstance(dtype_name, str) or dtype_name not in library.devices:
            diags.error("E0202", f"unknown device type `{dtype_name}`",
                        tv.span if tv else item.span,
                        notes=[f"expected one of {quote_list(library.devices)}"])
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
    for key in ("serial", "bootindex"):
        if item.get(key) is not None and key in dtype.props:
            props[key] = item.get(key)
    if item.kind == "device":
        for k, v in (item.get("props") or {}).items():
            props[k] = v
    backend = _backend(item, ident, dtype, diags)
    if backend is not None:
        link, body = backend
        links[link] = ident
        backends.append((ident, body))
    if item.kind == "nic":
        mac = item.get("mac")
        props["mac"] = mac if mac else f"52:54:00:12:34:{next(macs):02x}"  # type: ignore[call-overload]
    return Planned(ident, dtype_name, origin, tuple(sorted(props.items())),
                   tuple(sorted(links.items())), item.get("bus"), item.get("addr"), why,
                   item.span)


def _backend(item: spec.Item, ident: str, dtype: model.DeviceType,
             diags: Collector) -> tuple[str, Backend] | None:
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
        elif kind != "user":
            nv = item.fields.get("network")
            diags.error("E1101", f"unknown network `{network}`", nv.span if nv else item.span,
                        notes=["expected `user`, `tap:NAME` or `bridge:NAME`"])
            return None
        link = links.get("netdev")
        return (link.name if link else "netdev"), tuple(sorted(net.items()))
    if item.kind == "serial":
        backend = str(item.get("backend") or "pty")
        kind, _, path = backend.partition(":")
        chr_: dict[str, tree.PropValue] = {"kind": "chardev", "backend": kind}
        if kind in ("file", "socket"):
            chr_["path"] = path
        elif kind not in ("pty", "null"):
            bv = item.fields.get("backend")
            diags.error("E1101", f"unknown serial backend `{backend}`",
                        bv.span if bv else item.span,
                        notes=["expected `pty`, `null`, `file:PATH` or `socket:PATH`"])
            return None
        link = links.get("chardev")
        return (link.name if link else "chardev"), tuple(sorted(chr_.items()))
    if item.kind == "rng":
        link = links.get("rng")
        return (link.name if link else "rng"), (("backend", "random"),
                                                 ("filename", "/dev/urandom"), ("kind", "rng"))
    return None


def as_mapping(pairs: tuple[tuple[str, tree.PropValue], ...]) -> Mapping[str, tree.PropValue]:
    return dict(pairs)
