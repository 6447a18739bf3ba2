"""Lint's device-tree sweep: every machine's `fdt` declarations (its own, and the stdlib's
for the devices it can hold) evaluated for the trees the machine can build, so that a
declaration that cannot be computed there (a variable no enclosing block gives, E1901) is a
lint error, not a `compile` failure. Ends at reporting: it builds nothing that is kept.

The trees tried, per machine: its own devices under its defaults and under each other value
of every option lint can enumerate (bool, enum, bounded int), one option at a time; and a
machine holding one device of each `implement` case (each graphics type in turn), at its
defaults. A spec that does not compile for other reasons is no concern here (`compile`
reports those); only the device tree's errors are reported, once each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from compiler.base.diagnostics import Collector, CompileError, Diagnostic, Label
from compiler.base.source import SourceFile
from compiler.build import expand, tree
from compiler.lang import expr, model

if TYPE_CHECKING:
    from compiler.spec import loose

# decoded TOML/JSON, as the loose spec's loader takes it (it checks shapes itself)
Json = dict[str, object] | list[object] | str | int | bool


# the compile stages after loading a spec (`driver.compile_loose`), given by the driver
Compile = Callable[["loose.LooseSpec", model.Library], tree.Machine]


def check(machines: list[model.MachineSchema], library: model.Library,
          compile_loose: Compile, diags: Collector) -> None:
    from compiler.emit import fdt

    seen: set[tuple[str, int, str]] = set()
    swept: list[tuple[object, ...]] = []
    for m in sorted(machines, key=lambda m: m.name):
        # versions that differ only in what no declaration can fail on (their name, QEMU's
        # machine type, compat prop values, checks) build the same trees: sweep one of them
        same = _tree_inputs(m)
        if same in swept:
            continue
        swept.append(same)
        for built in _trees(m, library, compile_loose):
            try:
                fdt.build(built, library)
            except CompileError as exc:
                for d in exc.diagnostics:
                    key = (d.span.path, d.span.start, d.message) if d.span else ("", 0,
                                                                                 d.message)
                    if key not in seen:
                        seen.add(key)
                        diags.add(_noted(d, m, built))


def _tree_inputs(m: model.MachineSchema) -> tuple[object, ...]:
    """What decides whether a machine's declarations can be computed."""
    return (m.family, m.arch, tuple(sorted(m.options.items())), m.devices,
            tuple(sorted(m.implementations.items())), tuple(sorted(m.providers.items())),
            m.placement, m.placement_cases, m.fdt, m.quirks, m.device_fdt)


def _noted(d: Diagnostic, m: model.MachineSchema, built: tree.Machine) -> Diagnostic:
    """The diagnostic with the machine and options it showed under."""
    import attrs

    given = dict(built.info.options)
    changed = [f"{k}={_text(v)}" for k, v in sorted(given.items())
               if m.options.get(k) is not None and m.options[k].default != v]
    devices = sum(1 for _b, d, _n in tree.walk(built.root) if d.origin != "machine")
    where = f"found by lint: `{m.name}`" + (f" with {', '.join(changed)}" if changed else "") \
        + (f" holding {devices} device{'s' if devices != 1 else ''} of its spec's kinds"
           if devices else "")
    if d.span is not None and d.span.path != m.span.path:
        # a declaration elsewhere (the stdlib's) that this machine cannot compute: point at
        # the machine, show the declaration
        return attrs.evolve(d, span=m.span, notes=(*d.notes, where),
                            labels=(Label(d.span, "this declaration cannot be computed "
                                          f"in `{m.name}`"), *d.labels))
    return attrs.evolve(d, notes=(*d.notes, where))


def _text(v: expr.Scalar) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else str(v)


