"""`mschema extract`'s warnings: what QEMU does not reveal or the blob cannot say, and what
`address`, `validate` and `compare` find in the result. Every problem of the extract is a
warning (only a missing schema, E1713, stops it); without a place of its own it points at
the top of the `info qtree` text.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from compiler.base.diagnostics import Collector, Diagnostic, error
from compiler.base.source import Span


class Warnings:
    def __init__(self, top: Span) -> None:
        self.top = top
        self.collected = Collector()

    def warn(self, code: str, message: str, span: Span | None = None, *,
             notes: Iterable[str] = (), help: str | None = None) -> None:
        self.collected.add(attrs.evolve(error(code, message, span or self.top, notes=notes,
                                              help=help), severity="warning"))

    def add_as_warnings(self, diagnostics: Iterable[Diagnostic]) -> None:
        """A stage's diagnostics, errors included: the blob would not compile as it is."""
        for d in diagnostics:
            self.collected.add(attrs.evolve(d, severity="warning"))

    def in_order(self) -> tuple[Diagnostic, ...]:
        return tuple(sorted(self.collected.items, key=Diagnostic.sort_key))
