"""Compare a precise blob with what a running QEMU built, device by device.

Used by `mschema verify` (blob predicted by the compiler, QEMU started from its argv), by
`mschema extract` (blob read back from QEMU, checked against QEMU once more) and by the
golden VM tests. Pure functions over the blob's JSON form (the CONTRACT's interchange
format) and QEMU's answers; nothing here starts QEMU. Ends at a list of `Difference`s.

The comparison is on entries `(bus name, bus kind, type, addr, id)`:

- the blob side walks `devices` (every device, `origin: machine` ones included);
- QEMU's side walks the parsed `info qtree`; the bus kind is the stdlib bus kind whose
  `qtree` name QEMU prints, and the address is read from the props QEMU shows for the bus
  kind's notation (its `qemu_props` in `base/notations.py`): PCI `addr`, VIO `reg` (hex), SCSI
  `channel:scsi-id:lun`, IDE `unit`, USB the port the device got (`info usb` by id, or the
  qtree's own `port N` line);
- ids are compared for the devices the command line creates (every origin but `machine`);
  QEMU gives machine-created devices no id or ids of its own (`nvram@71000000`);
- buses, empty ones included, are compared as `(name, kind, owner type, owner id)`.

Props of emitted devices are compared twice: where `info qtree` shows them (on the device,
or for a virtio PCI function, whose props are aliases, on the device of its `virtio-bus`),
and through QMP `qom-get` on `/machine/peripheral/ID` (`qom_requests`), which also reads
what qtree does not print (`bootindex`) and the backend links (`drive`, `netdev`, …).
"""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import attrs

from compiler.base import notations, numa, settings
from compiler.qemu import process

Json = Any  # the blob's and QMP's decoded JSON
Scalar = notations.Scalar

# The props that carry a device's address, by notation, in the order of its fields
# (derived from the registry, for the readers of QEMU's answers).
QEMU_ADDRESS_PROPS: Mapping[str, tuple[str, ...]] = {
    name: rules.qemu_props for name, rules in notations.REGISTRY.items() if rules.qemu_props}


@attrs.frozen
class BusInfo:
    """What the stdlib says of the bus kinds: QEMU's qtree name → kind, kind → notation."""

    kinds: Mapping[str, str]
    notations: Mapping[str, str]

    def kind(self, qtree_type: str) -> str:
        return self.kinds.get(qtree_type, f"<qtree type {qtree_type}>")

    def notation(self, kind: str) -> str:
        return self.notations.get(kind, "none")


def bus_info() -> BusInfo:
    """From the shipped stdlib (cached: it is resolved once a process)."""
    from compiler.lang import resolve

    library = resolve.load_library()
    return BusInfo({b.qtree: b.name for b in library.buses.values()},
                   {b.name: b.address.notation for b in library.buses.values()})


class Entry(NamedTuple):
    bus: str
    kind: str
    type: str
    addr: str | None
    id: str | None  # None for devices QEMU creates by itself

    def __str__(self) -> str:
        where = f"`{self.bus}` ({self.kind})" + (f" at {self.addr}" if self.addr else "")
        return f"{self.type}{f' `{self.id}`' if self.id else ''} on {where}"


class BusEntry(NamedTuple):
    name: str
    kind: str
    owner_type: str
    owner_id: str | None  # as in Entry

    def __str__(self) -> str:
        owner = self.owner_type + (f" `{self.owner_id}`" if self.owner_id else "")
        return f"bus `{self.name}` ({self.kind}) of {owner}"


DifferenceKind = Literal["missing", "extra", "moved", "type", "props", "bus", "machine", "fdt"]


@attrs.frozen
class Difference:
    """One disagreement. `device` is the blob device it concerns (by id), where there is
    one: the device itself, or for a device only QEMU built, the one owning its bus."""

    kind: DifferenceKind
    message: str
    device: str | None = None
    built: Entry | None = None  # QEMU's side of a device difference, where it has one

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


# --------------------------------------------------------------------------
# The blob's side


def blob_walk(
    devices: Sequence[Mapping[str, Json]], bus: str = "main-system-bus", kind: str = "system"
) -> Iterator[tuple[str, str, Mapping[str, Json]]]:
    """Every (bus name, bus kind, device) of a blob's `devices`, depth first."""
    for device in devices:
        yield bus, kind, device
        for child in device.get("buses", ()):
            yield from blob_walk(child["devices"], child["name"], child["kind"])


def _blob_id(device: Mapping[str, Json]) -> str | None:
    return None if device["origin"] == "machine" else str(device["id"])


