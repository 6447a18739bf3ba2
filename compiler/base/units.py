"""Sizes as users write them: bytes, or a number with K/M/G/T (powers of 1024)."""

from __future__ import annotations

import re

SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^([0-9]+)([KMGT]?)$", re.IGNORECASE)


def parse_size(value: object) -> int | None:
    """A positive size in bytes, or None when `value` is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str):
        m = _SIZE.match(value.strip())
        if m:
            size = int(m.group(1)) * SUFFIX.get(m.group(2).upper(), 1)
            return size if size > 0 else None
    return None
