"""`mschema extract`: the host side of a running QEMU → the blob's `backends`, for the
backends devices link to. Only what QEMU reveals (`query-block`,
`query-named-block-nodes`, `info network`, `query-chardev`, the QOM of `-object` rng
backends) in the forms the blob knows (CONTRACT; what `emit/argv.py` starts again).
Whatever else is a drop (E1716, `report`) through `warn`, with the closest form the
blob can say.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from compiler.build import tree
from compiler.qemu.extract.snapshot import Snapshot

Body = dict[str, tree.PropValue]
Warn = Callable[[str, list[str]], None]  # message, notes


def backend(snap: Snapshot, kind: str, target: str, warn: Warn) -> tuple[str, Body] | None:
    """(backend id, body with its `kind`) for a link of kind `kind` to `target` (a node or
    drive name, a netdev or chardev id, an rng object's QOM path)."""
    body: Body | None = None
    ident = target
    if kind == "blockdev":
        body = _blockdev(snap, target, warn)
    elif kind == "netdev":
        body = _netdev(snap, target, warn)
    elif kind == "chardev":
        body = _chardev(snap, target, warn)
    elif kind == "rng":
        ident = target.rsplit("/", 1)[-1]
        body = _rng(snap, target, ident, warn)
    return None if body is None else (ident, {**body, "kind": kind})


def _blockdev(snap: Snapshot, target: str, warn: Warn) -> Body | None:
    block = next((b for b in snap.blocks if b.get("device") == target), None)
    node = (block.get("inserted") if block else
            next((n for n in snap.nodes if n.get("node-name") == target), None))
    if not isinstance(node, dict):
        warn(f"QEMU shows no block node `{target}`", ["the blob has no backend for it"])
        return None
    driver, file = str(node.get("drv")), str(node.get("file"))
    if driver == "file":
        driver = "raw"  # a raw image: the same bytes for the guest
    if "://" in file or file.startswith("json:"):
        warn(f"block node `{target}` is `{node.get('drv')}` on `{file}`, not an image file",
             ["mschema's argv opens blockdevs as image files: compiling this blob will not "
              "start the same backend"])
    body: Body = {"driver": driver, "file": file}
    if node.get("ro") is True:
        body["read-only"] = True
    return body


def _netdev(snap: Snapshot, target: str, warn: Warn) -> Body | None:
    nets = networks(snap.network)
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


def _chardev(snap: Snapshot, target: str, warn: Warn) -> Body | None:
    chardev = next((c for c in snap.chardevs if c.get("label") == target), None)
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


def _rng(snap: Snapshot, target: str, ident: str, warn: Warn) -> Body | None:
    obj = snap.objects.get(target, {})
    filename = obj.get("filename")
    if obj.get("type") == "rng-random" and isinstance(filename, str):
        return {"backend": "random", "filename": filename}
    warn(f"rng backend `{ident}` is a `{obj.get('type')}`, which a blob cannot describe",
         ["the blob says `rng-random` on `/dev/urandom`: the same for the guest"])
    return {"backend": "random", "filename": "/dev/urandom"}


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
