"""libvirt domain XML → a loose spec (`mschema import-libvirt`).

Reads a domain as `virsh dumpxml` writes it (libvirt's defaults and addresses filled in)
with lxml, which keeps every element's line; validates it against libvirt's RNG schema
where libvirt installed one; maps each element through the table `base/libvirt.toml`. With
`precise`, every `<address>` libvirt wrote is kept (`bus`/`addr` on each item, the PCI
controllers as `[[device]]`s with their chassis and port, ids as libvirt's aliases), so that
compiling the spec gives libvirt's layout; without, the addresses are left to mschema.

What has no mschema meaning (a host device, a seclabel, a network disk) is an error naming
the element and its line (E2103, E2104), or a warning with `partial`. Ends at a `Spec`: the
loose spec as a dict in the CONTRACT's shape and the diagnostics; `toml()` writes it.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from compiler.base import libvirt_map, numa
from compiler.base.diagnostics import CompileError, Diagnostic, error
from compiler.base.source import SourceFile, whole_file
from compiler.spec.libvirt_devices import Devices, Element, Json

RNG_SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")

# libvirt's memory units (docs/formatdomain: `unit`), in bytes
UNITS = {"b": 1, "bytes": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1000, "m": 1 << 20,
         "mib": 1 << 20, "mb": 1000 ** 2, "g": 1 << 30, "gib": 1 << 30, "gb": 1000 ** 3,
         "t": 1 << 40, "tib": 1 << 40, "tb": 1000 ** 4}
# machine types libvirt accepts as aliases of the newest version
MACHINE_ALIASES = {"q35": "pc-q35", "pseries": "pseries"}


@attrs.frozen
class Spec:
    data: dict[str, Json]
    diagnostics: tuple[Diagnostic, ...]
    # the items as (kind, index in its kind), in the order the TOML lists them
    order: tuple[tuple[str, int], ...] = ()

    def toml(self) -> str:
        return to_toml(self.data, self.order)


def read(path: Path, *, precise: bool = False, partial: bool = False,
         validate: bool = True) -> Spec:
    """The loose spec of domain XML `path`; CompileError when the XML is broken, or when
    something cannot be imported and `partial` is off."""
    try:
        source = SourceFile.read(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise CompileError([error("E2101", f"cannot read the domain: {exc.strerror or exc}"
                                  if isinstance(exc, OSError) else "the domain is not UTF-8",
                                  whole_file(str(path)))]) from None
    return Importer(source, precise, partial).run(validate)


class Importer(Devices):
    """The domain's top level (machine, memory, cpus, os, features, clock), then its devices."""

    def run(self, validate: bool) -> Spec:
        from lxml import etree

        try:
            parser = etree.XMLParser(remove_comments=True, resolve_entities=False,
                                     no_network=True, huge_tree=False)
            root = etree.fromstring(self.source.text.encode("utf-8"), parser)
        except etree.XMLSyntaxError as exc:
            line, col = exc.position if exc.position else (1, 1)
            lines = self.source.text.split("\n")
            start = sum(len(x) + 1 for x in lines[:max(0, line - 1)]) + max(0, col - 1)
            start = min(start, len(self.source.text))
            raise CompileError([error("E2101", f"not well-formed XML: {exc.msg}",
                                      self.source.span(start, start))]) from None
        if root.tag != "domain":
            raise CompileError([error("E2101", f"not a libvirt domain: the root element is "
                                      f"`<{root.tag}>`", self.span(root))])
        if validate and RNG_SCHEMA.exists():
            self.validate(root)
        self.machine(root)
        self.memory_cpus(root)
        self.os(root)
        self.features_clock(root)
        devices = root.find("devices")
        for el in root.iter("seclabel"):
            self.unmappable(el)
        # controllers first, by index: a port or bridge exists before what plugs into it
        children = [el for el in (devices if devices is not None else ())
                    if isinstance(el.tag, str)]
        self.items["device"] = []
        for el in sorted((c for c in children if c.tag == "controller"),
                         key=lambda c: (c.get("type") != "pci", int(c.get("index", "0")))):
            self.device(el)
        for el in children:
            if el.tag != "controller":
                self.device(el)
        self.apply_boot_order()
        # what libvirt says of every machine (`<acpi/>` absent, SMM) where this one has no such
        # option: nothing to say
        options = {k: v for k, v in self.spec.pop("options", {}).items()
                   if k in self.schema_options}
        if options:
            self.spec["options"] = options
        for kind, items in self.items.items():
            if items:
                self.spec[kind] = items
        errors = [d for d in self.diags if d.severity == "error"]
        if errors:
            raise CompileError(sorted(self.diags, key=Diagnostic.sort_key))
        # loose: in libvirt's order of PCI assignment (`[pci-order]`), which the libvirt
        # placement style follows; the sort is stable, so one rank keeps the domain's order
        order = [] if self.precise else [(kind, i) for _rank, kind, i in sorted(
            self.order, key=lambda o: o[0]) if kind in self.spec]
        return Spec(self.spec, tuple(sorted(self.diags, key=Diagnostic.sort_key)),
                    tuple(order))

    def validate(self, root: Element) -> None:
        from lxml import etree

        rng = etree.RelaxNG(etree.parse(str(RNG_SCHEMA)))
        if rng.validate(root):
            return
        for e in rng.error_log:
            line = max(1, e.line)
            lines = self.source.text.split("\n")
            start = sum(len(x) + 1 for x in lines[:line - 1])
            raise CompileError([error(
                "E2102", f"the domain does not follow libvirt's schema: {e.message}",
                self.source.span(start, start + len(lines[line - 1]) if line <= len(lines)
                                 else start),
                notes=[f"checked against `{RNG_SCHEMA}`"],
                help="`virsh define` refuses it too: fix the element first")])

    def machine(self, root: Element) -> None:
        from compiler.lang import resolve

        type_ = root.find("os/type")
        name = type_.get("machine", "") if type_ is not None else ""
        library = resolve.load_library()
        name = MACHINE_ALIASES.get(name, name)
        schema = library.machine(name) or next(
            (m for m in library.machines.values() if m.qemu_machine == name), None)
        if schema is None:
            raise CompileError([error(
                "E2105", f"mschema has no machine `{name}`", self.span(
                    type_ if type_ is not None else root),
                notes=["mschema's machines are " + ", ".join(
                    f"`{m}`" for m in sorted(library.machines))],
                help="a domain of another machine type cannot be imported")])
        self.spec["machine"] = schema.name
        self.schema_options = set(schema.options)
        self.pci_root = libvirt_map.lookup("pci-root-bus", schema.family) or self.pci_root
        dom_name = root.findtext("name")
        if dom_name and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", dom_name):
            self.spec["name"] = dom_name
        uuid = root.findtext("uuid")
        if uuid:
            self.spec["uuid"] = uuid.strip().lower()
        if self.precise:
            self.spec["hotplug-slots"] = 0  # libvirt's ports are all listed
        elif "libvirt" in dict(schema.placement_styles):
            self.spec["placement"] = "libvirt"  # where libvirt would put each device

    def memory_cpus(self, root: Element) -> None:
        mem = root.find("memory")
        # libvirt starts the guest with its memory (and each NUMA cell's) rounded up to the
        # arch's alignment
        arch = root.find("os/type").get("arch", "") if root.find("os/type") is not None \
            else ""
        align = int(libvirt_map.lookup("memory-align-kib", arch) or "1")
        if mem is not None:
            self.spec["memory"] = size(mem.text or "0", mem.get("unit", "KiB"), align)
            # libvirt writes `dump-guest-core=off` unless `<memory dumpCore='on'>`
            self.spec.setdefault("options", {})["dump-guest-core"] = \
                mem.get("dumpCore") == "on"
        vcpu = root.find("vcpu")
        cpus: dict[str, Json] = {}
        if vcpu is not None:
            most = int(vcpu.text or "1")
            count = int(vcpu.get("current", most))
            cpus["count"] = count
            if most != count:
                cpus["maxcpus"] = most
        cpu = root.find("cpu")
        if cpu is not None:
            topo = cpu.find("topology")
            if topo is not None:
                for k in ("sockets", "cores", "threads"):
                    if topo.get(k):
                        cpus[k] = int(topo.get(k))
            model = cpu.find("model")
            if cpu.get("mode") in ("host-model", "host-passthrough", "maximum"):
                mode = cpu.get("mode")
                if mode == "maximum":
                    cpus["model"] = "max"
                else:
                    self.refuse("E2104", f"cpu mode `{mode}` is the host's CPU", cpu,
                                "give `<cpu mode='custom'><model>…</model></cpu>`")
            elif model is not None and model.text:
                cpus["model"] = model.text.strip()
        cells = cpu.find("numa") if cpu is not None else None
        if cells is not None:
            self.numa(cells, align)
        if cpus and not {"sockets", "cores", "threads"} & set(cpus):
            # without `<topology>` libvirt gives each vcpu a socket of its own
            cpus.update(sockets=cpus.get("maxcpus", cpus["count"]), cores=1, threads=1)
        if cpus:
            self.spec["cpus"] = cpus

    def numa(self, cells: Element, align: int) -> None:
        """`<cpu><numa><cell cpus memory unit/>` → `[[numa]]`, cell N the N-th node, its
        memory rounded up as libvirt starts the guest; the machine's memory is then the
        cells' sum (libvirt's own `<memory>` with cells). A cell's `memAccess` and `discard`
        are its RAM backend's host side (left out); distances and caches (`-numa dist`,
        HMAT) are guest-visible and not in mschema."""
        nodes: list[Json] = []
        for cell in sorted(cells.findall("cell"), key=lambda c: int(c.get("id", "0"))):
            for child in cell:
                if isinstance(child.tag, str):
                    what = "QEMU's `-numa dist`" if child.tag == "distances" else "HMAT"
                    self.refuse("E2104", f"NUMA cell `<{child.tag}>` ({what}) is not in "
                                "mschema", child)
            node: dict[str, Json] = {}
            cpus = numa.parse_cpus(cell.get("cpus")) if cell.get("cpus") else ()
            if isinstance(cpus, str):
                self.refuse("E2104", f"NUMA cell cpus `{cell.get('cpus')}` {cpus}", cell)
            elif cpus:
                node["cpus"] = numa.format_cpus(cpus)
            node["memory"] = size(cell.get("memory", "0"), cell.get("unit", "KiB"), align)
            nodes.append(node)
        for child in cells:
            if isinstance(child.tag, str) and child.tag != "cell":
                self.refuse("E2104", f"NUMA `<{child.tag}>` (HMAT: QEMU's `-numa hmat-lb`) "
                            "is not in mschema", child)
        if nodes:
            self.spec["numa"] = nodes
            self.spec.pop("memory", None)  # the nodes' sum, as libvirt makes it

    def os(self, root: Element) -> None:
        os_ = root.find("os")
        if os_ is None:
            return
        boot: dict[str, Json] = {}
        loader = os_.find("loader")
        if loader is not None and loader.text:
            if loader.get("type") == "pflash":
                self.add("pflash", {"file": loader.text.strip(), "format": "raw",
                                    "readonly": loader.get("readonly") == "yes"})
                nvram = os_.find("nvram")
                if nvram is not None and nvram.text:
                    self.add("pflash", {"file": nvram.text.strip(), "format": "raw"})
            else:
                self.spec.setdefault("options", {})["firmware"] = loader.text.strip()
        elif os_.get("firmware"):
            self.refuse("E2104", f"firmware `{os_.get('firmware')}` is chosen by libvirt when "
                        "the domain starts", os_, "import the domain as `virsh dumpxml` "
                        "writes it for a running domain, with its `<loader>`")
        self.boot_devs = [b.get("dev", "") for b in os_.findall("boot")]
        menu = os_.find("bootmenu")
        if menu is not None and menu.get("enable") == "yes":
            boot["menu"] = True
            if menu.get("timeout"):
                boot["splash-time"] = int(menu.get("timeout"))
        bios = os_.find("bios")
        if bios is not None and bios.get("rebootTimeout"):
            boot["reboot-timeout"] = int(bios.get("rebootTimeout"))
        boot["strict"] = True  # libvirt always writes `-boot strict=on`
        self.spec["boot"] = boot

    def features_clock(self, root: Element) -> None:
        options: dict[str, Json] = self.spec.setdefault("options", {})
        features = root.find("features")
        if features is None or features.find("acpi") is None:
            options["acpi"] = "off"
        if features is not None:
            for name in ("smm", "vmport"):
                el = features.find(name)
                if el is not None and el.get("state") in ("on", "off"):
                    options[name] = el.get("state")
        clock = root.find("clock")
        rtc: dict[str, Json] = {}
        if clock is not None:
            offset = clock.get("offset", "utc")
            if offset in ("utc", "localtime"):
                rtc["base"] = offset
            else:
                self.refuse("E2104", f"clock offset `{offset}` is computed when the domain "
                            "starts", clock, "use `utc` or `localtime`")
            for timer in clock.findall("timer"):
                name, present = timer.get("name"), timer.get("present")
                if name == "hpet" and present in ("yes", "no"):
                    options["hpet"] = present == "yes"
                elif name == "rtc" and timer.get("tickpolicy") == "catchup":
                    rtc["driftfix"] = "slew"
                elif name == "rtc" and timer.get("track") == "guest":
                    rtc["clock"] = "vm"
                elif name == "pit" and present == "no":
                    options["pit"] = "off"
        else:
            rtc["base"] = "utc"
        if rtc:
            self.spec["rtc"] = rtc
        pm = root.find("pm")
        if pm is not None:
            for el, prop in (("suspend-to-mem", "disable_s3"), ("suspend-to-disk", "disable_s4")):
                found = pm.find(el)
                if found is not None and found.get("enabled") in ("yes", "no"):
                    self.spec.setdefault("globals", {})[f"ICH9-LPC.{prop}"] = \
                        int(found.get("enabled") == "no")
        if not options:
            del self.spec["options"]

    # -- devices ------------------------------------------------------------------------


