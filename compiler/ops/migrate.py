"""Can a machine migrate to another? Two precise machines describe the same guest hardware
when everything guest-visible agrees: machine type and options, cpus, memory, the NUMA
nodes (their cpus and memory, and the ids of their RAM backends, which name the RAM blocks
of the migration stream), every device's id, type, bus, address and props. Backends (files,
networks, chardevs) and how a device came to be (its origin, the names of its backends) are
the host's business and may differ; but a backend change that makes QEMU run a program,
listen on a socket or write a log on the host (`BackendKind.host_access`: a tap's script, a
socket chardev, a chardev's logfile) is a `host-security` difference of its own, for
whoever accepts the destination."""

from __future__ import annotations

from typing import Literal

import attrs

from compiler.base import backends, numa
from compiler.build import tree
from compiler.lang import model

Kind = Literal["guest-visible", "host-security", "backend"]
KINDS: tuple[Kind, ...] = ("guest-visible", "host-security", "backend")


@attrs.frozen
class Difference:
    kind: Kind
    text: str


def _devices(m: tree.Machine) -> dict[str, tuple[tree.Bus, tree.Device]]:
    return {d.id: (b, d) for b, d, _n in tree.walk(m.root)}


def _where(bus: tree.Bus, d: tree.Device) -> str:
    return f"on `{bus.name}`" + (f" at {d.addr}" if d.addr else "")


def _same_effective(library: model.Library | None, dtype: str, prop: str,
                    a: tree.PropValue | None, b: tree.PropValue | None) -> bool:
    """A prop set on one side only is the same as leaving it unset when it equals the
    stdlib's default, or when QEMU derives it (`derived`, or an `auto` default): an
    extracted blob writes out what a compiled one leaves to QEMU."""
    if a == b:
        return True
    if a is not None and b is not None:
        return False
    given = a if a is not None else b
    t = library.devices.get(dtype) if library else None
    spec = t.props.get(prop) if t else None
    if spec is None:
        return False
    return spec.derived or spec.default == "auto" or spec.default == given


def _cpus(m: tree.Machine) -> dict[str, tree.PropValue]:
    """`cpus` with `maxcpus` written out (the count when a blob leaves it out): the possible
    cpus are guest-visible (ACPI, hot-plug slots) even when not present."""
    cpus = dict(m.cpus)
    if "count" in cpus:
        cpus.setdefault("maxcpus", cpus["count"])
    return cpus


def differences(src: tree.Machine, dst: tree.Machine,
                library: model.Library | None = None) -> list[Difference]:
    """`library` (the stdlib) lets a prop left at its default match one written out."""
    out: list[Difference] = []

    def guest(text: str) -> None:
        out.append(Difference("guest-visible", text))

    for field in ("qemu", "arch"):
        a, b = getattr(src.info, field), getattr(dst.info, field)
        if a != b:
            guest(f"machine {field}: `{a}` → `{b}`")
    for label, a, b in (("option", dict(src.info.options), dict(dst.info.options)),
                        ("cpus", _cpus(src), _cpus(dst)),
                        ("boot", dict(src.boot), dict(dst.boot)),
                        ("rtc", dict(src.rtc), dict(dst.rtc)),
                        ("memory", dict(src.memory), dict(dst.memory)),
                        # SMBIOS / the device tree: the guest read it at boot
                        ("uuid", {"uuid": src.uuid}, {"uuid": dst.uuid})):
        for key in sorted(set(a) | set(b)):
            # `auto` is QEMU's to resolve from the rest of the machine (compared anyway):
            # q35's vmport=auto reads back from a running QEMU as `on`
            if a.get(key) != b.get(key) and "auto" not in (a.get(key), b.get(key)):
                guest(f"{label} `{key}`: {a.get(key)!r} → {b.get(key)!r}")
    out.extend(_numa_differences(src, dst))
    left, right = _devices(src), _devices(dst)
    for ident in left:
        if ident not in right:
            bus, d = left[ident]
            guest(f"`{ident}` ({d.type}) {_where(bus, d)} is only in the source")
    for ident, (bus, d) in right.items():
        if ident not in left:
            guest(f"`{ident}` ({d.type}) {_where(bus, d)} is only in the destination")
            continue
        sbus, s = left[ident]
        if s.type != d.type:
            guest(f"`{ident}`: type `{s.type}` → `{d.type}`")
        if (sbus.name, s.addr) != (bus.name, d.addr):
            guest(f"`{ident}` ({d.type}): {_where(sbus, s)} → {_where(bus, d)}")
        sp, dp = dict(s.props), dict(d.props)
        for key in sorted(set(sp) | set(dp)):
            if not _same_effective(library, d.type, key, sp.get(key), dp.get(key)):
                guest(f"`{ident}` ({d.type}) prop `{key}`: {sp.get(key)!r} → {dp.get(key)!r}")
    out.extend(_backend_differences(src, dst, left, right))
    return out


def _numa_differences(src: tree.Machine, dst: tree.Machine) -> list[Difference]:
    """The guest NUMA nodes, node by node: cpus and memory (the guest's ACPI SRAT), and the
    id of the node's RAM backend: QEMU moves RAM by the names of its blocks, refusing a
    stream with a block it lacks (`Unknown ramblock`) and loading a block into the node of
    that name, wherever it is."""
    out = []
    for n in range(max(len(src.numa), len(dst.numa))):
        if n >= len(src.numa) or n >= len(dst.numa):
            side = "source" if n < len(src.numa) else "destination"
            out.append(Difference("guest-visible", f"NUMA node {n} is only in the {side}"))
            continue
        a, b = src.numa[n], dst.numa[n]
        for what, x, y in (("cpus", numa.format_cpus(a.cpus), numa.format_cpus(b.cpus)),
                           ("memory", a.memory, b.memory)):
            if x != y:
                out.append(Difference("guest-visible", f"NUMA node {n} {what}: {x!r} → {y!r}"))
        if a.memdev != b.memdev:
            out.append(Difference("guest-visible", f"NUMA node {n} memdev: {a.memdev!r} → "
                                  f"{b.memdev!r} (the name of its RAM block in the migration "
                                  "stream)"))
    return out


def _backend_differences(src: tree.Machine, dst: tree.Machine,
                         left: dict[str, tuple[tree.Bus, tree.Device]],
                         right: dict[str, tuple[tree.Bus, tree.Device]]) -> list[Difference]:
    """Backends compared through the devices that use them (their ids may differ)."""
    out = []
    sb, db = dict(src.backends), dict(dst.backends)
    for ident in sorted(set(left) & set(right)):
        for link, target in left[ident][1].backend:
            other = dict(right[ident][1].backend).get(link)
            a = dict(sb.get(target, ()))
            b = dict(db.get(other, ())) if other else {}
            sensitive = _host_access(a) | _host_access(b)
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    effect = sensitive.get(key)
                    out.append(Difference(
                        "host-security" if effect else "backend",
                        f"`{ident}` {link} {key}: {a.get(key)!r} → {b.get(key)!r}"
                        + (f" ({_EFFECTS[effect]})" if effect else "")))
    return out


_EFFECTS = {"execute": "QEMU runs a program on the host",
            "listen": "QEMU listens on a socket on the host",
            "logfile": "QEMU writes a log file on the host"}


def _host_access(body: dict[str, tree.PropValue]) -> dict[str, str]:
    """field → what it makes QEMU do on the host (`execute`, `listen`, `logfile`)."""
    kind = backends.REGISTRY.get(str(body.get("kind")))
    return dict(kind.host_access(body)) if kind else {}
