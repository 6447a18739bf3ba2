"""`mschema schema-diff A B` and the machine versions it compares.

- Goldens: `tests/schema-diff/A..B.txt` is what `python -m compiler schema-diff A B` prints
  (`--update-goldens` rewrites them; read the diff), `A..B.json` the same with `--format json`.
- Exit codes follow `diff`: 0 the same, 1 different, 2 trouble (an unknown machine).
- Every category is seen on a small library of its own (`VERSIONS`), so a difference of any
  kind is reported once, at the statement that states it.
- The shipped versions: each `extends` the next newer one, keeps the family, names its QEMU
  machine type, takes no alias; the compat lines for QEMU's `virtio-device` cover every
  virtio device type of the stdlib.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from qemu_support import families

from compiler.lang.resolve import load_library
from compiler.ops import schema_diff

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "schema-diff"
# the pairs with goldens: `tests/schema-diff/OLD..NEW.txt` and `.json` (for a new pair,
# create both empty, then run with --update-goldens)
PAIRS = [tuple(p.stem.split("..")) for p in sorted(GOLDEN.glob("*..*.txt"))]
# each family's versions, newest first, from the schemas (tests/qemu_support.py)
FAMILIES = families()


def test_every_pair_has_both_goldens() -> None:
    assert len(PAIRS) >= 4, PAIRS
    assert {p.stem for p in GOLDEN.glob("*.json")} == {p.stem for p in GOLDEN.glob("*.txt")}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", "schema-diff", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a}..{b}" for a, b in PAIRS])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_golden(a: str, b: str, fmt: str, update_goldens: bool) -> None:
    done = run(a, b, "--format", fmt)
    assert (done.returncode, done.stderr) == (1, ""), done.stderr
    golden = GOLDEN / f"{a}..{b}.{'txt' if fmt == 'text' else 'json'}"
    if update_goldens:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(done.stdout, encoding="utf-8")
        return
    assert golden.exists(), f"{golden} is missing: run pytest with --update-goldens"
    assert done.stdout == golden.read_text(encoding="utf-8")


def test_q35_7_0_to_7_2_says_what_qemu_changes() -> None:
    """The golden's content, spelled out: QEMU 7.2's pc_q35_7_0/7_1 machine options."""
    lines = run("pc-q35-7.0", "pc-q35-7.2").stdout.splitlines()
    assert lines[0] == ('schemas/pc-q35/pc-q35-7.0.machine:7:9: machine qemu-machine: '
                        '"pc-q35-7.0" → "pc-q35-7.2"')
    assert lines[1].startswith("schemas/pc-q35/pc-q35-7.0.machine:")
    assert lines[1].endswith("quirk enforce-amd-1tb-hole: false → true")
    compat = [line.split(": ", 1)[1] for line in lines[2:]]
    assert "compat virtio-rng-pci vectors: 0 → (QEMU's default)" in compat
    assert "compat virtio-net-device queue_reset: false → (QEMU's default: true)" in compat
    assert "compat virtio-rng-pci-non-transitional vectors: 0 → (QEMU's default)" in compat
    # the vectors of virtio-rng-pci and its two variants, and queue_reset of every
    # virtio-*-device type the stdlib has
    devices = load_library().devices
    rng_pci = [name for name in devices if name.startswith("virtio-rng-pci")]
    virtio_devices = [t for t in devices.values() if any(p.bus == "virtio" for p in t.plugs)]
    assert len(rng_pci) == 3
    assert len(lines) == 2 + len(rng_pci) + len(virtio_devices), lines
    assert all(line.startswith("schemas/pc-q35/pc-q35-7.1.machine:") for line in lines[2:])


@pytest.mark.parametrize("pair", [("pc-q35", "pc-q35-7.2"), ("q35", "pc-q35"),
                                  ("pseries-7.1", "pseries-7.1"), ("pseries", "pseries-7.2")])
def test_same_schema_is_exit_0_and_silent(pair: tuple[str, str]) -> None:
    done = run(*pair)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert json.loads(run(*pair, "--format", "json").stdout) == []


def test_unknown_machine_is_exit_2() -> None:
    done = run("pc-q35-1.0", "pc-q35-7.2")
    assert done.returncode == 2 and done.stdout == ""
    assert "error[E0204]: unknown machine `pc-q35-1.0`" in done.stderr
    assert "= note: expected one of `" in done.stderr  # the note lists the machines
    done = run("pc-q35-7.2")
    assert done.returncode == 2 and "usage:" in done.stderr


def test_reversed_diff_swaps_the_values() -> None:
    library = load_library()
    a, b = library.machines["pc-q35-7.0"], library.machines["pc-q35-7.2"]
    forward = schema_diff.diff(library, a, b)
    backward = schema_diff.diff(library, b, a)
    assert [(d.category, d.subject, d.b, d.a, str(d.span)) for d in forward] == [
        (d.category, d.subject, d.a, d.b, str(d.span)) for d in backward]


# ---- every category, on a library of its own ------------------------------------------------
VERSIONS = """\
use "buses"

device t-host { plugs system  bus pcie "{id}" }
device t-nic { plugs pcie, pci  hotplug true  prop vectors: u32 }
device t-blk { plugs pcie, pci  hotplug true  prop queues: u16 = 1 }
device t-port { plugs pcie  bus pcie "{id}" { slot 0..0 } }

machine t-2 {
    family t
    arch x86_64
    binary "qemu-system-x86_64"
    qemu-machine "t-2"
    default-memory "128M"
    quirk hole = true
    option sata: bool = true
    option mode: enum(a, b) = a
    devices {
        host: t-host {
            bus pcie "pcie.0" {
                nic: t-nic at 01.0 when sata
                blk: t-blk at 02.0 { queues = 2 }
            }
        }
    }
    implement disk by interface default virtio { virtio -> t-blk }
    implement nic by model default virtio { virtio -> t-nic }
    placement { ports t-port on "pcie.0" slots 0x03..0x04  spare-ports 1 }
    check few: cpus.count <= 8 else "at most 8"
}