def blob_entries(blob: Mapping[str, Json]) -> list[Entry]:
    entries = [Entry(bus, kind, str(d["type"]), d.get("addr"), _blob_id(d))
               for bus, kind, d in blob_walk(blob["devices"])]
    return sorted(entries, key=_key)


def blob_buses(blob: Mapping[str, Json]) -> list[BusEntry]:
    """Every bus of the blob (empty ones too) with the device providing it."""
    buses = [BusEntry(b["name"], b["kind"], str(d["type"]), _blob_id(d))
             for _, _, d in blob_walk(blob["devices"]) for b in d.get("buses", ())]
    return sorted(buses)


def emitted_ids(blob: Mapping[str, Json]) -> set[str]:
    return {str(d["id"]) for _, _, d in blob_walk(blob["devices"]) if d["origin"] != "machine"}


# --------------------------------------------------------------------------
# QEMU's side


def qtree_value(raw: str) -> Scalar:
    """A qtree property value: `87 (0x57)` → 87, `true` → True, `"usb-bus.0"` → "usb-bus.0"."""
    if raw in ("true", "false"):
        return raw == "true"
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    first = raw.split(" ", 1)[0]
    try:
        return int(first, 0)
    except ValueError:
        return raw


_USB_LINE = re.compile(r"Device \d+\.\d+, Port (?P<port>[\d.]+),.*?(?:, ID: (?P<id>\S*))?\s*$")


def usb_ports(info_usb: str) -> dict[str, str]:
    """`info usb` → {device id: port} (id-less devices, e.g. an auto hub, are left out)."""
    ports = {}
    for line in info_usb.splitlines():
        m = _USB_LINE.search(line)
        if m and m["id"]:
            ports[m["id"]] = m["port"]
    return ports


_QTREE_USB = re.compile(r"^\s*addr \d+\.\d+, port (?P<port>[\d.]+), ")
_QTREE_DEV = re.compile(r"^(?P<indent> *)dev: ")


