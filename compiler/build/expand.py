"""Schema + option values (+ loose spec) → the device tree, unaddressed where the spec left
addresses open. Ends before address assignment: `address` fills in what is missing.

Precedence, highest first: user spec > rule-forced > schema default > stdlib default.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import attrs

from compiler.base import notations
from compiler.base.diagnostics import Collector, quote_list
from compiler.base.source import SourceFile, Span
from compiler.build import tree
from compiler.lang import expr, model


def option_values(schema: model.MachineSchema, given: Mapping[str, tuple[str, Span]],
                  diags: Collector, key_spans: Mapping[str, Span] | None = None
                  ) -> dict[str, expr.Scalar]:
    """Schema defaults overridden by the user's `K=V` strings, each typed and checked.
    `given` holds each value's text and span; an unknown option is reported at its key's
    span in `key_spans` where there is one (a spec's `[options]`), else at the value's."""
    values: dict[str, expr.Scalar] = {n: o.default for n, o in schema.options.items()}
    for name, (text, span) in given.items():
        spec = schema.options.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(schema.options), n=1)
            diags.error("E0203", f"`{schema.name}` has no option `{name}`",
                        (key_spans or {}).get(name, span),
                        notes=[f"its options are {quote_list(schema.options, 20)}"],
                        help=f"did you mean `{close[0]}`?" if close else None)
            continue
        value = spec.type.parse(text)
        if value is None:
            diags.error("E0301", f"option `{name}` must be {spec.type.describe()}, "
                        f"not `{text}`", span)
            continue
        values[name] = value
    return values


def command_line_options(pairs: list[str], diags: Collector) -> dict[str, tuple[str, Span]]:
    """`--option K=V` arguments, each with a span in a pseudo-file `<command line>`."""
    text = " ".join(pairs)
    source = SourceFile.from_text("<command line>", text)
    result: dict[str, tuple[str, Span]] = {}
    offset = 0
    for pair in pairs:
        span = source.span(offset, offset + len(pair))
        offset += len(pair) + 1
        key, sep, value = pair.partition("=")
        if not sep or not key:
            diags.error("E0301", f"`{pair}` is not `KEY=VALUE`", span,
                        help="write options as `--option sata=off`")
            continue
        result[key] = (value, span)
    return result


def machine_devices(schema: model.MachineSchema, env: expr.Env) -> tuple[tree.Device, ...]:
    """The devices QEMU creates by itself under these options (origin `machine`)."""
    return tuple(_instances(schema.devices, env, "", "none", f"created by `{schema.name}`"))


def _instances(instances: tuple[model.Instance, ...], env: expr.Env, prefix: str,
               notation: str, reason: str) -> list[tree.Device]:
    result = []
    for inst in instances:
        if not expr.holds(inst.condition, env):
            continue
        result.append(_device(inst, env, prefix, notation, reason))
    return result


def _device(inst: model.Instance, env: expr.Env, prefix: str, notation: str,
            reason: str) -> tree.Device:
    device_id = f"{prefix}.{inst.id}" if prefix else inst.id
    buses = tuple(
        tree.Bus(b.name, b.kind, b.address.notation, tuple(
            _instances(b.children, env, device_id, b.address.notation, reason)
            + _instances(b.devices, env, "", b.address.notation, reason)),
                 hotplug=_hotplug(b, env))
        for b in inst.buses)
    addr = None if inst.address is None else notations.Address(notation, inst.address)
    props = (*inst.props, *((name, expr.evaluate(e, env)) for name, e in inst.computed))
    return tree.Device(device_id, inst.type, "machine", addr, tuple(sorted(props)), (),
                       buses, tree.Provenance(reason, inst.span))


def _hotplug(b: model.BusBinding, env: expr.Env) -> bool | None:
    """The machine's `hotplug V when COND` on bus `b` under these options: V where COND
    holds, else the opposite; None where the machine says nothing."""
    if b.hotplug is None:
        return None
    value, condition = b.hotplug
    return value if expr.holds(condition, env) else not value


def machine_info(schema: model.MachineSchema, options: Mapping[str, expr.Scalar],
                 release: str = "") -> tree.MachineInfo:
    """`release`: the QEMU release a spec or blob targets ("" : the default rule,
    `MachineSchema.release_for`)."""
    return tree.MachineInfo(schema.family, schema.qemu_machine, schema.arch, schema.binary,
                            tuple(sorted(options.items())),
                            tuple(sorted((n, o.default) for n, o in schema.options.items())),
                            "" if (chosen := schema.release_for(release)) == model.DEFAULT_RELEASE
                            else chosen)


def show(schema: model.MachineSchema, options: Mapping[str, expr.Scalar]) -> tree.Machine:
    env = expr.Env(options)
    root = tree.Bus("main-system-bus", "system", "none", machine_devices(schema, env))
    return tree.Machine(machine_info(schema, options), apply_compat(schema, root))


def apply_compat(schema: model.MachineSchema, bus: tree.Bus) -> tree.Bus:
    """The tree with the machine's `compat` props in every device of their type that does
    not set them already: QEMU applies them from the machine type before the board code and
    `-device` set theirs, so an explicit value wins (a schema instance's, the spec's, a
    blob's). Guest-visible facts of this version, they are recorded in the blob."""
    if not schema.compat:
        return bus
    by_type: dict[str, dict[str, tree.PropValue]] = {}
    for c in schema.compat:
        by_type.setdefault(c.device, {})[c.prop] = c.value
    return _with_compat(bus, by_type)


def apply_globals(globals_: tuple[tuple[str, tree.PropValue], ...], bus: tree.Bus
                  ) -> tree.Bus:
    """The tree with the spec's `-global`s in every device of their type that does not set
    them already. QEMU applies them after the machine type's compat props and before the
    board code's and `-device`'s own values: so before `apply_compat`, with the same rule.
    A global of the prop that holds a machine device's address on its bus (sPAPR VIO's
    `reg`: `-global spapr-nvram.reg=0x4000`) moves that device there (`moved`)."""
    if not globals_:
        return bus
    by_type: dict[str, dict[str, tree.PropValue]] = {}
    for key, value in globals_:
        type_name, _, prop = key.rpartition(".")
        by_type.setdefault(type_name, {})[prop] = value
    return moved(_with_compat(bus, by_type), by_type)


def moved(bus: tree.Bus, by_type: Mapping[str, Mapping[str, tree.PropValue]]) -> tree.Bus:
    """Machine devices whose type has a global for the one prop its bus's notation takes
    the address from (`qemu_props`), at that address: the board code leaves it unset, so
    QEMU places the device where the global says."""
    rules = notations.get(bus.notation)
    devices = []
    for d in bus.devices:
        if d.origin == "machine" and len(rules.qemu_props) == 1:
            value = by_type.get(d.type, {}).get(rules.qemu_props[0])
            text = rules.from_qemu([value]) if isinstance(value, int) else None
            if text is not None:
                d = attrs.evolve(d, addr=notations.Address.parse(bus.notation, text))
        devices.append(attrs.evolve(d, buses=tuple(moved(b, by_type) for b in d.buses)))
    return attrs.evolve(bus, devices=tuple(devices))


def _with_compat(bus: tree.Bus, by_type: Mapping[str, Mapping[str, tree.PropValue]]
                 ) -> tree.Bus:
    devices = []
    for d in bus.devices:
        props = d.props
        extra = {k: v for k, v in by_type.get(d.type, {}).items() if k not in dict(props)}
        if extra:
            props = tuple(sorted((*props, *extra.items())))
        buses = tuple(_with_compat(b, by_type) for b in d.buses)
        devices.append(attrs.evolve(d, props=props, buses=buses))
    return attrs.evolve(bus, devices=tuple(devices))
