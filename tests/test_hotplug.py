"""`mschema hotplug` and `mschema migrate-check`, against QEMU 7.2: the QMP commands that
`hotplug --emit qmp` prints, applied to a QEMU started from the original blob, give exactly
the new blob; two blobs that differ only in backends may migrate, others may not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus_support import codes_of
from qemu_support import (
    RELEASES,
    binary_of,
    families,
    machine_qemu,
    release_argv,
    releases_of,
    require_binary,
    schema,
)
from vm_support import compare, make_host_files, runnable_argv

from compiler.lang import model
from compiler.qemu import process

ROOT = Path(__file__).resolve().parent.parent


def mschema(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def make_files(blob: dict[str, Any], directory: Path) -> None:
    make_host_files(blob, directory)


def absolute(command: dict[str, Any], directory: Path) -> tuple[str, dict[str, Any]]:
    args = dict(command["arguments"])
    if command["execute"] == "blockdev-add":
        args["file"] = {**args["file"], "filename": str(directory / args["file"]["filename"])}
    return command["execute"], args


CASES = {
    "q35": ('machine = "pc-q35"\nhotplug-slots = 2\n[[disk]]\nfile = "d0.raw"\n',
            '[[disk]]\nfile = "hot.raw"\n[[nic]]\n'),
    "q35-usb": ('machine = "pc-q35"\n[[usb]]\ndevice = "tablet"\n',
                '[[usb]]\ndevice = "keyboard"\n'),
    "pseries": ('machine = "pseries"\n[[disk]]\nfile = "d0.raw"\n',
                '[[disk]]\nfile = "hot.raw"\n[[nic]]\nmodel = "virtio"\n'),
    # machine versions only QEMU 10.0 has, hot-plugged in QEMU 10.0
    "q35-10.0": ('machine = "pc-q35"\nqemu = "10.0"\nhotplug-slots = 2\n[[disk]]\n'
                 'file = "d0.raw"\n', '[[disk]]\nfile = "hot.raw"\n[[nic]]\n'),
    "pseries-10.0": ('machine = "pseries-10.0"\n[[disk]]\nfile = "d0.raw"\n',
                     '[[disk]]\nfile = "hot.raw"\n[[nic]]\nmodel = "virtio"\n'),
}
# every other family (from the schemas): a disk, then a hot-plugged nic of its default model
CASES.update({family: (f'machine = "{family}"\n[[disk]]\nfile = "d0.raw"\n', "[[nic]]\n")
              for family in families() if not any(
                  spec.startswith(f'machine = "{family}"') for spec, _f in CASES.values())})


def closed_buses() -> list[tuple[str, str, str, dict[str, Any]]]:
    """From the schemas: (machine, bus, kind, options) for each bus of a family's newest
    machine QEMU 7.2 has, and of its newest of all, that its `hotplug false when COND`
    closes, with the first option values (of those COND reads, bool and enum ones
    enumerated) that close it."""
    import itertools

    from compiler.lang import expr

    found = []
    for machine in dict.fromkeys(n for f, vs in families().items() for n in (f, vs[0])):
        m = schema(machine)

        def walk(instances: tuple[model.Instance, ...]) -> Iterator[model.BusBinding]:
            for inst in instances:
                for b in inst.buses:
                    yield b
                    yield from walk(b.devices)

        for b in walk(m.devices):
            if b.hotplug is None or b.hotplug[1] is None:
                continue
            value, condition = b.hotplug
            names = sorted(set(expr.options_in(condition)))
            domains = [m.options[n].type.domain() or (m.options[n].default,) for n in names]
            for combo in itertools.product(*domains):
                chosen = dict(zip(names, combo, strict=True))
                options = {n: o.default for n, o in m.options.items()} | chosen
                holds = expr.holds(condition, expr.Env(options))
                if (value if holds else not value) is False:
                    found.append((machine, b.name, b.kind, chosen))
                    break
    return found


@pytest.mark.parametrize("family, bus, kind, options, release",
                         [(*c, r) for c in closed_buses() for r in RELEASES
                          if r in releases_of(c[0])],
                         ids=lambda v: str(v) if isinstance(v, str) else None)
def test_a_bus_the_schema_closes_to_hotplug_is_closed_in_qemu(
        family: str, bus: str, kind: str, options: dict[str, Any], release: str,
        tmp_path: Path) -> None:
    """pc-i440fx with acpi=off: `mschema hotplug` refuses a nic (E1804, naming the bus),
    and QEMU started from the same blob refuses `device_add` onto that bus; with a spare
    place asked for (`hotplug-slots = 1`) the nic goes where the machine's placement under
    those options keeps one (i440fx: behind a pci-bridge, whose SHPC QEMU hot-plugs onto),
    and QEMU builds the new blob from the `device_add` mschema prints. On QEMU 7.2 and
    10.0 (`family` is a machine name: pc-i440fx, and pc-i440fx-10.0 on 10.0)."""
    qemu = release_argv(binary_of(family), release)
    text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    (tmp_path / "vm.toml").write_text(f'machine = "{family}"\n[options]\n{text}')
    (tmp_path / "add.toml").write_text("[[nic]]\n")
    ok(mschema("compile", "vm.toml", "--emit", "json", "-o", "vm.json", cwd=tmp_path))
    refused = mschema("hotplug", "vm.json", "--add", "add.toml", cwd=tmp_path)
    assert refused.returncode == 1 and codes_of(refused.stderr) == ["E1804"], refused.stderr
    assert f"`{bus}`" in refused.stderr
    # QEMU agrees: the nic's type onto that bus is refused at run time
    argv = json.loads(ok(mschema("compile", "vm.json", "--emit", "argv", cwd=tmp_path)))
    nic = schema(family).implementations["nic"]
    driver = nic.cases[nic.default]
    with pytest.raises(process.QemuError, match="does not support hotplugging"):
        process.query([*runnable_argv([*qemu, *argv[1:]], str(tmp_path)), "-accel", "tcg"],
                      hmp=[], qmp=[("device_add", {"driver": driver, "id": "hot0",
                                                  "bus": bus})])
    # a spare place kept by the placement: the hot-plug QEMU then accepts, or E1204
    (tmp_path / "spare.toml").write_text(
        f'machine = "{family}"\nhotplug-slots = 1\n[options]\n{text}')
    spare = mschema("compile", "spare.toml", "--emit", "json", "-o", "spare.json",
                    cwd=tmp_path)
    if spare.returncode:
        assert codes_of(spare.stderr) == ["E1204"], spare.stderr
        return
    argv = json.loads(ok(mschema("compile", "spare.json", "--emit", "argv", cwd=tmp_path)))
    new = json.loads(ok(mschema("hotplug", "spare.json", "--add", "add.toml",
                                cwd=tmp_path)))
    lines = ok(mschema("hotplug", "spare.json", "--add", "add.toml", "--emit", "qmp",
                       cwd=tmp_path)).splitlines()
    commands = [json.loads(line) for line in lines]
    placed = [c["arguments"]["bus"] for c in commands if c["execute"] == "device_add"]
    assert placed and bus not in placed
    make_files(new, tmp_path)
    qmp = [absolute(c, tmp_path) for c in commands]
    qmp += [("human-monitor-command", {"command-line": "info qtree"}),
            ("human-monitor-command", {"command-line": "info usb"})]
    result = process.query([*runnable_argv([*qemu, *argv[1:]], str(tmp_path)), "-accel",
                            "tcg"], hmp=[], qmp=qmp)
    qtree, usb = str(result.qmp[-2]), str(result.qmp[-1])
    assert compare(new, process.parse_qtree(qtree.replace("\r\n", "\n")), usb) == []


def test_every_conditional_hotplug_has_a_case() -> None:
    """Each `hotplug V when COND` of a family's newest machine closes its bus under some
    option values lint can enumerate, so the test above runs it in QEMU."""
    def conditional(instances: tuple[model.Instance, ...]) -> Iterator[str]:
        for inst in instances:
            for b in inst.buses:
                if b.hotplug is not None and b.hotplug[1] is not None:
                    yield b.name
                yield from conditional(b.devices)

    machines = dict.fromkeys(n for f, vs in families().items() for n in (f, vs[0]))
    declared = sorted((m, n) for m in machines for n in conditional(schema(m).devices))
    assert declared == sorted((f, b) for f, b, _k, _o in closed_buses())


def start_and_apply(blob: dict[str, Any], argv: list[str], commands: list[dict[str, Any]],
                    directory: Path) -> process.QueryResult:
    qemu = machine_qemu(str(blob["machine"]["qemu"]))  # QEMU 10.0 for pc-q35-10.0
    make_files(blob, directory)
    qmp = [absolute(c, directory) for c in commands]
    qmp += [("human-monitor-command", {"command-line": "info qtree"}),
            ("human-monitor-command", {"command-line": "info usb"})]
    return process.query([*runnable_argv([*qemu, *argv[1:]], str(directory)), "-accel",
                          "tcg"], hmp=[], qmp=qmp)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hot_added_devices_are_where_the_new_blob_says(case: str, tmp_path: Path) -> None:
    spec, fragment = CASES[case]
    (tmp_path / "vm.toml").write_text(spec)
    (tmp_path / "add.toml").write_text(fragment)
    ok(mschema("compile", "vm.toml", "--emit", "json", "-o", "vm.json", cwd=tmp_path))
    argv = json.loads(ok(mschema("compile", "vm.json", "--emit", "argv", cwd=tmp_path)))
    new = json.loads(ok(mschema("hotplug", "vm.json", "--add", "add.toml", cwd=tmp_path)))
    lines = ok(mschema("hotplug", "vm.json", "--add", "add.toml", "--emit", "qmp",
                       cwd=tmp_path)).splitlines()
    commands = [json.loads(line) for line in lines]
    assert [c["execute"] for c in commands][-1] == "device_add"
    added = [d for d in _walk(new["devices"]) if d["origin"] == "hotplug"]
    assert added and {d["id"] for d in added} == {c["arguments"]["id"] for c in commands
                                                  if c["execute"] == "device_add"}
    result = start_and_apply(new, argv, commands, tmp_path)
    qtree, usb = str(result.qmp[-2]), str(result.qmp[-1])
    assert compare(new, process.parse_qtree(qtree.replace("\r\n", "\n")), usb) == []
    # nothing that was there moved
    old = json.loads((tmp_path / "vm.json").read_text())
    before = {d["id"]: d.get("addr") for d in _walk(old["devices"])}
    after = {d["id"]: d.get("addr") for d in _walk(new["devices"])}
    assert all(after[i] == a for i, a in before.items())


def _walk(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for d in devices:
        out.append(d)
        for b in d.get("buses", []):
            out.extend(_walk(b["devices"]))
    return out


def test_plug_then_unplug_on_pseries_is_back_to_the_start(tmp_path: Path) -> None:
    # QEMU completes an unplug at once only on pseries, only for a hot-plugged device, and
    # only while the guest has not started; elsewhere it waits for the guest to acknowledge
    # (a machine under -S never does), so this is the round trip QEMU can show
    (tmp_path / "vm.toml").write_text('machine = "pseries"\n[[disk]]\nfile = "a.raw"\n')
    (tmp_path / "add.toml").write_text('[[nic]]\nmodel = "virtio"\n')
    ok(mschema("compile", "vm.toml", "--emit", "json", "-o", "vm.json", cwd=tmp_path))
    argv = json.loads(ok(mschema("compile", "vm.json", "--emit", "argv", cwd=tmp_path)))
    ok(mschema("hotplug", "vm.json", "--add", "add.toml", "-o", "hot.json", cwd=tmp_path))
    back = json.loads(ok(mschema("hotplug", "hot.json", "--remove", "net0", cwd=tmp_path)))
    assert back == json.loads((tmp_path / "vm.json").read_text())
    commands = [json.loads(x) for x in (
        ok(mschema("hotplug", "vm.json", "--add", "add.toml", "--emit", "qmp", cwd=tmp_path))
        + ok(mschema("hotplug", "hot.json", "--remove", "net0", "--emit", "qmp",
                     cwd=tmp_path))).splitlines()]
    assert [c["execute"] for c in commands] == ["netdev_add", "device_add", "device_del",
                                                "netdev_del"]
    result = start_and_apply(back, argv, commands, tmp_path)
    assert compare(back, process.parse_qtree(str(result.qmp[-2]).replace("\r\n", "\n")),
                   str(result.qmp[-1])) == []


@pytest.mark.parametrize("args, fragment, code", [
    (("--add", "add.toml"), '[[nic]]\n[[nic]]\n', "E1804"),
    (("--add", "add.toml"), '[[device]]\ntype = "VGA"\n', "E1802"),
    # a sound card's audiodev: QEMU has no QMP command that adds one
    (("--add", "add.toml"), '[[device]]\ntype = "AC97"\n', "E1807"),
    (("--add", "add.toml"), 'machine = "pc-q35"\n[[nic]]\n', "E1011"),
    (("--add", "add.toml"), '[[device]]\ntype = "virtio-rng-pci"\nbus = "pcie.0"\n', "E1803"),
    (("--remove", "hpet"), "", "E1806"),
    (("--remove", "rp0"), "", "E1806"),
    (("--remove", "nope"), "", "E1805"),
])
def test_refusals(args: tuple[str, str], fragment: str, code: str, tmp_path: Path) -> None:
    (tmp_path / "vm.toml").write_text('machine = "pc-q35"\n[[disk]]\nfile = "a.raw"\n')
    (tmp_path / "add.toml").write_text(fragment)
    ok(mschema("compile", "vm.toml", "--emit", "json", "-o", "vm.json", cwd=tmp_path))
    result = mschema("hotplug", "vm.json", *args, cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert f"error[{code}]" in result.stderr and "Traceback" not in result.stderr


def test_unplugging_a_sound_card_leaves_its_audiodev(tmp_path: Path) -> None:
    """QEMU has no QMP command to delete an audiodev: unplugging the card is `device_del`
    alone, and the new blob no longer lists the backend."""
    (tmp_path / "vm.toml").write_text('machine = "pc-q35"\n[[usb]]\ndevice = "audio"\n')
    ok(mschema("compile", "vm.toml", "--emit", "json", "-o", "vm.json", cwd=tmp_path))
    assert json.loads((tmp_path / "vm.json").read_text())["backends"] == {
        "usbdev0": {"kind": "audiodev", "driver": "none"}}
    commands = [json.loads(x) for x in ok(mschema(
        "hotplug", "vm.json", "--remove", "usbdev0", "--emit", "qmp", cwd=tmp_path)).splitlines()]
    assert commands == [{"execute": "device_del", "arguments": {"id": "usbdev0"}}]
    new = json.loads(ok(mschema("hotplug", "vm.json", "--remove", "usbdev0", "--emit", "json",
                                cwd=tmp_path)))
    assert new["backends"] == {}


def test_migrate_check(tmp_path: Path) -> None:
    (tmp_path / "src.toml").write_text('machine = "pc-q35"\n[[disk]]\nfile = "a.raw"\n'
                                       '[[nic]]\nnetwork = "bridge:br0"\n')
    (tmp_path / "dst.toml").write_text('machine = "pc-q35"\n[[disk]]\nfile = "/srv/b.raw"\n'
                                       '[[nic]]\nnetwork = "bridge:br1"\n')
    (tmp_path / "add.toml").write_text('[[nic]]\n')
    for name in ("src", "dst"):
        ok(mschema("compile", f"{name}.toml", "--emit", "json", "-o", f"{name}.json",
                   cwd=tmp_path))
    same = mschema("migrate-check", "src.json", "dst.json", cwd=tmp_path)
    assert same.returncode == 0, same.stdout
    assert "backend: `disk0` drive file: 'a.raw' → '/srv/b.raw'" in same.stdout
    assert "backend: `net0` netdev br: 'br0' → 'br1'" in same.stdout
    ok(mschema("hotplug", "src.json", "--add", "add.toml", "-o", "hot.json", cwd=tmp_path))
    moved = mschema("migrate-check", "hot.json", "dst.json", cwd=tmp_path)
    assert moved.returncode == 1
    assert "guest-visible: `net1` (virtio-net-pci) on `rp2` at 00.0 is only in the source" \
        in moved.stdout
    # the destination started from the hot-plugged blob is the same guest
    ok(mschema("compile", "hot.json", "--emit", "json", "-o", "again.json", cwd=tmp_path))
    assert mschema("migrate-check", "hot.json", "again.json", cwd=tmp_path).returncode == 0


def test_capacity_reports_where_hotplug_can_go(tmp_path: Path) -> None:
    (tmp_path / "vm.toml").write_text('machine = "pseries"\n[[disk]]\nfile = "a.raw"\n'
                                      'interface = "vscsi"\n[[usb]]\n')
    out = ok(mschema("compile", "vm.toml", "--capacity", cwd=tmp_path))
    # the vscsi bus takes no hot-plug (QEMU: `does not support hotplugging`)
    assert out == ("hot-plug: 31 free place(s) on `pci.0` (pci)\n"
                   "hot-plug: 3 free place(s) on `usb0.0` (usb)\n")
    (tmp_path / "q.toml").write_text('machine = "pc-q35"\nhotplug-slots = 2\n')
    out = ok(mschema("compile", "q.toml", "--capacity", cwd=tmp_path))
    assert out == ("hot-plug: 1 free place(s) on `rp0` (pcie)\n"
                   "hot-plug: 1 free place(s) on `rp1` (pcie)\n")


def test_hotplug_needs_a_precise_blob(tmp_path: Path) -> None:
    (tmp_path / "vm.json").write_text('{"machine": "pc-q35"}\n')
    (tmp_path / "add.toml").write_text("[[nic]]\n")
    result = mschema("hotplug", "vm.json", "--add", "add.toml", cwd=tmp_path)
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E1801"]), result.stderr
    assert "help: compile the loose spec first" in result.stderr


@pytest.mark.parametrize("case", ["q35", "pseries"])
def test_extract_after_hotplug_is_the_new_blob_for_migration(case: str,
                                                             tmp_path: Path) -> None:
    """A QEMU started from the blob, hot-plugged with the emitted commands, then read back
    with `mschema extract`: `migrate-check` finds no guest-visible difference from the blob
    `hotplug` predicted — the destination of a migration could be started from it."""
    from vm_support import qmp, running

    spec, fragment = CASES[case]
    (tmp_path / "vm.toml").write_text(spec)
    (tmp_path / "add.toml").write_text(fragment)
    ok(mschema("compile", "vm.toml", "--emit", "json", "-o", "vm.json", cwd=tmp_path))
    argv = json.loads(ok(mschema("compile", "vm.json", "--emit", "argv", cwd=tmp_path)))
    ok(mschema("hotplug", "vm.json", "--add", "add.toml", "-o", "new.json", cwd=tmp_path))
    commands = [json.loads(x) for x in ok(mschema(
        "hotplug", "vm.json", "--add", "add.toml", "--emit", "qmp", cwd=tmp_path)).splitlines()]
    new = json.loads((tmp_path / "new.json").read_text())
    require_binary(argv[0])
    make_files(new, tmp_path)
    with running(runnable_argv(argv, str(tmp_path))) as sock:
        qmp(sock, *(absolute(c, tmp_path) for c in commands))
        ok(mschema("extract", "--qmp", sock, "-o", "extracted.json", cwd=tmp_path))
        # the source itself, started from its blob, against the blob: the same guest too
    check = mschema("migrate-check", "new.json", "extracted.json", cwd=tmp_path)
    assert check.returncode == 0, check.stdout
    assert "0 guest-visible difference(s)" in check.stdout
    # and a destination that lacks the hot-plugged devices is refused
    refused = mschema("migrate-check", "extracted.json", "vm.json", cwd=tmp_path)
    assert refused.returncode == 1 and "is only in the source" in refused.stdout


def test_migrate_check_reads_props_as_qemu_does(tmp_path: Path) -> None:
    base = 'machine = "pc-q35"\n[[disk]]\nfile = "a.raw"\n'
    (tmp_path / "plain.toml").write_text(base)
    (tmp_path / "serial.toml").write_text(base + 'serial = "abc"\n')
    for name in ("plain", "serial"):
        ok(mschema("compile", f"{name}.toml", "--emit", "json", "-o", f"{name}.json",
                   cwd=tmp_path))
    # a virtio-blk serial on one side only: the guest sees it
    differs = mschema("migrate-check", "plain.json", "serial.json", cwd=tmp_path)
    assert differs.returncode == 1
    assert "prop `serial`: None → 'abc'" in differs.stdout
    # a block size written out, as extract does: QEMU derives the same one when unset
    plain = json.loads((tmp_path / "plain.json").read_text())
    disk = next(d for d in _walk(plain["devices"]) if d["id"] == "disk0")
    disk["props"]["logical_block_size"] = 512
    (tmp_path / "lbs.json").write_text(json.dumps(plain, indent=2) + "\n")
    same = mschema("migrate-check", "plain.json", "lbs.json", cwd=tmp_path)
    assert same.returncode == 0, same.stdout


def test_migrate_check_classes_machine_settings(tmp_path: Path) -> None:
    """Possible cpus, memory and -boot are guest-visible: `maxcpus` left out is the count."""
    specs = {"src": 'cpus = { count = 2, maxcpus = 4 }\nmemory = "100000K"\n',
             "same": 'cpus = { count = 2, maxcpus = 4, sockets = 1 }\nmemory = "102400000"\n',
             "fewer": 'cpus = 2\nmemory = "100000K"\nboot = { menu = true }\n'}
    for name, body in specs.items():
        (tmp_path / f"{name}.toml").write_text(f'machine = "pc-q35"\n{body}')
        ok(mschema("compile", f"{name}.toml", "--emit", "json", "-o", f"{name}.json",
                   cwd=tmp_path))
    assert mschema("migrate-check", "src.json", "same.json", cwd=tmp_path).returncode == 0
    fewer = mschema("migrate-check", "src.json", "fewer.json", cwd=tmp_path)
    assert fewer.returncode == 1
    assert "guest-visible: cpus `maxcpus`: 4 → 2" in fewer.stdout
    assert "guest-visible: cpus `cores`: 4 → 2" in fewer.stdout
    assert "guest-visible: boot `menu`: None → True" in fewer.stdout


def test_a_bridge_of_the_spec_takes_no_hotplug_without_acpi(tmp_path: Path) -> None:
    """pc-i440fx with acpi=off and a pci-bridge the spec adds itself: its SHPC refuses slot
    0, where mschema would put the next device, so `hotplug` offers only the placement's own
    bridges (none here: E1804), never a `device_add` that QEMU refuses."""
    (tmp_path / "vm.toml").write_text('machine = "pc-i440fx"\n[options]\nacpi = "off"\n'
                                      '[[device]]\ntype = "pci-bridge"\nid = "b1"\n')
    (tmp_path / "add.toml").write_text("[[nic]]\n")
    ok(mschema("compile", "vm.toml", "--emit", "json", "-o", "vm.json", cwd=tmp_path))
    refused = mschema("hotplug", "vm.json", "--add", "add.toml", cwd=tmp_path)
    assert refused.returncode == 1 and codes_of(refused.stderr) == ["E1804"], refused.stderr
    argv = json.loads(ok(mschema("compile", "vm.json", "--emit", "argv", cwd=tmp_path)))
    require_binary(argv[0])
    with pytest.raises(process.QemuError, match="Unsupported PCI slot 0"):
        process.query([*runnable_argv(argv, str(tmp_path)), "-accel", "tcg"], hmp=[],
                      qmp=[("device_add", {"driver": "virtio-net-pci", "id": "hot0",
                                           "bus": "b1", "addr": "0"})])
