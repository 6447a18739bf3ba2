"""libvirt in and out, with libvirt itself as the oracle (tests/libvirt/, sources in
tests/libvirt/SOURCES.md; the private daemon: tests/libvirt_support.py).

For every domain of the corpus, libvirt defines it first (`virsh define`, `dumpxml`: every
default and address filled in, as users hand domains to mschema); then

- `import-libvirt --precise` of that XML compiles, and QEMU started from the compiled argv
  builds what the blob says (`verify`: devices, buses, props and backend links over QMP, the
  machine's options, cpus, memory, boot order and uuid); so does the loose import;
- QEMU started from libvirt's own command line (`domxml-to-native qemu-argv`) builds the
  same machine mschema predicts for the imported domain, device by device, ids (libvirt's
  aliases), addresses and the props QEMU shows (MACs, chassis, ports) included, and the
  same machine settings (options, cpu topology, memory, boot, uuid);
- `--emit libvirt` of the blob is accepted by `virsh define`, and its `dumpxml` has every
  guest-visible detail of the first one (devices, models, addresses, MACs, targets).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from libvirt_support import Daemon, native_argv
from lxml import etree
from qemu_support import require_binary

from compiler import driver
from compiler.base.diagnostics import CompileError
from compiler.qemu import compare, process, verify

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "libvirt"
CASES = sorted(p.stem for p in CORPUS.glob("*.xml"))
BAD = sorted(p.stem for p in (CORPUS / "bad").glob("*.xml"))
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host files the corpus names (`@IMAGES@/…`): images in their format, UEFI
    variables, 9p directories."""
    where = tmp_path_factory.mktemp("libvirt-images")
    qemu_img = require_binary("qemu-img")
    for case in CASES:
        text = (CORPUS / f"{case}.xml").read_text(encoding="utf-8")
        for name in re.findall(r"<source file='@IMAGES@/([^']+)'", text):
            fmt = "qcow2" if name.endswith(".qcow2") else "raw"
            if not (where / name).exists():
                subprocess.run([qemu_img, "create", "-q", "-f", fmt, str(where / name), "16M"],
                               check=True, timeout=30)
        for name in re.findall(r"<source dir='@IMAGES@/([^']+)'", text):
            (where / name).mkdir(exist_ok=True)
    if OVMF_VARS.exists():
        shutil.copy(OVMF_VARS, where / "VARS.fd")
    return where


def corpus_xml(case: str, images: Path) -> str:
    return (CORPUS / f"{case}.xml").read_text(encoding="utf-8").replace("@IMAGES@", str(images))


@pytest.fixture(scope="module")
def defined(libvirtd: Daemon, images: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Path]]:
    """Each case as libvirt defines it (`dumpxml`), written to a file; one daemon."""
    where = tmp_path_factory.mktemp("libvirt-defined")
    out = {}
    for case in CASES:
        with libvirtd.defined(corpus_xml(case, images)) as full:
            path = where / f"{case}.xml"
            path.write_text(full, encoding="utf-8")
            out[case] = path
    yield out


def imported(path: Path, precise: bool = True) -> dict[str, object] | str:
    text, warnings = driver.import_libvirt(path, precise, False)
    assert not [w for w in warnings if w.severity == "error"]
    return json.loads(text) if precise else text


def qemu_view(argv: list[str], cwd: Path, blob: dict[str, object], qom: bool = True
              ) -> list[str]:
    """Start QEMU from `argv` (paused) and compare what it built with `blob`: every device
    and bus (`info qtree`, `info usb`), the machine's settings (options, cpus, memory, boot,
    uuid: QOM `/machine`) and, with `qom`, every prop and backend link of the emitted
    devices over QMP (not for libvirt's argv: its backends have libvirt's names)."""
    runnable = verify.runnable_argv(argv, str(cwd))
    asked = compare.qom_requests(blob) if qom else []
    result = process.query([*runnable, "-accel", "tcg"], hmp=("info qtree", "info usb"),
                           qmp=[*compare.MACHINE_REQUESTS, *asked], timeout=60.0)
    n = len(compare.MACHINE_REQUESTS)
    return compare.compare(blob, process.parse_qtree(result.hmp[0]), result.hmp[1],
                           result.qmp[n:] if qom else None, result.qmp[:n])


