"""What every part of resolving shares: the diagnostics, the declarations by name, the bus
kinds and device types resolved so far, and the two helpers every part reports with
(`unknown`, `single`). Resolving itself is the other modules' job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

import attrs

from compiler.base.diagnostics import Collector, Label, quote_list
from compiler.base.source import Span
from compiler.lang import ast, model


class _Statement(Protocol):
    @property
    def span(self) -> Span: ...


S = TypeVar("S", bound=_Statement)


@attrs.frozen
class Scope:
    """The declarations by name and what is resolved so far (`resolve` derives a new scope
    with `attrs.evolve` after bus kinds, and after each pass over device types).

    `broken_props` is the one thing written as resolving goes: per device type, the
    properties declared with a problem already reported, so that setting one stays quiet.
    Every scope derived from one shares it."""

    diags: Collector
    bus_decls: Mapping[str, ast.BusDecl]
    device_decls: Mapping[str, ast.DeviceDecl]
    buses: Mapping[str, model.BusKind] = attrs.field(factory=dict)
    devices: Mapping[str, model.DeviceType] = attrs.field(factory=dict)
    broken_props: dict[str, set[str]] = attrs.field(factory=dict)

    def unknown(self, code: str, what: str, name: ast.Name, known: Iterable[str],
                of: str = "", empty: str = "there is none to choose from") -> None:
        """unknown WHAT `NAME` [OF], listing what is allowed there (or `empty` if nothing)."""
        known = list(known)
        note = f"expected one of {quote_list(known)}" if known else empty
        self.diags.error(code, f"unknown {what} `{name.text}`{' ' + of if of else ''}",
                         name.span, notes=[note])

    def single(self, body: Iterable[object], cls: type[S], keyword: str) -> S | None:
        """The one statement of type `cls` in `body`, or None; each repetition is reported."""
        found = [s for s in body if isinstance(s, cls)]
        for extra in found[1:]:
            self.diags.error("E0402", f"`{keyword}` is given twice", extra.span,
                             labels=[Label(found[0].span, "first given here")])
        return found[0] if found else None


class Part:
    """One responsibility of resolving, reading the shared `Scope`."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.diags = scope.diags
        self.unknown = scope.unknown
        self.single = scope.single

    def plain_hotplug(self, body: Iterable[object], where: str) -> ast.Hotplug | None:
        """The one `hotplug` of a bus kind or a device type: a `when` there is E0171 (only a
        machine's bus block depends on the machine's options)."""
        found = self.scope.single(body, ast.Hotplug, "hotplug")
        if found is not None and found.condition is not None:
            self.diags.error("E0171", f"`hotplug … when` is not supported in {where}",
                             found.condition.span,
                             notes=["whether a bus takes hot-plugged devices can depend on "
                                    "options only in a machine, where the options are"],
                             help="move the condition into the machine's `bus` block of the "
                             "device that provides the bus")
        return found
