"""`mschema qemu-diff`: every machine version that QEMU 7.2 and QEMU 10.0 both have, built by
both and compared. The differences are findings (docs/releases.md), kept as goldens
(`tests/releases/MACHINE.7.2-10.0.diff`, `--update-goldens` rewrites them) so that any change
in either QEMU or in the comparison shows; the same binary twice must show none."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from qemu_support import (
    GONE_IN_RELEASE,
    RELEASES,
    binary_of,
    families,
    gone_in,
    release_argv,
    releases_of,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDENS = ROOT / "tests" / "releases"
# the machine versions both releases have: every shipped one up to 7.2 but those 10.0 dropped
# (pseries-2.7 … 2.12, qemu_support.GONE_IN_RELEASE); 8.0 and newer exist in 10.0 only, by
# their schemas' `since`: a 7.2 → 10.0 report does not apply to them
MACHINES = sorted(v for versions in families().values() for v in versions
                  if releases_of(v) == RELEASES and not gone_in("10.0", v))
GONE = sorted(GONE_IN_RELEASE["10.0"])
HEADER = re.compile(r"^# (?P<machine>\S+): QEMU (?P<a>\d+\.\d+)\.\d+ → QEMU (?P<b>\d+\.\d+)\.\d+$")


def qemu_diff(machine: str, a: str, b: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", "qemu-diff", machine,
                           "--qemu", a, "--qemu", b], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("machine", MACHINES)
def test_findings_between_72_and_100(machine: str, update_goldens: bool) -> None:
    a = release_argv(binary_of(machine), "7.2")[0]
    b = release_argv(binary_of(machine), "10.0")[0]
    done = qemu_diff(machine, a, b)
    assert done.returncode in (0, 1), done.stderr
    header, _, body = done.stdout.partition("\n")
    m = HEADER.match(header)
    assert m and m.group("machine", "a", "b") == (machine, "7.2", "10.0"), header
    golden = GOLDENS / f"{machine}.7.2-10.0.diff"
    if update_goldens:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(body, encoding="utf-8")
    assert body == golden.read_text(encoding="utf-8")
    # exit 1 exactly when a line counts (a prop only one release has is listed, not counted)
    counted = [line for line in body.splitlines() if ": new-prop " not in line]
    assert done.returncode == (1 if counted else 0)


@pytest.mark.parametrize("machine", GONE)
def test_a_version_gone_from_100_is_refused(machine: str) -> None:
    """A shipped version QEMU 10.0 no longer has: qemu-diff says QEMU refused it (and so
    the table of gone versions stays true)."""
    a = release_argv(binary_of(machine), "7.2")[0]
    b = release_argv(binary_of(machine), "10.0")[0]
    done = qemu_diff(machine, a, b)
    assert done.returncode != 0 and done.stdout == ""
    assert f'unsupported machine type: "{machine}"' in done.stderr, done.stderr


@pytest.mark.parametrize("machine", ["pc-q35-7.2", "pseries-7.2"])
def test_the_same_binary_twice_differs_in_nothing(machine: str) -> None:
    a = release_argv(binary_of(machine), "7.2")[0]
    done = qemu_diff(machine, a, a)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.count("\n") == 1  # the header alone


def test_one_binary_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, "-m", "compiler", "qemu-diff", "pc-q35-7.2",
                           "--qemu", "/bin/true"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "mschema qemu-diff: error: give --qemu twice\n"


# A vmware-svga created after a VGA or a secondary-vga: both QEMU releases build the devices,
# but they claim the same migration section (`vga`, instance 0). 7.2 starts the machine (its
# state cannot then be told apart in a migration stream); 10.0 refuses it at start.
# Created the other way round, both start it. (docs/releases.md)
@pytest.mark.parametrize("release", ["7.2", "10.0"])
@pytest.mark.parametrize("first", ["VGA", "secondary-vga"])
def test_vmware_svga_after_a_vga(first: str, release: str) -> None:
    qemu = release_argv("qemu-system-x86_64", release)
    base = [*qemu, "-machine", "pc-q35-7.2", "-nodefaults", "-display", "none", "-S",
            "-accel", "tcg", "-monitor", "none", "-qmp", "stdio"]
    orders = {"after": [first, "vmware-svga"], "before": ["vmware-svga", first]}
    for order, types in orders.items():
        argv = [*base, *(a for t in types for a in ("-device", t))]
        done = subprocess.run(argv, input='{"execute": "qmp_capabilities"}\n'
                              '{"execute": "quit"}\n', capture_output=True, text=True,
                              timeout=60, check=False)
        refused = "Detected duplicate SaveStateEntry: id=vga, instance_id=0x0" in done.stderr
        assert refused == (release == "10.0" and order == "after"), (order, done.stderr)
        assert done.returncode == (1 if refused else 0), (order, done.stderr)
