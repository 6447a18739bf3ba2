"""The devices of a libvirt domain → loose spec items (`import-libvirt`'s second half).

`Walker` holds the import's state (items by kind, counters, diagnostics) and the helpers each
element needs (its span, `<address>`, libvirt's alias, a table lookup); `Devices` has one
method per `<devices>` element, `dev_TAG`. The table behind them: `base/libvirt.toml`.
Ends at the items; `spec/libvirt_import.py` adds the domain's top level and writes the spec.
"""

from __future__ import annotations

import re
from typing import Any

from compiler.base import libvirt_map
from compiler.base.diagnostics import Diagnostic, Severity
from compiler.base.source import SourceFile, Span

Element = Any  # lxml.etree._Element (lxml ships no type stubs)
Json = Any


class Walker:
    def __init__(self, source: SourceFile, precise: bool, partial: bool) -> None:
        self.source = source
        self.precise = precise
        self.severity: Severity = "warning" if partial else "error"
        self.diags: list[Diagnostic] = []
        self.spec: dict[str, Json] = {}
        self.items: dict[str, list[dict[str, Json]]] = {}
        self.boot_devs: list[str] = []
        self.counters: dict[str, int] = {}
        self.scsi_models: dict[str, str] = {}  # controller index → model (disk aliases)
        self.pci_root = "pcie.0"  # libvirt's PCI bus 0, set from the machine's family
        self.schema_options: set[str] = set()
        # (libvirt's PCI assignment rank, kind, index in its kind) of every item, in the
        # order added; `rank` is the element's being read
        self.order: list[tuple[int, str, int]] = []
        self.rank = 0

    # -- diagnostics ---------------------------------------------------------------------

    def span(self, el: Element) -> Span:
        """The span of `el`'s start tag on its line (lxml gives the line only)."""
        line = max(1, int(getattr(el, "sourceline", 1) or 1))
        lines = self.source.text.split("\n")
        start = sum(len(x) + 1 for x in lines[:line - 1])
        text = lines[line - 1] if line <= len(lines) else ""
        tag = el.tag if isinstance(el.tag, str) else ""
        col = text.find(f"<{tag}")
        col = col if col >= 0 else 0
        end = text.find(">", col)
        return self.source.span(start + col, start + (end + 1 if end >= 0 else len(text)))

    def refuse(self, code: str, message: str, el: Element, help_: str | None = None,
               notes: tuple[str, ...] = ()) -> None:
        self.diags.append(Diagnostic(self.severity, code, message, self.span(el), (),
                                     notes, help_ or "`--partial` imports the rest"))

    def note(self, message: str, el: Element) -> None:
        self.diags.append(Diagnostic("warning", "E2104", message, self.span(el)))

    # -- the walk ------------------------------------------------------------------------

    def add(self, kind: str, item: dict[str, Json]) -> dict[str, Json]:
        items = self.items.setdefault(kind, [])
        self.order.append((self.rank, kind, len(items)))
        items.append(item)
        return item

    def number(self, kind: str) -> int:
        n = self.counters.get(kind, 0)
        self.counters[kind] = n + 1
        return n

    # -- top level ----------------------------------------------------------------------

    def device(self, el: Element) -> None:
        self.rank = int(libvirt_map.lookup("pci-order", el.tag) or 99)
        handler = getattr(self, "dev_" + el.tag.replace("-", "_"), None)
        if el.tag in libvirt_map.sections("unmappable"):
            self.unmappable(el)
        elif handler is not None:
            handler(el)
        elif el.tag not in ("emulator", "audio", "graphics"):
            self.refuse("E2103", f"`<{el.tag}>` has no meaning in mschema", el)

    def unmappable(self, el: Element) -> None:
        why = libvirt_map.lookup("unmappable", el.tag) or "no mschema meaning"
        self.refuse("E2103", f"`<{el.tag}>` cannot be imported: {why}", el)

    def place(self, item: dict[str, Json], el: Element) -> dict[str, Json]:
        """Keep the `<address>` libvirt wrote (precise mode)."""
        addr = el.find("address")
        if not self.precise or addr is None:
            return item
        kind = addr.get("type")
        if kind == "pci":
            bus = int(addr.get("bus", "0"), 0)
            item["bus"] = self.pci_root if bus == 0 else f"pci.{bus}"
            item["addr"] = f"{int(addr.get('slot', '0'), 0):02x}." \
                           f"{int(addr.get('function', '0'), 0):x}"
        elif kind == "usb":
            item["bus"] = "usb.0" if addr.get("bus", "0") == "0" else f"usb{addr.get('bus')}.0"
            item["addr"] = addr.get("port", "1")
        elif kind == "spapr-vio":
            item["bus"], item["addr"] = "spapr-vio", f"0x{int(addr.get('reg', '0'), 16):x}"
        elif kind == "virtio-serial":
            item["bus"] = f"virtio-serial{addr.get('controller', '0')}.0"
            item.setdefault("props", {})["nr"] = int(addr.get("port", "1"))
        return item

    def alias(self, pattern: str, kind: str) -> str:
        return pattern.format(n=self.number(kind))

    def typed(self, el: Element, section: str, key: str, alias: str, kind: str,
              sub: str | None = None, props: dict[str, Json] | None = None) -> None:
        qtype = libvirt_map.lookup(section, key, sub)
        if qtype is None:
            self.refuse("E2104", f"no `<{el.tag}>` of model `{key}` in mschema", el,
                        notes=("known: " + ", ".join(libvirt_map.known(section, sub)),))
            return
        if qtype in ("", "machine"):
            return
        item: dict[str, Json] = {"type": qtype, "id": self.alias(alias, kind)}
        if props:
            item["props"] = props
        self.add("device", self.place(item, el))

    def chardev(self, el: Element) -> str | None:
        type_: str = el.get("type", "pty")
        source = el.find("source")
        if type_ in ("pty", "null"):
            return type_
        if type_ == "file" and source is not None:
            return f"file:{source.get('path')}"
        if type_ == "unix" and source is not None and source.get("mode", "bind") == "bind":
            return f"socket:{source.get('path')}"
        self.refuse("E2104", f"mschema has no character device backend `{type_}`", el)
        return None

    def _drive_alias(self, el: Element, bus: str) -> str:
        addr = el.find("address")
        parts = [addr.get(k, "0") for k in ("controller", "bus", "target", "unit")] \
            if addr is not None else ["0", "0", "0", "0"]
        if bus == "sata" or self.scsi_models.get(parts[0]) == "lsilogic":
            return f"{bus}{parts[0]}-{parts[1]}-{parts[3]}"
        return f"scsi{parts[0]}-{parts[1]}-{parts[2]}-{parts[3]}"

    def apply_boot_order(self) -> None:
        """`<os><boot dev=…>`: libvirt gives the first disk (`hd`), cdrom, NIC (`network`)
        bootindex 1, 2, … in that order, unless a device has its own `<boot order>`."""
        every = [i for k in ("disk", "cdrom", "nic") for i in self.items.get(k, [])]
        own = any("bootindex" in i for i in every)
        index = 1
        for dev in self.boot_devs if not own else ():
            first = next((i for i in every if i.get("_boot") == dev), None)
            if first is not None:
                first["bootindex"] = index
                index += 1
        for items in self.items.values():
            for i in items:
                i.pop("_boot", None)
                i.pop("_video", None)




