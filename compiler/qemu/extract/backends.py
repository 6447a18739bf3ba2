"""`mschema extract`: the host side of a running QEMU → the blob's `backends`, for the
backends devices link to. Only what QEMU reveals (`query-block`,
`query-named-block-nodes`, `info network`, `query-chardev`, the QOM of `-object` rng
backends, `query-audiodevs` where QEMU has it) in the forms the blob knows (CONTRACT; what
`emit/argv.py` starts again); each kind's reading is its class in `base/backends.py`.
Whatever else is a drop (E1716, `report`) through `warn`, with the closest form the
blob can say.
"""

from __future__ import annotations

from compiler.base import backends as kinds
from compiler.base.backends import Warn, networks
from compiler.build import tree
from compiler.qemu.extract.snapshot import Snapshot

Body = dict[str, tree.PropValue]
__all__ = ["Body", "Warn", "backend", "networks"]


def backend(snap: Snapshot, kind: str, target: str, warn: Warn) -> tuple[str, Body] | None:
    """(backend id, body with its `kind`) for a link of kind `kind` to `target` (a node or
    drive name, a netdev, chardev or audiodev id, an rng object's QOM path)."""
    rules = kinds.get(kind)
    body = rules.extract(snap, target, warn)
    return None if body is None else (rules.ident(target), {**body, "kind": kind})
