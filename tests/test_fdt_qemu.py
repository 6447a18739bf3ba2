"""Fidelity of the pseries device tree: for each spec, the DTB mschema emits and the one
QEMU 7.2 builds for the emitted argv (`-machine pseries-7.2,dumpdtb=FILE`) are compared
node by node and property by property, as bytes: the same nodes with their subnodes in the
same order, the same properties in the same order with the same values.

Only what QEMU itself randomises or orders by a hash table is normalised: the value of
`/chosen/rng-seed` (its length is kept) and the four `ibm,drc-*` arrays of a node, sorted
together by index (`spapr_dt_drc` walks a QOM property hash table). Cases: every
`tests/fdt/*.toml` and the pseries golden VM cases (`tests/vm/pseries-*.toml`).

`KNOWN_DIFFERENCES` names what cannot match yet (none today); each entry is a strict xfail.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import vm_support
from qemu_support import require_binary

from compiler import driver, qemu
from compiler.emit import argv as argv_emit
from compiler.emit import blob as blob_emit
from compiler.emit import fdt
from compiler.emit.fdt_out import Node, Prop, Segment, read_dtb

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "tests" / "fdt").glob("pseries-*.toml")) + sorted(
    (ROOT / "tests" / "vm").glob("pseries-*.toml"))
# spec (relative to the repo) → why its device tree cannot match QEMU's yet
KNOWN_DIFFERENCES: dict[str, str] = {}

Flat = dict[str, tuple[list[str], list[tuple[str, bytes]]]]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def flatten(root: Node) -> Flat:
    """path → (subnode names in order, [(property, value)] in order)."""
    return {path: ([c.name for c in node.children], [(p.name, p.value) for p in node.props])
            for path, node in root.walk()}


def _cells(data: bytes) -> list[bytes]:
    return [data[i:i + 4] for i in range(0, len(data), 4)]


def normalise(flat: Flat) -> Flat:
    out: Flat = {}
    for path, (children, props) in flat.items():
        values = dict(props)
        if path == "/chosen" and "rng-seed" in values:
            values["rng-seed"] = b"<%d random bytes>" % len(values["rng-seed"])
        names = ("ibm,drc-indexes", "ibm,drc-power-domains", "ibm,drc-names", "ibm,drc-types")
        if all(n in values for n in names):
            count = int.from_bytes(values["ibm,drc-indexes"][:4], "big")
            columns = [_cells(values[names[0]][4:]), _cells(values[names[1]][4:]),
                       values[names[2]][4:].split(b"\0")[:count],
                       values[names[3]][4:].split(b"\0")[:count]]
            rows = sorted(zip(*columns, strict=True))
            head = values[names[0]][:4]
            values[names[0]] = head + b"".join(r[0] for r in rows)
            values[names[1]] = head + b"".join(r[1] for r in rows)
            values[names[2]] = head + b"".join(r[2] + b"\0" for r in rows)
            values[names[3]] = head + b"".join(r[3] + b"\0" for r in rows)
        out[path] = (children, [(n, values[n]) for n, _ in props])
    return out


def differences(ours: Flat, theirs: Flat) -> list[str]:
    """Every difference, one line each, naming the node and property."""
    out = []
    for path in sorted(set(ours) | set(theirs)):
        if path not in theirs:
            out.append(f"{path}: a node QEMU does not have")
            continue
        if path not in ours:
            out.append(f"{path}: a node of QEMU's is missing")
            continue
        (kids_a, props_a), (kids_b, props_b) = ours[path], theirs[path]
        if kids_a != kids_b and sorted(kids_a) == sorted(kids_b):
            out.append(f"{path}: subnodes in another order: {kids_a} vs QEMU's {kids_b}")
        a, b = dict(props_a), dict(props_b)
        for name in [n for n, _ in props_b if n not in a]:
            out.append(f"{path}: property `{name}` of QEMU's is missing")
        for name, value in props_a:
            if name not in b:
                out.append(f"{path}: property `{name}` QEMU does not have")
            elif value != b[name]:
                out.append(f"{path}: `{name}` is {value[:48].hex()}… , QEMU's "
                           f"{b[name][:48].hex()}…")
        common = [n for n, _ in props_a if n in b]
        if common != [n for n, _ in props_b if n in a]:
            out.append(f"{path}: properties in another order")
    return out


def _backing_files(blob: dict[str, object], directory: Path) -> None:
    for name, fmt in vm_support.backing_files(blob):
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "qcow2":
            subprocess.run([require_binary("qemu-img"), "create", "-q", "-f", "qcow2",
                            str(path), "64M"], check=True, timeout=30)
        else:
            subprocess.run(["truncate", "-s", "1M", str(path)], check=True, timeout=30)


def both_trees(spec: Path, scratch: Path) -> tuple[bytes, bytes]:
    """(mschema's DTB, QEMU's DTB) for `spec`."""
    machine = driver.compile_input(spec)
    ours = fdt.dtb(machine)
    args = argv_emit.argv(machine)
    binary = require_binary(args[0])
    _backing_files(json.loads(blob_emit.blob(machine)), scratch)
    theirs = qemu.dump_dtb(vm_support.runnable_argv([binary, *args[1:]], str(scratch)),
                           timeout=60.0)
    return ours, theirs


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bytes]]:
    """Every case's two trees, QEMU run two at a time."""
    require_binary("qemu-system-ppc64")

    def one(spec: Path) -> tuple[str, tuple[bytes, bytes]]:
        return rel(spec), both_trees(spec, tmp_path_factory.mktemp(spec.stem))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, SPECS))