def compiled_argv(blob: dict[str, object], tmp: Path) -> list[str]:
    from compiler.emit import argv

    path = tmp / "blob.json"
    path.write_text(json.dumps(blob), encoding="utf-8")
    machine = driver.compile_input(path)
    words = argv.argv(machine)
    return [require_binary(words[0]), *words[1:]]


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_import_compile_verify(case: str, defined: dict[str, Path], tmp_path: Path) -> None:
    """import-libvirt --precise → compile → QEMU builds exactly the blob."""
    blob = imported(defined[case])
    assert isinstance(blob, dict)
    problems = qemu_view(compiled_argv(blob, tmp_path), tmp_path, blob)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("case", CASES)
def test_loose_import_compiles(case: str, defined: dict[str, Path], tmp_path: Path) -> None:
    """The loose import (no addresses) compiles, and QEMU builds what it predicts."""
    text = imported(defined[case], precise=False)
    assert isinstance(text, str)
    spec = tmp_path / f"{case}.toml"
    spec.write_text(text, encoding="utf-8")
    from compiler.emit import blob as blob_

    blob = json.loads(blob_.blob(driver.compile_input(spec)))
    problems = qemu_view(compiled_argv(blob, tmp_path), tmp_path, blob)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("case", CASES)
def test_libvirt_argv_builds_the_prediction(case: str, libvirtd: Daemon,
                                            defined: dict[str, Path], tmp_path: Path) -> None:
    """QEMU started from libvirt's own command line builds what mschema predicts for the
    imported domain, device by device."""
    blob = imported(defined[case])
    assert isinstance(blob, dict)
    argv = native_argv(libvirtd.native_argv(defined[case].read_text(encoding="utf-8")))
    problems = qemu_view(argv, tmp_path, blob, qom=False)
    assert problems == [], "\n".join(problems)


# ---------------------------------------------------------------------------------------
# the round trip: XML → mschema → --emit libvirt → virsh define → dumpxml

# what a device element says to the guest: its attributes and those of these children; a
# character device's backend (`type`, `<source>`) is the host's, and so are paths
GUEST_CHILDREN = ("model", "target", "address", "mac", "driver", "serial", "readonly",
                  "source")
HOST_ATTRS = {"file", "dir", "path", "name", "placement", "action", "fallback",
              "check", "match", "managed", "mode"}
CHARDEVS = ("serial", "console", "channel")
# what changes nothing for a TCG guest: `<apic/>` (x86 always has one; its `eoi` is KVM's),
# the in-kernel PIT's tick policy (libvirt writes it for KVM only)
TCG_NOOP_FEATURES = ("apic",)
TCG_NOOP_TIMERS = (("pit", "delay"), ("pit", "catchup"), ("pit", "discard"), ("pit", "merge"))


def boot_order(dom: etree._Element) -> list[str]:
    """The devices the guest boots from, in order: `<boot order>` on devices, or libvirt's
    reading of `<os><boot dev>` (the first disk, cdrom, interface)."""
    devices = [el for el in dom.find("devices") if isinstance(el.tag, str)]
    def name(el: etree._Element) -> str:
        target, mac = el.find("target"), el.find("mac")
        return f"{el.tag}:{target.get('dev') if target is not None else mac.get('address')}"
    own = sorted((int(el.find("boot").get("order")), name(el)) for el in devices
                 if el.find("boot") is not None)
    if own:
        return [n for _o, n in own]
    kinds = {"hd": ("disk", "disk"), "cdrom": ("disk", "cdrom"), "network": ("interface", None)}
    out = []
    for b in dom.findall("os/boot"):
        tag, device = kinds[b.get("dev")]
        first = next((el for el in devices if el.tag == tag
                      and (device is None or el.get("device", "disk") == device)), None)
        if first is not None:
            out.append(name(first))
    return out