class Devices(Walker):
    """One method per `<devices>` element (`dev_TAG`)."""

    def dev_controller(self, el: Element) -> None:
        type_, model = el.get("type", ""), el.get("model", "")
        index = int(el.get("index", "0"))
        qtype = libvirt_map.lookup("controller", model, type_)
        if type_ == "usb" and model == "none":
            return
        if qtype is None:
            self.refuse("E2104", f"no controller `{type_}` of model `{model}` in mschema", el,
                        notes=("known: " + ", ".join(
                            f"{t}/{m}" for t, ms in libvirt_map.sections("controller").items()
                            if isinstance(ms, dict) for m in ms),))
            return
        if qtype == "machine" or (type_ == "pci" and not self.precise):
            return
        if type_ == "scsi":
            self.scsi_models[str(index)] = model
        ident = {"pci": f"pci.{index}", "usb": "usb" if index == 0 else f"usb{index}",
                 "scsi": f"scsi{index}", "virtio-serial": f"virtio-serial{index}"}[type_]
        item: dict[str, Json] = {"type": qtype, "id": ident}
        props: dict[str, Json] = {}
        target = el.find("target")
        if target is not None and type_ == "pci":
            for k in ("chassis", "port"):
                if target.get(k) is not None:
                    props[k] = int(target.get(k), 0)
            # an expander's root bus number and guest NUMA node (`<node>`)
            if target.get("busNr") is not None:
                props["bus_nr"] = int(target.get("busNr"), 0)
            if target.findtext("node"):
                props["numa_node"] = int(target.findtext("node") or "0")
        addr = el.find("address")
        if addr is not None and addr.get("multifunction") == "on" and self.precise:
            props["multifunction"] = True
        if props:
            item["props"] = props
        self.add("device", self.place(item, el))

    def dev_disk(self, el: Element) -> None:
        device, type_ = el.get("device", "disk"), el.get("type", "file")
        source = el.find("source")
        path = None
        if source is not None:
            path = source.get("file") if type_ == "file" else source.get("dev")
        if type_ not in ("file", "block") or device not in ("disk", "cdrom"):
            what = f"a {type_} source" if type_ not in ("file", "block") else f"a {device}"
            self.refuse("E2104", f"mschema has no backend for {what}", el)
            return
        target = el.find("target")
        bus = target.get("bus", "") if target is not None else ""
        dev = target.get("dev", "") if target is not None else ""
        driver = el.find("driver")
        item: dict[str, Json] = {}
        if path:
            item["file"] = path
        if driver is not None and driver.get("type") in ("qcow2", "raw"):
            item["format"] = driver.get("type")
        if bus == "usb" and device == "disk":
            usb = {"device": "storage", **item, "id": f"usb-disk{_disk_index(dev)}"}
            self.add("usb", self.place(usb, el))
            return
        interface = {"virtio": "virtio", "sata": "sata", "scsi": "scsi"}.get(bus)
        if interface is None:
            self.refuse("E2104", f"no {device} on a `{bus}` bus in mschema", el)
            return
        if device == "disk" and path is None:
            self.refuse("E2104", "a disk without a source", el)
            return
        item["interface"] = interface
        if el.find("serial") is not None and device == "disk":
            item["serial"] = el.findtext("serial")
        if el.find("readonly") is not None and device == "disk":
            item["readonly"] = True
        order = el.find("boot")
        if order is not None:
            item["bootindex"] = int(order.get("order", "1"))
        letter = _disk_index(dev)
        item["id"] = {"virtio": f"virtio-disk{letter}"}.get(bus) or self._drive_alias(el, bus)
        item["_boot"] = "hd" if device == "disk" else "cdrom"
        self.place(item, el)
        addr = el.find("address")
        if self.precise and addr is not None and addr.get("type") == "drive":
            unit = int(addr.get("unit", "0"))
            if bus == "sata":
                item["bus"], item["addr"] = f"ide.{unit}", "0"
            elif bus == "scsi":
                item["bus"] = f"scsi{addr.get('controller', '0')}.0"
                item["addr"] = f"0:{addr.get('target', '0')}:{unit}"
        self.add(device, item)

    def dev_interface(self, el: Element) -> None:
        type_ = el.get("type", "")
        source = el.find("source")
        if type_ == "user":
            network = "user"
        elif type_ == "bridge" and source is not None:
            network = f"bridge:{source.get('bridge')}"
        elif type_ == "ethernet" and el.find("target") is not None:
            network = f"tap:{el.find('target').get('dev')}"
        elif type_ == "network":
            network = "user"
            self.note("a libvirt network is the host's: imported as user networking, the "
                      "same guest hardware", el)
        else:
            self.refuse("E2104", f"mschema has no backend for an interface of type "
                        f"`{type_}`", el, "use `user`, `bridge` or `ethernet`")
            return
        model_el = el.find("model")
        model = model_el.get("type") if model_el is not None else "rtl8139"
        mapped = libvirt_map.lookup("interface-model", model)
        if mapped is None:
            self.refuse("E2104", f"no network card model `{model}` in mschema", el,
                        notes=("known: " + ", ".join(libvirt_map.sections("interface-model")),))
            return
        item: dict[str, Json] = {"network": network, "model": mapped,
                                 "id": self.alias("net{n}", "net")}
        mac = el.find("mac")
        if mac is not None:
            item["mac"] = mac.get("address").lower()
        order = el.find("boot")
        if order is not None:
            item["bootindex"] = int(order.get("order", "1"))
        item["_boot"] = "network"
        self.add("nic", self.place(item, el))

    def dev_video(self, el: Element) -> None:
        model = el.find("model")
        key = model.get("type", "vga") if model is not None else "vga"
        if key == "none":
            return
        sizes = libvirt_map.sections("video-memory").get(key)
        if model is not None and isinstance(sizes, dict):
            other = [f"{k}='{model.get(k)}'" for k in ("ram", "vram", "vram64", "vgamem")
                     if model.get(k) is not None and model.get(k) != sizes.get(k)]
            if other:
                self.note(f"video memory {', '.join(other)} is not imported: the device "
                          "keeps QEMU's default sizes", model)
        primary = not any(d.get("_video") for d in self.items.get("device", []))
        self.typed(el, "video", key, "video{n}", "video",
                   "primary" if primary else "secondary")
        if self.items.get("device"):
            self.items["device"][-1]["_video"] = True

    def dev_input(self, el: Element) -> None:
        self.typed(el, "input", f"{el.get('type')}/{el.get('bus', 'ps2')}", "input{n}",
                   "input")

    def dev_sound(self, el: Element) -> None:
        model = el.get("model", "")
        n = self.counters.get("sound", 0)
        self.typed(el, "sound", model, "sound{n}", "sound")
        codec = libvirt_map.lookup("sound-codec", model)
        if codec and libvirt_map.lookup("sound", model):
            item: dict[str, Json] = {"type": codec, "id": f"sound{n}-codec0"}
            if self.precise:
                item["bus"] = f"sound{n}.0"
            self.add("device", item)

    def dev_watchdog(self, el: Element) -> None:
        self.typed(el, "watchdog", el.get("model", ""), "watchdog{n}", "watchdog")

    def dev_memballoon(self, el: Element) -> None:
        self.typed(el, "memballoon", el.get("model", ""), "balloon{n}", "balloon")

    def dev_panic(self, el: Element) -> None:
        self.typed(el, "panic", el.get("model", "isa"), "panic{n}", "panic")

    def dev_iommu(self, el: Element) -> None:
        driver = el.find("driver")
        props: dict[str, Json] = {}
        if driver is not None:
            for attr, prop in (("intremap", "intremap"), ("eim", "eim")):
                if driver.get(attr):
                    props[prop] = driver.get(attr)
            for attr, prop in (("caching_mode", "caching-mode"), ("iotlb", "device-iotlb")):
                if driver.get(attr):
                    props[prop] = driver.get(attr) == "on"
            if driver.get("aw_bits"):
                props["aw-bits"] = int(driver.get("aw_bits"))
        self.typed(el, "iommu", el.get("model", ""), "iommu{n}", "iommu", props=props)

    def dev_rng(self, el: Element) -> None:
        model = el.get("model", "")
        if libvirt_map.lookup("rng", model) is None:
            self.refuse("E2104", f"no rng model `{model}` in mschema", el)
            return
        backend = el.find("backend")
        item: dict[str, Json] = {"model": "virtio", "id": self.alias("rng{n}", "rng")}
        if backend is not None and backend.get("model") == "random" and backend.text \
                and backend.text.strip() != "/dev/urandom":
            item["backend"] = f"random:{backend.text.strip()}"
        elif backend is not None and backend.get("model") != "random":
            self.refuse("E2104", f"mschema has no rng backend `{backend.get('model')}`", el)
            return
        self.add("rng", self.place(item, el))

    def dev_filesystem(self, el: Element) -> None:
        source, target = el.find("source"), el.find("target")
        driver = el.find("driver")
        if el.get("type", "mount") != "mount" or source is None or target is None or (
                driver is not None and driver.get("type") not in (None, "path")):
            self.refuse("E2104", "mschema imports 9p exports of a host directory only", el)
            return
        mode = el.get("accessmode", "passthrough")
        model = {"passthrough": "passthrough", "mapped": "mapped-xattr",
                 "squash": "none"}.get(mode, "none")
        item: dict[str, Json] = {"path": source.get("dir"), "tag": target.get("dir"),
                                 "security-model": model, "id": self.alias("fs{n}", "fs")}
        if el.find("readonly") is not None:
            item["readonly"] = True
        self.add("filesystem", self.place(item, el))

    def dev_serial(self, el: Element) -> None:
        target = el.find("target")
        ttype = target.get("type", "isa-serial") if target is not None else "isa-serial"
        model = target.find("model") if target is not None else None
        if model is not None and model.get("name"):
            ttype = {"isa-serial": "isa-serial", "pci-serial": "pci-serial",
                     "spapr-vty": "spapr-vio-serial"}.get(model.get("name"), ttype)
        backend = self.chardev(el)
        if backend is None:
            return
        n = self.number("serial")
        if libvirt_map.lookup("serial-target", ttype) in ("isa-serial", "spapr-vty"):
            self.add("serial", self.place({"backend": backend, "id": f"serial{n}"}, el))
        elif libvirt_map.lookup("serial-target", ttype):
            self.add("device", self.place({"type": "pci-serial", "id": f"serial{n}"}, el))
        else:
            self.refuse("E2104", f"no serial port of target type `{ttype}` in mschema", el)

    def dev_console(self, el: Element) -> None:
        target = el.find("target")
        ttype = target.get("type", "serial") if target is not None else "serial"
        if ttype == "serial":
            return  # libvirt's view of the first serial port, not a device of its own
        if ttype != "virtio":
            self.refuse("E2104", f"no console of target type `{ttype}` in mschema", el)
            return
        item = {"type": "virtconsole", "id": self.alias("console{n}", "console")}
        self.add("device", self.place(item, el))

    def dev_channel(self, el: Element) -> None:
        target = el.find("target")
        if target is None or target.get("type") != "virtio" or el.get("type") == "spicevmc":
            self.refuse("E2104", "mschema imports virtio channels with a host backend only", el)
            return
        item: dict[str, Json] = {"type": "virtserialport",
                                 "id": self.alias("channel{n}", "channel")}
        if target.get("name"):
            item["props"] = {"name": target.get("name")}
        self.add("device", self.place(item, el))


def _disk_index(dev: str) -> int:
    """`vda` → 0, `vdb` → 1, `vdaa` → 26 (libvirt's virDiskNameToIndex)."""
    letters = re.sub(r"^(vd|sd|hd|xvd|ubd)", "", dev)
    n = 0
    for ch in letters:
        if not "a" <= ch <= "z":
            break
        n = n * 26 + (ord(ch) - ord("a") + 1)
    return max(n - 1, 0)
