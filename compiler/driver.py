"""The pipeline, as a list of stage calls. Each public function is one CLI command's work,
returning data (never printing); problems come out as `CompileError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from compiler.base.diagnostics import Collector, Diagnostic, Label
from compiler.base.source import SourceFile
from compiler.build import expand, tree
from compiler.lang import model, resolve, schema_checks
from compiler.spec.policy import DEFAULT, Policy

if TYPE_CHECKING:
    from compiler.build import confine
    from compiler.ops import hotplug as hotplug_
    from compiler.qemu import release_diff
    from compiler.qemu import verify as verify_
    from compiler.qemu.extract import build as extract_
    from compiler.spec import loose as loose_


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
    if not diags.has_errors:
        from compiler.ops import fdt_lint

        # every machine of the files asked about (all shipped ones by default): its device
        # tree under each option value lint can enumerate, and with its spec's kinds
        asked = {p.resolve() for p in paths} if paths else set(shipped_files)
        fdt_lint.check([m for m in library.machines.values()
                        if Path(m.span.source.path).resolve() in asked], library,
                       compile_loose, diags)
    diags.check()
    cache.record_lint_clean(paths, modules, [*shipped_files, *resolve.use_targets(modules)],
                            shipped, cache.answers(resolve.shipped_questions()))
    return library


def find_machine(library: model.Library, name: str, diags: Collector) -> model.MachineSchema:
    """A machine named on the command line; raises E0204 if there is none."""
    source = SourceFile.from_text("<command line>", name)
    return library.machine_or_error(name, source.span(0, len(name)), diags)


def show(machine: str, option_pairs: Sequence[str]) -> tree.Machine:
    """What `machine` creates by itself under these options."""
    diags = Collector()
    library = resolve.load_library()
    schema = find_machine(library, machine, diags)
    given = expand.command_line_options(list(option_pairs), diags)
    options = expand.option_values(schema, given, diags)
    diags.check()
    return expand.show(schema, options)


def load_policy(path: Path | None) -> Policy:
    """`--policy FILE`, checked against the library; the built-in default without one."""
    if path is None:
        return DEFAULT
    from compiler.spec import policy

    return policy.load(path, resolve.load_library())


def compile_input(path: Path, policy: Policy = DEFAULT) -> tree.Machine:
    """A loose spec, or a precise blob (a `.json` with a `format`), → the precise machine,
    held to `policy`."""
    blob = _read_blob(path) if path.suffix == ".json" else None
    return compile_spec(path, policy) if blob is None else compile_blob(*blob, policy=policy)


def confined(machine: tree.Machine, policy: Policy, places: confine.Places) -> tree.Machine:
    """`machine`, once it keeps to `policy` (else every violation, E2010–E2021)."""
    from compiler.build import confine

    diags = Collector()
    confine.check(machine, policy, places, diags)
    diags.check()
    return machine


def _read_blob(path: Path) -> tuple[SourceFile, dict[str, object]] | None:
    """The file and its JSON if it is a precise blob; None for a loose spec (whose loader
    reports unreadable JSON with a position)."""
    import json

    from compiler.base import limits
    from compiler.build import precise

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if limits.first_excess(text, "json") is not None:
        return None  # past a limit: the loose loader says where
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not precise.is_blob(data):
        return None
    assert isinstance(data, dict)
    return SourceFile.from_text(str(path), text), data


def compile_blob(source: SourceFile, data: dict[str, object],
                 policy: Policy = DEFAULT) -> tree.Machine:
    """Precise blob → precise machine: load (it must rebuild to itself), validate, hold to
    the policy."""
    from compiler.build import confine, precise, validate

    library = resolve.load_library()
    machine = precise.load(source, data, library)
    diags = Collector()
    validate.validate(machine, library, source.span(0, 0), diags,
                      precise.backend_spans(source, data), precise.option_spans(source, data),
                      precise.prop_spans(source, data), precise.setting_spans(source, data))
    diags.check()
    return confined(machine, policy, confine.blob_places(source, machine))


def compile_spec(path: Path, policy: Policy = DEFAULT) -> tree.Machine:
    """Loose spec → precise machine: load, find the schema, read the machine-wide part and
    check the schema's rules, plan the devices, address them, validate, hold to the
    policy."""
    from compiler.spec import loose

    return compile_loose(loose.load(path), resolve.load_library(), policy)


def compile_loose(spec: loose_.LooseSpec, library: model.Library,
                  policy: Policy = DEFAULT) -> tree.Machine:
    """A loaded loose spec → precise machine (`compile_spec`'s stages after loading)."""
    from compiler.build import allocate, confine, machine_spec, plan, validate

    diags = Collector()
    machine_value = spec.top["machine"]
    target = spec.top.get("qemu")
    release = str(target.value) if target is not None else ""
    schema = library.machine_or_error(str(machine_value.value), machine_value.span, diags,
                                      release or model.DEFAULT_RELEASE)
    if target is not None and not schema.runs_on(release):
        diags.error("E1090", f"`{schema.name}` needs QEMU {schema.since} or newer; the spec "
                    f"targets QEMU {release}", target.span,
                    labels=[Label(schema.span, f"`{schema.name}` is QEMU {schema.since}'s")],
                    help=f'target `qemu = "{schema.since}"`, or name an older version')
        diags.check()
    schema = machine_spec.placement_style(spec, schema, diags)
    whole = machine_spec.machine_spec(spec, schema, diags)
    schema = schema.placed_under(whole.options)  # its `placement when` under these options
    machine_spec.check_rules(schema, spec, whole.env, diags)
    planned = plan.plan(schema, library, spec, diags)
    diags.check()
    root = allocate.assign(schema, library, expand.machine_devices(schema, whole.env), planned,
                          whole.spares, whole.spares_span, diags,
                          spares_required=whole.spares_required)
    diags.check()
    machine = tree.Machine(expand.machine_info(schema, whole.options, release),
                           expand.apply_compat(schema, expand.apply_globals(planned.globals,
                                                                            root)),
                           whole.cpus, whole.memory, tuple(sorted(planned.backends)),
                           whole.name, whole.boot, whole.rtc, whole.uuid, planned.globals,
                           whole.numa)
    validate.validate(machine, library, spec.span, diags,
                      option_spans={k: v.span for k, v in spec.options.items()},
                      setting_spans=machine_spec.setting_spans(spec))
    diags.check()
    return confined(machine, policy, confine.spec_places(spec, machine))


def verify(path: Path, binary: str | None = None, timeout: float = 30.0,
           user_net: bool = False, policy: Policy = DEFAULT) -> verify_.Outcome:
    """Compile `path` (held to `policy`), start QEMU with its argv (paused: `-S`, the guest
    never runs) and compare what QEMU builds with the precise machine; the outcome's
    diagnostics are the differences (none: they agree)."""
    from compiler.qemu import verify as verifier

    machine = compile_input(path, policy)
    library = resolve.load_library()
    binary_span = (SourceFile.from_text("<command line>", binary).span(0, len(binary))
                   if binary else None)
    return verifier.verify(machine, library, verifier.input_start(str(path)), binary=binary,
                           binary_span=binary_span, timeout=timeout, user_net=user_net)


def hotplug(blob: Path, fragment: Path | None, remove: str | None,
            policy: Policy = DEFAULT) -> hotplug_.Change:
    """A hot-plug on a blob (`ops/hotplug.py`); an added device's machine is held to
    `policy`, pointing at the fragment's entries for what it adds."""
    import attrs

    from compiler.build import confine
    from compiler.ops import hotplug as plugger
    from compiler.spec import loose

    if fragment is None:
        return plugger.remove(blob, str(remove))
    change = plugger.add(blob, fragment)
    places = confine.blob_places(loose.read_source(blob), change.new)
    users = confine.backend_users(change.new, places.fallback)
    confined(change.new, policy, attrs.evolve(places, backends={**users, **places.backends}))
    return change


def extract(socket: str, timeout: float = 30.0) -> extract_.Result:
    """The precise machine of a running QEMU, read over its QMP socket, with diagnostics:
    errors for what the blob cannot describe, warnings for notes (`extract/report.py`)."""
    from compiler.qemu.extract import build as extractor
    from compiler.qemu.extract import snapshot

    library = resolve.load_library()
    return extractor.build(snapshot.read(socket, library, timeout), library)


def qemu_diff(machine: str, option_pairs: Sequence[str], binaries: Sequence[str],
              timeout: float = 30.0) -> tuple[list[str], list[release_diff.Difference]]:
    """The machine version built by each of two QEMU binaries, compared: their versions and
    every difference (`qemu/release_diff.py`)."""
    from compiler.emit import argv as argv_emit
    from compiler.qemu import compare, process, release_diff, verify

    library = resolve.load_library()
    shown = show(machine, option_pairs)
    diags = Collector()
    schema = find_machine(library, machine, diags)
    command = argv_emit.argv(shown)
    where = SourceFile.from_text("<command line>", machine).span(0, len(machine))
    dumpdtb = {q.name: q.value for q in schema.quirks}.get("dumpdtb") is True
    built = []
    for binary in binaries:
        found = verify.find_binary(binary, where, shown.info.qemu, given=True)
        if not isinstance(found, str):
            diags.add(found)
            continue
        argv = [found, *command[1:], "-accel", "tcg"]
        try:
            built.append(release_diff.build(argv, compare.bus_info(), dumpdtb, timeout))
        except process.QemuError as exc:
            diags.add(verify.qemu_failed(exc, where, argv))
    diags.check()
    return ([b.version for b in built],
            release_diff.diff(schema, library, shown, built[0], built[1]))


def import_libvirt(path: Path, precise: bool, partial: bool) -> tuple[str, list[Diagnostic]]:
    """`import-libvirt`: domain XML → the loose spec's TOML, or with `precise` the precise
    blob of that spec compiled (libvirt's addresses kept); and the warnings."""
    import tempfile

    from compiler.emit import blob
    from compiler.spec import libvirt_import

    spec = libvirt_import.read(path, precise=precise, partial=partial)
    text = spec.toml()
    if not precise:
        return text, list(spec.diagnostics)
    with tempfile.TemporaryDirectory(prefix="mschema-import-") as tmp:
        imported = Path(tmp) / f"{path.stem}.toml"
        imported.write_text(text, encoding="utf-8")
        machine = compile_spec(imported)
    return blob.blob(machine), list(spec.diagnostics)
