"""`mschema extract`, first half: read everything the blob needs from a running QEMU over
its QMP socket, into a plain `Snapshot`. Read-only: only `query-*`, `qom-list`, `qom-get`
and the HMP `info qtree` / `info network`. Ends at the snapshot; `extract` builds from it.

What is read, and from where:
- the device tree with buses: `info qtree` (types, ids, buses, qdev props, addresses);
- the devices created with `-device`/`device_add`: `/machine/peripheral/ID` and
  `/machine/peripheral-anon/device[N]` (QOM): their `parent_bus`, `hotplugged`, and the
  props and backend links the stdlib declares for their type, and the address props;
- machine type and options: `/machine` `type` and the schema's option names;
- cpus: `/machine` `smp`, the first cpu's QOM `type`, `query-machines`' default cpu type,
  the model names `query-cpu-definitions` gives that type;
  memory: `query-memory-size-summary`; the name: `query-name`; -boot: `/machine` `boot`;
  -uuid: `query-uuid`; NUMA nodes: `info numa` (how many, their memory in MiB), and with
  nodes `query-hotpluggable-cpus` (each possible cpu's node) and `query-memdev` (the RAM
  backends: size and props; with `qom-get`, their QOM type and where their memory region
  sits in its container, which orders them as the nodes);
- backends: `query-block`, `query-named-block-nodes`, `query-chardev`, `info network`,
  the QOM `type` and `filename` of `-object` rng backends, and `query-audiodevs` where
  QEMU has it (8.0 on).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from compiler.base import backends as backend_kinds
from compiler.base import numa
from compiler.lang import model
from compiler.qemu import process
from compiler.qemu.compare import QEMU_ADDRESS_PROPS

if TYPE_CHECKING:
    from qemu.qmp import QMPClient

Value = object  # a decoded QMP value


class ConnectFailed(Exception):
    """No QMP session: no socket, refused, not QMP, lost, or no answer in time."""


class BadReply(Exception):
    """A QMP reply of the wrong shape: the peer speaks QMP, but not as QEMU does."""

    def __init__(self, command: str, expected: str, value: Value) -> None:
        super().__init__(f"QEMU's reply to `{command}` is {_describe(value)}, where "
                         f"{expected} is expected")


def _describe(value: Value) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{kinds.get(type(value), type(value).__name__)} ({shown})"


@attrs.frozen
class UserDevice:
    """A device created with `-device` or `device_add`, as QOM shows it."""

    path: str  # QOM path
    name: str  # the qdev id (`peripheral`), or `device[N]` (`peripheral-anon`)
    anonymous: bool
    type: str
    parent_bus: str  # QOM path of its bus
    hotplugged: bool
    values: tuple[tuple[str, Value], ...]  # declared props, links and address props

    def value(self, name: str) -> Value | None:
        return next((v for k, v in self.values if k == name), None)

    @property
    def index(self) -> int:
        """`N` of `device[N]`: anonymous devices are numbered in creation order."""
        digits = "".join(c for c in self.name if c.isdigit())
        return int(digits) if digits else 0


@attrs.frozen
class Snapshot:
    socket: str
    machine_type: str  # QOM type of /machine without `-machine`: `pc-q35-7.2`
    options: tuple[tuple[str, Value], ...]  # the schema's options QEMU shows
    smp: Mapping[str, Value]
    cpu_type: str | None
    default_cpu_type: str | None
    memory: Mapping[str, Value]
    name: str
    qtree: str
    network: str
    users: tuple[UserDevice, ...]
    blocks: tuple[Mapping[str, Value], ...]  # query-block
    nodes: tuple[Mapping[str, Value], ...]  # query-named-block-nodes
    chardevs: tuple[Mapping[str, Value], ...]  # query-chardev
    objects: Mapping[str, Mapping[str, Value]]  # rng backends: QOM path → type, filename
    boot: Mapping[str, Value] = attrs.field(factory=dict)  # `/machine` `boot` (-boot)
    uuid: str = ""  # query-uuid (-uuid; all zeros without)
    # query-audiodevs (QEMU 8.0 on); None: QEMU has no such command
    audiodevs: tuple[Mapping[str, Value], ...] | None = None
    info_numa: str = ""  # HMP `info numa`: guest NUMA nodes (-numa), cpus and MiB of each
    # with NUMA nodes: query-hotpluggable-cpus (each possible cpu's `node-id`), and
    # query-memdev (but the machine's own RAM, `/machine` `memory-backend`) with each
    # backend's QOM `qom-type` and its memory region's `addr` and `container` (QOM path)
    hotpluggable: tuple[Mapping[str, Value], ...] = ()
    memdevs: tuple[Mapping[str, Value], ...] = ()
    # declared props of machine-created devices that `info qtree` does not print (QOM-only:
    # ICH9-LPC's disable_s3), (type, prop, value), where QEMU has one such device of the type
    hidden: tuple[tuple[str, str, Value], ...] = ()
    # the names `query-cpu-definitions` gives the cpus' QOM type (`power8` for
    # power8_v2.0-powerpc64-cpu), where it is not the machine's default
    cpu_names: tuple[str, ...] = ()

    @property
    def numa_nodes(self) -> int:
        """How many guest NUMA nodes QEMU has (`info numa`'s `2 nodes`; 0 without)."""
        return numa.node_count(self.info_numa)


def read(socket: str, library: model.Library, timeout: float) -> Snapshot:
    """`snapshot`, with no session an error (E1712) at the socket's path."""
    from compiler.base.diagnostics import CompileError, error
    from compiler.base.source import whole_file

    try:
        return snapshot(socket, library, timeout)
    except ConnectFailed as exc:
        raise CompileError([error(
            "E1712", str(exc), whole_file(socket),
            notes=["QEMU serves one QMP client per socket at a time"],
            help="start QEMU with `-qmp unix:PATH,server=on,wait=off` and give that PATH")
        ]) from None
    except BadReply as exc:
        raise CompileError([error(
            "E1718", str(exc), whole_file(socket),
            notes=["the peer on this socket answers QMP, but not as QEMU 7.2 or later does"],
            help="give `--qmp` the socket of a running QEMU")]) from None


def snapshot(socket: str, library: model.Library, timeout: float) -> Snapshot:
    """Everything `extract` reads, in one QMP session; raises `ConnectFailed`."""
    if not os.path.exists(socket):
        raise ConnectFailed(f"no QMP socket at `{socket}`")
    try:
        return asyncio.run(asyncio.wait_for(_session(socket, library), timeout))
    except TimeoutError:
        raise ConnectFailed(f"QEMU did not answer within {timeout:g} s") from None


async def _session(socket: str, library: model.Library) -> Snapshot:
    from qemu.qmp import ConnectError, QMPClient, QMPError

    client = QMPClient("mschema-extract")
    # Events are not read: drop them as they come, or a peer's flood of events would pile
    # up in the client's queue without bound (qemu.qmp keeps every event for a listener).
    client.events.event_filter = lambda _event: False
    try:
        await client.connect(socket)
    except ConnectError as exc:
        raise ConnectFailed(f"cannot open a QMP session on `{socket}`: "
                            f"{_cause(exc.exc)}") from None
    except (QMPError, OSError) as exc:
        raise ConnectFailed(f"cannot open a QMP session on `{socket}`: {exc}") from None
    try:
        return await _read(client, socket, library)
    except QMPError as exc:
        # what broke the connection, which `disconnect` raises again
        broke = await _disconnect(client)
        raise ConnectFailed(f"the QMP session broke off: "
                            f"{_cause(broke) if broke else exc}") from None
    finally:
        await _disconnect(client)


async def _disconnect(client: QMPClient) -> BaseException | None:
    """Close the session; the exception that had broken it, if any."""
    try:
        await client.disconnect()
    except Exception as exc:
        return exc
    return None


def _cause(exc: BaseException) -> str:
    """Why a session failed, in words that say what the peer did."""
    from qemu.qmp.message import DeserializationError, UnexpectedTypeError
    from qemu.qmp.qmp_client import GreetingError, ServerParseError

    if isinstance(exc, GreetingError):
        return f"its greeting is not QMP's ({_cause(exc.exc)})"
    if isinstance(exc, (DeserializationError, UnexpectedTypeError, ServerParseError,
                        UnicodeDecodeError)):
        return "QEMU sent a message that is not QMP's JSON"
    if isinstance(exc, EOFError):
        return "QEMU closed the connection"
    if isinstance(exc, ConnectionError):
        return f"the connection was lost ({exc.strerror or exc})"
    if isinstance(exc, (ValueError, asyncio.LimitOverrunError)) and "limit" in str(exc):
        return "QEMU sent a message longer than 10 MiB"
    return str(exc) or type(exc).__name__


async def _get(client: QMPClient, path: str, prop: str) -> Value | None:
    from qemu.qmp import ExecuteError

    try:
        return await client.execute("qom-get", {"path": path, "property": prop})
    except ExecuteError:
        return None


async def _get_str(client: QMPClient, path: str, prop: str) -> str | None:
    """A QOM property that is a string (`type`, `parent_bus`), or None if there is none."""
    value = await _get(client, path, prop)
    if value is not None and not isinstance(value, str):
        raise BadReply(f"qom-get {path} {prop}", "a string", value)
    return value


async def _get_map(client: QMPClient, path: str, prop: str) -> Mapping[str, Value]:
    """A QOM property that is an object (`smp`, `boot`), or {} if there is none."""
    value = await _get(client, path, prop)
    if value is None:
        return {}
    return _map(f"qom-get {path} {prop}", value)


async def _list(client: QMPClient, path: str) -> list[tuple[str, str]]:
    """(name, type) of the properties of a QOM object; [] if there is no such object."""
    from qemu.qmp import ExecuteError

    try:
        answer = await client.execute("qom-list", {"path": path})
    except ExecuteError:
        return []
    found = []
    for p in _dicts(f"qom-list {path}", answer):
        name, kind = p.get("name"), p.get("type")
        if not isinstance(name, str) or not isinstance(kind, str):
            raise BadReply(f"qom-list {path}", "a list of objects with a string `name` and "
                           "`type`", answer)
        found.append((name, kind))
    return found


def _dicts(command: str, value: Value) -> list[Mapping[str, Value]]:
    """A reply that is a list of objects (every `query-*` that lists things)."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadReply(command, "a list of objects", value)
    return value


def _map(command: str, value: Value) -> Mapping[str, Value]:
    if not isinstance(value, dict):
        raise BadReply(command, "an object", value)
    return value


async def _query_list(client: QMPClient, command: str,
                      arguments: Mapping[str, object] | None = None
                      ) -> list[Mapping[str, Value]]:
    return _dicts(command, await client.execute(command, arguments))


async def _query_map(client: QMPClient, command: str) -> Mapping[str, Value]:
    return _map(command, await client.execute(command))


async def _hmp(client: QMPClient, line: str) -> str:
    out = await client.execute("human-monitor-command", {"command-line": line})
    if not isinstance(out, str):
        raise BadReply(f"human-monitor-command {line}", "text", out)
    return out.replace("\r\n", "\n")


async def _read(client: QMPClient, socket: str, library: model.Library) -> Snapshot:
    machine_type = await _get_str(client, "/machine", "type") or ""
    qemu_machine = machine_type.removesuffix("-machine")
    schema = next((s for s in library.machines.values() if s.qemu_machine == qemu_machine),
                  None)
    options: list[tuple[str, Value]] = []
    present = {name for name, _ in await _list(client, "/machine")}
    for name in sorted(schema.options) if schema else ():
        if name in present:
            value = await _get(client, "/machine", name)
            if value is not None:
                options.append((name, value))
    smp = await _get_map(client, "/machine", "smp")
    cpus = await _query_list(client, "query-cpus-fast")
    cpu_type = None
    if cpus and isinstance(cpus[0].get("qom-path"), str):
        cpu_type = await _get_str(client, str(cpus[0]["qom-path"]), "type") or None
    default_cpu = next((str(m.get("default-cpu-type")) for m in
                        await _query_list(client, "query-machines")
                        if m.get("name") == qemu_machine and m.get("default-cpu-type")), None)
    cpu_names: tuple[str, ...] = ()
    if cpu_type and cpu_type != default_cpu:
        cpu_names = tuple(sorted(str(c["name"]) for c in
                                 await _query_list(client, "query-cpu-definitions")
                                 if c.get("typename") == cpu_type and c.get("name")))
    memory = await _query_map(client, "query-memory-size-summary")
    name = str((await _query_map(client, "query-name")).get("name") or "")
    qtree = await _hmp(client, "info qtree")
    try:
        root = process.parse_qtree(qtree)
    except ValueError:
        raise BadReply("human-monitor-command info qtree", "QEMU's device tree", qtree) from None
    network = await _hmp(client, "info network")
    users = []
    for container, anonymous in (("/machine/peripheral", False),
                                 ("/machine/peripheral-anon", True)):
        for child, kind in await _list(client, container):
            if kind.startswith("child<"):
                users.append(await _user(client, f"{container}/{child}", child, anonymous,
                                         kind[6:-1], library))
    objects: dict[str, Mapping[str, Value]] = {}
    for u in users:
        t = library.devices.get(u.type)
        for link in t.links.values() if t else ():
            target = u.value(link.name)
            if backend_kinds.get(link.backend).qom_object and isinstance(target, str) and \
                    target.startswith("/"):
                objects[target] = {"type": await _get_str(client, target, "type"),
                                   "filename": await _get(client, target, "filename")}
    info_numa = await _hmp(client, "info numa")
    hotpluggable: tuple[Mapping[str, Value], ...] = ()
    memdevs: list[Mapping[str, Value]] = []
    if numa.node_count(info_numa):
        hotpluggable = tuple(await _query_list(client, "query-hotpluggable-cpus"))
        # not the machine's own RAM (`-m` without nodes: `/machine` `memory-backend`)
        own = await _get(client, "/machine", "memory-backend")
        for backend in await _query_list(client, "query-memdev"):
            if own != f"/objects/{backend.get('id')}":
                memdevs.append(await _memdev(client, backend))
    return Snapshot(
        socket, qemu_machine, tuple(options), smp, cpu_type, default_cpu, memory, name, qtree,
        network, tuple(users), tuple(await _query_list(client, "query-block")),
        tuple(await _query_list(client, "query-named-block-nodes", {"flat": True})),
        tuple(await _query_list(client, "query-chardev")), objects,
        await _get_map(client, "/machine", "boot"),
        str((await _query_map(client, "query-uuid")).get("UUID") or ""),
        await _audiodevs(client), info_numa,
        hotpluggable, tuple(memdevs),
        await _hidden(client, root, {u.name for u in users if not u.anonymous}, library),
        cpu_names)


async def _memdev(client: QMPClient, backend: Mapping[str, Value]) -> Mapping[str, Value]:
    """A `query-memdev` entry with the backend's QOM type and the `addr` and `container` of
    its memory region (a `child<memory-region>` of `/objects/ID`): where QEMU put its RAM."""
    ident = backend.get("id")
    found = dict(backend)
    if not isinstance(ident, str) or not ident or "/" in ident:
        return found
    path = f"/objects/{ident}"
    found["qom-type"] = await _get_str(client, path, "type")
    region = next((name for name, kind in await _list(client, path)
                   if kind == "child<memory-region>"), None)
    if region is not None:
        found["addr"] = await _get(client, f"{path}/{region}", "addr")
        found["container"] = await _get(client, f"{path}/{region}", "container")
    return found


async def _hidden(client: QMPClient, root: process.QtreeBus, user_ids: set[str],
                  library: model.Library) -> tuple[tuple[str, str, Value], ...]:
    """The declared props `info qtree` does not print of the devices QEMU created by
    itself (no `-device` id), read with `qom-get` at the device's path in `info qom-tree`
    where QEMU has one such device of the type outside `/machine/peripheral*`."""
    wanted: dict[str, set[str]] = {}
    for _, d in process.walk(root):
        t = library.devices.get(d.type)
        if t is None or d.id in user_ids:
            continue
        missing = {name for name in t.props if d.prop(name) is None}
        if missing:
            wanted.setdefault(d.type, set()).update(missing)
    if not wanted:
        return ()
    paths = _qom_paths(await _hmp(client, "info qom-tree"))
    found = []
    for type_, props in sorted(wanted.items()):
        where = [p for p in paths.get(type_, ()) if not p.startswith("/machine/peripheral")]
        if len(where) != 1:
            continue
        present = {name for name, _ in await _list(client, where[0])}
        for prop in sorted(props & present):
            value = await _get(client, where[0], prop)
            if value is not None:
                found.append((type_, prop, value))
    return tuple(found)


_QOM_LINE = re.compile(r"^(?P<indent> *)/(?P<name>\S+) \((?P<type>[^)]+)\)$")


def _qom_paths(text: str) -> dict[str, list[str]]:
    """`info qom-tree` (`/machine (pc-q35-7.2-machine)`, children two spaces deeper) →
    QOM type → the paths of its objects."""
    found: dict[str, list[str]] = {}
    stack: list[str] = []
    for line in text.splitlines():
        m = _QOM_LINE.match(line.rstrip())
        if m is None:
            continue
        depth = len(m["indent"]) // 2
        del stack[depth:]
        stack.append(m["name"])
        found.setdefault(m["type"], []).append("/" + "/".join(stack))
    return found


async def _audiodevs(client: QMPClient) -> tuple[Mapping[str, Value], ...] | None:
    """query-audiodevs, or None where QEMU has no such command (7.2)."""
    from qemu.qmp import ExecuteError

    try:
        return tuple(await _query_list(client, "query-audiodevs"))
    except ExecuteError:
        return None


async def _user(client: QMPClient, path: str, name: str, anonymous: bool, qom_type: str,
                library: model.Library) -> UserDevice:
    t = library.devices.get(qom_type)
    wanted = {*(t.props if t else ()), *(t.links if t else ()),
              *(p for props in QEMU_ADDRESS_PROPS.values() for p in props)}
    values = []
    for prop, _kind in await _list(client, path):
        if prop in wanted:
            values.append((prop, await _get(client, path, prop)))
    return UserDevice(path, name, anonymous, qom_type,
                      await _get_str(client, path, "parent_bus") or "",
                      await _get(client, path, "hotplugged") is True,
                      tuple(sorted(values, key=lambda kv: kv[0])))
