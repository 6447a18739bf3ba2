"""libvirt's domain XML vocabulary ↔ QEMU device types: `base/libvirt.toml`, read once.

The importer (`spec/libvirt_import.py`) maps element attributes to QEMU types through it, the
exporter (`emit/libvirt.py`) the other way. Ends at lookups; no XML here.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

TABLE = Path(__file__).with_name("libvirt.toml")


@functools.cache
def table() -> dict[str, dict[str, object]]:
    with TABLE.open("rb") as f:
        return tomllib.load(f)


def lookup(section: str, key: str, sub: str | None = None) -> str | None:
    """The QEMU type (or value) row `key` of `section` (`[section.sub]`) maps to; None when
    there is no row."""
    rows = table().get(section, {})
    if sub is not None:
        rows = rows.get(sub, {})  # type: ignore[assignment]
        if not isinstance(rows, dict):
            return None
    value = rows.get(key)
    return value if isinstance(value, str) else None


def reverse(section: str, qemu_type: str, sub: str | None = None) -> str | None:
    """The libvirt key whose row maps to `qemu_type` (the first, in the table's order)."""
    rows = table().get(section, {})
    if sub is not None:
        rows = rows.get(sub, {})  # type: ignore[assignment]
    for key, value in rows.items():
        if value == qemu_type:
            return key
    return None


def sections(section: str) -> dict[str, object]:
    return table().get(section, {})


def known(section: str, sub: str | None = None) -> list[str]:
    """The keys of `section` (`[section.sub]`) that map to something."""
    rows = table().get(section, {})
    if sub is not None:
        inner = rows.get(sub, {})
        rows = inner if isinstance(inner, dict) else {}
    return [k for k, v in rows.items() if v]
