"""Finding and parsing the files: the shipped ones, every file a `use` names (transitively),
in an order with each file after the ones it uses; `use` cycles (and the cycle report
`extends` uses too). Ends at parsed modules: looking names up is `names`' job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from compiler.base.diagnostics import Collector, CompileError, Label, quote_list
from compiler.base.source import SourceFile, Span, whole_file
from compiler.lang import ast
from compiler.lang.parse import parse_module

DATA_ROOT_CANDIDATES = (Path(__file__).parents[2], Path(__file__).parents[3])


def data_dir(name: str) -> Path:
    """`stdlib` or `schemas`: inside the installed package, or beside it in a checkout."""
    for root in DATA_ROOT_CANDIDATES:
        if (root / name).is_dir():
            return root / name
    return DATA_ROOT_CANDIDATES[-1] / name


SHIPPED_GLOBS = (("stdlib", "*.mschema"), ("schemas", "*/*.machine"))


def shipped_files() -> list[Path]:
    return [p for name, pattern in SHIPPED_GLOBS for p in sorted(data_dir(name).glob(pattern))]


def shipped_questions() -> list[tuple[str, str]]:
    """What `shipped_files` depends on, as questions `cache.answer` can ask again: which
    candidate data directories exist, and what each glob matches."""
    questions = [("isdir", str(root / name)) for name, _ in SHIPPED_GLOBS
                 for root in DATA_ROOT_CANDIDATES]
    return questions + [("glob", f"{data_dir(name)}\0{pattern}")
                        for name, pattern in SHIPPED_GLOBS]


def use_targets(modules: Iterable[ast.Module]) -> list[Path]:
    """The paths `load_modules` followed for the `use`s of `modules`, before symlinks are
    resolved: the cache asks again where they lead."""
    stdlib = data_dir("stdlib")
    targets = []
    for m in modules:
        here = Path(m.path).resolve().parent
        for decl in m.decls:
            if isinstance(decl, ast.UseDecl):
                target = _use_target(decl.path, here, stdlib)
                if target is not None:
                    targets.append(target)
    return targets


# ---- loading ---------------------------------------------------------------------------
def load_modules(paths: Sequence[Path], diags: Collector) -> list[ast.Module]:
    """Parse `paths` and every file they `use`, transitively; report `use` cycles."""
    import networkx as nx

    stdlib = data_dir("stdlib")
    modules: dict[str, ast.Module] = {}
    graph: nx.DiGraph[str] = nx.DiGraph()
    use_spans: dict[tuple[str, str], Span] = {}
    realpaths: dict[Path, Path] = {}  # each path's symlinks followed once a load, not per `use`

    def realpath(path: Path) -> Path:
        if path not in realpaths:
            realpaths[path] = path.resolve()
        return realpaths[path]

    queue: list[tuple[Path, Span | None]] = [(realpath(p), None) for p in paths]
    while queue:
        path, used_at = queue.pop(0)
        key = str(path)
        if key in modules or (key in graph and graph.nodes[key].get("failed")):
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            span = used_at or whole_file(str(path))
            reason = exc.strerror or str(exc)
            diags.error("E0205", f"cannot read `{_display(path)}`: {reason.lower()}", span)
            graph.add_node(key, failed=True)
            continue
        try:
            source = SourceFile.from_text(_display(path), data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            text = data.decode("utf-8", errors="replace")
            at = len(data[:exc.start].decode("utf-8", errors="replace"))
            bad = SourceFile.from_text(_display(path), text)
            diags.error("E0205", f"cannot read `{_display(path)}`: byte "
                        f"`0x{data[exc.start]:02x}` is not utf-8", bad.span(at, at + 1),
                        help="save the file as utf-8")
            graph.add_node(key, failed=True)
            continue
        try:
            module = _parse(source)
        except CompileError as exc:
            diags.extend(exc.diagnostics)
            graph.add_node(key, failed=True)
            continue
        modules[key] = module
        graph.add_node(key, display=_display(path))
        for decl in module.decls:
            if not isinstance(decl, ast.UseDecl):
                continue
            target = _use_target(decl.path, path.parent, stdlib)
            if target is None and _is_stdlib_name(decl.path):
                names = [p.stem for p in stdlib.glob("*.mschema")]
                diags.error("E0205", f"unknown stdlib file `{decl.path}`", decl.span,
                            notes=[f"the stdlib has {quote_list(names)}"])
                continue
            if target is None:
                diags.error("E0205", f"cannot find `{decl.path}`", decl.span,
                            notes=[f"a path is relative to `{_display(path.parent)}`, "
                                   "the directory of this file"])
                continue
            target = realpath(target)
            tkey = str(target)
            graph.add_edge(key, tkey)
            use_spans[(key, tkey)] = decl.span
            queue.append((target, decl.span))
    report_cycles(graph, use_spans, diags, "E0601", "uses", keyword="use")
    return _dependencies_first(graph, modules, realpath)


# Parsed files of this process by (shown path, text): a run that loads the library more
# than once (a batch `lint`, the fuzzer, a test session) parses each unchanged file once.
# Modules are frozen, so sharing them is safe; a file that fails to parse is not kept.
_PARSED: dict[tuple[str, str], ast.Module] = {}
_PARSED_MAX = 512


def _parse(source: SourceFile) -> ast.Module:
    key = (source.path, source.text)
    module = _PARSED.get(key)
    if module is None:
        module = parse_module(source)
        if len(_PARSED) >= _PARSED_MAX:
            del _PARSED[next(iter(_PARSED))]
        _PARSED[key] = module
    return module


def _dependencies_first(graph: object, modules: Mapping[str, ast.Module],
                        realpath: Callable[[Path], Path]) -> list[ast.Module]:
    """Modules with each one after the files it uses, the shipped ones first, so that a
    name defined twice is reported at the definition that comes later in that order (a
    user file redefining a stdlib bus kind, not the stdlib)."""
    import networkx as nx

    g: nx.DiGraph[str] = graph  # type: ignore[assignment]
    loaded = list(modules)
    if not nx.is_directed_acyclic_graph(g):
        return [modules[k] for k in loaded]
    shipped = {str(realpath(p)) for p in shipped_files()}
    rank = {k: (k not in shipped, loaded.index(k) if k in modules else len(loaded), k)
            for k in g.nodes}
    order = nx.lexicographical_topological_sort(g.reverse(copy=False), key=rank.__getitem__)
    return [modules[k] for k in order if k in modules]


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _is_stdlib_name(name: str) -> bool:
    return "/" not in name and not name.endswith((".mschema", ".machine"))


def _use_target(name: str, here: Path, stdlib: Path) -> Path | None:
    candidate = stdlib / f"{name}.mschema" if _is_stdlib_name(name) else here / name
    try:  # Path.is_file() lets ENAMETOOLONG (a name past 255 bytes) through
        return candidate if candidate.is_file() else None
    except OSError:
        return None


def report_cycles(graph: object, spans: Mapping[tuple[str, str], Span], diags: Collector,
                   code: str, verb: str, label: Mapping[str, str] | None = None,
                   keyword: str | None = None) -> None:
    """One diagnostic per cycle, walking the chain with the place of each link. The chain
    starts at the node added to the graph first (for `use`, the file given on the command
    line), so the error is reported where the user started."""
    import networkx as nx

    g: nx.DiGraph[str] = graph  # type: ignore[assignment]
    added = {node: i for i, node in enumerate(g.nodes)}

    def show(node: str) -> str:
        return (label or {}).get(node, g.nodes[node].get("display", node))

    for component in sorted(nx.strongly_connected_components(g), key=sorted):
        nodes = sorted(component)
        if len(nodes) == 1 and not g.has_edge(nodes[0], nodes[0]):
            continue
        cycle = nx.find_cycle(g.subgraph(nodes), source=min(nodes, key=added.__getitem__))
        chain = " → ".join(f"`{show(a)}`" for a, _ in cycle + cycle[:1])
        links = [Label(spans[(a, b)], f"`{show(a)}` {verb} `{show(b)}` here")
                 for a, b in cycle[1:]]
        diags.error(code, f"cycle: {chain}", spans[cycle[0]], labels=links,
                    help=f"remove one of the `{keyword or verb}` links of this chain")
