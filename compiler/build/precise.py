"""A precise blob (CONTRACT `mschema-precise/1`) as input: JSON → `tree.Machine`, checked.

Ends at a machine equal to what the blob says, or diagnostics (E16xx) pointing into the
blob. It sits in build/ beside `plan` (the loose spec's way in) because it rebuilds the
machine: beyond its shape, a blob must describe what QEMU would build, so it is rebuilt
through `allocate` with every bus and address as written, and must come out the same: no
machine device missing or invented, every child and bus where its type puts it. That makes
`compile(blob)` a fixed point and catches hand edits that QEMU would not reproduce.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import attrs

from compiler.base import cpu, notations, numa, settings, units
from compiler.base.diagnostics import Collector, CompileError, Label, error, quote_list
from compiler.base.source import SourceFile, Span
from compiler.build import allocate, expand, tree
from compiler.build.plan import Plan, Planned
from compiler.build.tree import FORMAT
from compiler.lang import expr, model
from compiler.spec.jsonpos import PathKey, locate

Json = object


def is_blob(data: object) -> bool:
    return isinstance(data, dict) and "format" in data


class _Reader:
    """Typed access to the blob with a span for every path."""

    def __init__(self, source: SourceFile, diags: Collector) -> None:
        self.source = source
        self.diags = diags
        self.where, _dups = locate(source.text)
        self.known_types: set[str] = set()

    def span(self, path: PathKey, key: bool = False) -> Span:
        while path and path not in self.where:
            path = path[:-1]
        ks, ke, vs, ve = self.where.get(path, (0, 0, 0, 0))
        return self.source.span(ks, ke) if key else self.source.span(vs, ve)

    def fail(self, path: PathKey, message: str) -> None:
        self.diags.error("E1602", message, self.span(path))

    def obj(self, value: Json, path: PathKey, keys: tuple[str, ...], required: tuple[str, ...]
            ) -> dict[str, Json] | None:
        if not isinstance(value, dict):
            self.fail(path, f"{_quoted(path)} must be an object")
            return None
        for k in value:
            if k not in keys:
                self.diags.error("E1603", f"unknown key `{k}` in {_quoted(path)}",
                                 self.span((*path, k), key=True),
                                 notes=[f"expected one of {quote_list(keys)}"])
        for k in required:
            if k not in value:
                self.fail(path, f"{_quoted(path)} has no `{k}`")
        return value

    def scalar_map(self, value: Json, path: PathKey) -> dict[str, tree.PropValue]:
        if not isinstance(value, dict):
            self.fail(path, f"`{_show(path)}` must be an object")
            return {}
        result: dict[str, tree.PropValue] = {}
        for k, v in value.items():
            if isinstance(v, (bool, int, str)) and not isinstance(v, float):
                result[k] = v
            else:
                self.fail((*path, k), f"`{k}` must be a string, an integer or a boolean")
        return result

    def string(self, value: Json, path: PathKey) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.fail(path, f"`{_show(path)}` must be a non-empty string")
        return None


def _show(path: PathKey) -> str:
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else p)
    return text or "the blob"


def _quoted(path: PathKey) -> str:
    return f"`{_show(path)}`" if path else "the blob"


ORIGINS: tuple[tree.Origin, ...] = ("machine", "default", "spec", "hotplug")


@attrs.frozen
class Loaded:
    """A checked blob: the machine, its schema and options, and its devices as placed."""

    machine: tree.Machine
    schema: model.MachineSchema
    options: dict[str, expr.Scalar]
    plan: Plan


def load(source: SourceFile, data: dict[str, Json], library: model.Library) -> tree.Machine:
    return read(source, data, library).machine


def read(source: SourceFile, data: dict[str, Json], library: model.Library) -> Loaded:
    from compiler.spec import loose

    where, _dups = locate(source.text)
    unsendable = loose.unsendable(source, data, {p: source.span(o[2], o[3])
                                                 for p, o in where.items()})
    if unsendable:
        raise CompileError(unsendable)
    diags = Collector()
    r = _Reader(source, diags)
    top = r.obj(data, (), ("format", "name", "machine", "cpus", "memory", "numa", "boot",
                           "rtc", "uuid", "globals", "devices", "backends"),
                ("format", "machine", "devices", "backends"))
    if top is None:
        diags.check()
        raise AssertionError("unreachable")
    if top.get("format") != FORMAT:
        r.diags.error("E1601", f"not a `{FORMAT}` blob", r.span(("format",)),
                      notes=[f"this mschema reads `{FORMAT}`"])
    diags.check()
    m = r.obj(top["machine"], ("machine",), ("schema", "qemu", "arch", "options",
                                             "qemu-release"), ("schema", "options"))
    diags.check()
    assert m is not None
    family = r.string(m.get("schema"), ("machine", "schema"))
    versions = {s.qemu_machine: s for s in library.machines.values() if s.family == family}
    if not versions:
        families = sorted({s.family for s in library.machines.values()})
        diags.error("E0204", f"unknown machine schema `{family}`",
                    r.span(("machine", "schema")),
                    notes=[f"expected one of {quote_list(families)}"])
        diags.check()
        raise AssertionError("unreachable")
    release = _release(r, m)
    qemu_type = m.get("qemu")
    schema = versions.get(str(qemu_type)) if qemu_type is not None else library.machine(
        str(family), release or model.DEFAULT_RELEASE)
    if schema is None:
        diags.error("E0204", f"`{family}` has no version for QEMU machine type `{qemu_type}`",
                    r.span(("machine", "qemu")),
                    notes=[f"its versions are {quote_list(versions)}"])
        diags.check()
        raise AssertionError("unreachable")
    if release and not schema.runs_on(release):
        diags.error("E1090", f"`{schema.name}` needs QEMU {schema.since} or newer; the blob "
                    f"says QEMU {release}", r.span(("machine", "qemu-release")),
                    labels=[Label(schema.span, f"`{schema.name}` is QEMU {schema.since}'s")],
                    help=f'write `"qemu-release": "{schema.since}"`, or leave it out')
        diags.check()
    if "arch" in m and m["arch"] != schema.arch:
        r.fail(("machine", "arch"), f"`{schema.name}` has arch `{schema.arch}`, not `{m['arch']}`")
    given = {k: (_option_text(v), r.span(("machine", "options", k)))
             for k, v in r.scalar_map(m["options"], ("machine", "options")).items()}
    options = expand.option_values(schema, given, diags)
    schema = schema.placed_under(options)  # its `placement when` under the blob's options
    cpus = r.scalar_map(top.get("cpus", {}), ("cpus",))
    memory = r.scalar_map(top.get("memory", {}), ("memory",))
    _check_memory(r, memory)
    _check_cpus(r, cpus)
    nodes = _numa(r, top.get("numa", []))
    boot = r.scalar_map(top.get("boot", {}), ("boot",))
    rtc = r.scalar_map(top.get("rtc", {}), ("rtc",))
    uuid = top.get("uuid", "")
    if "uuid" in top and (settings.uuid_problem(uuid) is not None or uuid != str(uuid).lower()):
        r.fail(("uuid",), "`uuid` must be a UUID in lower case, as "
               "`c7a5fdbd-edaf-9455-926a-d65c16db1809` (as QEMU shows it)")
    globals_ = _globals(r, library, r.scalar_map(top.get("globals", {}), ("globals",)))
    backends = _backends(r, top["backends"])
    r.known_types = set(library.devices)
    devices = list(_devices(r, top["devices"], ("devices",), "main-system-bus"))
    _unique_ids(r, top["devices"], ("devices",), {}, diags)
    diags.check()
    name = top.get("name")
    info = expand.machine_info(schema, options, release)
    given_tree = _given_tree(r, library, top["devices"], ("devices",), "main-system-bus",
                             "system")
    machine = tree.Machine(info, given_tree, tuple(sorted(cpus.items())),
                           tuple(sorted(memory.items())), backends,
                           name if isinstance(name, str) else "", _boot(r, schema, boot),
                           _rtc(r, rtc), str(uuid), globals_, nodes)
    rebuilt = _rebuild(schema, library, options, devices, backends, globals_, source, diags)
    diags.check()
    _compare(given_tree, rebuilt, diags, schema, r.span(("machine", "schema")))
    diags.check()
    return Loaded(machine, schema, options, Plan(tuple(devices), backends))


def _release(r: _Reader, m: dict[str, Json]) -> str:
    """`machine.qemu-release`: the QEMU release the blob is for, MAJOR.MINOR (E1091); ""
    where the blob gives none (`model.DEFAULT_RELEASE`, or the version's own `since`)."""
    given = m.get("qemu-release")
    if given is None:
        return ""
    if not isinstance(given, str) or model.release_key(given) is None:
        r.diags.error("E1091", f"`machine.qemu-release` must name a QEMU release, not "
                      f"{json.dumps(given)}", r.span(("machine", "qemu-release")),
                      help='write MAJOR.MINOR: `"qemu-release": "10.0"`')
        r.diags.check()
    return str(given)


def _check_memory(r: _Reader, memory: dict[str, tree.PropValue]) -> None:
    """A size QEMU can give a guest: a positive number of bytes that `-m` does not round."""
    for key in memory:
        if key not in MEMORY_KEYS:
            r.diags.error("E1603", f"unknown key `{key}` in `memory`",
                          r.span(("memory", key), key=True),
                          notes=[f"expected one of {quote_list(MEMORY_KEYS)}"])
    size = memory.get("size")
    if size is None:
        return
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        r.fail(("memory", "size"), "`memory.size` must be a positive number of bytes")
    elif size != units.qemu_ram_size(size):
        r.fail(("memory", "size"), f"`memory.size` {size} is not a multiple of "
               f"{units.RAM_ALIGN} bytes: QEMU would give the guest "
               f"{units.qemu_ram_size(size)}")


def _boot(r: _Reader, schema: model.MachineSchema, boot: dict[str, tree.PropValue]
          ) -> tuple[tuple[str, tree.PropValue], ...]:
    """QEMU's -boot as the blob sets it: known keys (E1603), values QEMU takes (E1602)."""
    devices = next((str(q.value) for q in schema.quirks if q.name == "boot-devices"), None)
    for key, value in boot.items():
        if key not in settings.BOOT_KEYS:
            r.diags.error("E1603", f"unknown key `{key}` in `boot`", r.span(("boot", key)),
                          notes=[f"`boot` takes {quote_list(list(settings.BOOT_KEYS))}"])
            continue
        problem = settings.boot_problem(key, value, devices)
        if problem is not None:
            r.fail(("boot", key), f"`boot.{key}` {problem}")
    return tuple(sorted(boot.items()))


def _globals(r: _Reader, library: model.Library, given: dict[str, tree.PropValue]
             ) -> tuple[tuple[str, tree.PropValue], ...]:
    """QEMU's -global as the blob sets it: a stdlib type's declared prop (E1604, E1602),
    a value of its type (E1602)."""
    for key, value in given.items():
        type_name, _, prop = key.rpartition(".")
        dtype = library.devices.get(type_name)
        if dtype is None:
            r.diags.error("E1604", f"unknown device type `{type_name}` in global `{key}`",
                          r.span(("globals", key)))
            continue
        spec = dtype.props.get(prop)
        if spec is None or not spec.type.check(value):
            r.fail(("globals", key), f"global `{key}` must name a property `{type_name}` "
                   "declares, with a value of its type" if spec is None else
                   f"global `{key}` must be {spec.type.describe()}")
    return tuple(sorted(given.items()))


def _rtc(r: _Reader, rtc: dict[str, tree.PropValue]) -> tuple[tuple[str, tree.PropValue], ...]:
    """QEMU's -rtc as the blob sets it: known keys (E1603), values QEMU takes (E1602)."""
    for key, value in rtc.items():
        if key not in settings.RTC_KEYS:
            r.diags.error("E1603", f"unknown key `{key}` in `rtc`", r.span(("rtc", key)),
                          notes=[f"`rtc` takes {quote_list(list(settings.RTC_KEYS))}"])
            continue
        problem = settings.rtc_problem(key, value)
        if problem is not None:
            r.fail(("rtc", key), f"`rtc.{key}` {problem}")
    return tuple(sorted(rtc.items()))


CPU_KEYS = ("count", "maxcpus", "sockets", "cores", "threads", "model", "features")
MEMORY_KEYS = ("size",)
NUMA_KEYS = ("cpus", "memdev", "memory")


def _numa(r: _Reader, value: Json) -> tuple[tree.NumaNode, ...]:
    """The guest NUMA nodes, node N the N-th: `cpus` as the blob writes them (E1040, and
    the canonical form, E1602), `memory` in bytes, `memdev` the id of the node's RAM
    backend. Whether they suit the machine is `validate`'s (rules `numa-*`)."""
    if not isinstance(value, list):
        r.fail(("numa",), "`numa` must be a list of nodes")
        return ()
    nodes = []
    for n, item in enumerate(value):
        body = r.obj(item, ("numa", n), NUMA_KEYS, ("memdev", "memory"))
        if body is None:
            continue
        cpus: tuple[int, ...] = ()
        if "cpus" in body:
            found = numa.parse_cpus(body["cpus"])
            if isinstance(found, str):
                shown = f"`{body['cpus']}`" if isinstance(body["cpus"], str) else \
                    json.dumps(body["cpus"])
                r.diags.error("E1040", f"`numa[{n}].cpus` {shown} {found}",
                              r.span(("numa", n, "cpus")), help=numa.CPU_LIST_HELP)
            elif numa.format_cpus(found) != body["cpus"]:
                r.fail(("numa", n, "cpus"), f"`numa[{n}].cpus` must be written "
                       f"`{numa.format_cpus(found)}` (sorted runs), as mschema writes it")
            else:
                cpus = tuple(sorted(found))
        memory = body.get("memory", 0)  # missing: `obj` said so
        if "memory" in body and (not isinstance(memory, int) or isinstance(memory, bool)
                                 or memory <= 0):
            r.fail(("numa", n, "memory"), f"`numa[{n}].memory` must be a positive number "
                   "of bytes")
        memdev = body.get("memdev", "")
        if "memdev" in body and (not isinstance(memdev, str) or not memdev):
            r.fail(("numa", n, "memdev"), f"`numa[{n}].memdev` must be the id of the node's "
                   f"RAM backend, such as `{numa.memdev_id(n)}`")
        nodes.append(tree.NumaNode(cpus, memory if isinstance(memory, int) else 0,
                                   memdev if isinstance(memdev, str) else ""))
    return tuple(nodes)


def setting_spans(source: SourceFile, data: dict[str, Json]) -> dict[tuple[object, ...], Span]:
    """Where a blob writes what `validate`'s machine-wide rules read: each `numa` node and
    its fields, `memory.size`, `cpus`."""
    where, _dups = locate(source.text)
    found: dict[tuple[object, ...], Span] = {}
    for path, (_ks, _ke, vs, ve) in where.items():
        if (path[:1] == ("numa",) and len(path) in (2, 3)) or \
                path in (("memory", "size"), ("cpus",)):
            found[path] = source.span(vs, ve)
    return found


def _check_cpus(r: _Reader, cpus: dict[str, tree.PropValue]) -> None:
    """A topology QEMU 7.2 takes as written: sockets × cores × threads is `maxcpus` (the
    count when absent), which is more than the count when given."""
    numbers = {k: v for k, v in cpus.items() if isinstance(v, int) and not isinstance(v, bool)}
    for key in ("count", "maxcpus", "sockets", "cores", "threads"):
        if key in cpus and (key not in numbers or numbers[key] < 1):
            r.fail(("cpus", key), f"`cpus.{key}` must be a positive integer")
            return
    for key in cpus:
        if key not in CPU_KEYS:
            r.diags.error("E1603", f"unknown key `{key}` in `cpus`",
                          r.span(("cpus", key), key=True),
                          notes=[f"expected one of {quote_list(CPU_KEYS)}"])
    model_problem = cpu.model_problem(cpus["model"]) if "model" in cpus else None
    if model_problem:
        r.diags.error("E2030", f"`cpus.model` `{cpus['model']}`: {model_problem}",
                      r.span(("cpus", "model")), help=cpu.MODEL_HELP)
    if "features" in cpus:
        features = cpus["features"]
        listed = cpu.split(features) if isinstance(features, str) else [features]
        for _i, problem in cpu.feature_problems(listed):
            r.diags.error("E2031", f"`cpus.features`: {problem}", r.span(("cpus", "features")),
                          help="the blob writes the features as one string, "
                          "`+pdpe1gb,-hypervisor`")
        if "model" not in cpus:
            r.diags.error("E2031", "`cpus.features` needs a `cpus.model` to change",
                          r.span(("cpus", "features")))
    count = numbers.get("count", 1)
    if "maxcpus" in numbers and numbers["maxcpus"] <= count:
        r.fail(("cpus", "maxcpus"), f"`cpus.maxcpus` must be more than the count ({count}): "
               "leave it out when every cpu is present")
        return
    possible = numbers.get("maxcpus", count)
    product = numbers.get("sockets", 1) * numbers.get("cores", 1) * numbers.get("threads", 1)
    if product != possible:
        r.fail(("cpus",), f"invalid CPU topology: sockets × cores × threads is {product}, "
               f"not {possible}")


def _option_text(v: tree.PropValue) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else str(v)


def _backends(r: _Reader, value: Json) -> tuple[tuple[str, tuple[tuple[str, tree.PropValue],
                                                                   ...]], ...]:
    if not isinstance(value, dict):
        r.fail(("backends",), "`backends` must be an object")
        return ()
    result = []
    for ident, body in value.items():
        props = r.scalar_map(body, ("backends", ident))
        if "kind" not in props:
            r.fail(("backends", ident), f"backend `{ident}` has no `kind`")
        result.append((ident, tuple(sorted(props.items()))))
    return tuple(sorted(result))


def _devices(r: _Reader, value: Json, path: PathKey, bus: str) -> Iterator[Planned]:
    """Every non-machine device, in tree order, as a device placed exactly where written."""
    if not isinstance(value, list):
        r.fail(path, f"`{_show(path)}` must be an array")
        return
    for i, d in enumerate(value):
        p = (*path, i)
        obj = r.obj(d, p, ("id", "type", "origin", "addr", "props", "backend", "buses"),
                    ("id", "type", "origin", "props"))
        if obj is None:
            continue
        origin = obj.get("origin")
        if origin not in ORIGINS or not isinstance(origin, str):
            r.fail((*p, "origin"), f"`origin` must be one of {quote_list(ORIGINS)}")
            continue
        ident, dtype = r.string(obj.get("id"), (*p, "id")), r.string(obj.get("type"), (*p, "type"))
        props = r.scalar_map(obj.get("props", {}), (*p, "props"))
        links = r.scalar_map(obj.get("backend", {}), (*p, "backend"))
        addr = obj.get("addr")
        if addr is not None and not isinstance(addr, str):
            r.fail((*p, "addr"), "`addr` must be a string in its bus's notation")
            addr = None
        if ident and dtype and origin != "machine":
            # diagnostics point at the field most likely wrong: the type if unknown, else
            # the address, else the id
            focus = ("type" if dtype not in r.known_types else
                     "addr" if addr is not None else "id")
            yield Planned(ident, dtype, _origin(origin), tuple(sorted(props.items())),
                          tuple(sorted((k, str(v)) for k, v in links.items())), bus,
                          addr, tree.Provenance(f"given in the blob ({origin})",
                                                r.span((*p, "id"))),
                          r.span((*p, focus)))
        buses = obj.get("buses", [])
        if not isinstance(buses, list):
            r.fail((*p, "buses"), "`buses` must be an array")
            continue
        for j, b in enumerate(buses):
            bp = (*p, "buses", j)
            bobj = r.obj(b, bp, ("name", "kind", "devices"), ("name", "kind", "devices"))
            if bobj is not None and isinstance(bobj.get("name"), str) and "devices" in bobj:
                yield from _devices(r, bobj["devices"], (*bp, "devices"), str(bobj["name"]))


def _unique_ids(r: _Reader, value: Json, path: PathKey, seen: dict[str, Span],
                diags: Collector) -> None:
    from compiler.base.diagnostics import Label

    for i, d in enumerate(value if isinstance(value, list) else []):
        if not isinstance(d, dict):
            continue
        ident = d.get("id")
        span = r.span((*path, i, "id"))
        if isinstance(ident, str):
            if ident in seen:
                diags.error("E1402", f"device id `{ident}` is used twice", span,
                            labels=[Label(seen[ident], "first used here")])
            seen.setdefault(ident, span)
        for j, b in enumerate(d.get("buses", []) if isinstance(d.get("buses"), list) else []):
            if isinstance(b, dict):
                _unique_ids(r, b.get("devices"), (*path, i, "buses", j, "devices"), seen, diags)


def backend_spans(source: SourceFile, data: dict[str, Json]) -> dict[str, Span]:
    where, _dups = locate(source.text)
    backends = data.get("backends")
    result = {}
    for ident in backends if isinstance(backends, dict) else ():
        ks, ke, _vs, _ve = where.get(("backends", ident), (0, 0, 0, 0))
        result[ident] = source.span(ks, ke)
    return result


def prop_spans(source: SourceFile, data: dict[str, Json]) -> dict[tuple[str, str], Span]:
    """Where each device's prop value is written in a blob: (device id, prop) → span."""
    where, _dups = locate(source.text)
    result: dict[tuple[str, str], Span] = {}

    def walk(devices: Json, path: PathKey) -> None:
        for i, d in enumerate(devices if isinstance(devices, list) else ()):
            if not isinstance(d, dict):
                continue
            props = d.get("props")
            for name in props if isinstance(props, dict) else ():
                found = where.get((*path, i, "props", name))
                if found and isinstance(d.get("id"), str):
                    result.setdefault((d["id"], name), source.span(found[2], found[3]))
            for j, bus in enumerate(d.get("buses") or () if isinstance(d.get("buses"), list)
                                    else ()):
                if isinstance(bus, dict):
                    walk(bus.get("devices"), (*path, i, "buses", j, "devices"))

    walk(data.get("devices"), ("devices",))
    return result


def option_spans(source: SourceFile, data: dict[str, Json]) -> dict[str, Span]:
    """Where each machine option's value is written in a blob."""
    where, _dups = locate(source.text)
    machine = data.get("machine")
    options = machine.get("options") if isinstance(machine, dict) else None
    result = {}
    for name in options if isinstance(options, dict) else ():
        _ks, _ke, vs, ve = where.get(("machine", "options", name), (0, 0, 0, 0))
        result[name] = source.span(vs, ve)
    return result


def _origin(text: str) -> tree.Origin:
    for o in ORIGINS:
        if o == text:
            return o
    raise ValueError(text)


def _given_tree(r: _Reader, library: model.Library, value: Json, path: PathKey, name: str,
                kind: str) -> tree.Bus:
    """The blob's own tree, as written (shape already checked by `_devices`)."""
    bus_kind = library.buses.get(kind)
    notation = bus_kind.address.notation if bus_kind else "none"
    devices = []
    for i, d in enumerate(value if isinstance(value, list) else []):
        if not isinstance(d, dict):
            continue
        p = (*path, i)
        buses = tuple(_given_tree(r, library, b.get("devices", []),
                                  (*p, "buses", j, "devices"), str(b.get("name")),
                                  str(b.get("kind")))
                      for j, b in enumerate(d.get("buses", [])) if isinstance(b, dict))
        devices.append(tree.Device(
            str(d.get("id")), str(d.get("type")), d.get("origin", "spec"),
            None if d.get("addr") is None else
            notations.Address.as_written(notation, str(d.get("addr"))),
            tuple(sorted(r.scalar_map(d.get("props", {}), (*p, "props")).items())),
            tuple(sorted((k, str(v)) for k, v in (d.get("backend") or {}).items())),
            buses, tree.Provenance("given in the blob", r.span((*p, "id")))))
    return tree.Bus(name, kind, notation, tuple(devices))


def _rebuild(schema: model.MachineSchema, library: model.Library,
             options: dict[str, expr.Scalar], devices: list[Planned],
             backends: tuple[tuple[str, tuple[tuple[str, tree.PropValue], ...]], ...],
             globals_: tuple[tuple[str, tree.PropValue], ...],
             source: SourceFile, diags: Collector) -> tree.Bus:
    unknown = [d for d in devices if d.type not in library.devices]
    for d in unknown:
        diags.error("E1604", f"unknown device type `{d.type}`", d.span,
                    notes=[f"expected one of {quote_list(library.devices)}"])
    diags.check()
    env = expr.Env(options)
    return expand.apply_compat(schema, expand.apply_globals(globals_, allocate.assign(
        schema, library, expand.machine_devices(schema, env), Plan(tuple(devices), backends),
        0, source.span(0, 0), diags)))


def _compare(given: tree.Bus, rebuilt: tree.Bus, diags: Collector,
             schema: model.MachineSchema, schema_span: Span) -> None:
    """Every difference between the blob and what it rebuilds to, by device id."""
    def index(bus: tree.Bus) -> dict[str, tuple[tree.Bus, tree.Device]]:
        return {d.id: (b, d) for b, d, _n in tree.walk(bus)}

    want, got = index(rebuilt), index(given)
    for ident, (bus, d) in want.items():
        if ident not in got:
            where = f" at {d.addr}" if d.addr else ""
            labels = [Label(d.why.span, f"{d.why.reason}")] if d.why.span else []
            diags.error("E1605", f"the blob omits `{ident}` ({d.type}) on `{bus.name}`{where}, "
                        f"which `{schema.name}` creates with these options", schema_span,
                        labels=labels)
    reported: list[str] = []
    for ident, (bus, d) in got.items():
        if any(ident.startswith(f"{r}.") for r in reported):
            continue  # a child of a device already reported
        other = want.get(ident)
        if other is None:
            reported.append(ident)
            diags.error("E1605", f"`{schema.name}` does not create `{ident}` ({d.type}) with "
                        "these options", d.why.span or given_span(given),
                        help="a device QEMU does not create by itself needs origin `spec`, "
                        "`default` or `hotplug`" if d.origin == "machine" else None)
            continue
        wbus, wd = other
        diffs = []
        if (wbus.name, wd.addr) != (bus.name, d.addr):
            diffs.append(f"it is on `{wbus.name}` at {wd.addr}, not on `{bus.name}` at {d.addr}")
        if wd.type != d.type:
            diffs.append(f"its type is `{wd.type}`, not `{d.type}`")
        if wd.props != d.props:
            diffs.append(f"its props are {dict(wd.props)}, not {dict(d.props)}")
        if [b.name for b in wd.buses] != [b.name for b in d.buses]:
            diffs.append(f"its buses are {[b.name for b in wd.buses]}, "
                         f"not {[b.name for b in d.buses]}")
        for diff in diffs:
            diags.error("E1605", f"`{ident}` ({d.type}) does not match what QEMU builds: {diff}",
                        d.why.span or given_span(given))


def given_span(bus: tree.Bus) -> Span:
    for _b, d, _n in tree.walk(bus):
        if d.why.span is not None:
            return d.why.span
    raise CompileError([error("E1602", "the blob has no devices", Span(
        SourceFile.from_text("<blob>", ""), 0, 0))])
