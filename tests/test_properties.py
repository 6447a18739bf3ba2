"""Property tests over random valid loose specs (hypothesis, bounded for CI's budget):

- every one compiles, its blob matches the shipped JSON Schema, and compiling the blob gives
  it back byte for byte (a fixed point) with the same argv;
- QEMU 7.2 accepts the argv and builds exactly the predicted devices (fewer examples: one
  QEMU start each);
- adding an item at the end of a spec moves no device that was already there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qemu_support import families, library, require_binary, schema

from compiler import driver
from compiler.emit import argv as argv_emit
from compiler.emit import blob as blob_emit
from compiler.qemu import process
from compiler.qemu.compare import compare
from compiler.qemu.verify import backing_files, runnable_argv

ROOT = Path(__file__).resolve().parent.parent

# The loose kinds random specs use, and what an entry needs besides its implementation's key.
KINDS = ("disk", "cdrom", "nic", "serial", "usb", "rng")
EXTRA_FIELDS: dict[str, dict[str, Any]] = {"serial": {"backend": "null"}}
# (kind, value) entries that need more than the fields above (usb storage needs its file)
LEFT_OUT = {("usb", "storage")}


def choices(family: str) -> dict[str, list[dict[str, Any]]]:
    """What a machine family's schema implements, by loose kind (the spec's vocabulary); a
    kind with one implementation is written without its key (the default)."""
    implementations = schema(family).implementations
    return {kind: [{**({impl.key: value} if len(impl.cases) > 1 else {}),
                    **EXTRA_FIELDS.get(kind, {})}
                   for value in sorted(impl.cases) if (kind, value) not in LEFT_OUT]
            for kind in KINDS if (impl := implementations.get(kind)) is not None}


def limit(family: str, kind: str) -> int | None:
    """How many entries of `kind` a machine takes when its device is numbered by an `index`
    (isa-serial: 0..3, so 4), from the device type's declared range."""
    impl = schema(family).implementations.get(kind)
    tops = [prop.type.hi for t in (impl.cases.values() if impl else ())
            if (prop := library().devices[t].props.get("index")) is not None
            and prop.type.hi is not None]
    return min(tops) + 1 if tops else None


CHOICES = {family: choices(family) for family in families()}
LIMITS = {(family, kind): n for family in CHOICES for kind in CHOICES[family]
          if (n := limit(family, kind)) is not None}


def fixed_places(family: str) -> dict[str, int]:
    """Bus kind → how many devices the machine's own buses of that kind hold, for the kinds
    no `provide` rule extends (q35's six SATA ports, i440fx's four IDE units and two floppy
    drives), from the schema: items beyond are refused by the compiler, not drawn here."""
    from compiler.build import expand
    from compiler.build.tree import walk

    m = schema(family)
    shown = expand.show(m, {n: o.default for n, o in m.options.items()})
    out: dict[str, int] = {}
    for _bus, d, _n in walk(shown.root):
        for b in d.buses:
            if b.kind in m.providers:
                continue
            t = library().devices[d.type]
            space = next((tb.address for tb in t.buses if tb.kind == b.kind),
                         library().buses[b.kind].address)
            places = 1
            for _field, ranges in space.fields:
                places *= sum(r.hi - r.lo + 1 for r in ranges)
            if space.fields:
                out[b.kind] = out.get(b.kind, 0) + places
    return out


FIXED = {family: fixed_places(family) for family in families()}


def plugs_of(family: str, kind: str, fields: dict[str, Any]) -> set[str]:
    impl = schema(family).implementations[kind]
    return {p.bus for p in library().devices[
        impl.cases[fields.get(impl.key, impl.default)]].plugs}


@st.composite
def items(draw: st.DrawFn, machine: str, max_items: int) -> list[tuple[str, dict[str, Any]]]:
    kinds = CHOICES[machine]
    chosen = draw(st.lists(st.sampled_from(sorted(kinds)), max_size=max_items))
    result = []
    used: dict[str, int] = {}
    per_kind: dict[str, int] = {}
    for kind in chosen:
        fields = dict(draw(st.sampled_from(kinds[kind])))
        plugs = plugs_of(machine, kind, fields)
        if plugs and plugs <= set(FIXED[machine]):  # only onto the machine's fixed buses
            (bus,) = sorted(plugs)[:1]
            used[bus] = used.get(bus, 0) + 1
            if used[bus] > FIXED[machine][bus]:
                continue
        per_kind[kind] = per_kind.get(kind, 0) + 1
        if per_kind[kind] > LIMITS.get((machine, kind), max_items):
            continue
        result.append((kind, fields))
    return result


