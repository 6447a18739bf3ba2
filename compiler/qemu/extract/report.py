"""`mschema extract`'s diagnostics. The rule: what the blob cannot describe is a drop, an
error unless `--partial` (then a warning, and the blob is written without it); what the
blob does describe but QEMU and the schema disagree on is a note, a warning always.

By code:
- E1714 (a device the blob leaves out), E1716 (a setting, prop or backend QEMU does not
  reveal or the blob cannot say) and E1717 (the blob still differs from `info qtree`) are
  drops; so is what `address` and `validate` find in the result (the blob would not
  compile as it is);
- E1715 (QEMU created a device the schema does not predict, listed as `default`; a device
  renamed because the machine holds its id) is a note.
Only a missing schema (E1713) or no QMP session (E1712) stops the extract. A diagnostic
without a place of its own points at the top of the `info qtree` text.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from compiler.base.diagnostics import Collector, Diagnostic, error
from compiler.base.source import Span

NOTES = frozenset({"E1715"})  # the codes that describe, not drop
PARTIAL_NOTE = "`--partial` writes the blob all the same, without it"


class Warnings:
    def __init__(self, top: Span) -> None:
        self.top = top
        self.collected = Collector()

    def warn(self, code: str, message: str, span: Span | None = None, *,
             notes: Iterable[str] = (), help: str | None = None) -> None:
        """A diagnostic of `code`: a warning for a note, an error for a drop (`NOTES`)."""
        d = error(code, message, span or self.top, notes=notes, help=help)
        self.collected.add(attrs.evolve(d, severity="warning") if code in NOTES else d)

    def add_as_drops(self, diagnostics: Iterable[Diagnostic]) -> None:
        """A stage's diagnostics, warnings included: the blob would not compile as it is."""
        for d in diagnostics:
            self.collected.add(attrs.evolve(d, severity="error"))

    def in_order(self) -> tuple[Diagnostic, ...]:
        return tuple(sorted(self.collected.items, key=Diagnostic.sort_key))


def partial(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """`--partial`: every drop a warning; the blob is written without what they name."""
    return tuple(attrs.evolve(d, severity="warning") for d in diagnostics)


def refused(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Without `--partial`: the drops say how to write the blob all the same."""
    return tuple(attrs.evolve(d, notes=(*d.notes, PARTIAL_NOTE)) if d.severity == "error"
                 else d for d in diagnostics)
