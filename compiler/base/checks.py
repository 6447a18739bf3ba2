"""Checks as a table, as dtc's checks.c: each check is named, carries the codes it reports
and the checks it needs, and runs only when every check it needs ran and reported no
error, so one root cause gives one diagnostic. A stage keeps its own `Registry` (lint's
whole-model rules, the precise-tree rules); this module only holds and orders them.

Checks only read what they are given and report into a `Collector`; they never change
it. A table that names an unknown prerequisite, reuses a name or a code, or closes a
cycle is refused when its module is imported (`Registry.seal`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import attrs

from compiler.base.diagnostics import Collector

S = TypeVar("S")  # what a table's checks read: a library, a precise tree's context, …

Run = Callable[[S, Collector], None]


class TableError(Exception):
    """A check table that cannot be run: a programming error, raised at import."""


@attrs.frozen
class Check(Generic[S]):
    name: str
    codes: tuple[str, ...]
    summary: str
    needs: tuple[str, ...]
    run: Run[S] = attrs.field(eq=False, repr=False)


@attrs.frozen
class Row:
    """One check as documentation sees it: a line of a generated table."""

    name: str
    codes: tuple[str, ...]
    needs: tuple[str, ...]
    summary: str


class Registry(Generic[S]):
    """The checks of one stage. Register with `@registry.check(...)` (a check may name
    prerequisites registered after it), `seal()` at the end of the table, then `run`."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._checks: dict[str, Check[S]] = {}
        self._order: tuple[Check[S], ...] | None = None

    def check(self, name: str, codes: str | Iterable[str], summary: str,
              needs: Iterable[str] = ()) -> Callable[[Run[S]], Run[S]]:
        def register(fn: Run[S]) -> Run[S]:
            self.add(Check(name, (codes,) if isinstance(codes, str) else tuple(codes),
                           summary, tuple(needs), fn))
            return fn
        return register

    def add(self, check: Check[S]) -> None:
        if self._order is not None:
            raise TableError(f"{self.title}: `{check.name}` is added after the table is sealed")
        if check.name in self._checks:
            raise TableError(f"{self.title}: two checks are named `{check.name}`")
        for other in self._checks.values():
            shared = set(other.codes) & set(check.codes)
            if shared:
                raise TableError(f"{self.title}: `{check.name}` and `{other.name}` both report "
                                 f"{', '.join(sorted(shared))}: one code per rule")
        self._checks[check.name] = check
        cycle = self._cycle_through(check.name)
        if cycle:
            del self._checks[check.name]
            raise TableError(f"{self.title}: prerequisites form a cycle: {' → '.join(cycle)}")

    def _cycle_through(self, start: str) -> list[str]:
        """A path `start → … → start` along known prerequisites, or []."""
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            name, path = stack.pop()
            for need in self._checks[name].needs if name in self._checks else ():
                if need == start:
                    return [*path, start]
                if need not in seen:
                    seen.add(need)
                    stack.append((need, [*path, need]))
        return []

    def seal(self) -> None:
        """Refuse unknown prerequisites and fix the run order: registration order, each
        check moved after what it needs."""
        for c in self._checks.values():
            unknown = [n for n in c.needs if n not in self._checks]
            if unknown:
                raise TableError(f"{self.title}: `{c.name}` needs `{unknown[0]}`, which is not "
                                 f"a check (the checks are {', '.join(sorted(self._checks))})")
        order: list[Check[S]] = []
        placed: set[str] = set()
        pending = list(self._checks.values())
        while pending:  # acyclic (refused in `add`), so every pass places one at least
            ready = next(c for c in pending if placed.issuperset(c.needs))
            pending.remove(ready)
            order.append(ready)
            placed.add(ready.name)
        self._order = tuple(order)

    @property
    def checks(self) -> tuple[Check[S], ...]:
        """Every check, in run order."""
        if self._order is None:
            self.seal()
        assert self._order is not None
        return self._order

    def rows(self) -> list[Row]:
        """The table for documentation: name, codes, prerequisites, summary, in run order."""
        return [Row(c.name, c.codes, c.needs, c.summary) for c in self.checks]

    def run(self, subject: S, diags: Collector) -> set[str]:
        """Every check whose prerequisites all passed; returns the names of those that
        failed or were skipped."""
        failed: set[str] = set()
        for c in self.checks:
            if failed.intersection(c.needs):
                failed.add(c.name)  # not run, so not passed: its dependants wait too
                continue
            found = Collector()
            c.run(subject, found)
            if found.has_errors:
                failed.add(c.name)
            diags.extend(found.items)
        return failed
