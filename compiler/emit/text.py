"""Human-readable trees for `mschema show` (text form): one line per bus and device."""

from __future__ import annotations

from compiler.build import tree


def _value(v: tree.PropValue) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, int) and v > 9:
        return hex(v)
    return str(v)


def show_text(m: tree.Machine, *, why: bool = False) -> str:
    info = m.info
    lines = [f"{info.schema}: {info.binary} -machine {info.qemu}"]
    lines.append("options: " + " ".join(f"{k}={_value(v)}" for k, v in info.options))
    count = 0

    def bus(b: tree.Bus, prefix: str) -> None:
        nonlocal count
        for i, d in enumerate(b.devices):
            count += 1
            last = i == len(b.devices) - 1
            branch, cont = ("└─ ", "   ") if last else ("├─ ", "│  ")
            addr = f"{d.addr}  " if d.addr else ""
            props = "".join(f" {k}={_value(v)}" for k, v in d.props)
            line = f"{prefix}{branch}{addr}{d.type}  [{d.id}]{props}"
            if why and d.why.reason:
                line += f"  — {d.why.reason}"
                if d.why.span is not None:
                    line += f" ({d.why.span})"
            lines.append(line)
            for child in d.buses:
                lines.append(f"{prefix}{cont}{child.name} ({child.kind})")
                bus(child, prefix + cont + "  ")

    lines.append(f"{m.root.name} ({m.root.kind})")
    bus(m.root, "")
    lines.append(f"{count} devices")
    return "\n".join(lines) + "\n"


def why(m: tree.Machine, ident: str) -> str:
    """`compile --why ID`: the device, then each device its bus hangs from, with the reason
    and the places (schema statement, spec entry) that brought each one."""
    chain: list[tuple[tree.Bus, tree.Device]] = []

    def find(bus: tree.Bus, path: list[tuple[tree.Bus, tree.Device]]) -> bool:
        for d in bus.devices:
            here = [*path, (bus, d)]
            if d.id == ident or any(find(b, here) for b in d.buses):
                if d.id == ident:
                    chain.extend(reversed(here))
                return True
        return False

    find(m.root, [])
    lines = []
    for depth, (bus, d) in enumerate(chain):
        at = f" at {d.addr}" if d.addr else ""
        lead = "  " * depth + ("" if depth == 0 else "on a bus of ")
        lines.append(f"{lead}`{d.id}` ({d.type}), origin {d.origin}, on `{bus.name}`{at}")
        pad = "  " * depth + "  "
        lines.append(f"{pad}why: {d.why.reason or 'given in the precise blob'}")
        if d.why.span is not None:
            lines.append(f"{pad}rule: {d.why.span}")
        if d.why.cause is not None:
            lines.append(f"{pad}asked for by: {d.why.cause}")
    return "\n".join(lines) + "\n"