CELL_UNITS = {"b": 1, "bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _rounded_kib(cell: etree._Element, align: int) -> int:
    """A NUMA cell's memory in KiB, rounded up to `align` KiB."""
    size = int(cell.get("memory")) * CELL_UNITS[cell.get("unit", "KiB")]
    return -(-size // (align << 10)) * align


def guest_view(xml: str) -> list[tuple[object, ...]]:
    """The guest-visible details of a defined domain: machine, memory (as libvirt rounds it
    when it starts the guest), cpus, boot order, and each device with its model, target,
    address, MAC; host paths and character device backends left out."""
    dom = etree.fromstring(xml.encode())
    # what the guest gets: libvirt starts it with the memory rounded up (1 MiB on x86)
    align = {"x86_64": 1024, "ppc64": 262144}[dom.find("os/type").get("arch")]
    kib = -(-int(dom.findtext("memory")) // align) * align
    out: list[tuple[object, ...]] = [
        ("memory", kib, dom.find("memory").get("unit")),
        ("vcpu", dom.findtext("vcpu"), dom.find("vcpu").get("current")),
        ("os", dom.find("os/type").get("machine")),
        # guest NUMA cells, each rounded up as libvirt starts the guest
        ("numa", tuple((c.get("cpus"), _rounded_kib(c, align))
                       for c in dom.findall("cpu/numa/cell"))),
        ("boot", tuple(boot_order(dom))),
        ("features", tuple(sorted((f.tag, f.get("state")) for f in dom.findall("features/*")
                                  if f.tag not in TCG_NOOP_FEATURES))),
        ("clock", dom.find("clock").get("offset"),
         tuple(sorted(tuple(sorted(t.attrib.items())) for t in dom.findall("clock/timer")
                      if (t.get("name"), t.get("tickpolicy")) not in TCG_NOOP_TIMERS))),
    ]
    for el in dom.find("devices"):
        if el.tag in ("emulator", "audio") or not isinstance(el.tag, str):
            continue
        parts: list[object] = [el.tag, tuple(sorted(
            (k, v) for k, v in el.attrib.items() if k not in HOST_ATTRS
            and not (el.tag in CHARDEVS and k == "type")))]
        for child in GUEST_CHILDREN:
            if child == "source" and el.tag in CHARDEVS:
                continue
            for c in el.findall(child):
                attrs = tuple(sorted((k, v) for k, v in c.attrib.items()
                                     if k not in HOST_ATTRS or child == "target"))
                # a serial's number; an expander's NUMA node (`<target><node>`)
                parts.append((child, attrs, (c.text or "").strip() if child == "serial"
                              else (c.findtext("node") or "").strip()))
        out.append(tuple(parts))
    return sorted(out, key=repr)


@pytest.mark.parametrize("case", CASES)
def test_round_trip(case: str, libvirtd: Daemon, defined: dict[str, Path],
                    tmp_path: Path) -> None:
    from compiler.emit import libvirt

    blob = imported(defined[case])
    path = tmp_path / "blob.json"
    path.write_text(json.dumps(blob), encoding="utf-8")
    xml = libvirt.domain_xml(driver.compile_input(path))
    rng = etree.RelaxNG(etree.parse("/usr/share/libvirt/schemas/domain.rng"))
    assert rng.validate(etree.fromstring(xml.encode())), rng.error_log
    with libvirtd.defined(xml) as again:
        first, second = guest_view(defined[case].read_text(encoding="utf-8")), guest_view(again)
    assert second == first, "\n".join(
        [f"- {x}" for x in first if x not in second] + [f"+ {x}" for x in second
                                                         if x not in first])


def test_the_comparisons_are_not_vacuous(defined: dict[str, Path], libvirtd: Daemon,
                                         tmp_path: Path) -> None:
    """A moved device, another MAC, another model are differences for each check."""
    blob = imported(defined["nic-many"])
    assert isinstance(blob, dict)
    argv = native_argv(libvirtd.native_argv(defined["nic-many"].read_text(encoding="utf-8")))
    text = json.dumps(blob)
    for old, new in (('"52:54:00:00:01:02"', '"52:54:00:00:01:09"'),
                     ('"type": "e1000e"', '"type": "e1000"'), ('"size": 268435456', '"size": 1')):
        assert old in text
        assert qemu_view(argv, tmp_path, json.loads(text.replace(old, new)), qom=False) != []
    xml = defined["nic-many"].read_text(encoding="utf-8")
    assert guest_view(xml.replace("52:54:00:00:01:02", "52:54:00:00:01:09")) != guest_view(xml)
    assert guest_view(re.sub(r"slot='0x00'", "slot='0x01'", xml, count=1)) != guest_view(xml)
    # NUMA cells and an expander's node
    xml = defined["libvirt-pcie-expander-bus"].read_text(encoding="utf-8")
    assert guest_view(xml.replace("cpus='0-7'", "cpus='0-6'")) != guest_view(xml)
    assert guest_view(xml.replace("<node>1</node>", "<node>0</node>")) != guest_view(xml)


# ---------------------------------------------------------------------------------------
# what cannot be imported: diagnostics, exactly as expected (tests/libvirt/bad/*.err)


@pytest.mark.parametrize("case", BAD)
def test_bad_domain(case: str, update_goldens: bool) -> None:
    path = CORPUS / "bad" / f"{case}.xml"
    done = subprocess.run([sys.executable, "-m", "compiler", "import-libvirt",
                           str(path.relative_to(ROOT))], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    golden = path.with_suffix(".err")
    if update_goldens:
        golden.write_text(done.stderr, encoding="utf-8")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == golden.read_text(encoding="utf-8")


def test_emit_refuses_a_ram_backend_libvirt_would_name_otherwise(tmp_path: Path) -> None:
    """libvirt names node N's RAM backend `ram-nodeN`, which also names its RAM block in the
    migration stream: a blob with another id cannot become a domain (E1049)."""
    from compiler.emit import libvirt

    good = ROOT / "tests" / "blob" / "good" / "numa-fixed-point.json"
    libvirt.domain_xml(driver.compile_input(good))  # libvirt's own names: fine
    blob = json.loads(good.read_text(encoding="utf-8"))
    blob["numa"][1]["memdev"] = "big"
    path = tmp_path / "blob.json"
    path.write_text(json.dumps(blob), encoding="utf-8")
    with pytest.raises(CompileError) as refused:
        libvirt.domain_xml(driver.compile_input(path))
    assert [(d.code, d.message) for d in refused.value.diagnostics] == [
        ("E1049", "NUMA node 1's RAM backend is `big`, which libvirt would name `ram-node1`")]


def test_partial_imports_the_rest(tmp_path: Path) -> None:
    path = CORPUS / "bad" / "hostdev.xml"
    with pytest.raises(CompileError):
        driver.import_libvirt(path, False, False)
    text, warnings = driver.import_libvirt(path, False, True)
    assert [w.code for w in warnings] == ["E2103"] and "[[disk]]" in text


def test_emit_refuses_a_device_libvirt_cannot_say(tmp_path: Path) -> None:
    """E2106 at the spec entry of a device no libvirt element describes."""
    spec = tmp_path / "testdev.toml"
    spec.write_text('machine = "pc-q35"\n\n[[device]]\ntype = "pci-testdev"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "compiler", "compile", str(spec), "--emit",
                           "libvirt"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"{spec}:3:1: error[E2106]: libvirt has no element for "
                                  "`pci-testdev`")


def test_cli_import_then_verify(defined: dict[str, Path], tmp_path: Path) -> None:
    """The README's commands: import-libvirt --precise -o, then `mschema verify` of the blob
    (QEMU 7.2 builds it), then --emit libvirt -o."""
    require_binary("qemu-system-x86_64")
    blob = tmp_path / "desktop.json"
    run = [sys.executable, "-m", "compiler"]
    done = subprocess.run([*run, "import-libvirt", str(defined["desktop"]), "--precise", "-o",
                           str(blob)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = subprocess.run([*run, "verify", str(blob)], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "desktop.xml"
    done = subprocess.run([*run, "compile", str(blob), "--emit", "libvirt", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "<address type='pci'" in out.read_text(encoding="utf-8")


def test_partial_on_the_command_line(tmp_path: Path) -> None:
    """--partial: the refusals become warnings on stderr, the spec is written, exit 0."""
    out = tmp_path / "hostdev.toml"
    done = subprocess.run([sys.executable, "-m", "compiler", "import-libvirt",
                           "tests/libvirt/bad/hostdev.xml", "--partial", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert done.stderr.startswith("tests/libvirt/bad/hostdev.xml:14:5: warning[E2103]: "
                                  "`<hostdev>` cannot be imported")
    assert 'file = "/var/lib/libvirt/images/a.qcow2"' in out.read_text(encoding="utf-8")


def test_external_entities_are_not_read(tmp_path: Path) -> None:
    """A domain that names a host file as an XML entity gets no content from it (lxml with
    entity resolution and the network off): the name imports as written, nothing more."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret", encoding="utf-8")
    xml = tmp_path / "xxe.xml"
    xml.write_text(f"""<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY x SYSTEM "file://{secret}">]>
<domain type='qemu'>
  <name>xxe&x;</name>
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
</domain>
""", encoding="utf-8")
    text, _warnings = driver.import_libvirt(xml, False, False)
    assert "s3cret" not in text


def test_video_memory_other_than_qemus_is_said(defined: dict[str, Path], tmp_path: Path) -> None:
    """The importer keeps QEMU's video memory sizes; a domain asking for others gets a
    warning at its `<model>`, not silence."""
    xml = defined["libvirt-q35-virt-manager-basic"].read_text(encoding="utf-8")
    assert "vgamem='16384'" in xml
    path = tmp_path / "vgamem.xml"
    path.write_text(xml.replace("vgamem='16384'", "vgamem='32768'"), encoding="utf-8")
    _text, warnings = driver.import_libvirt(path, False, False)
    assert [(w.code, w.severity, w.message) for w in warnings] == [
        ("E2104", "warning", "video memory vgamem='32768' is not imported: the device keeps "
         "QEMU's default sizes")]
    assert driver.import_libvirt(defined["libvirt-q35-virt-manager-basic"], False, False)[1] \
        == []


# ---------------------------------------------------------------------------------------
# libvirt's layout as a placement style (`placement = "libvirt"`, pc-q35-7.2.machine)

Q35_CASES = [c for c in CASES if "machine='pc-q35" in (CORPUS / f"{c}.xml").read_text(
    encoding="utf-8")]
def without_addresses(xml: str) -> str:
    """The domain with every `<address>` and every PCI controller but the root taken out:
    what libvirt then assigns by itself."""
    dom = etree.fromstring(xml.encode())
    devices = dom.find("devices")
    for el in list(devices):
        if el.tag == "controller" and el.get("type") == "pci" and \
                el.get("model") not in ("pcie-root", "pci-root"):
            devices.remove(el)
    for addr in list(devices.iter("address")):
        addr.getparent().remove(addr)
    return etree.tostring(dom, encoding="unicode")


@pytest.fixture(scope="module")
def assigned(libvirtd: Daemon, images: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Path]:
    """Each q35 case without addresses, as libvirt defines it (its own assignment)."""
    where = tmp_path_factory.mktemp("libvirt-assigned")
    out = {}
    for case in Q35_CASES:
        with libvirtd.defined(without_addresses(corpus_xml(case, images))) as full:
            path = where / f"{case}.xml"
            path.write_text(full, encoding="utf-8")
            out[case] = path
    return out


def pci_layout(blob: dict[str, object]) -> list[tuple[object, ...]]:
    """Every PCI device of a blob: its type, its place as the addresses from the root bus
    down (ids left out: libvirt's aliases are not mschema's), and a port's chassis and port."""
    out: list[tuple[object, ...]] = []

    def walk(devices: list[dict[str, object]], path: tuple[str, ...], pci: bool) -> None:
        for d in devices:
            here = (*path, str(d.get("addr"))) if pci else path
            props = d.get("props") or {}
            assert isinstance(props, dict)
            if pci:
                out.append((d["type"], here, props.get("chassis"), props.get("port")))
            for b in d.get("buses") or []:  # type: ignore[attr-defined]
                walk(b["devices"], here, b["kind"] in ("pci", "pcie"))

    walk(blob["devices"], (), False)  # type: ignore[arg-type]
    return sorted(out, key=repr)


@pytest.mark.parametrize("case", Q35_CASES)
def test_libvirt_placement_style(case: str, assigned: dict[str, Path], tmp_path: Path) -> None:
    """The loose import (`placement = "libvirt"`, no addresses) compiles to libvirt's own
    assignment of the domain: every PCI device at the same place (bus path, slot.function),
    every root port with the same chassis and port, the spare port included. libvirt's side
    is the precise import of its `dumpxml`, which the tests above check against libvirt's
    command line in QEMU."""
    from compiler.emit import blob as blob_

    theirs = imported(assigned[case])
    assert isinstance(theirs, dict)
    text = imported(assigned[case], precise=False)
    assert isinstance(text, str) and 'placement = "libvirt"' in text
    spec = tmp_path / f"{case}.toml"
    spec.write_text(text, encoding="utf-8")
    ours = json.loads(blob_.blob(driver.compile_input(spec)))
    assert pci_layout(ours) == pci_layout(theirs)
