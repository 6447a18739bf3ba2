"""One diagnostic type, one exception carrying them, and two renderers (text, JSON).

Stages collect every problem they find, then raise `CompileError` with all of them; the CLI
renders it. Codes are stable: `codes.md` lists them and tests pin each one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from compiler.base.source import Span

Severity = Literal["error", "warning"]


@attrs.frozen
class Label:
    """A secondary place that explains the primary one (e.g. the previous definition)."""

    span: Span
    message: str


@attrs.frozen
class Diagnostic:
    severity: Severity
    code: str
    message: str
    span: Span
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.path, self.span.start, self.span.end, self.code)


def error(
    code: str,
    message: str,
    span: Span,
    *,
    labels: Iterable[Label] = (),
    notes: Iterable[str] = (),
    help: str | None = None,
) -> Diagnostic:
    return Diagnostic("error", code, message, span, tuple(labels), tuple(notes), help)


class CompileError(Exception):
    """Raised by a stage with every problem it found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        super().__init__(f"{len(diagnostics)} problem(s)")
        self.diagnostics = tuple(diagnostics)


class Collector:
    """Gathers diagnostics during a stage; `check()` raises if any error was seen."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()  # the same problem reported twice is one

    def add(self, diagnostic: Diagnostic) -> None:
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
            self.items.append(diagnostic)

    def error(self, code: str, message: str, span: Span, *, labels: Iterable[Label] = (),
              notes: Iterable[str] = (), help: str | None = None) -> None:
        """Add an error diagnostic (`error`): the keywords are checked, not passed on blind."""
        self.add(error(code, message, span, labels=labels, notes=notes, help=help))

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            self.add(d)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def check(self) -> None:
        if self.has_errors:
            raise CompileError(sorted(self.items, key=Diagnostic.sort_key))


def quote_list(names: Iterable[str], limit: int = 12) -> str:
    """`a`, `b` and `c` — for 'expected one of' notes."""
    items = [f"`{n}`" for n in sorted(set(names))]
    if len(items) > limit:
        items = [*items[:limit], f"… ({len(items) - limit} more)"]
    return ", ".join(items) if items else "(none)"


# The most source columns a caret block shows: a longer line is cut to a window around the
# caret, so that a one-line file with many problems cannot print its whole text each time.
WINDOW = 200
# The most diagnostics `render_text` prints; the rest are counted.
MAX_SHOWN = 200


def _caret_block(span: Span) -> list[str]:
    if not span.source.text:
        return []
    line = span.line
    text = span.source.line_text(line)
    width = len(str(line))
    start = span.col - 1
    end = span.end_col - 1 if span.end_line == line else len(text)
    if len(text) > WINDOW:
        first = max(0, min(start - WINDOW // 4, len(text) - WINDOW))
        shown = text[first:first + WINDOW]
        text = ("…" if first else "") + shown + ("…" if first + WINDOW < len(text) else "")
        offset = first - (1 if first else 0)
        start, end = start - offset, min(end - offset, len(text))
    carets = "^" * max(1, end - start)
    return [
        f"{' ' * width} |",
        f"{line} | {text}",
        f"{' ' * width} | {' ' * start}{carets}",
    ]


def render_text(diagnostics: Iterable[Diagnostic], limit: int = MAX_SHOWN) -> str:
    """The CONTRACT format: `PATH:LINE:COL: error[CODE]: MESSAGE`, then context lines; past
    `limit` diagnostics, one line counts the rest."""
    out: list[str] = []
    shown = 0
    rest = 0
    for d in diagnostics:
        if shown == limit:
            rest += 1
            continue
        shown += 1
        out.append(f"{d.span}: {d.severity}[{d.code}]: {d.message}")
        out.extend(_caret_block(d.span))
        for label in d.labels:
            out.append(f"{label.span}: note: {label.message}")
            out.extend(_caret_block(label.span))
        out.extend(f"  = note: {n}" for n in d.notes)
        if d.help:
            out.append(f"  = help: {d.help}")
    if rest:
        out.append(f"… and {rest} more diagnostic{'s' if rest > 1 else ''} (the first {limit} "
                   "are shown; `--format json` lists every one)")
    return "\n".join(out) + ("\n" if out else "")


def to_json_objects(diagnostics: Iterable[Diagnostic]) -> list[dict[str, object]]:
    result: list[dict[str, object]] = []
    for d in diagnostics:
        obj: dict[str, object] = {
            "path": d.span.path,
            "line": d.span.line,
            "col": d.span.col,
            "end_line": d.span.end_line,
            "end_col": d.span.end_col,
            "severity": d.severity,
            "code": d.code,
            "message": d.message,
        }
        if d.labels:
            obj["labels"] = [
                {"path": lb.span.path, "line": lb.span.line, "col": lb.span.col,
                 "message": lb.message}
                for lb in d.labels
            ]
        if d.notes:
            obj["notes"] = list(d.notes)
        if d.help:
            obj["help"] = d.help
        result.append(obj)
    return result


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps(to_json_objects(diagnostics), indent=2) + "\n"
