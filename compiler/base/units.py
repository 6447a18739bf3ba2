"""Sizes as users write them: bytes, or a number with K/M/G/T (powers of 1024); and RAM
sizes as QEMU 7.2's `-m` takes and keeps them."""

from __future__ import annotations

import re

from compiler.base.limits import MAX_DIGITS

SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(rf"^([0-9]{{1,{MAX_DIGITS}}})([KMGT]?)$", re.IGNORECASE)
# QEMU 7.2 rounds every `-m` size up to a multiple of 8 KiB (softmmu/vl.c,
# parse_memory_options: `QEMU_ALIGN_UP(sz, 8192)`); machines may refuse more (pseries:
# a multiple of 256 MiB, a `check` rule of its schema)
RAM_ALIGN = 8192


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


def qemu_ram_size(size: int) -> int:
    """The RAM QEMU 7.2 gives a guest for `-m SIZE` given in bytes: rounded up to 8 KiB."""
    return -(-size // RAM_ALIGN) * RAM_ALIGN


def ram_size_arg(size: int) -> str:
    """`-m`'s value for a size in bytes: MiB when whole (QEMU's unit without a suffix), else
    KiB as libvirt writes them (`219136k`), else bytes."""
    if size % SUFFIX["M"] == 0:
        return f"{size // SUFFIX['M']}M"
    if size % SUFFIX["K"] == 0:
        return f"{size // SUFFIX['K']}k"
    return f"{size}b"
