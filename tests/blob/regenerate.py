"""Rebuild tests/blob/good/*.json and the corrupted blobs in tests/blob/bad/*.json from the
two base specs, one corruption per case. Run from the repo root after a change to the blob
format, then `pytest tests/test_blob_corpus.py --update-goldens` and read the diff."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Blob = dict[str, Any]


def compile_blob(spec: Path) -> Blob:
    out = subprocess.check_output([sys.executable, "-m", "compiler", "compile", str(spec),
                                   "--emit", "json"], cwd=HERE.parent.parent)
    return json.loads(out)


def find(devices: list[Blob], ident: str) -> Blob:
    for d in devices:
        if d["id"] == ident:
            return d
        for b in d.get("buses", []):
            try:
                return find(b["devices"], ident)
            except KeyError:
                pass
    raise KeyError(ident)


def siblings(devices: list[Blob], ident: str) -> list[Blob]:
    for d in devices:
        if d["id"] == ident:
            return devices
        for b in d.get("buses", []):
            try:
                return siblings(b["devices"], ident)
            except KeyError:
                pass
    raise KeyError(ident)


def remove(x: Blob, ident: str) -> None:
    siblings(x["devices"], ident).remove(find(x["devices"], ident))


def nested(depth: int) -> list[Any]:
    """Arrays `depth` deep, one inside the other."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def with_flash(x: Blob, node: str) -> None:
    """`pflash0=node`, with the flash chip the machine then maps."""
    x["machine"]["options"]["pflash0"] = node
    x["devices"].append({"id": "flash0", "type": "cfi.pflash01", "origin": "machine",
                         "props": {"name": "system.flash0"}})


