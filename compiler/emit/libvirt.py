"""The precise machine as libvirt domain XML (`compile --emit libvirt`).

A pure function of `tree.Machine`: the machine's blob form is walked into a context of plain
values (one entry per libvirt element, each with its `<address>`, so that `virsh define`
assigns nothing), which jinja2 renders from `emit/templates/domain.xml.j2` with autoescaping
on. QEMU types map back to libvirt's words through `base/libvirt.toml`. What libvirt adds by
itself when a domain omits it is said explicitly: `<memballoon model='none'/>` and a USB
controller of model `none` when the machine has none. A device libvirt has no element for is
E2106. Ends at the XML text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from compiler.base import libvirt_map, numa
from compiler.base.diagnostics import CompileError, error
from compiler.base.source import Span, whole_file
from compiler.build import tree
from compiler.emit import blob

Json = Any
Ctx = dict[str, Any]

PCI_CONTROLLERS = ("pcie-root-port", "pcie-pci-bridge", "x3130-upstream", "xio3130-downstream",
                   "pxb-pcie")
DISKS = {"virtio-blk-pci": ("disk", "virtio", "vd"), "scsi-hd": ("disk", "scsi", "sd"),
         "ide-hd": ("disk", "sata", "sd"), "ide-cd": ("cdrom", "sata", "sd"),
         "scsi-cd": ("cdrom", "scsi", "sd"), "usb-storage": ("disk", "usb", "sd")}
NICS = {"virtio-net-pci": "virtio", "e1000e": "e1000e", "e1000": "e1000", "rtl8139": "rtl8139",
        "spapr-vlan": "spapr-vlan"}
SECURITY = {"passthrough": "passthrough", "mapped-xattr": "mapped", "mapped-file": "mapped",
            "none": "squash"}


def domain_xml(machine: tree.Machine) -> str:
    import jinja2

    data = json.loads(blob.blob(machine))
    spans = {d.id: d.why.cause or d.why.span for _b, d, _n in tree.walk(machine.root)}
    env = jinja2.Environment(loader=jinja2.PackageLoader("compiler.emit", "templates"),
                             autoescape=True,
                             undefined=jinja2.StrictUndefined)
    defaults = dict(machine.info.defaults)
    return env.get_template("domain.xml.j2").render(
        **context(data, spans, defaults)).rstrip("\n") + "\n"


def walk(devices: list[Json], bus: Json | None = None) -> Iterator[tuple[Json | None, Json]]:
    for d in devices:
        yield bus, d
        for b in d.get("buses", []):
            yield from walk(b["devices"], b)


def context(data: Json, spans: dict[str, Span | None] | None = None,
            defaults: Mapping[str, object] | None = None) -> Ctx:
    options = data["machine"]["options"]
    cpus = data["cpus"]
    backends = data.get("backends", {})
    boot = data.get("boot", {})
    rtc = data.get("rtc", {})
    g = data.get("globals", {})
    pairs = list(walk(data["devices"]))
    indexes = _pci_indexes(pairs)
    devices: list[Ctx] = []
    problems = []
    letters: dict[str, set[int]] = {}
    counts: dict[str, int] = {}
    for bus, d in pairs:
        if d.get("origin") == "machine" or (bus is not None and bus["kind"] == "virtio"):
            continue
        entry = _device(d, bus, backends, indexes, letters, counts, not any(
            x.get("element") == "video" for x in devices))
        if entry is None:
            problems.append(d)
        elif entry:
            devices.append(entry)
    if problems:
        raise CompileError([error(
            "E2106", f"libvirt has no element for `{d['type']}` (device `{d['id']}`)",
            (spans or {}).get(d["id"]) or whole_file("<machine>"),
            help="leave the device out of the spec to define the machine in libvirt")
            for d in problems])
    if not any(x.get("type") == "usb" for x in devices):
        devices.insert(0, {"element": "controller", "type": "usb", "index": 0,
                           "model": "none", "model_name": None, "target": None, "node": None,
                           "address": None})
    if not any(x["element"] == "memballoon" for x in devices):
        devices.append({"element": "memballoon", "model": "none", "address": None})
    loader = nvram = None
    flash = [backends.get(options.get(k, "")) for k in ("pflash0", "pflash1")]
    if flash[0]:
        loader = {"type": "pflash", "path": flash[0]["file"],
                  "readonly": bool(flash[0].get("read-only"))}
        nvram = flash[1]["file"] if flash[1] else None
    elif options.get("firmware") not in (None, (defaults or {}).get("firmware")):
        loader = {"type": "rom", "path": options["firmware"], "readonly": True}
    timers = []
    if not options.get("hpet", True):
        timers.append((("name", "hpet"), ("present", "no")))
    if rtc.get("driftfix") == "slew":
        timers.append((("name", "rtc"), ("tickpolicy", "catchup")))
    if options.get("pit") == "off":
        timers.append((("name", "pit"), ("present", "no")))
    pm = [(el, "no" if g.get(f"ICH9-LPC.{prop}") else "yes")
          for el, prop in (("suspend-to-mem", "disable_s3"), ("suspend-to-disk", "disable_s4"))
          if f"ICH9-LPC.{prop}" in g]
    return {
        "name": data.get("name"), "uuid": data.get("uuid"),
        "memory_kib": data["memory"]["size"] // 1024,
        "vcpus": {"current": cpus["count"], "max": cpus.get("maxcpus", cpus["count"])},
        "arch": data["machine"]["arch"], "machine": data["machine"]["qemu"],
        "loader": loader, "nvram": nvram,
        "bootmenu": {"timeout": boot.get("splash-time")} if boot.get("menu") else None,
        "reboot_timeout": boot.get("reboot-timeout"),
        "acpi": options.get("acpi", "off") != "off",
        "features": [{"name": k, "state": options[k]} for k in ("smm", "vmport")
                     if options.get(k) in ("on", "off")],
        # x86's default model as libvirt writes it; other arches keep QEMU's default
        "cpu_model": cpus.get("model", "qemu64" if data["machine"]["arch"] == "x86_64" else None),
        "topology": {k: cpus.get(k, 1) for k in ("sockets", "cores", "threads")},
        "numa": _numa(data, spans),
        "clock": {"offset": rtc.get("base", "utc") if rtc.get("base") in ("utc", "localtime")
                  else "utc", "timers": timers},
        "pm": pm,
        "devices": devices,
    }


def _numa(data: Json, spans: dict[str, Span | None] | None) -> list[Ctx]:
    """`<cpu><numa>` cells, cell N the blob's node N. libvirt names node N's RAM backend
    `ram-nodeN` itself; a blob whose backend has another id (the name of its RAM block in
    QEMU's migration stream) is E1049."""
    cells, wrong = [], []
    for n, node in enumerate(data.get("numa", [])):
        if node["memdev"] != numa.memdev_id(n):
            wrong.append((n, node["memdev"]))
        kib, rest = divmod(node["memory"], 1024)
        cells.append({"cpus": node.get("cpus"), "memory": node["memory"] if rest else kib,
                      "unit": "b" if rest else "KiB"})
    if wrong:
        raise CompileError([error(
            "E1049", f"NUMA node {n}'s RAM backend is `{memdev}`, which libvirt would name "
            f"`{numa.memdev_id(n)}`", whole_file("<machine>"),
            notes=["the id names the node's RAM block in QEMU's migration stream"],
            help=f"rename it `{numa.memdev_id(n)}` in the blob") for n, memdev in wrong])
    return cells


def _pci_indexes(pairs: list[tuple[Json | None, Json]]) -> dict[str, int]:
    """Each PCI bus's libvirt controller index: pcie.0 is 0; a port or bridge named `pci.N`
    (as libvirt names them) keeps N, the others take the next free numbers in tree order."""
    controllers = [d for _b, d in pairs if d["type"] in PCI_CONTROLLERS]
    taken = {int(d["id"][4:]) for d in controllers
             if d["id"].startswith("pci.") and d["id"][4:].isdigit()}
    out: dict[str, int] = {}
    free = (n for n in range(1, 256) if n not in taken)
    for d in controllers:
        n = int(d["id"][4:]) if d["id"].startswith("pci.") and d["id"][4:].isdigit() \
            else next(free)
        for b in d.get("buses", []):
            out[b["name"]] = n
    return out


def _address(d: Json, bus: Json | None, indexes: dict[str, int]) -> tuple[tuple[str, str], ...]:
    if bus is None or "addr" not in d:
        return ()
    kind, addr = bus["kind"], d["addr"]
    if kind in ("pci", "pcie", "pcie-expander"):  # PCI addresses on each
        slot, _, fn = addr.partition(".")
        out = [("type", "pci"), ("domain", "0x0000"),
               ("bus", f"0x{indexes.get(bus['name'], 0):02x}"), ("slot", f"0x{slot}"),
               ("function", f"0x{fn or '0'}")]
        if d.get("props", {}).get("multifunction"):
            out.append(("multifunction", "on"))
        return tuple(out)
    if kind == "usb":
        return (("type", "usb"), ("bus", "0"), ("port", addr))
    if kind == "vio":
        return (("type", "spapr-vio"), ("reg", addr))
    if kind == "ide":
        return (("type", "drive"), ("controller", "0"), ("bus", "0"), ("target", "0"),
                ("unit", bus["name"].rpartition(".")[2]))
    if kind == "scsi":
        _ch, target, lun = addr.split(":")
        ctrl = bus["name"].removeprefix("scsi").partition(".")[0] or "0"
        return (("type", "drive"), ("controller", ctrl if ctrl.isdigit() else "0"),
                ("bus", "0"), ("target", target), ("unit", lun))
    return ()


def _device(d: Json, bus: Json | None, backends: Json, indexes: dict[str, int],
            letters: dict[str, set[int]], counts: dict[str, int],
            primary: bool) -> Ctx | None:
    """The context of one device; {} for one libvirt adds or needs no element for (an HDA
    codec, a virtio-serial port's bus); None when libvirt has no element for it."""
    t, props = d["type"], d.get("props", {})
    address = _address(d, bus, indexes)
    base: Ctx = {"address": address}
    link = d.get("backend", {})
    if t in PCI_CONTROLLERS:
        model = libvirt_map.reverse("controller", t, "pci")
        target = tuple((k, str(props[k])) for k in ("chassis", "port") if k in props)
        if "bus_nr" in props:  # an expander: its root bus number, and its node below
            target += (("busNr", str(props["bus_nr"])),)
        index = indexes[d["buses"][0]["name"]] if d.get("buses") else 0
        return {**base, "element": "controller", "type": "pci", "index": index,
                "model": model, "model_name": t, "target": target or None,
                "node": props.get("numa_node")}
    for ctype in ("usb", "scsi", "virtio-serial"):
        model = libvirt_map.reverse("controller", t, ctype)
        if model is not None:
            n = counts[ctype] = counts.get(ctype, -1) + 1
            return {**base, "element": "controller", "type": ctype, "index": n,
                    "model": model or None, "model_name": None, "target": None, "node": None}
    if t in DISKS:
        device, dbus, prefix = DISKS[t]
        # libvirt's alias `virtio-disk1` is target `vdb`: keep the letter an import gave
        alias = re.fullmatch(r"(?:virtio|usb)-disk(\d+)", d["id"])
        used = letters.setdefault(prefix, set())
        n = int(alias.group(1)) if alias else min(set(range(len(used) + 1)) - used)
        used.add(n)
        backend = backends.get(link.get("drive", ""), {})
        return {**base, "element": "disk", "device": device, "bus": dbus,
                "dev": prefix + _letters(n), "file": backend.get("file"),
                "format": backend.get("driver", "raw"), "bootindex": props.get("bootindex"),
                "readonly": bool(backend.get("read-only")) and device == "disk",
                "serial": props.get("serial")}
    if t in NICS:
        net = backends.get(link.get("netdev", ""), {})
        kind = net.get("type", "user")
        source = ("bridge", net.get("br")) if kind == "bridge" else None
        return {**base, "element": "interface",
                "type": {"user": "user", "bridge": "bridge", "tap": "ethernet"}[kind],
                "mac": props.get("mac"), "model": NICS[t], "source": source,
                "target": net.get("ifname") if kind == "tap" else None,
                "bootindex": props.get("bootindex")}
    video = libvirt_map.reverse("video", t, "primary" if primary else "secondary")
    if video is not None:
        return {**base, "element": "video", "model": video, "primary": primary}
    inp = libvirt_map.reverse("input", t)
    if inp is not None:
        itype, _, ibus = inp.partition("/")
        return {**base, "element": "input", "type": itype, "bus": ibus}
    for element, section in (("sound", "sound"), ("watchdog", "watchdog"),
                             ("memballoon", "memballoon"), ("panic", "panic")):
        model = libvirt_map.reverse(section, t)
        if model is not None:
            return {**base, "element": element, "model": model}
    if libvirt_map.reverse("sound-codec", t) is not None:
        return {}
    if t == "intel-iommu":
        driver = tuple((k, str(v) if not isinstance(v, bool) else ("on" if v else "off"))
                       for k, v in (("intremap", props.get("intremap")),
                                    ("caching_mode", props.get("caching-mode")),
                                    ("eim", props.get("eim")),
                                    ("iotlb", props.get("device-iotlb")),
                                    ("aw_bits", props.get("aw-bits"))) if v is not None)
        return {**base, "element": "iommu", "model": "intel", "driver": driver or None}
    if t == "virtio-rng-pci":
        rng = backends.get(link.get("rng", ""), {})
        return {**base, "element": "rng", "source": rng.get("filename", "/dev/urandom")}
    if t.startswith("virtio-9p-pci"):
        fs = backends.get(link.get("fsdev", ""), {})
        return {**base, "element": "filesystem", "path": fs.get("path"),
                "tag": props.get("mount_tag"), "readonly": bool(fs.get("readonly")),
                "accessmode": SECURITY.get(fs.get("security_model", "none"), "squash")}
    serial = libvirt_map.reverse("serial-target", t)
    if serial is not None:
        n = counts["serial"] = counts.get("serial", -1) + 1
        chardev = backends.get(link.get("chardev", ""), {})
        btype, csource = _chardev(chardev)
        return {**base, "element": "serial", "backend": btype, "source": csource,
                "target": (("type", serial), ("port", str(n))), "target_model": t}
    if t in ("virtserialport", "virtconsole"):
        chardev = backends.get(link.get("chardev", ""), {})
        btype, csource = _chardev(chardev)
        vtarget = [("type", "virtio")]
        if props.get("name"):
            vtarget.append(("name", props["name"]))
        # a console's port is libvirt's to number (it keeps none in the XML)
        vaddr = (("type", "virtio-serial"), ("controller", "0"), ("bus", "0"),
                 ("port", str(props.get("nr", 1)))) if t == "virtserialport" else ()
        return {**base, "address": vaddr,
                "element": "channel" if t == "virtserialport" else "console",
                "backend": btype, "source": csource, "target": tuple(vtarget),
                "target_model": None}
    return None


def _chardev(chardev: Json) -> tuple[str, tuple[tuple[str, str], ...]]:
    backend = chardev.get("backend", "null")
    if backend.startswith("file:"):
        return "file", (("path", backend[5:]),)
    if backend.startswith("socket:"):
        return "unix", (("mode", "bind"), ("path", backend[7:]))
    return (backend if backend in ("pty", "null") else "null"), ()


def _letters(n: int) -> str:
    """0 → a, 25 → z, 26 → aa (libvirt's disk names)."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("a") + r) + out
    return out
