"""Human-readable trees for `mschema show` (text form): one line per bus and device."""

from __future__ import annotations

from .. import tree


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
