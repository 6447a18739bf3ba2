"""A CPU model and its features as a spec or blob gives them, never as raw `-cpu` text: the
model is a name (`qemu64`, `Skylake-Client-v4`, `power9_v2.2`), each feature `+NAME` (on) or
`-NAME` (off), NAME a QEMU CPU property (`pdpe1gb`, `sse4.2`, `hv-relaxed`): no `,`, no
`=`, nothing QEMU's option parser would read as another option. The blob keeps the features
as one string, `+pdpe1gb,-hypervisor`, each checked the same way; `-cpu` gets them as
properties (`pdpe1gb=on,hypervisor=off`), in the order given (a later one wins in QEMU)."""

from __future__ import annotations

import re
from collections.abc import Sequence

MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
FEATURE = re.compile(r"[+-](?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,63})")
MODEL_HELP = ("give the model's name only, e.g. `qemu64`, and its features as a list: "
              '`features = ["-hypervisor", "+pdpe1gb"]`')


def model_problem(model: object) -> str | None:
    if not isinstance(model, str) or not MODEL.fullmatch(model):
        return "a CPU model is a name (letters, digits, `.`, `_`, `-`), not option text"
    return None


def feature_problems(features: Sequence[object]) -> list[tuple[int, str]]:
    """(index, what is wrong) for each feature that is not `+NAME` / `-NAME`, or names a
    feature given before."""
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, f in enumerate(features):
        m = FEATURE.fullmatch(f) if isinstance(f, str) else None
        if m is None:
            shown = f"`{f}`" if isinstance(f, str) else f"{f!r}"
            found.append((i, f"{shown} is not `+NAME` or `-NAME` (a CPU feature turned on or "
                          "off; letters, digits, `.`, `_`, `-`)"))
        elif m["name"] in seen:
            found.append((i, f"feature `{m['name']}` is given twice"))
        else:
            seen.add(m["name"])
    return found


def split(text: str) -> list[str]:
    """The blob's `features` string → its features."""
    return text.split(",") if text else []


def cpu_arg(model: str, features: str) -> str:
    """`-cpu`'s value: the model, then each feature as a property."""
    return ",".join([model, *(f"{f[1:]}={'on' if f[0] == '+' else 'off'}"
                              for f in split(features))])
