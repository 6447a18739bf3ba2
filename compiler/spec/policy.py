"""A platform's `--policy FILE` (TOML) → `Policy`: what a spec, blob or hot-plug fragment
may ask for on a platform that compiles VMs submitted by others. Ends at the file's own
shape: known tables and keys, values of the right type, names the library knows (machine
families and versions, device types, network and chardev kinds). Holding a precise machine
to it is `build/confine.py`'s job.

    [machine]
    families = ["pc-q35"]             # schema families a spec may name
    versions = ["pc-q35-7.2"]         # QEMU machine types (versions) it may run
    [limits]
    max-cpus = 8                      # possible cpus (maxcpus), present or not
    max-memory = "16G"
    max-devices = 16                  # devices the spec or a hot-plug asks for
    [devices]
    types = ["virtio-blk-pci", "virtio-net-pci"]
    [backends]
    roots = ["/var/lib/vm"]           # every host path resolves (real path) under one
    network = ["user"]                # netdev types
    chardev = ["pty", "null"]         # chardev backends
    [host]
    execute = false                   # a tap's script/downscript (QEMU runs it as its user)
    listen = false                    # a listening socket (a socket chardev)
    logfile = false                   # a chardev's logfile (QEMU creates or truncates it)

A key left out does not confine (`[host]` keys: false, refused). Without `--policy`, the
built-in `DEFAULT` applies: nothing confined but `[host]`, where only `listen` is allowed
(the CONTRACT's `socket:PATH` serial).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from compiler.base import backends, units
from compiler.base.diagnostics import Collector, quote_list
from compiler.base.source import Span
from compiler.lang import model
from compiler.spec import loose

# table → key → the value's shape: "names", "paths", "count", "size", "bool"
KEYS: Mapping[str, Mapping[str, str]] = {
    "machine": {"families": "names", "versions": "names"},
    "limits": {"max-cpus": "count", "max-memory": "size", "max-devices": "count"},
    "devices": {"types": "names"},
    "backends": {"roots": "paths", "network": "names", "chardev": "names"},
    "host": {"execute": "bool", "listen": "bool", "logfile": "bool"},
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@attrs.frozen
class Policy:
    """`None`: not confined. `spans`: where each rule is written (`TABLE.KEY`)."""

    path: str = ""
    families: tuple[str, ...] | None = None
    versions: tuple[str, ...] | None = None
    max_cpus: int | None = None
    max_memory: int | None = None
    max_devices: int | None = None
    device_types: tuple[str, ...] | None = None
    roots: tuple[str, ...] | None = None  # real paths
    network: tuple[str, ...] | None = None
    chardev: tuple[str, ...] | None = None
    execute: bool = False
    listen: bool = False
    logfile: bool = False
    spans: Mapping[str, Span] = attrs.field(factory=dict, eq=False, repr=False)

    def rule(self, key: str) -> Span | None:
        return self.spans.get(key)


# without --policy: the host options the CONTRACT offers, nothing else
DEFAULT = Policy(listen=True)


def known_names(key: str, library: model.Library) -> tuple[str, ...]:
    if key == "families":
        return tuple(sorted({m.family for m in library.machines.values()}))
    if key == "versions":
        return tuple(sorted({m.qemu_machine for m in library.machines.values()}))
    if key == "types":
        return tuple(sorted(library.devices))
    if key == "network":
        kinds = backends.Netdev.fields["type"]
    else:
        kinds = backends.Chardev.fields["backend"]
    assert isinstance(kinds, tuple)
    return kinds


def load(path: Path, library: model.Library) -> Policy:
    """Read and check a policy file; raise `CompileError` with every problem (E2001–E2003,
    and the spec's reading codes E1001, E1002, E1012)."""
    source, data, where = loose.read_toml(path)
    diags = Collector()
    whole = source.span(0, len(source.text))

    def spans(key: tuple[str | int, ...]) -> tuple[Span, Span]:
        return where.get(key, (whole, whole))

    values: dict[str, object] = {}
    rule_spans: dict[str, Span] = {}
    for table, body in data.items():
        kspan, vspan = spans((table,))
        if table not in KEYS:
            diags.error("E2001", f"unknown table `{table}` in a policy", kspan,
                        notes=[f"a policy has {quote_list(list(KEYS))}"],
                        help=loose.suggest(table, list(KEYS)))
            continue
        if not isinstance(body, dict):
            diags.error("E2002", f"`{table}` must be a table, not {loose.describe(body)}",
                        vspan, help=f"write it as `[{table}]`")
            continue
        for key, value in body.items():
            kspan, vspan = spans((table, key))
            shape = KEYS[table].get(key)
            if shape is None:
                allowed = list(KEYS[table])
                diags.error("E2001", f"unknown key `{key}` in `[{table}]`", kspan,
                            notes=[f"`[{table}]` takes {quote_list(allowed)}"],
                            help=loose.suggest(key, allowed))
                continue
            checked = _value(f"{table}.{key}", shape, value, vspan, diags)
            if checked is None:
                continue
            if shape == "names":
                known = known_names(key, library)
                for i, name in enumerate(checked if isinstance(checked, tuple) else ()):
                    if name not in known:
                        diags.error("E2003", f"`{table}.{key}` names `{name}`, which mschema "
                                    "does not know", spans((table, key, i))[1],
                                    notes=[f"it knows {quote_list(list(known), limit=20)}"],
                                    help=loose.suggest(str(name), list(known)))
            values[key] = checked
            rule_spans[f"{table}.{key}"] = vspan
    diags.check()
    return Policy(
        str(path), _names(values.get("families")), _names(values.get("versions")),
        _int(values.get("max-cpus")), _int(values.get("max-memory")),
        _int(values.get("max-devices")), _names(values.get("types")),
        _names(values.get("roots")), _names(values.get("network")),
        _names(values.get("chardev")), values.get("execute") is True,
        values.get("listen") is True, values.get("logfile") is True, rule_spans)


def _names(v: object) -> tuple[str, ...] | None:
    return tuple(str(x) for x in v) if isinstance(v, tuple) else None


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _value(what: str, shape: str, v: object, span: Span,
           diags: Collector) -> object | None:
    """The checked value (names and paths as a tuple, sizes in bytes), or None (E2002)."""
    def wrong(must: str, help_: str | None = None) -> None:
        diags.error("E2002", f"`{what}` must be {must}, not {loose.describe(v)}", span,
                    help=help_)

    if shape == "bool":
        if not isinstance(v, bool):
            wrong("`true` or `false`")
            return None
        return v
    if shape == "count":
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            wrong("an integer, 0 or more")
            return None
        return v
    if shape == "size":
        size = units.parse_size(v)
        if size is None:
            wrong("a size", 'write bytes, or a number with K, M, G or T: `max-memory = "16G"`')
        return size
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        wrong("an array of strings")
        return None
    if shape == "names":
        bad = [x for x in v if not _NAME.fullmatch(x)]
        if bad:
            wrong("an array of names", f"`{bad[0]}` is not a name")
            return None
        return tuple(v)
    real = []
    for x in v:
        if not x.startswith("/") or "\0" in x:
            diags.error("E2002", f"`{what}` must hold absolute paths, not "
                        f"{loose.describe(x)}", span,
                        help='write the directory from the root: `roots = ["/var/lib/vm"]`')
            return None
        real.append(os.path.realpath(x))
    return tuple(real)
