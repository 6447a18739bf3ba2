"""`mschema graph`: a precise machine as a picture. Buses are clusters, devices are coloured
by origin, addresses sit on the edges, free hot-plug places and backends beside the devices
they belong to. `layout` turns the tree into plain data; `dot`, `mermaid` and `html` render
that data through the jinja2 templates in `templates/`; `svg` runs Graphviz's `dot` on the
dot text (E2201 when it cannot)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from compiler.base.diagnostics import CompileError, error
from compiler.base.source import SourceFile, Span
from compiler.build import tree
from compiler.emit import text

if TYPE_CHECKING:
    import jinja2

FORMATS = ("dot", "svg", "png", "mermaid", "html")
# fill colour per origin; the legend lists them in this order
COLOURS = {"machine": "#e3e3e3", "default": "#cfe2f3", "spec": "#d9ead3", "hotplug": "#fce5cd"}
FREE_COLOUR = "#ffffff"
BACKEND_COLOUR = "#fff2cc"


@attrs.frozen
class Node:
    key: str            # the node's name in dot and mermaid (d0, d1, …)
    id: str             # the device's id
    type: str
    origin: str
    addr: str
    why: str            # `compile --why ID`'s text
    props: tuple[tuple[str, str], ...]
    depth: int


@attrs.frozen
class Cluster:
    key: str            # b0, b1, …
    name: str
    kind: str
    nodes: tuple[str, ...]          # keys of the devices on it
    free: int                       # free hot-plug places on it
    parent: str | None              # the key of the device it hangs from


@attrs.frozen
class Backend:
    key: str            # k0, k1, …
    id: str
    kind: str
    users: tuple[tuple[str, str], ...]   # (device key, link name)


@attrs.frozen
class Layout:
    title: str
    nodes: tuple[Node, ...]
    clusters: tuple[Cluster, ...]
    edges: tuple[tuple[str, str, str], ...]   # (parent device key or "root", child key, addr)
    backends: tuple[Backend, ...]


def layout(machine: tree.Machine, free: Sequence[tuple[str, str, int]]) -> Layout:
    """The picture's content, in tree order (deterministic: no sets iterated)."""
    free_on = {bus: n for bus, _kind, n in free}
    nodes: list[Node] = []
    clusters: list[Cluster] = []
    edges: list[tuple[str, str, str]] = []
    keys: dict[str, str] = {}

    def bus(b: tree.Bus, parent: str | None, depth: int) -> None:
        key = f"b{len(clusters)}"
        clusters.append(Cluster(key, b.name, b.kind, (), 0, parent))  # placeholder
        index = len(clusters) - 1
        members = []
        for d in b.devices:
            dkey = f"d{len(nodes)}"
            keys[d.id] = dkey
            members.append(dkey)
            nodes.append(Node(dkey, d.id, d.type, d.origin, str(d.addr or ""),
                              text.why(machine, d.id).rstrip("\n"),
                              tuple((k, _value(v)) for k, v in d.props), depth))
            edges.append((parent or "root", dkey, str(d.addr or "")))
            for child in d.buses:
                bus(child, dkey, depth + 1)
        clusters[index] = Cluster(key, b.name, b.kind, tuple(members),
                                  free_on.get(b.name, 0), parent)

    bus(machine.root, None, 0)
    users: dict[str, list[tuple[str, str]]] = {}
    for _b, d, _n in tree.walk(machine.root):
        for link, target in d.backend:
            users.setdefault(target, []).append((keys[d.id], link))
    backends = tuple(Backend(f"k{i}", ident, str(dict(body).get("kind", "")),
                             tuple(users.get(ident, ())))
                     for i, (ident, body) in enumerate(machine.backends))
    title = f"{machine.name or machine.info.schema}: {machine.info.qemu}"
    return Layout(title, tuple(nodes), tuple(clusters), tuple(edges), backends)


def _value(v: tree.PropValue) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return hex(v) if isinstance(v, int) and v > 9 else str(v)


def environment(autoescape: bool) -> jinja2.Environment:
    import jinja2  # presentation only: never at start-up

    from compiler.present import templates

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates.DIRECTORY),
                             autoescape=autoescape, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["dq"] = _dot_quote
    env.filters["mq"] = _mermaid_quote
    return env