def option_sets(m: model.MachineSchema, read: set[str] | None = None
                ) -> Iterator[dict[str, expr.Scalar]]:
    """The defaults, then each other value of each enumerable option, one at a time (of the
    options in `read` only, when given)."""
    defaults = {n: o.default for n, o in m.options.items()}
    yield defaults
    for name, o in sorted(m.options.items()):
        if read is not None and name not in read:
            continue
        for value in o.type.domain() or ():
            if value != o.default:
                yield {**defaults, name: value}


def names_read(m: model.MachineSchema, library: model.Library) -> set[str]:
    """Every name the machine's conditions, computed props and device-tree declarations (its
    own and its device types') read: an option read nowhere cannot change whether a tree's
    declarations can be computed, so lint need not build the machine under its values."""
    import attrs

    from compiler.lang import ast

    found: set[str] = set()
    stack: list[object] = [m.fdt, m.device_fdt, m.devices, m.placement_cases,
                           *(t.fdt_items for t in library.devices.values())]
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, (ast.FxName, expr.Option)):
            found.add(item.name)
        elif attrs.has(type(item)):
            # spans are not compared (eq=False), and hold no names
            stack.extend(getattr(item, f.name) for f in attrs.fields(type(item))  # type: ignore[arg-type]
                         if f.eq)
    return found


def _trees(m: model.MachineSchema, library: model.Library,
           compile_loose: Compile) -> Iterator[tree.Machine]:
    for options in option_sets(m, names_read(m, library)):
        yield expand.show(m, options)
    for data in _specs(m):
        built = _compiled(data, library, compile_loose)
        if built is not None:
            yield built


def _specs(m: model.MachineSchema) -> Iterator[dict[str, Json]]:
    """Loose specs (as decoded data) with one item of each `implement` case; graphics, of
    which a spec has one, in turn."""
    from compiler.spec import loose

    base: dict[str, Json] = {"machine": m.name, "memory": "4G"}
    tcg = _tcg_options(m)
    if tcg:
        base["options"] = tcg
    for kind, impl in sorted(m.implementations.items()):
        if kind == "graphics":
            continue
        if impl.key not in loose.ITEM_KEYS.get(kind, ()):  # chosen by the schema alone
            base[kind] = [dict(_host(kind, impl.default))]
        else:
            base[kind] = [{impl.key: value, **_host(kind, value)} for value in impl.cases]
    graphics = m.implementations.get("graphics")
    values = [v for v in graphics.cases if v != "none"] if graphics else []
    yield base
    for value in values:
        assert graphics is not None
        yield {"machine": m.name, "graphics": {graphics.key: value},
               **({"options": tcg} if tcg else {})}


def _tcg_options(m: model.MachineSchema) -> dict[str, object]:
    """The options a machine needs to start under TCG (`quirk tcg-options = "K=V,…"`: the
    HTM of pseries-2.8 … 2.11), as a spec's `[options]`."""
    text = {q.name: q.value for q in m.quirks}.get("tcg-options")
    out: dict[str, object] = {}
    for pair in str(text or "").split(","):
        name, _, value = pair.partition("=")
        spec = m.options.get(name)
        if spec is not None:
            is_bool = isinstance(spec.default, bool)
            out[name] = value in ("on", "true", "yes") if is_bool else value
    return out


def _host(kind: str, value: str) -> dict[str, Json]:
    """What an item of `kind` needs besides its key, for the spec to be whole."""
    if kind == "usb" and value != "storage":
        return {}
    needs: dict[str, dict[str, Json]] = {"disk": {"file": "lint.raw", "format": "raw"},
            "cdrom": {"file": "lint.iso"},
            "usb": {"file": "lint.raw", "format": "raw"},
            "filesystem": {"path": "/", "tag": "lint"}}
    return needs.get(kind, {})


def _compiled(data: dict[str, Json], library: model.Library,
              compile_loose: Compile) -> tree.Machine | None:
    from compiler.spec import loose

    source = SourceFile.from_text(f"<lint: {data['machine']}>", "")
    try:
        spec = loose.from_data(source, data)
        return compile_loose(spec, library)
    except CompileError:
        return None
