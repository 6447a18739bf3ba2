"""Machine-wide settings of QEMU's command line that are neither `-machine` options nor
devices: `-boot` (QEMU 7.2's BootConfiguration, QOM `/machine` `boot`) and `-rtc`. The
keys, their types and QEMU's ranges, for the loose spec, the blob and the argv alike; which
drive letters a machine boots from is its schema's (`quirk boot-devices`).
"""

from __future__ import annotations

import datetime
import re
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


# -rtc (softmmu/vl.c configure_rtc): where the guest's clock starts, which host clock drives
# it, and whether lost ticks of the x86 RTC are made up (`slew`: mc146818rtc's
# lost_tick_policy)
RTC_KEYS = ("base", "clock", "driftfix")
_RTC_CHOICES = {"clock": ("host", "rt", "vm"), "driftfix": ("none", "slew")}
_RTC_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2})?")


def rtc_date(base: str) -> datetime.datetime | None:
    """A `base` that is a date (QEMU's `2006-06-17T16:01:21` or `2006-06-17`), or None."""
    if not _RTC_DATE.fullmatch(base):
        return None
    try:
        return datetime.datetime.fromisoformat(base)
    except ValueError:
        return None


def rtc_problem(key: str, value: object) -> str | None:
    """What is wrong with `rtc.KEY = value` in words (after the key's name), or None."""
    if not isinstance(value, str):
        return "must be a string"
    if key in _RTC_CHOICES:
        choices = _RTC_CHOICES[key]
        return None if value in choices else \
            "must be " + ", ".join(f"`{c}`" for c in choices[:-1]) + f" or `{choices[-1]}`"
    if key == "base" and value not in ("utc", "localtime") and rtc_date(value) is None:
        # QEMU would take `2006-13-01` and move it to 2007: the guest's date must be the one
        # written
        return ("must be `utc`, `localtime` or a date that exists, as "
                "`2006-06-17T16:01:21` or `2006-06-17`")
    return None


# -uuid (qemu_uuid_parse): the machine's UUID, which the guest reads in SMBIOS (x86) or the
# device tree (pseries `vm,uuid` and `system-id`); QEMU shows it lower-case (`query-uuid`)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NO_UUID = "00000000-0000-0000-0000-000000000000"  # what QEMU gives without `-uuid`


def uuid_problem(value: object) -> str | None:
    """What is wrong with `uuid = value` in words (after the key's name), or None."""
    if not isinstance(value, str) or not _UUID.fullmatch(value.lower()):
        return "must be a UUID as `c7a5fdbd-edaf-9455-926a-d65c16db1809`"
    return None


def rtc_arg(rtc: Mapping[str, object]) -> str:
    """`-rtc`'s value, the keys in a fixed order."""
    return ",".join(f"{key}={rtc[key]}" for key in RTC_KEYS if key in rtc)
