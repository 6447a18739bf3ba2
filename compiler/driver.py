"""The pipeline, as a list of stage calls. Each public function is one CLI command's work,
returning data (never printing); problems come out as `CompileError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from compiler.base.diagnostics import Collector, quote_list
from compiler.base.source import SourceFile, Span
from compiler.base.units import parse_size
from compiler.build import expand, tree
from compiler.lang import expr, model, resolve, schema_checks

if TYPE_CHECKING:
    from compiler.qemu import verify as verify_
    from compiler.qemu.extract import build as extract_


def lint(paths: Sequence[Path]) -> model.Library:
    """Parse, resolve and check `paths` together with every shipped file (for `use` and
    `extends`); raise with every problem found. A clean result is remembered
    (`cache.lint_is_clean`) with the exact text of every file read."""
    from compiler.lang import cache

    cache.spare_the_last_collection()
    diags = Collector()
    shipped = cache.answers(resolve.shipped_questions())
    shipped_files = resolve.shipped_files()
    files = list(dict.fromkeys(p.resolve() for p in [*paths, *shipped_files]))
    modules = resolve.load_modules(files, diags)
    library = resolve.resolve(modules, diags)
    if not diags.has_errors:
        schema_checks.run_all(library, diags)
    diags.check()
    cache.record_lint_clean(paths, modules, [*shipped_files, *resolve.use_targets(modules)],
                            shipped, cache.answers(resolve.shipped_questions()))
    return library


def find_machine(library: model.Library, name: str, diags: Collector) -> model.MachineSchema:
    m = library.machine(name)
    if m is None:
        source = SourceFile.from_text("<command line>", name)
        names = library.names()
        diags.error("E0204", f"unknown machine `{name}`", source.span(0, len(name)),
                    notes=[f"expected one of {quote_list(names)}"])
        diags.check()
        raise AssertionError("unreachable")
    return m


def show(machine: str, option_pairs: Sequence[str]) -> tree.Machine:
    """What `machine` creates by itself under these options."""
    diags = Collector()
    library = resolve.load_library()
    schema = find_machine(library, machine, diags)
    given = expand.command_line_options(list(option_pairs), diags)
    options = expand.option_values(schema, given, diags)
    diags.check()
    return expand.show(schema, options)


def compile_input(path: Path) -> tree.Machine:
    """A loose spec, or a precise blob (a `.json` with a `format`), → the precise machine."""
    import json

    if path.suffix == ".json":
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError):
            data = None  # the spec loader reports it with a position
        from compiler.build import validate  # blobs only: a spec needs neither
        from compiler.spec import precise

        if precise.is_blob(data):
            assert isinstance(data, dict)
            library = resolve.load_library()
            source = SourceFile.from_text(str(path), text)
            machine = precise.load(source, data, library)
            diags = Collector()
            validate.validate(machine, library, source.span(0, 0), diags,
                              precise.backend_spans(source, data))
            diags.check()
            return machine
    return compile_spec(path)


def compile_spec(path: Path) -> tree.Machine:
    """Loose spec → precise machine: load, resolve the schema, plan, address."""
    from compiler.build import allocate, plan, validate
    from compiler.spec import loose

    diags = Collector()
    spec = loose.load(path)
    library = resolve.load_library()
    mval = spec.top["machine"]
    schema = library.machine(str(mval.value))
    if schema is None:
        names = library.names()
        diags.error("E0204", f"unknown machine `{mval.value}`", mval.span,
                    notes=[f"expected one of {quote_list(names)}"])
        diags.check()
        raise AssertionError("unreachable")
    given = {k: (_option_text(v.value), v.span) for k, v in spec.options.items()}
    options = expand.option_values(schema, given, diags,
                                   {k: v.key_span for k, v in spec.options.items()})
    cpus, memory = _cpus_memory(spec, schema.default_memory, diags)
    facts = {"cpus.count": int(cpus.get("count", 1)), "memory": int(memory.get("size", 0))}
    for key in ("sockets", "cores", "threads"):
        facts[f"cpus.{key}"] = int(cpus.get(key, 1))
    counts: dict[str, int] = {}
    for item in spec.items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    env = expr.Env(options, facts, counts)
    for c in schema.checks:
        if not expr.holds(c.condition, env):
            diags.error("E1301", c.message, plan.check_span(c.condition, spec),
                        notes=[f"rule `{c.name}` of `{schema.name}` ({c.span})"])
    planned = plan.plan(schema, library, spec, diags)
    diags.check()
    spares_value = spec.top.get("hotplug-slots")
    spares = schema.placement.spare_ports if spares_value is None else int(spares_value.value)
    root = allocate.assign(schema, library, expand.machine_devices(schema, env), planned,
                          spares, spares_value.span if spares_value else spec.span, diags,
                          spares_required=spares_value is not None)
    diags.check()
    root = expand.apply_compat(schema, root)
    name_value = spec.top.get("name")
    machine = tree.Machine(expand.machine_info(schema, options), root,
                           tuple(sorted(cpus.items())), tuple(sorted(memory.items())),
                           tuple(sorted(planned.backends)),
                           str(name_value.value) if name_value else "")
    validate.validate(machine, library, spec.span, diags)
    diags.check()
    return machine


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _cpus_memory(spec: object, schema_memory: int, diags: Collector
                 ) -> tuple[dict[str, tree.PropValue], dict[str, tree.PropValue]]:
    from compiler.spec.loose import LooseSpec

    assert isinstance(spec, LooseSpec)
    cpus: dict[str, tree.PropValue] = {"count": 1}
    cv = spec.top.get("cpus")
    if cv is not None:
        if isinstance(cv.value, int) and not isinstance(cv.value, bool) and cv.value > 0:
            cpus["count"] = cv.value
        else:
            diags.error("E1003", "`cpus` must be a positive integer or a table", cv.span)
    for k, v in spec.cpus.items():
        if k == "model":
            cpus[k] = str(v.value)
        elif isinstance(v.value, int) and not isinstance(v.value, bool) and v.value > 0:
            cpus[k] = v.value
        else:
            diags.error("E1003", f"`cpus.{k}` must be a positive integer", v.span)
    where = cv.span if cv is not None else next(
        (v.span for v in spec.cpus.values()), spec.span)
    _topology(cpus, cv is not None or "count" in spec.cpus, where, diags)
    memory: dict[str, tree.PropValue] = {"size": schema_memory}
    mv = spec.top.get("memory")
    if mv is not None:
        size = parse_size(mv.value)
        if size is None:
            diags.error("E1003", f"`memory` must be a size, not `{mv.value}`", mv.span,
                        help='write bytes, or a number with K, M, G or T: `memory = "4G"`')
        else:
            memory["size"] = size
    return cpus, memory



def _topology(cpus: dict[str, tree.PropValue], count_given: bool, span: Span,
              diags: Collector) -> None:
    """Fill sockets/cores/threads as QEMU 7.2's -smp does for 7.x machines, which prefer
    cores (hw/core/machine-smp.c): missing sockets and threads are 1, cores take the rest,
    and a missing count is the product."""
    def number(key: str, default: int) -> int:
        v = cpus.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else default

    sockets, threads = number("sockets", 1), number("threads", 1)
    count = number("count", 1)
    if "cores" in cpus:
        cores = number("cores", 1)
        if not count_given:
            count = sockets * cores * threads
    else:
        cores = max(1, count // (sockets * threads))
    cpus.update(count=count, sockets=sockets, cores=cores, threads=threads)
    if sockets * cores * threads != count:
        diags.error("E1010", f"invalid CPU topology: {sockets} socket(s) × {cores} core(s) × "
                    f"{threads} thread(s) is not {count} cpus", span,
                    help="give a count that is their product, or leave one of them out")


def verify(path: Path, binary: str | None = None, timeout: float = 30.0,
           user_net: bool = False) -> verify_.Outcome:
    """Compile `path`, start QEMU with its argv (paused) and compare what QEMU builds with
    the precise machine; the outcome's diagnostics are the differences (none: they agree)."""
    from compiler.qemu import verify as verifier

    machine = compile_input(path)
    library = resolve.load_library()
    binary_span = (SourceFile.from_text("<command line>", binary).span(0, len(binary))
                   if binary else None)
    return verifier.verify(machine, library, verifier.input_start(str(path)), binary=binary,
                           binary_span=binary_span, timeout=timeout, user_net=user_net)


def extract(socket: str, timeout: float = 30.0) -> extract_.Result:
    """The precise machine of a running QEMU, read over its QMP socket, and warnings about
    what QEMU does not reveal or the blob cannot say."""
    from compiler.base.diagnostics import CompileError, error
    from compiler.base.source import whole_file
    from compiler.qemu.extract import build as extractor
    from compiler.qemu.extract import snapshot

    library = resolve.load_library()
    try:
        snap = snapshot.snapshot(socket, library, timeout)
    except snapshot.ConnectFailed as exc:
        raise CompileError([error(
            "E1712", str(exc), whole_file(socket),
            notes=["QEMU serves one QMP client per socket at a time"],
            help="start QEMU with `-qmp unix:PATH,server=on,wait=off` and give that PATH")
        ]) from None
    return extractor.build(snap, library)
