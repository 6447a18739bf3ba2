"""Backend kinds: the host side a device links to (CONTRACT `backends`), in one registry.

Each kind is one class: the fields its blob body needs to reach QEMU (`validate`'s
`backend-fields`), its command-line option (`emit/argv.py`), its QMP commands to add and
remove it at run time, or None where QEMU has none (`emit/qmp.py`, `ops/hotplug.py`), the
host files QEMU opens for it (`verify`), what a device's link prop holds when it names one
(`extract`), and how `extract` reads it back from what QEMU reveals (`Revealed`: QMP
answers read by `qemu/extract/snapshot.py`). A new backend kind is one class added to
`REGISTRY`; the language's `link NAME -> KIND` accepts the registry's names.

Bodies are the blob's: `kind` and the kind's fields, scalars only, never a device's id.
Whatever `extract` cannot read back or a body cannot say goes through `warn` (E1716) with
the closest body the blob can say.
"""

from __future__ import annotations

import abc
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Protocol

Scalar = bool | int | str  # a body's value (tree.PropValue)
Body = Mapping[str, Scalar]
Command = dict[str, object]  # one QMP command: `execute` and `arguments`
Warn = Callable[[str, list[str]], None]  # message, notes
Answer = Mapping[str, object]  # one decoded QMP object


class Revealed(Protocol):
    """What QEMU shows of its backends (`qemu/extract/snapshot.Snapshot` has these)."""

    @property
    def blocks(self) -> Sequence[Answer]: ...  # query-block

    @property
    def nodes(self) -> Sequence[Answer]: ...  # query-named-block-nodes

    @property
    def network(self) -> str: ...  # HMP `info network`

    @property
    def chardevs(self) -> Sequence[Answer]: ...  # query-chardev

    @property
    def objects(self) -> Mapping[str, Answer]: ...  # rng objects: QOM path → type, filename

    @property
    def audiodevs(self) -> Sequence[Answer] | None: ...  # query-audiodevs; None: no command