def qtree_lines(text: str) -> list[tuple[int, int, str | None]]:
    """Per device of `info qtree`, in `qemu.walk` order: the offsets of its `dev:` line in
    `text` and the USB port of its `addr 0.0, port 1.2, …` line (None if it has none)."""
    result: list[tuple[int, int, str | None]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if _QTREE_DEV.match(body):
            start = offset + len(body) - len(body.lstrip(" "))
            result.append((start, offset + len(body), None))
        elif result and (m := _QTREE_USB.match(body)):
            start, end, _ = result[-1]
            result[-1] = (start, end, m["port"])
        offset += len(line)
    return result


def qtree_addr(notation: str, device: process.QtreeDevice, port: str | None = None) -> str | None:
    """The device's address on its bus, in the CONTRACT's notation. `port`: the USB port
    QEMU gave it (from `info usb` or the qtree), which the `port` prop holds only when set."""
    rules = notations.get(notation)
    raws = [device.prop(p) for p in rules.qemu_props]
    values = [qtree_value(r) for r in raws if r is not None]
    if not rules.qemu_props or (len(values) != len(raws) and not port):
        return None
    return rules.from_qemu(values, port)


def address_text(notation: str, values: Sequence[Scalar]) -> str | None:
    """QEMU's values of the notation's `qemu_props` → the CONTRACT notation (None when
    QEMU has not assigned one: `reg`/`unit`/`scsi-id` still at their `-1` "auto")."""
    return notations.get(notation).from_qemu(values)


def qtree_entries(root: process.QtreeBus, ids: set[str], ports: Mapping[str, str] | None = None,
                  info: BusInfo | None = None,
                  walk_ports: Sequence[str | None] = ()) -> list[Entry]:
    """QEMU's devices; a device's id counts only if the blob emitted it (`ids`). `ports`:
    USB ports by device id (`usb_ports`); `walk_ports`: by walk index (`qtree_lines`)."""
    info = info or bus_info()
    entries = []
    for i, (bus, device) in enumerate(process.walk(root)):
        kind = info.kind(bus.type)
        port = (ports or {}).get(device.id) or (walk_ports[i] if i < len(walk_ports) else None)
        ident = device.id if device.id in ids else None
        entries.append(Entry(bus.name, kind, device.type,
                             qtree_addr(info.notation(kind), device, port), ident))
    return sorted(entries, key=_key)


def qtree_buses(root: process.QtreeBus, ids: set[str], info: BusInfo | None = None
                ) -> list[BusEntry]:
    info = info or bus_info()
    buses = []
    for _, device in process.walk(root):
        ident = device.id if device.id in ids else None
        for bus in device.buses:
            buses.append(BusEntry(bus.name, info.kind(bus.type), device.type, ident))
    return sorted(buses)


def _key(e: Entry) -> tuple[str, str, str, str, str]:
    return e.bus, e.kind, e.type, e.addr or "", e.id or ""


# --------------------------------------------------------------------------
# Comparing


def diff_entries(predicted: Sequence[Entry], built: Sequence[Entry],
                 owners: Mapping[str, str] | None = None,
                 machine_ids: Mapping[Entry, str] | None = None) -> list[Difference]:
    """Devices only one side has, paired where they are one device moved or retyped.
    For `Difference.device`: `owners` maps a blob bus name to the id of the device providing
    it, `machine_ids` an entry of a machine-created device to its id in the blob."""
    only_built = sorted((Counter(built) - Counter(predicted)).elements(), key=_key)
    only_blob = sorted((Counter(predicted) - Counter(built)).elements(), key=_key)
    result: list[Difference] = []

    def blob_id(e: Entry) -> str | None:
        return e.id or (machine_ids or {}).get(e) or (owners or {}).get(e.bus)

    def pair(match: Callable[[Entry, Entry], bool]) -> None:
        for b in list(only_blob):
            q = next((q for q in only_built if match(b, q)), None)
            if q is None:
                continue
            only_blob.remove(b)
            only_built.remove(q)
            name = f"`{b.id}` ({b.type})" if b.id else b.type
            if b.type != q.type:
                result.append(Difference("type", f"{name} is a {q.type} in QEMU", blob_id(b),
                                         q))
            else:
                where = f"`{q.bus}`" + (f" at {q.addr}" if q.addr else " (no address)")
                mine = f"`{b.bus}`" + (f" at {b.addr}" if b.addr else " (no address)")
                result.append(Difference("moved", f"{name} is on {where} in QEMU, on {mine} "
                                         "in the blob", blob_id(b), q))

    pair(lambda b, q: b.id is not None and b.id == q.id)
    pair(lambda b, q: b.id is None and q.id is None and (b.bus, b.type) == (q.bus, q.type))
    pair(lambda b, q: b.id is None and q.id is None and b.addr is not None
         and (b.bus, b.addr) == (q.bus, q.addr))
    for q in only_built:
        result.append(Difference("missing", f"QEMU built {q}, which the blob does not list",
                                 (owners or {}).get(q.bus), q))
    for b in only_blob:
        result.append(Difference("extra", f"the blob lists {b}, which QEMU did not build",
                                 blob_id(b)))
    return result


def diff_buses(predicted: Sequence[BusEntry], built: Sequence[BusEntry]) -> list[Difference]:
    only_built = Counter(built) - Counter(predicted)
    only_blob = Counter(predicted) - Counter(built)
    return ([Difference("bus", f"QEMU built {e}, which the blob does not list", e.owner_id)
             for e in sorted(only_built.elements())] +
            [Difference("bus", f"the blob lists {e}, which QEMU did not build", e.owner_id)
             for e in sorted(only_blob.elements())])


def differences(predicted: Sequence[Entry] | Sequence[BusEntry],
                built: Sequence[Entry] | Sequence[BusEntry]) -> list[str]:
    """What only the blob lists and what only QEMU built, one line each; [] if they agree."""
    if all(isinstance(e, Entry) for e in [*predicted, *built]):
        found = diff_entries([e for e in predicted if isinstance(e, Entry)],
                             [e for e in built if isinstance(e, Entry)])
    else:
        found = diff_buses([e for e in predicted if isinstance(e, BusEntry)],
                           [e for e in built if isinstance(e, BusEntry)])
    return sorted(str(d) for d in found)


def same_value(value: Json, shown: Json) -> bool:
    if isinstance(value, str) and isinstance(shown, str):
        return value.lower() == shown.lower()
    return bool(shown == value and isinstance(shown, bool) == isinstance(value, bool))


def prop_differences(blob: Mapping[str, Json], root: process.QtreeBus) -> list[Difference]:
    """Props of devices that `info qtree` shows with another value: emitted devices by id;
    the machine's own (no id in QEMU) by type where QEMU has one device of that type and the
    blob gives it props (a `-global`, a schema value), so a machine prop is checked too."""
    by_id = {d.id: d for _, d in process.walk(root) if d.id}
    by_type: dict[str, list[process.QtreeDevice]] = {}
    for _, d in process.walk(root):
        by_type.setdefault(d.type, []).append(d)
    found = []
    for _, _, device in blob_walk(blob["devices"]):
        if device["origin"] == "machine":
            alike = by_type.get(str(device["type"]), [])
            built = alike[0] if len(alike) == 1 and device.get("props") else None
        else:
            built = by_id.get(str(device["id"]))
        if built is None:
            continue  # reported by `diff_entries`
        inner = [d for b in built.buses if b.type == "virtio-pci-bus" for d in b.devices]
        for name, value in sorted(device.get("props", {}).items()):
            raw = next((r for d in (built, *inner) if (r := d.prop(name)) is not None), None)
            if raw is None:
                continue  # not a qdev property qtree prints (bootindex): see `qom_requests`
            if not same_value(value, qtree_value(raw)):
                found.append(Difference("props", f"`{device['id']}` ({device['type']}): "
                                        f"`{name}` is {raw} in info qtree, {value!r} in the "
                                        "blob", str(device["id"])))
    return found


def qom_requests(blob: Mapping[str, Json]) -> list[tuple[str, Mapping[str, object]]]:
    """QMP `qom-get`s reading back every prop and backend link of every emitted device
    (`/machine/peripheral/ID`), then every machine option (`/machine`, QOM props of the
    machine), in the order `qom_differences` expects the answers."""
    requests: list[tuple[str, Mapping[str, object]]] = []
    for _, _, device in blob_walk(blob["devices"]):
        if device["origin"] == "machine":
            continue
        path = f"/machine/peripheral/{device['id']}"
        for name in [*sorted(device.get("props", {})), *sorted(device.get("backend", {}))]:
            requests.append(("qom-get", {"path": path, "property": name}))
    for name in shown_options(blob):
        requests.append(("qom-get", {"path": "/machine", "property": name}))
    return requests


def shown_options(blob: Mapping[str, Json]) -> list[str]:
    """The blob's machine options QOM shows: all but an unset one that names a backend
    (QEMU deletes an unused `pflash0` property from the machine)."""
    from compiler.lang.resolve import load_library

    machine = blob["machine"]
    schema = next((s for s in load_library().machines.values()
                   if s.qemu_machine == machine.get("qemu")), None)
    hidden = {name for name, spec in schema.options.items()
              if spec.type.kind == "backend"} if schema else set()
    return [name for name, value in sorted(machine["options"].items())
            if not (name in hidden and value == "")]


def qom_differences(blob: Mapping[str, Json], answers: Sequence[object],
                    root: process.QtreeBus | None = None) -> list[Difference]:
    """Props and backend links that QEMU's QOM holds with another value. A link that reads
    back empty counts if QEMU handed the backend to a device below (usb-storage's drive
    goes to its internal scsi-hd, which `info qtree` shows in `root`)."""
    by_id = {d.id: d for _, d in process.walk(root)} if root is not None else {}
    pending = list(answers)
    found = []
    for _, _, device in blob_walk(blob["devices"]):
        if device["origin"] == "machine":
            continue
        ident = str(device["id"])
        name_of = f"`{ident}` ({device['type']})"
        for name, value in sorted(device.get("props", {}).items()):
            shown = pending.pop(0)
            if not same_value(value, shown):
                found.append(Difference("props", f"{name_of}: `{name}` is {shown!r} in QOM, "
                                        f"{value!r} in the blob", ident))
        for name, target in sorted(device.get("backend", {}).items()):
            shown = pending.pop(0)
            if shown == target or (isinstance(shown, str) and shown.endswith(f"/{target}")):
                continue
            below = by_id.get(ident)
            handed = shown == "" and below is not None and any(
                d.prop(name) == f'"{target}"' for b in below.buses for _, d in process.walk(b))
            if not handed:
                found.append(Difference("props", f"{name_of}: backend link `{name}` is "
                                        f"{shown!r} in QOM, {target!r} in the blob", ident))
    options = blob["machine"]["options"]
    for name, value in ((n, options[n]) for n in shown_options(blob)):
        shown = pending.pop(0)
        # `auto` is QEMU's to resolve from the rest of the machine (q35's vmport reads `on`)
        if value != "auto" and not same_value(value, shown):
            found.append(Difference("machine", f"machine option `{name}` is {shown!r} in QOM, "
                                    f"{value!r} in the blob"))
    return found


MACHINE_REQUESTS: tuple[tuple[str, Mapping[str, object]], ...] = (
    ("query-cpus-fast", {}),
    ("query-memory-size-summary", {}),
    # the topology QEMU parsed from -smp, with `maxcpus` (possible cpus, present or not)
    ("qom-get", {"path": "/machine", "property": "smp"}),
    # -boot as QEMU holds it (BootConfiguration): `order` always, the rest when given
    ("qom-get", {"path": "/machine", "property": "boot"}),
    # the guest's RTC date now (struct tm), where -rtc base starts it
    ("qom-get", {"path": "/machine", "property": "rtc-time"}),
    # -uuid (all zeros without)
    ("query-uuid", {}),
    # -numa: the node of every possible cpu, the RAM backends, and how many nodes with how
    # much memory (`info numa`, in MiB)
    ("query-hotpluggable-cpus", {}),
    ("query-memdev", {}),
    ("human-monitor-command", {"command-line": "info numa"}),
)


def machine_differences(blob: Mapping[str, Json], answers: Sequence[Json]) -> list[Difference]:
    """The blob's `cpus` and `memory` against the answers to `MACHINE_REQUESTS`: the CPU
    count, the topology as QEMU parsed it (`/machine` `smp`, with `maxcpus`: the count when
    the blob has none) and, when every possible cpu is present, as the cpus QEMU built
    report it (x86: socket/core/thread ids; pseries only core ids), and the base memory."""
    cpus, summary, smp, boot, rtc_time, uuid, *numa_answers = answers
    want = blob["cpus"]
    found = []
    if numa_answers:
        found += numa_differences(blob, smp, *numa_answers)

    def differ(what: str, mine: object, qemus: object) -> None:
        found.append(Difference("machine", f"{what} is {qemus} in QEMU, {mine} in the blob"))

    if "count" in want and len(cpus) != want["count"]:
        differ("`cpus.count`", want["count"], len(cpus))
    possible = want.get("maxcpus", want.get("count"))
    for key, mine in (("maxcpus", possible), *((k, want.get(k)) for k in
                                               ("sockets", "cores", "threads"))):
        if mine is not None and smp.get(key) != mine:
            differ(f"`cpus.{key}`", mine, smp.get(key))
    if possible != len(cpus):  # the ids below count present cpus only
        cpus = []
    props = [c["props"] for c in cpus]
    for key, field in (("sockets", "socket-id"), ("threads", "thread-id")):
        if key in want and props and all(field in p for p in props):
            n = len({p[field] for p in props})
            if n != want[key]:
                differ(f"`cpus.{key}`", want[key], n)
    if "cores" in want and props and all("socket-id" in p for p in props):
        n = len({p["core-id"] for p in props if p["socket-id"] == props[0]["socket-id"]})
        if n != want["cores"]:
            differ("`cpus.cores`", want["cores"], n)
    size = blob["memory"].get("size")
    if size is not None and summary["base-memory"] != size:
        differ("`memory.size`", size, summary["base-memory"])
    for key, mine in sorted(blob.get("boot", {}).items()):
        if boot.get(key) != mine:
            differ(f"`boot.{key}`", mine, boot.get(key))
    mine_uuid = blob.get("uuid", settings.NO_UUID)
    if uuid.get("UUID") != mine_uuid:
        differ("`uuid`", mine_uuid, uuid.get("UUID"))
    base = blob.get("rtc", {}).get("base")
    if isinstance(base, str):
        shown = _rtc_time(rtc_time)
        want = _rtc_start(base)
        # QEMU was started a moment ago (paused; a host clock still runs)
        if shown is None or abs((shown - want).total_seconds()) > RTC_SLACK_SECONDS:
            differ("the RTC date (`rtc.base`)", f"{want:%Y-%m-%dT%H:%M:%S} ({base})",
                   f"{shown:%Y-%m-%dT%H:%M:%S}" if shown else repr(rtc_time))
    return found


RTC_SLACK_SECONDS = 600


def numa_differences(blob: Mapping[str, Json], smp: Mapping[str, Json],
                     hotpluggable: Sequence[Mapping[str, Json]],
                     memdevs: Sequence[Mapping[str, Json]], info_numa: str
                     ) -> list[Difference]:
    """The blob's `numa` nodes against QEMU's: how many (`info numa`; without nodes, the
    ones the machine makes by itself, its `quirk numa-nodes`), each node's cpus (the
    `node-id` of every possible cpu), its memory (`info numa`, in whole MiB) and its RAM
    backend (`query-memdev`: the id, of the node's size)."""
    from compiler.lang.resolve import load_library

    nodes = blob.get("numa", [])
    found = []

    def differ(what: str, mine: object, qemus: object) -> None:
        found.append(Difference("machine", f"{what} is {qemus} in QEMU, {mine} in the blob"))

    schema = next((s for s in load_library().machines.values()
                   if s.qemu_machine == blob["machine"].get("qemu")), None)
    own = next((q.value for q in schema.quirks if q.name == "numa-nodes"), 0) if schema else 0
    count = numa.node_count(info_numa)
    if count != (len(nodes) or own):
        differ("the number of NUMA nodes", len(nodes) or own, count)
        return found
    if not nodes:
        return found
    owners = numa.cpu_nodes(hotpluggable, smp)
    sizes = numa.node_sizes(info_numa)
    backends = {str(m.get("id")): m for m in memdevs}
    for n, node in enumerate(nodes):
        cpus = numa.format_cpus(c for c, owner in owners.items() if owner == n) \
            if isinstance(owners, dict) else owners
        if cpus != node.get("cpus", ""):
            differ(f"`numa[{n}].cpus`", json.dumps(node.get("cpus", "")), json.dumps(cpus))
        if sizes.get(n) != node["memory"] >> 20:
            differ(f"`numa[{n}].memory` (in MiB)", node["memory"] >> 20, sizes.get(n))
        backend = backends.get(node["memdev"])
        if backend is None or backend.get("size") != node["memory"]:
            differ(f"`numa[{n}].memdev`", f"`{node['memdev']}` of {node['memory']} bytes",
                   "missing" if backend is None else f"of {backend.get('size')} bytes")
    return found


def _rtc_start(base: str) -> datetime.datetime:
    """Where `-rtc base=` starts the guest's clock, as a naive date-time."""
    if base == "localtime":
        return datetime.datetime.now().replace(microsecond=0)
    date = settings.rtc_date(base)
    if date is not None:
        return date
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


def _rtc_time(tm: Json) -> datetime.datetime | None:
    """QOM's `rtc-time` (a struct tm) as a date-time."""
    try:
        return datetime.datetime(tm["tm_year"] + 1900, tm["tm_mon"] + 1, tm["tm_mday"],
                                 tm["tm_hour"], tm["tm_min"], tm["tm_sec"])
    except (KeyError, TypeError, ValueError):
        return None


def bus_owners(blob: Mapping[str, Json]) -> dict[str, str]:
    """Blob bus name → the id of the device providing it (the first, if names repeat)."""
    owners: dict[str, str] = {}
    for _, _, d in blob_walk(blob["devices"]):
        for b in d.get("buses", ()):
            owners.setdefault(b["name"], str(d["id"]))
    return owners


def compare_all(blob: Mapping[str, Json], root: process.QtreeBus, info_usb: str = "",
                qom: Sequence[object] | None = None, machine: Sequence[Json] | None = None,
                qtree_text: str | None = None, info: BusInfo | None = None,
                walk_ports: Sequence[str | None] = ()) -> list[Difference]:
    """Every disagreement between the blob and what QEMU built; [] if none. `qom` holds the
    answers to `qom_requests(blob)` and `machine` those to `MACHINE_REQUESTS`, when asked;
    `qtree_text` (the text `root` was parsed from) gives id-less USB devices their port, or
    `walk_ports` directly (by `qemu.walk` index)."""
    info = info or bus_info()
    ids = emitted_ids(blob)
    if qtree_text:
        lines = qtree_lines(qtree_text)
        walk_ports = [lines[d.line][2] if 0 <= d.line < len(lines) else None
                      for _, d in process.walk(root)]
    machine_ids = {Entry(bus, kind, str(d["type"]), d.get("addr"), None): str(d["id"])
                   for bus, kind, d in blob_walk(blob["devices"]) if d["origin"] == "machine"}
    found = diff_entries(blob_entries(blob),
                         qtree_entries(root, ids, usb_ports(info_usb), info, walk_ports),
                         bus_owners(blob), machine_ids)
    found += diff_buses(blob_buses(blob), qtree_buses(root, ids, info))
    found += prop_differences(blob, root)
    if qom is not None:
        found += qom_differences(blob, qom, root)
    if machine is not None:
        found += machine_differences(blob, machine)
    return found


def compare(blob: Mapping[str, Json], root: process.QtreeBus, info_usb: str = "",
            qom: Sequence[object] | None = None,
            machine: Sequence[Json] | None = None) -> list[str]:
    """`compare_all`, one line per difference."""
    return [str(d) for d in compare_all(blob, root, info_usb, qom, machine)]