machine t-1 extends t-2 {
    qemu-machine "t-1"
    default-memory "256M"
    quirk hole = false
    option sata: bool = false
    option legacy: bool = true
    devices { old: t-nic when legacy }
    compat t-blk queues = 4
    implement disk by interface default virtio { virtio -> t-nic }
    placement { spare-ports 2 }
}
"""


def test_every_category(tmp_path: Path) -> None:
    path = tmp_path / "t.machine"
    path.write_text(VERSIONS, encoding="utf-8")
    library = load_library([path])
    found = schema_diff.diff(library, library.machines["t-1"], library.machines["t-2"])
    shown = [(d.span.line if d.span else 0, d.message()) for d in found]
    # t-1's own statements state each difference (lines 31-40); a `placement` block
    # replaces its parent's whole, so t-2's ports are what t-1 lacks (line 27)
    assert shown == [
        (31, 'machine default-memory: "256M" → "128M"'),
        (31, 'machine qemu-machine: "t-1" → "t-2"'),
        (34, "quirk hole: false → true"),
        (36, "option legacy: bool = true → (none)"),
        (35, "option sata: bool = false → bool = true"),
        (37, "device old: t-nic on main-system-bus when legacy → (none)"),
        (38, "compat t-blk queues: 4 → (QEMU's default: 1)"),
        (39, "implement disk virtio: t-nic → t-blk"),
        (27, 'placement port-bus: (none) → "pcie.0"'),
        (27, "placement port-device: (none) → t-port"),
        (27, "placement port-slots: (none) → 0x3..0x4"),
        (40, "placement spare-ports: 2 → 1"),
    ], shown
    same = schema_diff.diff(library, library.machines["t-2"], library.machines["t-2"])
    assert same == []


def test_device_fields_and_variants(tmp_path: Path) -> None:
    """Two unrelated machines: a device that moves, changes type or props is one line per
    field; one id with variants under exclusive conditions is compared variant by variant;
    `check` conditions and the check of one side only."""
    other = """
machine u-1 {
    arch x86_64
    binary "qemu-system-x86_64"
    qemu-machine "t-2"
    default-memory "128M"
    quirk hole = true
    option sata: bool = true
    option mode: enum(a, b) = a
    devices {
        host: t-host {
            bus pcie "pcie.0" {
                nic: t-nic at 05.0 when sata and mode != b
                blk: t-nic at 02.0
            }
        }
        old: t-nic when mode == a
        old: t-blk when mode == b
    }
    implement disk by interface default virtio { virtio -> t-blk }
    implement nic by model default virtio { virtio -> t-nic }
    placement { ports t-port on "pcie.0" slots 0x03..0x04  spare-ports 1 }
    check few: cpus.count <= 4 else "at most 4"
}
"""
    path = tmp_path / "t.machine"
    path.write_text(VERSIONS + other, encoding="utf-8")
    library = load_library([path])
    found = schema_diff.diff(library, library.machines["t-2"], library.machines["u-1"])
    assert [(d.span.line if d.span else 0, d.message()) for d in found] == [
        (55, "device blk props: {queues = 2} → {}"),
        (55, "device blk type: t-blk → t-nic"),
        (54, "device nic address: 01.0 → 05.0"),
        (54, "device nic condition: sata → sata and mode != b"),
        (59, "device old: (none) → t-blk on main-system-bus when mode == b"),
        (58, "device old: (none) → t-nic on main-system-bus when mode == a"),
        (64, "check few: cpus.count <= 8 → cpus.count <= 4"),
    ]  # and nothing for `family` and the machine's name: names, not hardware


# ---- the shipped versions -----------------------------------------------------------------
def test_versions_extend_their_neighbour_towards_the_base() -> None:
    """The chain starts at the newest version QEMU 7.2 has (what the family name means): an
    older version extends the next newer one, a newer version (QEMU 7.2 lacks it: `since`)
    the next older one; only the base has no parent and the alias."""
    library = load_library()
    for family, versions in FAMILIES.items():
        base = library.machine(family)
        assert base is not None and base.extends is None and base.since == "7.2"
        assert library.machine(family, "10.0") is library.machines[versions[0]]
        for newer, older in itertools.pairwise(versions):
            new, old = library.machines[newer], library.machines[older]
            assert new.family == old.family == family
            assert (new.qemu_machine, old.qemu_machine) == (newer, older)
            if old.runs_on("7.2") and old is not base:
                assert old.extends == newer and old.aliases == ()
            if not new.runs_on("7.2"):
                assert new.extends == older and new.aliases == ()
                assert new.since == newer.rsplit("-", 1)[1]
    assert library.machine("q35") is library.machines["pc-q35-7.2"]
    assert library.machine("pc-q35") is library.machines["pc-q35-7.2"]
    assert library.machine("pseries") is library.machines["pseries-7.2"]


@pytest.mark.parametrize("version", ["pc-q35-7.1", "pseries-7.1"])
def test_queue_reset_compat_covers_every_virtio_device(version: str) -> None:
    """hw_compat_7_1 sets `queue_reset` on QOM's `virtio-device`, the parent of every
    virtio-*-device; the schema says it once per device type, so a new one needs a line."""
    library = load_library()
    virtio_devices = {t.name for t in library.devices.values()
                      if any(p.bus == "virtio" for p in t.plugs)}
    covered = {c.device for c in library.machines[version].compat
               if c.prop == "queue_reset" and c.value is False}
    assert virtio_devices and covered == virtio_devices