def test_enough_cases() -> None:
    own = [s for s in SPECS if s.parent.name == "fdt"]
    assert len(own) >= 12, own


@pytest.mark.parametrize("spec", [
    pytest.param(rel(s), marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[rel(s)])]
                 if rel(s) in KNOWN_DIFFERENCES else [])
    for s in SPECS])
def test_same_tree_as_qemu(spec: str, dumped: dict[str, tuple[bytes, bytes]]) -> None:
    ours, theirs = dumped[spec]
    problems = differences(normalise(flatten(read_dtb(ours))),
                           normalise(flatten(read_dtb(theirs))))
    assert not problems, f"{spec}: {len(problems)} difference(s) from QEMU's tree:\n  " + \
        "\n  ".join(problems)


def _edit(root: Node, path: str, prop: str, value: bytes) -> Node:
    def walk(node: Node, here: str) -> Node:
        props = tuple(Prop(p.name, (Segment("bytes", data=value),))
                      if here == path and p.name == prop else p for p in node.props)
        children = tuple(walk(c, (here.rstrip("/") + "/" + c.name)) for c in node.children)
        return Node(node.name, props, children)

    return walk(root, "/")


def _nodes(root: Node) -> Iterator[str]:
    return (path for path, _ in root.walk())


def test_comparison_is_not_vacuous(dumped: dict[str, tuple[bytes, bytes]]) -> None:
    ours = read_dtb(dumped["tests/fdt/pseries-bridges.toml"][0])
    base = normalise(flatten(ours))
    assert not differences(base, base)
    changed = _edit(ours, "/pci@800000020000000", "ibm,pe-total-#msi", b"\0\0\0\1")
    assert differences(base, normalise(flatten(changed)))
    # the DRC arrays in another order are the same; another index is not
    root_props = {p.name: p.value for p in ours.props}
    head, cells = root_props["ibm,drc-indexes"][:4], _cells(root_props["ibm,drc-indexes"][4:])
    names = root_props["ibm,drc-names"][4:].split(b"\0")[:len(cells)]
    swapped = _edit(_edit(ours, "/", "ibm,drc-indexes", head + b"".join([cells[1], cells[0],
                                                                         *cells[2:]])),
                    "/", "ibm,drc-names", head + b"".join(n + b"\0" for n in
                                                          [names[1], names[0], *names[2:]]))
    assert not differences(base, normalise(flatten(swapped)))
    wrong = _edit(ours, "/", "ibm,drc-indexes", head + b"".join([b"\x20\0\0\x63", *cells[1:]]))
    assert differences(base, normalise(flatten(wrong)))
    seeded = _edit(ours, "/chosen", "rng-seed", bytes(range(32)))
    assert not differences(base, normalise(flatten(seeded)))
    assert len(list(_nodes(ours))) > 10
