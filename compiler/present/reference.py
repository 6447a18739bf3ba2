"""`mschema docs` and `mschema explain`: the reference, generated from what ships: every
machine version with its options (what each adds or removes, computed by expanding the
machine with and without it), rules and devices; every bus kind and device type; every
diagnostic code of the registry (`docs/diagnostics.md`'s table) with the corpus case that
triggers it. Rendered as Markdown through the jinja2 templates in `templates/`."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

from compiler.base.diagnostics import CompileError, error, quote_list
from compiler.base.source import SourceFile, Span
from compiler.build import expand, tree
from compiler.lang import expr, model, resolve
from compiler.ops import schema_diff

# where the committed reference lives: its links are written relative to it
HOME = "docs/reference"
REGISTRY = "docs/diagnostics.md"
_CODE_ROW = re.compile(r"^\| `(E\d{4})` \|")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


@attrs.frozen
class Case:
    label: str
    path: str          # from the repository root, e.g. tests/spec/bad/x.toml
    text: str          # the case file, or "" (a test module, or not shipped)
    expected: str      # the `.err` beside it, or ""


@attrs.frozen
class Code:
    code: str
    stage: str
    meaning: str       # Markdown, links from the repository root
    cases: tuple[Case, ...]
    near_misses: tuple[Case, ...]


@attrs.frozen
class OptionEffect:
    name: str
    type: str
    default: str
    changes: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]  # value, adds, removes
    where: str


def root() -> Path:
    """The repository (or installed package) folder holding `stdlib/` and `schemas/`."""
    return resolve.data_dir("stdlib").parent


def where(span: Span | None) -> str:
    """`schemas/pc-q35/pc-q35-7.2.machine:40` whatever the current directory."""
    if span is None:
        return ""
    path = Path(span.path)
    try:
        path = path.resolve().relative_to(root())
    except ValueError:
        pass
    return f"{path.as_posix()}:{span.line}"


# ---- the diagnostics registry ----------------------------------------------------------
def _registry_file() -> Path | None:
    for base in resolve.DATA_ROOT_CANDIDATES:
        for candidate in (base / REGISTRY, base / "docs" / "diagnostics.md"):
            if candidate.is_file():
                return candidate
    return None


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _from_root(target: str) -> str:
    """A link of docs/diagnostics.md (relative to docs/) from the repository root."""
    if "://" in target or target.startswith("#"):
        return target
    return Path("docs", target).as_posix().replace("docs/../", "")


def _cases(cell: str) -> tuple[Case, ...]:
    found = []
    for label, target in _LINK.findall(cell):
        path = _from_root(target).rstrip("/")
        found.append(_case(label, path))
    found += [_case(name, name) for name in re.findall(r"`(tests/[^`]+\.py)`", cell)]
    return tuple(found)


def _case(label: str, path: str) -> Case:
    file = root() / path
    text = expected = ""
    if file.is_file() and not path.endswith(".py"):
        text = _shown(file)
        err = file.with_suffix(".err")
        expected = _shown(err) if err.is_file() else ""
    return Case(label, path, text, expected)


def _shown(file: Path, limit: int = 40) -> str:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return "(not UTF-8 text: see the file)"
    more = f"\n… ({len(lines) - limit} more lines)" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


def codes() -> tuple[Code, ...]:
    """Every code of the registry's table, in its order."""
    file = _registry_file()
    if file is None:
        return ()
    out = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if not _CODE_ROW.match(line):
            continue
        cells = _cells(line)
        meaning = _LINK.sub(lambda m: f"[{m.group(1)}]({_from_root(m.group(2))})", cells[2])
        out.append(Code(cells[0].strip("`"), cells[1], meaning.replace("\\|", "|"),
                        _cases(cells[3]), _cases(cells[4]) if len(cells) > 4 else ()))
    return tuple(out)


# ---- machines ---------------------------------------------------------------------------
def _scalar(v: object) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return '""' if v == "" else str(v)


