"""A precise machine held to a platform's policy (`spec/policy.py`), or to the built-in
default without one: every violation is an error at the spec or blob entry that asks for it
(E2010–E2021). Runs after `validate` on whatever `compile` built (a loose spec, a blob, a
hot-plug's next blob); never changes the machine.

What it confines: the machine family and version; possible cpus, memory and the devices
the spec (or a hot-plug) asks for, in number and type (the machine's own devices and the
controllers and ports the compiler adds for them are the machine's, not the spec's); every
host path a backend names, as a real path (`..` and symbolic links resolved) under one of
the `roots`; netdev and chardev kinds; and what QEMU does on the host beyond opening files
(`BackendKind.host_access`): run a program, listen on a socket, write a log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import attrs

from compiler.base import backends
from compiler.base.diagnostics import Collector, Label, quote_list
from compiler.base.source import SourceFile, Span
from compiler.build import tree
from compiler.spec import jsonpos
from compiler.spec.loose import LooseSpec
from compiler.spec.policy import Policy

ASKED: tuple[tree.Origin, ...] = ("spec", "hotplug")
ACCESS = {  # host_access effect → (code, what it does, the policy key)
    "execute": ("E2019", "runs a program on the host", "host.execute"),
    "listen": ("E2020", "listens on a socket on the host", "host.listen"),
    "logfile": ("E2021", "writes a log file on the host", "host.logfile"),
}


# (loose item kind, backend field) → the item's key that sets it: where a loose spec asks
LOOSE_KEYS: Mapping[tuple[str, str], str] = {
    **{(k, "file"): "file" for k in ("disk", "cdrom", "usb", "pflash")},
    **{("nic", f): "network" for f in ("type", "ifname", "br")},
    **{("serial", f): "backend" for f in ("backend", "path")},
    ("rng", "filename"): "backend", ("filesystem", "path"): "path",
}
_Refuse = Callable[..., None]  # `check`'s `refuse`


@attrs.frozen
class Places:
    """Where an input asks for each thing a policy confines (None: `fallback`)."""

    fallback: Span
    family: Span | None = None
    version: Span | None = None
    cpus: Span | None = None
    memory: Span | None = None
    backends: Mapping[str, Span] = attrs.Factory(dict)  # backend id → its entry
    fields: Mapping[tuple[str, str], Span] = attrs.Factory(dict)  # (id, field) → value

    def backend(self, ident: str, field: str | None = None) -> Span:
        found = self.fields.get((ident, field)) if field else None
        return found or self.backends.get(ident) or self.fallback


def device_span(d: tree.Device, fallback: Span) -> Span:
    return d.why.cause or d.why.span or fallback


def backend_users(machine: tree.Machine, fallback: Span) -> dict[str, Span]:
    """backend id → the entry of the first device that links to it (a loose spec names
    backends only through its items)."""
    found: dict[str, Span] = {}
    for _bus, d, _n in tree.walk(machine.root):
        for _link, target in d.backend:
            found.setdefault(target, device_span(d, fallback))
    return found


def spec_places(spec: LooseSpec, machine: tree.Machine) -> Places:
    """Where a loose spec (or fragment) asks for what a policy confines: its `machine`,
    `cpus`, `memory`, and for each backend the item that asks for it and the item's key
    that sets each field."""
    users = backend_users(machine, spec.span)
    items = {item.span: item for item in spec.items}
    fields = {}
    for ident, body in machine.backends:
        item = items.get(users.get(ident, spec.span))
        for field, _value in body if item is not None else ():
            key = LOOSE_KEYS.get((item.kind, field)) if item is not None else None
            if item is not None and key and key in item.fields:
                fields[(ident, field)] = item.fields[key].span
    machine_value, memory = spec.top.get("machine"), spec.top.get("memory")
    at = machine_value.span if machine_value else None
    return Places(spec.span, at, at, spec.fact_span("cpus.maxcpus"),
                  memory.span if memory else None, users, fields)


def blob_places(source: SourceFile, machine: tree.Machine) -> Places:
    """Where a blob writes what a policy confines: the values themselves."""
    where, _dups = jsonpos.locate(source.text)

    def at(*path: str) -> Span | None:
        found = where.get(path)
        return source.span(found[2], found[3]) if found else None

    fields = {(ident, key): span for ident, body in machine.backends for key, _v in body
              if (span := at("backends", ident, key)) is not None}
    entries = {ident: source.span(found[0], found[1]) for ident, _b in machine.backends
               if (found := where.get(("backends", ident)))}
    return Places(source.span(0, 0), at("machine", "schema"), at("machine", "qemu"),
                  at("cpus", "maxcpus") or at("cpus", "count"), at("memory", "size"),
                  entries, fields)


def check(machine: tree.Machine, policy: Policy, places: Places, diags: Collector) -> None:
    def label(key: str) -> list[Label]:
        span = policy.rule(key)
        return [Label(span, "the policy says so here")] if span else []

    def refuse(code: str, message: str, span: Span, key: str, allowed: str | None = None,
               help_: str | None = None) -> None:
        notes = [f"the policy allows {allowed}"] if allowed else []
        diags.error(code, message, span, labels=label(key),
                    notes=[*notes, f"policy `{policy.path or 'built-in default'}`, `{key}`"],
                    help=help_)

    info = machine.info
    if policy.families is not None and info.schema not in policy.families:
        refuse("E2010", f"machine family `{info.schema}` is not allowed by the policy",
               places.family or places.fallback, "machine.families",
               quote_list(list(policy.families)))
    if policy.versions is not None and info.qemu not in policy.versions:
        refuse("E2011", f"machine version `{info.qemu}` is not allowed by the policy",
               places.version or places.family or places.fallback, "machine.versions",
               quote_list(list(policy.versions)))
    cpus = dict(machine.cpus)
    possible = cpus.get("maxcpus", cpus.get("count"))
    if policy.max_cpus is not None and isinstance(possible, int) \
            and possible > policy.max_cpus:
        refuse("E2012", f"{possible} cpus is more than the policy allows ({policy.max_cpus})",
               places.cpus or places.fallback, "limits.max-cpus",
               help_="present and hot-pluggable cpus (`maxcpus`) both count")
    size = dict(machine.memory).get("size")
    if policy.max_memory is not None and isinstance(size, int) and size > policy.max_memory:
        refuse("E2013", f"memory of {_size(size)} is more than the policy allows "
               f"({_size(policy.max_memory)})", places.memory or places.fallback,
               "limits.max-memory")
    asked = sorted((d for _b, d, _n in tree.walk(machine.root) if d.origin in ASKED),
                   key=lambda d: (device_span(d, places.fallback).path,
                                  device_span(d, places.fallback).start))  # input order
    if policy.max_devices is not None and len(asked) > policy.max_devices:
        over = asked[policy.max_devices]
        refuse("E2014", f"{len(asked)} devices asked for, more than the policy allows "
               f"({policy.max_devices}): this is number {policy.max_devices + 1}",
               device_span(over, places.fallback), "limits.max-devices",
               help_="devices the machine creates, and the controllers and ports added for "
               "yours, do not count")
    if policy.device_types is not None:
        for d in asked:
            if d.type not in policy.device_types:
                refuse("E2015", f"device type `{d.type}` (`{d.id}`) is not allowed by the "
                       "policy", device_span(d, places.fallback), "devices.types",
                       quote_list(list(policy.device_types), limit=20))
    for ident, body in machine.backends:
        _backend(ident, dict(body), policy, places, refuse)


def _backend(ident: str, body: dict[str, tree.PropValue], policy: Policy, places: Places,
             refuse: _Refuse) -> None:
    kind_name = str(body.get("kind"))
    if kind_name not in backends.REGISTRY:
        return  # validate's E1410
    kind = backends.get(kind_name)
    if kind_name == "netdev" and policy.network is not None \
            and body.get("type") not in policy.network:
        refuse("E2017", f"backend `{ident}` is a `{body.get('type')}` network, which the "
               "policy does not allow", places.backend(ident, "type"), "backends.network",
               quote_list(list(policy.network)))
    if kind_name == "chardev" and policy.chardev is not None \
            and body.get("backend") not in policy.chardev:
        refuse("E2018", f"backend `{ident}` is a `{body.get('backend')}` chardev, which the "
               "policy does not allow", places.backend(ident, "backend"), "backends.chardev",
               quote_list(list(policy.chardev)))
    if policy.roots is not None:
        for field in kind.path_fields:
            value = body.get(field)
            if isinstance(value, str) and value and not _under(value, policy.roots):
                refuse("E2016", f"backend `{ident}` {field} `{value}` is outside the host "
                       "directories the policy allows", places.backend(ident, field),
                       "backends.roots", quote_list(list(policy.roots)),
                       help_="paths are compared as real paths: `..` and symbolic links "
                       "are followed first")
    for field, effect in kind.host_access(body):
        if not getattr(policy, effect):
            code, what, key = ACCESS[effect]
            value = body.get(field)
            shown = (f" `{value}`" if isinstance(value, str)
                     else " not given (QEMU runs its default)")
            refuse(code, f"backend `{ident}` ({kind_name}) {field}{shown} {what}, which the "
                   "policy does not allow", places.backend(ident, field), key,
                   help_=_ACCESS_HELP[effect])


_ACCESS_HELP = {
    "execute": 'set `"script": "no"` and `"downscript": "no"` (QEMU runs /etc/qemu-ifup and '
               "/etc/qemu-ifdown when none is named), or allow `host.execute` in a policy",
    "listen": "use a `pty` or `null` chardev, or allow `host.listen` in a policy",
    "logfile": "leave `logfile` out, or allow `host.logfile` in a policy",
}


def _under(path: str, roots: tuple[str, ...]) -> bool:
    """Is `path`, as a real path (relative to the working directory, `..` and symbolic links
    resolved), one of `roots` or under one?"""
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in roots)


def _size(size: int) -> str:
    """A size as a spec writes it: the largest unit that divides it (`4G`), else bytes."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size % factor == 0:
            return f"`{size // factor}{unit}`"
    return f"{size} bytes"