def size(text: str, unit: str, align_kib: int = 1) -> str | int:
    """A libvirt size in the loose spec's words, rounded up to `align_kib` KiB: KiB when
    whole, else bytes."""
    value = int(text.strip()) * UNITS.get(unit.lower(), 1 << 10)
    step = align_kib << 10
    value = -(-value // step) * step if align_kib > 1 else value
    if value % (1 << 10) == 0:
        return f"{value >> 10}K"
    return value


# -- a small TOML writer: the loose spec's shapes only ----------------------------------


def to_toml(data: dict[str, Json], order: tuple[tuple[str, int], ...] = ()) -> str:
    """`order`: the items as (kind, index) in the order to write them (TOML allows the
    tables of one array between others'); the kinds' own order without it."""
    lines: list[str] = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict) and key != "cpus":
            tables.append((key, value))
        elif isinstance(value, list):
            continue
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        lines += ["", f"[{key}]", *(f"{_key(k)} = {_value(v)}" for k, v in value.items())]
    ordered = {key for key, _i in order}
    # arrays the order leaves out (`[[numa]]` nodes, not devices) first, in their own order
    items = [(key, i) for key, value in data.items() if isinstance(value, list)
             and key not in ordered for i in range(len(value))] + list(order)
    for key, i in items:
        value = data[key]
        assert isinstance(value, list)
        item = value[i]
        assert isinstance(item, dict)
        lines += ["", f"[[{key}]]", *(f"{_key(k)} = {_value(v)}" for k, v in item.items())]
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _string(k)


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(v: Json) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")