def _devices(machine: tree.Machine) -> list[tuple[str, str, str, str]]:
    """(id, type, bus, address) of every device, in tree order."""
    return [(d.id, d.type, b.name, str(d.addr or "")) for b, d, _n in tree.walk(machine.root)]


def _trial_values(spec: model.OptionSpec) -> list[expr.Scalar]:
    """The values an option is expanded with besides its default: every other value of a
    finite type; a name for a string that is empty by default (a backend, a file), and
    the empty string for one that is not."""
    domain = spec.type.domain()
    if domain is not None:
        return [v for v in domain if v != spec.default]
    if spec.type.kind in ("str", "backend"):
        return ["NAME"] if spec.default == "" else [""]
    return []


def option_effects(schema: model.MachineSchema) -> list[OptionEffect]:
    defaults = {n: o.default for n, o in schema.options.items()}
    base = _devices(expand.show(schema, defaults))
    effects = []
    for name, spec in sorted(schema.options.items()):
        changes = []
        for value in _trial_values(spec):
            other = _devices(expand.show(schema, {**defaults, name: value}))
            adds = tuple(_device_text(d) for d in other if d not in base)
            removes = tuple(_device_text(d) for d in base if d not in other)
            changes.append((_scalar(value), adds, removes))
        effects.append(OptionEffect(name, spec.type.describe(), _scalar(spec.default),
                                    tuple(changes), where(spec.span)))
    return effects


def _device_text(d: tuple[str, str, str, str]) -> str:
    ident, kind, bus, addr = d
    return f"`{ident}` ({kind}) on `{bus}`" + (f" at {addr}" if addr else "")


def machine_page(schema: model.MachineSchema) -> dict[str, object]:
    from compiler.ops import hotplug
    from compiler.present import graph

    defaults = {n: o.default for n, o in schema.options.items()}
    shown = expand.show(schema, defaults)
    return {
        "m": schema,
        "picture": graph.mermaid(graph.layout(shown, hotplug.capacity(shown))),
        "where": where(schema.span),
        "memory": schema.default_memory,
        "options": option_effects(schema),
        "devices": [(depth, b.name, d) for b, d, depth in tree.walk(shown.root)],
        "implement": [(i, where(i.span)) for _k, i in sorted(schema.implementations.items())],
        "provide": [(p, where(p.span)) for _k, p in sorted(schema.providers.items())],
        "checks": [(c, schema_diff._expr_text(c.condition), where(c.span))
                   for c in schema.checks],
        "compat": [(c, _scalar(c.value), where(c.span)) for c in schema.compat],
        "quirks": [(q, _scalar(q.value), where(q.span)) for q in schema.quirks],
        "placement": schema.placement,
        "placement_where": where(schema.placement.span),
        "placement_cases": [(schema_diff._expr_text(c.condition), c.placement, where(c.span))
                            for c in schema.placement_cases],
    }


def _families(library: model.Library) -> list[tuple[str, list[model.MachineSchema]]]:
    by: dict[str, list[model.MachineSchema]] = {}
    for m in library.machines.values():
        by.setdefault(m.family, []).append(m)
    return [(f, sorted(ms, key=lambda m: model._version(m.name), reverse=True))
            for f, ms in sorted(by.items())]


# ---- device types ----------------------------------------------------------------------
def device_rows(library: model.Library) -> list[dict[str, object]]:
    rows = []
    for name, d in sorted(library.devices.items(), key=lambda kv: kv[0].lower()):
        props = [(p, p.type.describe(), "" if p.default is None else _scalar(p.default))
                 for _n, p in sorted(d.props.items())]
        rows.append({"d": d, "where": where(d.span), "props": props,
                     "links": sorted(d.links.values(), key=lambda link: link.name),
                     "anchor": _anchor(name)})
    return rows


def _anchor(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "", name.lower().replace(" ", "-"))


