"""Machine-wide settings of QEMU's command line that are neither `-machine` options nor
devices: `-boot` (QEMU 7.2's BootConfiguration, QOM `/machine` `boot`). The keys, their
types and QEMU's ranges, for the loose spec, the blob and the argv alike; which drive
letters a machine boots from is its schema's (`quirk boot-devices`).
"""

from __future__ import annotations

from collections.abc import Mapping

# in QEMU's order (qapi/machine.json, BootConfiguration)
BOOT_KEYS = ("order", "menu", "strict", "splash-time", "reboot-timeout")
# milliseconds; QEMU 7.2 refuses others ("splash-time is invalid, it should be a value
# between 0 and 65535", softmmu/bootdevice.c)
_BOOT_RANGES = {"splash-time": (0, 0xffff), "reboot-timeout": (-1, 0xffff)}


def boot_problem(key: str, value: object, devices: str | None = None) -> str | None:
    """What is wrong with `boot.KEY = value` in words (after the key's name), or None.
    `devices`: the drive letters the machine boots from, when its schema says."""
    if key in ("menu", "strict"):
        return None if isinstance(value, bool) else "must be `true` or `false`"
    if key in _BOOT_RANGES:
        low, high = _BOOT_RANGES[key]
        if not isinstance(value, int) or isinstance(value, bool):
            return "must be an integer (milliseconds)"
        return None if low <= value <= high else \
            f"must be between {low} and {high} (milliseconds), not `{value}`"
    if key == "order":
        if not isinstance(value, str) or not value:
            return "must be a string of drive letters, e.g. `\"dc\"`"
        for i, letter in enumerate(value):
            if not "a" <= letter <= "p":
                return f"has `{letter}`, which is not a drive letter from `a` to `p`"
            if letter in value[:i]:
                return f"gives `{letter}` twice"
            if devices is not None and letter not in devices:
                return f"has `{letter}`, which this machine cannot boot from"
    return None


def boot_arg(boot: Mapping[str, object]) -> str:
    """`-boot`'s value: the keys in QEMU's order, booleans as on/off."""
    parts = []
    for key in BOOT_KEYS:
        if key in boot:
            value = boot[key]
            text = ("on" if value else "off") if isinstance(value, bool) else str(value)
            parts.append(f"{key}={text}")
    return ",".join(parts)
