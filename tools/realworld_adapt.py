"""Adapt public QEMU command lines (libvirt's test data) to run here: QEMU 7.2, TCG, no host
resources. A maintainer tool: it writes `tests/realworld/<case>.args` (one argument per line,
the binary first) and the case's row of `tests/realworld/SOURCES.md` (source, licence, every
change made), so that what was changed is recorded by the same code that changes it.

    python3 tools/realworld_adapt.py --source-dir DIR --version 9.0.0 NAME.x86_64-latest.args...

DIR is libvirt's `tests/qemuxml2argvdata` of that release (in the release tarball, e.g.
`apt-get source libvirt` on Debian 12). Only what the rules below know is changed; an argument
that needs a host resource the rules do not know is refused (the case is then left out).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "realworld"
LICENCE = "LGPL-2.1-or-later"
OVMF = "/usr/share/OVMF"
# libvirt's test firmware paths → the same firmware as Debian's `ovmf` package installs it
# (4 MiB flash: code and vars must be the same size)
FIRMWARE = {
    "/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd": f"{OVMF}/OVMF_CODE_4M.secboot.fd",
    "/usr/share/edk2/ovmf/OVMF_CODE.fd": f"{OVMF}/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE.fd": f"{OVMF}/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE.secboot.fd": f"{OVMF}/OVMF_CODE_4M.secboot.fd",
    "/usr/share/edk2/ovmf/OVMF_VARS.fd": f"{OVMF}/OVMF_VARS_4M.fd",
    "/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd": f"{OVMF}/OVMF_VARS_4M.ms.fd",
    "/usr/share/seabios/bios-256k.bin": "/usr/share/seabios/bios-256k.bin",
}


class Refused(Exception):
    """The argument needs a host resource these rules cannot replace."""


@attrs.frozen
class Adapted:
    argv: tuple[str, ...]
    changes: tuple[str, ...]


def read_args(text: str) -> list[str]:
    """libvirt's `.args`: `VAR=value \\` lines, the binary, one option (and value) per
    line, shell-quoted."""
    import shlex

    words = shlex.split(text.replace("\\\n", " "))
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        words.pop(0)
    return words


def image(path: str) -> str:
    """A host image → the file the harness creates in the case's directory."""
    return "images/" + path.rstrip("/").rsplit("/", 1)[-1]