def _json(obj: Mapping[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _escape(value: str) -> str:
    return value.replace(",", ",,")


class BackendKind(abc.ABC):
    """One kind of backend: what its body holds and how it reaches and leaves QEMU."""

    name: ClassVar[str]
    # the fields every body needs; `variant` names the field whose value picks more of them
    needs: ClassVar[tuple[str, ...]] = ()
    variant: ClassVar[str | None] = None
    variant_needs: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # the devices' link prop names a QOM object (`/objects/ID`), not a plain id
    qom_object: ClassVar[bool] = False

    def missing(self, body: Body) -> list[str]:
        """The fields `body` lacks to reach QEMU."""
        variant = str(body.get(self.variant, "")) if self.variant else ""
        return [f for f in self.needs + tuple(self.variant_needs.get(variant, ()))
                if f not in body]

    # every field a body may have: the values QEMU knows (a tuple), or the field's type. A
    # blob is untrusted input: no other key reaches QEMU, nor a string QEMU's command line
    # cannot carry (NUL); a host-executing, -listening or -writing value (`host_access`) only
    # where the policy allows it (`build/confine.py`)
    fields: ClassVar[Mapping[str, tuple[str, ...] | type]] = {}
    # the fields that name a host path QEMU opens (a policy's `roots` confine them)
    path_fields: ClassVar[tuple[str, ...]] = ()

    def host_access(self, body: Body) -> list[tuple[str, str]]:
        """(field, `execute` | `listen` | `logfile`) for each thing `body` makes QEMU do on
        the host beyond opening its files: run a program, listen on a socket, write a log."""
        return []

    def problems(self, body: Body) -> list[tuple[str, str]]:
        """(field, what is wrong with it) for each field `body` may not have as it is."""
        found = []
        for key, value in body.items():
            allowed = self.fields.get(key)
            if key == "kind":
                continue
            if allowed is None:
                found.append((key, f"`{key}`, which a {self.name} backend does not take "
                              f"(it takes {', '.join(f'`{k}`' for k in self.fields)})"))
            elif isinstance(allowed, tuple):
                if value not in allowed:
                    found.append((key, f"{key} `{value}`, which it does not allow (one of "
                                  + ", ".join(f"`{a}`" for a in allowed) + ")"))
            elif not isinstance(value, allowed) or (allowed is int and isinstance(value, bool)):
                found.append((key, f"{key} {value!r}, which is not a {allowed.__name__}"))
            elif isinstance(value, str) and "\0" in value:
                found.append((key, f"{key} with a NUL character, which no command line carries"))
        return found

    @abc.abstractmethod
    def argv(self, ident: str, body: Body) -> list[str]:
        """The command-line option that creates it."""

    @abc.abstractmethod
    def scratch(self, ident: str) -> list[str]:
        """A backend of this kind with no host resource, for a scratch VM (tests, tools)."""

    def qmp_add(self, ident: str, body: Body) -> Command | None:
        """The QMP command that creates it at run time; None: QEMU has none."""
        return None

    def qmp_remove(self, ident: str, body: Body) -> Command | None:
        """The QMP command that deletes it at run time; None: QEMU has none."""
        return None

    def host_files(self, body: Body) -> list[tuple[str, str]]:
        """(path, what) of the host files or directories QEMU needs before it starts."""
        return []

    def target(self, value: object) -> str | None:
        """The backend a device's link prop (QOM or `info qtree`) names, or None."""
        if not isinstance(value, str) or not value:
            return None
        if self.qom_object:
            return value if value.startswith("/objects/") else None
        return value

    def ident(self, target: str) -> str:
        """The blob's backend id for a link target."""
        return target.rsplit("/", 1)[-1] if self.qom_object else target

    @abc.abstractmethod
    def extract(self, qemu: Revealed, target: str, warn: Warn) -> dict[str, Scalar] | None:
        """The body (without `kind`) QEMU reveals for `target`; None: no such backend."""


class Blockdev(BackendKind):
    name = "blockdev"
    needs = ("driver", "file")
    fields: ClassVar[Mapping[str, tuple[str, ...] | type]] = {
        "driver": ("raw", "qcow2"), "file": str, "read-only": bool}
    path_fields = ("file",)

    @staticmethod
    def options(ident: str, body: Body) -> dict[str, object]:
        """`-blockdev` / `blockdev-add` arguments: an image file under a format node."""
        node: dict[str, object] = {"driver": body["driver"], "node-name": ident,
                                   "file": {"driver": "file", "filename": body["file"]}}
        if body.get("read-only"):
            node["read-only"] = True
        return node

    def scratch(self, ident: str) -> list[str]:
        return ["-blockdev", f"driver=null-co,node-name={ident}"]

    def argv(self, ident: str, body: Body) -> list[str]:
        return ["-blockdev", _json(self.options(ident, body))]

    def qmp_add(self, ident: str, body: Body) -> Command:
        return {"execute": "blockdev-add", "arguments": self.options(ident, body)}

    def qmp_remove(self, ident: str, body: Body) -> Command:
        return {"execute": "blockdev-del", "arguments": {"node-name": ident}}

    def host_files(self, body: Body) -> list[tuple[str, str]]:
        return [(str(body["file"]), "image")] if "file" in body else []

    def extract(self, qemu: Revealed, target: str, warn: Warn) -> dict[str, Scalar] | None:
        block = next((b for b in qemu.blocks if b.get("device") == target), None)
        node = (block.get("inserted") if block else
                next((n for n in qemu.nodes if n.get("node-name") == target), None))
        if not isinstance(node, Mapping):
            warn(f"QEMU shows no block node `{target}`", ["the blob has no backend for it"])
            return None
        driver, file = str(node.get("drv")), str(node.get("file"))
        if driver == "file":
            driver = "raw"  # a raw image: the same bytes for the guest
        if "://" in file or file.startswith("json:"):
            warn(f"block node `{target}` is `{node.get('drv')}` on `{file}`, not an image "
                 "file", ["mschema's argv opens blockdevs as image files: compiling this blob "
                          "will not start the same backend"])
        body: dict[str, Scalar] = {"driver": driver, "file": file}
        if node.get("ro") is True:
            body["read-only"] = True
        return body


_NET = re.compile(r"^(?: \\ )?(?P<name>[^:\s]+): index=\d+,type=(?P<type>[^,]+),?(?P<rest>.*)$")


def networks(text: str) -> dict[str, tuple[str, dict[str, str]]]:
    """`info network` → {netdev id: (type, its `key=value` fields)}."""
    nets: dict[str, tuple[str, dict[str, str]]] = {}
    for line in text.splitlines():
        m = _NET.match(line)
        if m and m["type"] != "nic":  # NICs are listed too, by their qdev id
            fields = dict(p.partition("=")[::2] for p in m["rest"].split(",") if "=" in p)
            nets.setdefault(m["name"], (m["type"], fields))
    return nets


def ifname_problem(name: str) -> str | None:
    """Why Linux would refuse or change `name` as a network interface's name, or None
    (`dev_valid_name`: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or white space)."""
    if not name or len(name.encode("utf-8", "surrogatepass")) > 15:
        return "an interface name has 1 to 15 bytes (Linux cuts a longer one short)"
    if name in (".", "..") or any(c in name for c in "/:") or any(c.isspace() for c in name):
        return "an interface name has no `/`, `:` or white space, and is not `.` or `..`"
    return None


class Netdev(BackendKind):
    name = "netdev"
    needs = ("type",)
    variant = "type"
    variant_needs: ClassVar[Mapping[str, tuple[str, ...]]] = {"tap": ("ifname",),
                                                               "bridge": ("br",)}
    # a tap's scripts run as QEMU's user on the host: `no`, or a policy that allows it
    fields: ClassVar[Mapping[str, tuple[str, ...] | type]] = {
        "type": ("user", "tap", "bridge"), "ifname": str, "br": str, "script": str,
        "downscript": str}

    def problems(self, body: Body) -> list[tuple[str, str]]:
        found = super().problems(body)
        for key in ("ifname", "br"):
            value = body.get(key)
            problem = ifname_problem(value) if isinstance(value, str) else None
            if problem:
                found.append((key, f"{key} `{value}`: {problem}"))
        return found

    def host_access(self, body: Body) -> list[tuple[str, str]]:
        # QEMU runs /etc/qemu-ifup and /etc/qemu-ifdown for a tap that names no script
        if body.get("type") != "tap":
            return []
        return [(f, "execute") for f in ("script", "downscript") if body.get(f, "") != "no"]

    @staticmethod
    def options(ident: str, body: Body) -> dict[str, object]:
        """`-netdev` / `netdev_add` arguments."""
        return {"id": ident, **{k: v for k, v in body.items() if k != "kind"}}

    def scratch(self, ident: str) -> list[str]:
        return ["-netdev", f"user,id={ident}"]

    def argv(self, ident: str, body: Body) -> list[str]:
        return ["-netdev", _json(self.options(ident, body))]

    def qmp_add(self, ident: str, body: Body) -> Command:
        return {"execute": "netdev_add", "arguments": self.options(ident, body)}

    def qmp_remove(self, ident: str, body: Body) -> Command:
        return {"execute": "netdev_del", "arguments": {"id": ident}}

    def extract(self, qemu: Revealed, target: str, warn: Warn) -> dict[str, Scalar] | None:
        nets = networks(qemu.network)
        if target not in nets:
            warn(f"`info network` shows no netdev `{target}`", [])
            return None
        kind, fields = nets[target]
        if kind == "user":
            return {"type": "user"}
        if kind == "tap" and "br" in fields:
            return {"type": "bridge", "br": fields["br"]}
        if kind == "tap" and "ifname" in fields:
            return {"type": "tap", "ifname": fields["ifname"],
                    "script": fields.get("script", "no"),
                    "downscript": fields.get("downscript", "no")}
        warn(f"netdev `{target}` is of type `{kind}`, which a blob cannot describe (it knows "
             "`user`, `tap` and `bridge`)",
             ["the blob keeps its type only: compiling it will not start the same network"])
        return {"type": kind}


class Chardev(BackendKind):
    """`-chardev` has no JSON form in QEMU 7.2: key=value with commas doubled."""

    name = "chardev"
    needs = ("backend",)
    variant = "backend"
    variant_needs: ClassVar[Mapping[str, tuple[str, ...]]] = {"file": ("path",),
                                                               "socket": ("path",)}
    # `socket` listens (a unix socket, server=on); `logfile` writes what the guest sends
    fields: ClassVar[Mapping[str, tuple[str, ...] | type]] = {
        "backend": ("pty", "null", "file", "socket"), "path": str, "logfile": str}
    path_fields = ("path", "logfile")

    def host_access(self, body: Body) -> list[tuple[str, str]]:
        found = [("backend", "listen")] if body.get("backend") == "socket" else []
        return found + ([("logfile", "logfile")] if "logfile" in body else [])

    def scratch(self, ident: str) -> list[str]:
        return ["-chardev", f"null,id={ident}"]

    def argv(self, ident: str, body: Body) -> list[str]:
        opts = [str(body["backend"]), f"id={ident}"]
        if body["backend"] == "file":
            opts.append(f"path={_escape(str(body['path']))}")
        elif body["backend"] == "socket":
            opts += [f"path={_escape(str(body['path']))}", "server=on", "wait=off"]
        if "logfile" in body:
            opts.append(f"logfile={_escape(str(body['logfile']))}")
        return ["-chardev", ",".join(opts)]

    def qmp_add(self, ident: str, body: Body) -> Command:
        kind = str(body["backend"])
        backend: dict[str, object] = {"type": kind, "data": {}}
        if kind == "file":
            backend = {"type": "file", "data": {"out": body["path"]}}
        elif kind == "socket":
            backend = {"type": "socket", "data": {
                "addr": {"type": "unix", "data": {"path": body["path"]}},
                "server": True, "wait": False}}
        if "logfile" in body:
            data = backend["data"]
            assert isinstance(data, dict)
            data["logfile"] = body["logfile"]
        return {"execute": "chardev-add", "arguments": {"id": ident, "backend": backend}}

    def qmp_remove(self, ident: str, body: Body) -> Command:
        return {"execute": "chardev-remove", "arguments": {"id": ident}}

    def host_files(self, body: Body) -> list[tuple[str, str]]:
        return [(os.path.dirname(str(body["path"])) or ".", "directory")] \
            if "path" in body else []

    def extract(self, qemu: Revealed, target: str, warn: Warn) -> dict[str, Scalar] | None:
        chardev = next((c for c in qemu.chardevs if c.get("label") == target), None)
        if chardev is None:
            warn(f"QEMU shows no chardev `{target}`", [])
            return None
        filename = str(chardev.get("filename", "")).removeprefix("disconnected:")
        if filename.startswith("pty:") or filename == "pty":
            return {"backend": "pty"}
        if filename == "null":
            return {"backend": "null"}
        m = re.match(r"^unix:(?P<path>[^,]*),server=on", filename)
        if m:
            return {"backend": "socket", "path": m["path"]}
        if filename == "file":
            warn(f"QEMU does not reveal the file of chardev `{target}`",
                 ['the blob says `path` "": fill it in before compiling'])
            return {"backend": "file", "path": ""}
        warn(f"chardev `{target}` is `{filename}`, which a blob cannot describe (it knows pty, "
             "null, file and server sockets)", ["the blob says `null`: the guest sees the same "
                                                "port"])
        return {"backend": "null"}


class Rng(BackendKind):
    """An `-object rng-random`; the device's link prop is the object's QOM path."""

    name = "rng"
    needs = ("backend", "filename")
    fields: ClassVar[Mapping[str, tuple[str, ...] | type]] = {"backend": ("random",),
                                                               "filename": str}
    path_fields = ("filename",)
    qom_object = True

    @staticmethod
    def options(ident: str, body: Body) -> dict[str, object]:
        """`-object` / `object-add` arguments."""
        return {"qom-type": f"rng-{body['backend']}", "id": ident, "filename": body["filename"]}

    def scratch(self, ident: str) -> list[str]:
        return ["-object", f"rng-builtin,id={ident}"]

    def argv(self, ident: str, body: Body) -> list[str]:
        return ["-object", _json(self.options(ident, body))]

    def qmp_add(self, ident: str, body: Body) -> Command:
        return {"execute": "object-add", "arguments": self.options(ident, body)}

    def qmp_remove(self, ident: str, body: Body) -> Command:
        return {"execute": "object-del", "arguments": {"id": ident}}

    def host_files(self, body: Body) -> list[tuple[str, str]]:
        return [(str(body["filename"]), "entropy source")] if "filename" in body else []

    def extract(self, qemu: Revealed, target: str, warn: Warn) -> dict[str, Scalar] | None:
        ident = self.ident(target)
        obj = qemu.objects.get(target, {})
        filename = obj.get("filename")
        if obj.get("type") == "rng-random" and isinstance(filename, str):
            return {"backend": "random", "filename": filename}
        warn(f"rng backend `{ident}` is a `{obj.get('type')}`, which a blob cannot describe",
             ["the blob says `rng-random` on `/dev/urandom`: the same for the guest"])
        return {"backend": "random", "filename": "/dev/urandom"}


# QEMU's audiodev drivers (qapi/audio.json `AudiodevDriver`); which a build has is the host's
AUDIO_DRIVERS = ("none", "alsa", "coreaudio", "dbus", "dsound", "jack", "oss", "pa",
                 "pipewire", "sdl", "sndio", "spice", "wav")
# what query-audiodevs shows of an audiodev given only its driver and id (QEMU 10.0)
_AUDIODEV_DEFAULTS: Mapping[str, object] = {"timer-period": 10000}
_AUDIO_DIRECTION = {"mixing-engine": True, "voices": 1, "channels": 2, "format": "s16",
                    "fixed-settings": True, "frequency": 44100}


class Audiodev(BackendKind):
    """An `-audiodev`: the host's sound for a sound card (the guest sees the same card
    whatever the driver). QEMU has no QMP command to add or delete one at run time."""

    name = "audiodev"
    needs = ("driver",)

    fields: ClassVar[Mapping[str, tuple[str, ...] | type]] = {"driver": AUDIO_DRIVERS}

    def scratch(self, ident: str) -> list[str]:
        return ["-audiodev", f"none,id={ident}"]

    def argv(self, ident: str, body: Body) -> list[str]:
        # keyval: `-audiodev` takes JSON only from QEMU 8.1 on
        return ["-audiodev", f"{_escape(str(body['driver']))},id={ident}"]

    def extract(self, qemu: Revealed, target: str, warn: Warn) -> dict[str, Scalar] | None:
        if qemu.audiodevs is None:
            warn(f"QEMU does not reveal the driver of audiodev `{target}` (it has no "
                 "`query-audiodevs` before QEMU 8.0)",
                 ["the blob says `none`: the guest sees the same sound card"])
            return {"driver": "none"}
        found = next((a for a in qemu.audiodevs if a.get("id") == target), None)
        if found is None:
            warn(f"QEMU shows no audiodev `{target}`", [])
            return None
        driver = str(found.get("driver"))
        if driver not in AUDIO_DRIVERS:
            warn(f"audiodev `{target}` has driver `{driver}`, which a blob cannot describe",
                 ["the blob says `none`: the guest sees the same sound card"])
            return {"driver": "none"}
        options = sorted(k for k, v in found.items() if k not in ("id", "driver") and v != (
            _AUDIO_DIRECTION if k in ("in", "out") else _AUDIODEV_DEFAULTS.get(k)))
        if options:
            warn(f"audiodev `{target}` ({driver}) has options a blob cannot say: "
                 + ", ".join(f"`{o}`" for o in options),
                 [f"the blob keeps the driver only: compiling it starts `{driver}` with "
                  "QEMU's defaults"])
        return {"driver": driver}


# `-fsdev local`'s security models (fsdev/qemu-fsdev-opts.c, QEMU 7.2)
FSDEV_SECURITY_MODELS = ("none", "passthrough", "mapped-xattr", "mapped-file")


class Fsdev(BackendKind):
    """An `-fsdev local`: the host directory a 9p device exports. QEMU has no QMP command to
    add or delete one, and reveals neither its path nor its security model."""

    name = "fsdev"
    needs = ("driver", "path", "security_model")

    fields: ClassVar[Mapping[str, tuple[str, ...] | type]] = {
        "driver": ("local",), "path": str, "security_model": FSDEV_SECURITY_MODELS,
        "readonly": bool}
    path_fields = ("path",)

    def scratch(self, ident: str) -> list[str]:
        return ["-fsdev", f"local,id={ident},path=/,security_model=none,readonly=on"]

    def argv(self, ident: str, body: Body) -> list[str]:
        # keyval only (QEMU 7.2 has no JSON form for -fsdev)
        opts = [str(body["driver"]), f"id={ident}", f"path={_escape(str(body['path']))}",
                f"security_model={body['security_model']}"]
        if body.get("readonly"):
            opts.append("readonly=on")
        return ["-fsdev", ",".join(opts)]

    def host_files(self, body: Body) -> list[tuple[str, str]]:
        return [(str(body["path"]), "directory")] if body.get("path") else []

    def extract(self, qemu: Revealed, target: str, warn: Warn) -> dict[str, Scalar] | None:
        warn(f"QEMU does not reveal the directory of fsdev `{target}`",
             ['the blob says `path` "" and `security_model` "none": fill them in before '
              "compiling"])
        return {"driver": "local", "path": "", "security_model": "none"}


REGISTRY: Mapping[str, BackendKind] = {k.name: k for k in (
    Blockdev(), Netdev(), Chardev(), Rng(), Audiodev(), Fsdev())}
KINDS = tuple(REGISTRY)


def get(name: str) -> BackendKind:
    return REGISTRY[name]