# ---- rendering -------------------------------------------------------------------------
def _cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, one line."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _links_from(text: str, prefix: str) -> str:
    """Markdown links written from the repository root, as seen from a page at `prefix`."""
    return _LINK.sub(lambda m: f"[{m.group(1)}]({_relink(m.group(2), prefix)})", text)


def _relink(target: str, prefix: str) -> str:
    return target if "://" in target or target.startswith("#") else prefix + target


def _render(name: str, **values: object) -> str:
    from compiler.present import graph

    env = graph.environment(False)
    env.filters["cell"] = _cell
    env.filters["links"] = _links_from
    env.filters["scalar"] = _scalar
    return env.get_template(name).render(**values)


def pages() -> dict[str, str]:
    """Every page of the reference: its path inside the output folder → its Markdown."""
    library = resolve.load_library()
    every = codes()
    families = _families(library)
    out = {"README.md": _render("ref-index.md.j2", families=families, library=library,
                                codes=every, buses=sorted(library.buses.values(),
                                                          key=lambda b: b.name))}
    for _family, machines in families:
        for m in machines:
            out[f"machines/{m.name}.md"] = _render("ref-machine.md.j2", **machine_page(m))
    out["devices.md"] = _render("ref-devices.md.j2", rows=device_rows(library),
                                buses=library.buses)
    out["diagnostics.md"] = _render("ref-diagnostics.md.j2", codes=every, prefix="../../")
    return out


def explain(topic: str) -> str:
    """`mschema explain TOPIC`: a diagnostic code's page (links from the repository root), a
    device type's section or a machine's page of the reference."""
    wanted = topic.strip()
    every = codes()
    for c in every:
        if c.code == wanted.upper():
            return _render("ref-code.md.j2", c=c, prefix="", level="#")
    library = resolve.load_library()
    if wanted in library.devices:
        row = next(r for r in device_rows(library) if r["d"] is library.devices[wanted])
        return _render("ref-device.md.j2", r=row, buses=library.buses)
    schema = library.machine(wanted)
    if schema is not None:
        return _render("ref-machine.md.j2", **machine_page(schema))
    close = difflib.get_close_matches(wanted, [*(c.code for c in every), *library.devices,
                                               *library.names()], n=1)
    raise CompileError([error(
        "E2203", f"no diagnostic code, device type or machine `{topic}`",
        SourceFile.from_text("<command line>", topic).span(0, len(topic)),
        notes=[f"the codes are {quote_list((c.code for c in every), 8)}" if every else
               "the diagnostics registry (docs/diagnostics.md) is not installed here"],
        help=f"did you mean `{close[0]}`?" if close else
        "codes look like `E0203`; `mschema docs -o DIR` writes every one")])


def html_pages() -> dict[str, str]:
    """`docs --html`: each machine version's picture as one page (`graph --format html` of
    what it creates with the default options), beside its Markdown page. Drawn by Graphviz,
    whose layout changes between its releases: not part of the committed reference."""
    from compiler.ops import hotplug
    from compiler.present import graph

    library = resolve.load_library()
    out = {}
    for name, schema in sorted(library.machines.items()):
        shown = expand.show(schema, {n: o.default for n, o in schema.options.items()})
        out[f"machines/{name}.html"] = str(graph.render(shown, hotplug.capacity(shown),
                                                        "html"))
    return out


def write(directory: Path, html: bool = False) -> list[Path]:
    """The reference into `directory`, as one set of atomic writes (`base/outputs.py`)."""
    from compiler.base import outputs

    every = {**pages(), **(html_pages() if html else {})}
    files = [outputs.Output(directory / rel, text.encode("utf-8"))
             for rel, text in sorted(every.items())]
    outputs.write(files)
    return [f.path for f in files]


def stale(directory: Path) -> Iterator[str]:
    """The pages of `directory` that differ from the generated ones (for the test)."""
    generated: Mapping[str, str] = pages()
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*.md")}
    for rel in sorted(present | set(generated)):
        file = directory / rel
        if rel not in generated or not file.is_file() or \
                file.read_text(encoding="utf-8") != generated[rel]:
            yield rel