class Adapter:
    """One command line through `HANDLERS`, option by option: `out` is the adapted argv,
    `changes` says (once each) what was changed and why."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(words)
        self.out: list[str] = []
        self.changes: list[str] = []

    def note(self, change: str) -> None:
        if change not in self.changes:
            self.changes.append(change)

    def run(self) -> Adapted:
        binary, *rest = self.words
        self.out.append(binary.rsplit("/", 1)[-1])
        i = 0
        while i < len(rest):
            option = rest[i]
            if not option.startswith("-"):
                raise Refused(f"`{option}` where an option was expected (an option this tool "
                              "does not know takes a value: add it to VALUED)")
            if option in VALUED:
                value = rest[i + 1]
                i += 2
            else:
                value = None
                i += 1
            handler = HANDLERS.get(option)
            if handler is None:
                self.out += [option] if value is None else [option, value]
            else:
                handler(self, option, value)
        return Adapted(tuple(self.out), tuple(self.changes))

    def keep(self, option: str, value: str | None) -> None:
        self.out += [option] if value is None else [option, value]


VALUED = {"-name", "-object", "-machine", "-accel", "-cpu", "-m", "-overcommit", "-smp",
          "-uuid", "-chardev", "-mon", "-rtc", "-global", "-boot", "-device", "-blockdev",
          "-netdev", "-audiodev", "-spice", "-vnc", "-sandbox", "-msg", "-display", "-bios",
          "-fsdev", "-watchdog-action", "-drive", "-vga", "-serial", "-parallel", "-numa",
          "-kernel", "-initrd", "-append", "-usbdevice", "-k", "-incoming", "-smbios",
          "-fw_cfg", "-loadvm", "-add-fd", "-tpmdev", "-iscsi", "-mem-path", "-action", "-set"}


def obj(value: str, first: str = "driver") -> dict[str, object]:
    """An option's value as JSON or in QEMU's `TYPE,key=value,…` form (`first` names the
    leading word: `driver` of -device, `qom-type` of -object)."""
    if value.startswith("{"):
        parsed = json.loads(value)
        assert isinstance(parsed, dict)
        return parsed
    if ",," in value:
        raise Refused(f"an escaped comma in {value}")
    out: dict[str, object] = {}
    for i, part in enumerate(value.split(",")):
        key, eq, val = part.partition("=")
        if not eq and i == 0:
            out[first] = key
        else:
            out[key] = val
    return out


def unparse(o: dict[str, object], like: str, first: str = "driver") -> str:
    """`o` in the form `like` was written in."""
    if like.startswith("{"):
        return dumps(o)
    rest = ",".join(f"{k}={v}" for k, v in o.items() if k != first)
    return f"{o[first]},{rest}" if first in o else rest


def dumps(value: dict[str, object]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _drop_S(a: Adapter, option: str, value: str | None) -> None:
    a.note("`-S` dropped (the harness starts every QEMU paused)")


def _accel(a: Adapter, option: str, value: str | None) -> None:
    if value is not None and value.split(",")[0] in ("kvm", "hvf", "whpx", "nvmm", "xen"):
        a.note(f"`-accel {value.split(',')[0]}` → `-accel tcg`")
        value = "tcg"
    a.keep(option, value)


def _machine(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    parts = value.split(",")
    kept = [p for p in parts if not p.startswith(("accel=", "kernel_irqchip="))]
    if kept != parts:
        a.note("`-machine`: " + ", ".join(f"`{p}`" for p in parts if p not in kept) +
               " dropped (KVM only)")
    if "cap-htm=on" in kept:
        kept[kept.index("cap-htm=on")] = "cap-htm=off"
        a.note("`-machine`: `cap-htm=on` → `cap-htm=off` (TCG has no hardware transactional "
               "memory)")
    a.keep(option, ",".join(kept))


def _cpu(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    if value.split(",")[0] == "host":
        model = "POWER10" if a.out[0] == "qemu-system-ppc64" else "max"
        a.note(f"`-cpu host` → `-cpu {model}` (TCG has no host CPU)")
        value = model
    a.keep(option, value)


def _object(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    o = obj(value, "qom-type")
    kind = o.get("qom-type")
    if kind == "secret":
        a.note("`-object secret` dropped (a host key file)")
        return
    if kind == "rng-random":
        a.note("`rng-random` keeps `/dev/urandom`")
        o["filename"] = "/dev/urandom"
        value = unparse(o, value, "qom-type")
    if kind == "memory-backend-ram" and "host-nodes" in o:
        a.note(f"`-object memory-backend-ram,id={o['id']}`: `host-nodes` and `policy` dropped "
               "(the host's NUMA nodes)")
        o.pop("host-nodes")
        o.pop("policy", None)
        value = unparse(o, value, "qom-type")
    if kind in ("rng-egd", "memory-backend-file", "memory-backend-memfd"):
        raise Refused(f"`-object {kind}` needs a host resource")
    a.keep(option, value)


def _chardev(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    backend, _, rest = value.partition(",")
    ident = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)["id"]
    if ident == "charmonitor":
        a.note("libvirt's monitor (`-chardev socket,id=charmonitor` and `-mon`) dropped "
               "(the harness adds its own QMP socket)")
        return
    if backend in ("socket", "spicevmc", "spiceport", "file", "pipe", "udp", "tcp"):
        a.note(f"`-chardev {backend},id={ident}` → `-chardev null,id={ident}` (a host "
               "socket, file or SPICE channel)")
        value = f"null,id={ident}"
    a.keep(option, value)


def _mon(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    if "chardev=charmonitor" not in value:
        raise Refused(f"-mon {value}")


def _drop_display(a: Adapter, option: str, value: str | None) -> None:
    a.note(f"`{option}` dropped (a host display server)")


def _audiodev(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    o = obj(value, "")
    if o.get("driver") != "none":
        a.note(f"`-audiodev` driver `{o.get('driver')}` → `none`")
        o = {"id": o["id"], "driver": "none"}
        value = unparse(o, value, "")
    a.keep(option, value)


def _global(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    if value.startswith("kvm-"):
        a.note(f"`-global {value}` dropped (a KVM device's property)")
        return
    a.keep(option, value)


def _blockdev(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    o = obj(value)
    driver = o.get("driver")
    if driver in ("file", "host_device", "host_cdrom"):
        path = str(o["filename"])
        if path in FIRMWARE:
            new = FIRMWARE[path]
            if new != path:
                a.note(f"firmware `{path}` → `{new}` (Debian's `ovmf`)")
        elif path.startswith("/var/lib/libvirt/qemu/nvram/") and path.endswith("_VARS.fd"):
            new = image(path)
            a.note(f"UEFI variables `{path}` → `{new}` (a copy of Debian's "
                   "`OVMF_VARS_4M.fd`, made by the harness)")
        elif path.startswith("/usr/share/"):
            raise Refused(f"unknown firmware file {path}")
        else:
            new = image(path)
            a.note(f"image `{path}` → `{new}` (created by the harness with qemu-img)")
        if driver != "file":
            a.note(f"`-blockdev` driver `{driver}` → `file`")
        o["driver"] = "file"
        o["filename"] = new
        o.pop("aio", None)
        o.pop("locking", None)
        a.keep(option, dumps(o))
        return
    if driver in ("nbd", "iscsi", "rbd", "gluster", "ssh", "http", "https", "ftp", "vxhs",
                  "nvme", "virtio-blk-vhost-vdpa"):
        raise Refused(f"network or host block driver {driver}")
    a.keep(option, value)


def _netdev(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    o: dict[str, object] = obj(value) if value.startswith("{") else {
        k: v for k, v in (p.split("=", 1) if "=" in p else ("type", p)
                          for p in value.split(","))}
    if o.get("type") != "user":
        a.note(f"`-netdev {o.get('type')}` (host fds, vhost) → `-netdev user`")
        o = {"type": "user", "id": o["id"]}
    a.keep(option, dumps(o))


HOST_DEVICES = ("vfio-", "vhost-", "spapr-tpm-proxy", "virtio-input-host", "tpm-",
                "vhost-user-", "pci-assign", "usb-host")


def _device(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    o = obj(value)
    driver = str(o.get("driver"))
    if driver.startswith(HOST_DEVICES):
        a.note(f"`-device {driver}` (id `{o.get('id')}`) dropped (it needs a host device, "
               "a vhost fd or a host TPM)")
        return
    a.keep(option, value)


def _fsdev(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    parts = value.split(",")
    if parts[0] != "local":
        raise Refused(f"-fsdev {value}")
    out = []
    for p in parts:
        if p.startswith("path="):
            new = image(p.removeprefix("path="))
            a.note(f"9p export `{p.removeprefix('path=')}` → `{new}/` (a directory the "
                   "harness creates)")
            p = f"path={new}"
        out.append(p)
    a.keep(option, ",".join(out))


def _drop_tpmdev(a: Adapter, option: str, value: str | None) -> None:
    a.note(f"`-tpmdev {value}` dropped (a host TPM or swtpm socket)")


def _numa(a: Adapter, option: str, value: str | None) -> None:
    """QEMU 7.2 refuses `-numa node,mem=` on its 7.2 machines: a RAM backend per node, as
    libvirt writes it for newer QEMUs."""
    assert value is not None
    parts = value.split(",")
    mem = next((p for p in parts if p.startswith("mem=")), None)
    if mem is None:
        a.keep(option, value)
        return
    node = next(p for p in parts if p.startswith("nodeid=")).removeprefix("nodeid=")
    size = int(mem.removeprefix("mem="))
    a.note("`-numa node,…,mem=SIZE` (refused by QEMU 7.2) → `-object memory-backend-ram` and "
           "`-numa node,…,memdev=`, as libvirt writes it for newer QEMUs")
    a.keep("-object", dumps({"qom-type": "memory-backend-ram", "id": f"ram-node{node}",
                             "size": size * 1024 * 1024}))
    a.keep(option, ",".join(f"memdev=ram-node{node}" if p == mem else p for p in parts))


def _refuse(a: Adapter, option: str, value: str | None) -> None:
    raise Refused(f"{option} {value or ''}".strip())


def _bios(a: Adapter, option: str, value: str | None) -> None:
    assert value is not None
    if value not in FIRMWARE:
        raise Refused(f"-bios {value}")
    a.keep(option, FIRMWARE[value])


HANDLERS: dict[str, Callable[[Adapter, str, str | None], None]] = {
    "-S": _drop_S,
    "-accel": _accel,
    "-machine": _machine,
    "-cpu": _cpu,
    "-object": _object,
    "-chardev": _chardev,
    "-mon": _mon,
    "-spice": _drop_display,
    "-vnc": _drop_display,
    "-audiodev": _audiodev,
    "-global": _global,
    "-blockdev": _blockdev,
    "-netdev": _netdev,
    "-device": _device,
    "-bios": _bios,
    "-fsdev": _fsdev,
    "-drive": _refuse,
    "-mem-path": _refuse,
    "-add-fd": _refuse,
    "-incoming": _refuse,
    "-kernel": _refuse,
    "-tpmdev": _drop_tpmdev,
    "-numa": _numa,
}


# cases of the source that are not in the corpus, and why
LEFT_OUT = {
    "firmware-auto-efi-stateless.x86_64-latest.args": "AMD SEV firmware (`OVMF.sev.fd`)",
    "vhost-user-fs-hugepages.x86_64-latest.args": "hugepage memory and a vhost-user socket",
    "intel-iommu-eim.x86_64-latest.args": "288 vCPUs need KVM's split irqchip",
    "q35-multifunction.x86_64-latest.args": "QEMU 7.2 refuses it as written: \"single "
    "function device can't be populated in function 4.1\"",
    "ppc64-default-cpu-kvm-pseries-2.7.ppc64-latest.args": "pseries-2.7 has HTM on, which "
    "needs KVM (its TCG twin is in the corpus)",
    "pseries-phb-numa-node.ppc64-latest.args": "2 threads per core need KVM on pseries",
    "autoindex.args": "QEMU 7.2 refuses it as written: \"USB bus 'usb2.0' not found\" (the "
    "companion controllers come before their EHCI)",
    "pseries-vio-user-assigned.ppc64-latest.args": "QEMU 7.2 refuses it as written: "
    "\"IRQ 4352 is not free\"",
}


def case_name(file: str) -> str:
    stem = Path(file).name
    for suffix in (".x86_64-latest.args", ".ppc64-latest.args", ".args"):
        stem = stem.removesuffix(suffix)
    return f"libvirt-{stem}"


def row(case: str, source: str, version: str, changes: Sequence[str]) -> str:
    return (f"| `{case}` | libvirt {version} `tests/qemuxml2argvdata/{source}` | {LICENCE} | "
            + "; ".join(changes) + " |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-dir", type=Path, required=True)
    parser.add_argument("--version", required=True, help="the libvirt release, e.g. 9.0.0")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    sources = OUT / "SOURCES.md"
    rows = {line.split("`")[1]: line for line in sources.read_text().splitlines()
            if line.startswith("| `")} if sources.exists() else {}
    for file in args.files:
        case = case_name(file)
        if Path(file).name in LEFT_OUT:
            print(f"{file}: left out: {LEFT_OUT[Path(file).name]}", file=sys.stderr)
            continue
        try:
            adapted = Adapter(read_args((args.source_dir / file).read_text())).run()
        except Refused as e:
            print(f"{file}: left out: {e}", file=sys.stderr)
            continue
        (OUT / f"{case}.args").write_text("".join(f"{w}\n" for w in adapted.argv))
        rows[case] = row(case, file, args.version, adapted.changes)
    left_out = "".join(f"- libvirt {args.version} `{k}`: {v}\n"
                       for k, v in sorted(LEFT_OUT.items()))
    sources.write_text(SOURCES_HEAD + "".join(f"{rows[k]}\n" for k in sorted(rows)) +
                       "\nLeft out (they need what no test machine has, or QEMU 7.2 refuses "
                       "them as written):\n\n" + left_out)
    return 0


SOURCES_HEAD = """\
# Sources of the real-world corpus

Each case is one QEMU command line from a public project's test data, adapted by
`tools/realworld_adapt.py` to run under QEMU 7.2 with TCG and without host resources; the
changes column lists every change it made. The libvirt cases come from the libvirt 9.0.0
release tarball (`libvirt-9.0.0.tar.xz`, as Debian 12's `libvirt` source package ships it),
directory `tests/qemuxml2argvdata/`: libvirt's test data is part of libvirt, licensed
LGPL-2.1-or-later (libvirt's `COPYING.LESSER`), and the adapted command lines keep that licence.

| case | source | licence | changes |
|---|---|---|---|
"""

if __name__ == "__main__":
    sys.exit(main())