def _render(name: str, autoescape: bool, **values: object) -> str:
    return environment(autoescape).get_template(name).render(**values)


def _dot_quote(value: object) -> str:
    """A dot string's body: backslashes and quotes escaped, lines as dot's `\\n`."""
    s = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return s.replace("\n", "\\n")


def _mermaid_quote(value: object) -> str:
    """A mermaid label's body: quotes and markup characters as mermaid's entity codes."""
    out = []
    for ch in str(value):
        out.append(f"#{ord(ch)};" if ch in '"<>&#;|[]{}()' else ch)
    return "".join(out)


def dot(g: Layout) -> str:
    return _render("graph.dot.j2", False, g=g, colours=COLOURS, free_colour=FREE_COLOUR,
                   backend_colour=BACKEND_COLOUR)


def mermaid(g: Layout) -> str:
    return _render("graph.mmd.j2", False, g=g, colours=COLOURS, free_colour=FREE_COLOUR,
                   backend_colour=BACKEND_COLOUR)


def dot_program() -> str | None:
    return shutil.which("dot")


def svg(g: Layout) -> str:
    """The picture as SVG, laid out by Graphviz's `dot`; E2201 when it is missing or fails."""
    out = _run_dot(g, "svg")
    if b"<svg" not in out:
        raise CompileError([error("E2201", "Graphviz's `dot` wrote no svg", _where("svg"))])
    return out.decode("utf-8")


def png(g: Layout) -> bytes:
    """The picture as PNG (Graphviz's `dot -Tpng`), e.g. for a README."""
    return _run_dot(g, "png")


def _where(fmt: str) -> Span:
    text = f"--format {fmt}"
    return SourceFile.from_text("<command line>", text).span(0, len(text))


def _run_dot(g: Layout, kind: str) -> bytes:
    program = dot_program()
    if program is None:
        raise CompileError([error(
            "E2201", f"Graphviz's `dot` is not on PATH: it draws the {kind} format",
            _where(kind), help="install Graphviz (Debian: `apt-get install graphviz`), or ask "
            "for `--format dot` or `--format mermaid`, which need no program")])
    try:
        done = subprocess.run([program, f"-T{kind}"], input=dot(g).encode("utf-8"),
                              capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompileError([error("E2201", f"Graphviz's `dot` could not run: {exc}",
                                  _where(kind))]) from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace")
        raise CompileError([error("E2201", f"Graphviz's `dot` failed (exit {done.returncode})",
                                  _where(kind), notes=stderr.splitlines()[:10])])
    return done.stdout


def _inline_svg(document: str) -> str:
    """The `<svg>` element alone (no XML declaration or DOCTYPE), for inlining in HTML."""
    return document[document.index("<svg"):]


def html(g: Layout, svg_document: str) -> str:
    """One self-contained page: the SVG, a collapsible device tree, each device's `--why`.
    Autoescaped; the SVG is Graphviz's output of our own escaped dot text."""
    import markupsafe

    data = {n.id: {"type": n.type, "origin": n.origin, "addr": n.addr, "why": n.why,
                   "props": dict(n.props)} for n in g.nodes}
    return _render("graph.html.j2", True, g=g, colours=COLOURS, children=_children(g), data=data,
                   svg=markupsafe.Markup(_inline_svg(svg_document)))


def _children(g: Layout) -> dict[str, list[tuple[Cluster, list[Node]]]]:
    """For the HTML tree: per device key ("root" for the machine), its buses and their
    devices."""
    by_key = {n.key: n for n in g.nodes}
    out: dict[str, list[tuple[Cluster, list[Node]]]] = {}
    for c in g.clusters:
        out.setdefault(c.parent or "root", []).append((c, [by_key[k] for k in c.nodes]))
    return out


def render(machine: tree.Machine, free: Sequence[tuple[str, str, int]],
           fmt: str) -> str | bytes:
    g = layout(machine, free)
    if fmt == "png":
        return png(g)
    if fmt == "dot":
        return dot(g)
    if fmt == "mermaid":
        return mermaid(g)
    picture = svg(g)
    return picture if fmt == "svg" else html(g, picture)