def write(path: Path, blob: Blob) -> None:
    text = json.dumps(blob, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON can only say it as `\udc80`
        text = json.dumps(blob, indent=2)
    path.write_text(text + "\n")


def main() -> None:
    p = compile_blob(HERE / "base-pseries.toml")
    q = compile_blob(HERE / "base-q35.toml")
    write(HERE / "good/pseries-fixed-point.json", p)
    write(HERE / "good/q35-fixed-point.json", q)
    n = compile_blob(HERE / "base-numa.toml")
    write(HERE / "good/numa-fixed-point.json", n)
    wrong_bus_kind = {"id": "vga0", "type": "isa-serial", "origin": "spec", "props": {}}
    cases: dict[str, tuple[Blob, Callable[[Blob], Any]]] = {
        "wrong-format": (p, lambda x: x.update(format="mschema-precise/9")),
        "unknown-top-key": (p, lambda x: x.update(colour="red")),
        "no-devices": (p, lambda x: x.pop("devices")),
        "unknown-machine": (p, lambda x: x["machine"].update(schema="pseries-9")),
        "wrong-qemu-machine": (p, lambda x: x["machine"].update(qemu="pseries-6.2")),
        # a pseries-7.2 blob named pseries-7.1: its virtio-*-devices lack 7.1's compat props
        "older-version-without-compat": (p, lambda x: x["machine"].update(qemu="pseries-7.1")),
        "unknown-option": (q, lambda x: x["machine"]["options"].update(floppy=True)),
        "option-wrong-type": (q, lambda x: x["machine"]["options"].update(sata="maybe")),
        "omits-machine-device": (q, lambda x: remove(x, "hpet")),
        "omits-nvram": (p, lambda x: remove(x, "nvram")),
        "option-off-device-kept": (q, lambda x: x["machine"]["options"].update(hpet=False)),
        "invented-machine-device": (q, lambda x: find(x["devices"], "disk0").update(
            origin="machine")),
        # a type only the machine's board code creates, asked for by a spec (E1430)
        "machine-only-from-spec": (q, lambda x: find(x["devices"], "lpc")["buses"][0][
            "devices"].append({"id": "port92b", "type": "port92", "origin": "spec",
                               "props": {}})),
        "bad-origin": (q, lambda x: find(x["devices"], "disk0").update(origin="magic")),
        "unknown-device-type": (q, lambda x: find(x["devices"], "disk0").update(
            type="virtio-blk-pcx")),
        "address-collision": (q, lambda x: find(x["devices"], "rp1").update(addr="1f.0")),
        "address-syntax": (q, lambda x: find(x["devices"], "rp1").update(addr="1g.0")),
        "address-out-of-range": (p, lambda x: find(x["devices"], "disk0").update(addr="20.0")),
        "vio-address-collision": (p, lambda x: find(x["devices"], "serial0").update(
            addr="0x71000000")),
        "device-on-wrong-bus-kind": (q, lambda x: find(x["devices"], "rp0")["buses"][0][
            "devices"].append(wrong_bus_kind)),
        "unknown-bus": (q, lambda x: find(x["devices"], "rp0")["buses"][0].update(name="rp9")),
        "link-to-missing-backend": (q, lambda x: find(x["devices"], "disk0").update(
            backend={"drive": "nope"})),
        "unused-backend": (q, lambda x: x["backends"].update(
            extra={"kind": "chardev", "backend": "null"})),
        "backend-kind-mismatch": (q, lambda x: find(x["devices"], "disk0").update(
            backend={"drive": "net0"})),
        "missing-required-link": (q, lambda x: find(x["devices"], "disk0").pop("backend")),
        "duplicate-chassis": (q, lambda x: find(x["devices"], "rp1")["props"].update(
            chassis=0)),
        "duplicate-id": (q, lambda x: find(x["devices"], "net0").update(id="disk0")),
        "multifunction-off": (q, lambda x: find(x["devices"], "rp0")["props"].pop(
            "multifunction")),
        "prop-not-scalar": (q, lambda x: find(x["devices"], "net0")["props"].update(
            mac=[1, 2])),
        # sockets × cores × threads must be maxcpus (here 1, not 2), and maxcpus > count
        "cpus-topology": (q, lambda x: x["cpus"].update(maxcpus=2)),
        "cpus-maxcpus-not-more": (q, lambda x: x["cpus"].update(maxcpus=1)),
        # -boot: QEMU's keys only; drive letters the machine boots from
        "boot-unknown-key": (q, lambda x: x.update(boot={"once": "d"})),
        "boot-order-not-bootable": (q, lambda x: x.update(boot={"order": "ce"})),
        # -rtc: a date QEMU would move (to 2007-01-01)
        "rtc-base-not-a-date": (q, lambda x: x.update(rtc={"base": "2006-13-01"})),
        # QEMU rounds `-m` up to 8 KiB: a blob must say what the guest gets
        "memory-not-8k": (q, lambda x: x["memory"].update(size=1000)),
        "blockdev-without-file": (q, lambda x: x["backends"]["disk0"].pop("file")),
        "file-chardev-without-path": (p, lambda x: x["backends"]["serial0"].update(
            backend="file")),
        # past mschema's limits (compiler/base/limits.py): refused before json reads them
        "nested-too-deep": (q, lambda x: find(x["devices"], "net0")["props"].update(
            mac=nested(70))),
        "number-too-long": (q, lambda x: x["memory"].update(size=10 ** 44)),
        # -global: a prop the stdlib declares for a known type; the devices' props show it
        "global-unknown-prop": (q, lambda x: x.update(globals={"ICH9-LPC.disable_s5": 1})),
        "global-unknown-type": (q, lambda x: x.update(globals={"PIIX9_PM.disable_s3": 1})),
        "global-not-in-props": (q, lambda x: x.update(globals={"ICH9-LPC.disable_s3": 1})),
        # a machine option that names a backend (`pflash0=NODE`) names one of its kind
        "option-names-no-backend": (q, lambda x: with_flash(x, "code")),
        "option-names-another-kind": (q, lambda x: with_flash(x, "net0")),
        # a blob is untrusted: a tap's script would run on the host, a key no kind takes
        # would reach QEMU raw
        "tap-with-script": (q, lambda x: x["backends"]["net0"].update(
            type="tap", ifname="tap0", script="/tmp/evil.sh", downscript="no")),
        "chardev-backend-injected": (p, lambda x: x["backends"]["serial0"].update(
            backend="null,logfile=/etc/passwd")),
        # host-executing or -writing options: refused unless a policy allows them (E2019,
        # E2021); a tap that names no script runs QEMU's /etc/qemu-ifup
        "tap-default-script": (q, lambda x: x["backends"]["net0"].update(
            type="tap", ifname="tap0")),
        "chardev-logfile": (p, lambda x: x["backends"]["serial0"].update(
            logfile="/etc/passwd")),
        "blockdev-unknown-key": (q, lambda x: x["backends"]["disk0"].update(
            **{"cache.direct": True})),
        # -cpu: a model is a name, features `+NAME`/`-NAME`; cpus and memory take only
        # their declared keys (E2030, E2031, E1603)
        "cpus-model-injected": (q, lambda x: x["cpus"].update(model="qemu64,+pdpe1gb")),
        "cpus-features-injected": (q, lambda x: x["cpus"].update(
            model="qemu64", features="+pdpe1gb,level=9")),
        "cpus-unknown-key": (q, lambda x: x["cpus"].update(dies=1)),
        "memory-unknown-key": (q, lambda x: x["memory"].update(slots=4)),
        # device props: only those the stdlib declares, of their type (E2040)
        "prop-undeclared": (q, lambda x: find(x["devices"], "disk0")["props"].update(
            **{"discard_granularity": 4096})),
        "prop-wrong-type": (q, lambda x: find(x["devices"], "disk0")["props"].update(
            **{"queue-size": "256,x-evil=on"})),
        # strings no command line carries: a NUL, a lone surrogate (E2033); a tap name
        # Linux would cut short (E1410)
        "string-with-nul": (q, lambda x: find(x["devices"], "disk0")["props"].update(
            serial="abc\0def")),
        "string-not-utf8": (q, lambda x: x["backends"]["disk0"].update(file="disk\udc80.raw")),
        "tap-name-too-long": (q, lambda x: x["backends"]["net0"].update(
            type="tap", ifname="vm01-frontend-nic0", script="no", downscript="no")),
        # guest NUMA nodes: their shape (E1602, E1603, E1040) and what QEMU refuses of them
        "numa-not-a-list": (n, lambda x: x.update(numa={"cpus": "0"})),
        "numa-unknown-key": (n, lambda x: x["numa"][0].update(node=0)),
        "numa-without-memdev": (n, lambda x: x["numa"][1].pop("memdev")),
        "numa-memory-not-bytes": (n, lambda x: x["numa"][1].update(memory="128M")),
        "numa-cpus-syntax": (n, lambda x: x["numa"][1].update(cpus="1..1")),
        "numa-cpus-not-as-written": (n, lambda x: x["numa"][1].update(cpus="1-1")),
        "numa-cpu-beyond-possible": (n, lambda x: x["numa"][1].update(cpus="1-2")),
        "numa-cpu-twice": (n, lambda x: x["numa"][1].update(cpus="0-1")),
        "numa-cpu-in-no-node": (n, lambda x: x["numa"][1].pop("cpus")),
        "numa-memory-not-machine-memory": (n, lambda x: x["numa"][1].update(
            memory=256 << 20)),
        "numa-memdev-not-an-id": (n, lambda x: x["numa"][1].update(memdev="ram node1")),
        "numa-memdev-twice": (n, lambda x: x["numa"][1].update(memdev="ram-node0")),
        "numa-memdev-is-a-backend": (n, lambda x: x["numa"][1].update(memdev="rng0")),
        "numa-node-prop-no-such-node": (n, lambda x: find(x["devices"], "pxb1")[
            "props"].update(numa_node=2)),
        "numa-on-pseries": (p, lambda x: x.update(numa=[
            {"cpus": "0", "memdev": "ram-node0", "memory": x["memory"]["size"]}])),
        # the machine's uuid as QEMU shows it (lower case)
        "uuid-upper-case": (q, lambda x: x.update(
            uuid="C7A5FDBD-EDAF-9455-926A-D65C16DB1809")),
    }
    for name, (base, corrupt) in cases.items():
        blob = copy.deepcopy(base)
        corrupt(blob)
        write(HERE / f"bad/{name}.json", blob)
    (HERE / "bad/not-json.json").write_text('{"format": "mschema-precise/1", "machine": \n')


if __name__ == "__main__":
    main()