@st.composite
def specs(draw: st.DrawFn, max_items: int = 8) -> dict[str, Any]:
    machine = draw(st.sampled_from(sorted(CHOICES)))
    spec: dict[str, Any] = {"machine": machine, "cpus": draw(st.integers(1, 4)),
                            "memory": draw(st.sampled_from(["256M", "1G", "2G"]))}
    if draw(st.booleans()):
        spec["hotplug-slots"] = draw(st.integers(0, 3))
    for n, (kind, fields) in enumerate(draw(items(machine, max_items))):
        if kind == "disk":
            fields["file"] = f"d{n}.raw"
        spec.setdefault(kind, []).append(fields)
    return spec


def write(spec: dict[str, Any], directory: Path, name: str = "spec.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(spec, indent=2))
    return path


def _toml_value(v: Any) -> str:
    return json.dumps(v)  # strings and integers are written alike in TOML and JSON


def write_toml(top: dict[str, Any], ordered: list[tuple[str, dict[str, Any]]],
               directory: Path, name: str) -> Path:
    """A TOML spec whose `[[kind]]` tables stand in exactly the order given."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for kind, fields in ordered:
        lines += ["", f"[[{kind}]]", *(f"{k} = {_toml_value(v)}" for k, v in fields.items())]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def compiled(path: Path) -> tuple[str, list[str]]:
    machine = driver.compile_input(path)
    return blob_emit.blob(machine), argv_emit.argv(machine)


FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(spec=specs())
def test_random_specs_compile_to_valid_fixed_points(spec: dict[str, Any],
                                                    tmp_path: Path) -> None:
    import jsonschema
    blob, argv = compiled(write(spec, tmp_path))
    schema = json.loads((ROOT / "compiler/spec/blob.schema.json").read_text())
    jsonschema.validate(json.loads(blob), schema)
    blob_path = tmp_path / "precise.json"
    blob_path.write_text(blob)
    again_blob, again_argv = compiled(blob_path)
    assert again_blob == blob
    assert again_argv == argv


def placements(blob: str) -> dict[str, tuple[str, str, str | None]]:
    """id → (type, bus, addr) of every device in a blob."""
    result: dict[str, tuple[str, str, str | None]] = {}

    def walk(devices: list[dict[str, Any]], bus: str) -> None:
        for d in devices:
            result[d["id"]] = (d["type"], bus, d.get("addr"))
            for b in d.get("buses", []):
                walk(b["devices"], b["name"])

    walk(json.loads(blob)["devices"], "main-system-bus")
    return result


@FAST
@given(data=st.data())
def test_adding_an_item_at_the_end_moves_nothing(data: st.DataObject, tmp_path: Path) -> None:
    machine = data.draw(st.sampled_from(sorted(CHOICES)))
    top = {"machine": machine, "hotplug-slots": data.draw(st.integers(0, 2))}
    ordered = data.draw(items(machine, 7))
    if len(ordered) < 1:
        return
    *first, last = ordered
    if last[0] == "disk":
        last[1]["file"] = "last.raw"
    for n, (kind, fields) in enumerate(first):
        if kind == "disk":
            fields["file"] = f"d{n}.raw"
    before = placements(compiled(write_toml(top, first, tmp_path, "before.toml"))[0])
    after = placements(compiled(write_toml(top, ordered, tmp_path, "after.toml"))[0])
    moved = {i: (before[i], after.get(i)) for i in before if after.get(i) != before[i]}
    assert not moved, f"adding {last} at the end moved {moved}"


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=specs(max_items=6))
def test_qemu_builds_what_random_specs_predict(spec: dict[str, Any], tmp_path: Path) -> None:
    blob_text, argv = compiled(write(spec, tmp_path))
    blob = json.loads(blob_text)
    require_binary(argv[0])
    for name, fmt in backing_files(blob):
        target = tmp_path / name
        if fmt == "qcow2":
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(target), "16M"],
                           check=True)
        else:
            target.write_bytes(b"")
            with target.open("r+b") as f:
                f.truncate(16 << 20)
    result = process.query([*runnable_argv(argv, str(tmp_path)), "-accel", "tcg"],
                        hmp=["info qtree", "info usb"])
    root = process.parse_qtree(result.hmp[0])
    assert compare(blob, root, result.hmp[1]) == []
