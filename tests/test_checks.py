"""The check table (compiler/base/checks.py) on hand-built tables: run order, a failed
prerequisite keeping its dependants quiet, and tables refused when they are built."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.base import checks
from compiler.base.diagnostics import Collector
from compiler.base.source import SourceFile
from compiler.build import validate
from compiler.lang import schema_checks

SPAN = SourceFile.from_text("<test>", "x").span(0, 1)

# The subject of the toy tables: the names of the checks that find something.
Broken = frozenset[str]


def table(*spec: tuple[str, tuple[str, ...]]) -> tuple[checks.Registry[Broken], list[str]]:
    """A sealed table of checks named in `spec`, each with its prerequisites; a check
    reports an error when its name is in the subject. The list records what ran."""
    ran: list[str] = []
    registry: checks.Registry[Broken] = checks.Registry("toy")
    for n, (name, needs) in enumerate(spec):
        def run(broken: Broken, diags: Collector, name: str = name,
                code: str = f"E99{n:02}") -> None:
            ran.append(name)
            if name in broken:
                diags.error(code, f"`{name}` is broken", SPAN)
        registry.check(name, f"E99{n:02}", name, needs)(run)
    registry.seal()
    return registry, ran


def run(registry: checks.Registry[Broken], broken: set[str]) -> list[str]:
    diags = Collector()
    registry.run(frozenset(broken), diags)
    return [d.message for d in diags.items]


def test_a_failed_prerequisite_keeps_its_dependants_quiet() -> None:
    registry, ran = table(("types", ()), ("addresses", ("types",)),
                          ("slots", ("addresses",)), ("ids", ()))
    assert run(registry, {"types", "addresses", "slots", "ids"}) == [
        "`types` is broken", "`ids` is broken"]
    assert ran == ["types", "ids"]  # and dependants of a skipped check are skipped too
    ran.clear()
    assert run(registry, {"addresses", "slots"}) == ["`addresses` is broken"]
    assert ran == ["types", "addresses", "ids"]
    ran.clear()
    assert run(registry, {"slots"}) == ["`slots` is broken"]
    assert ran == ["types", "addresses", "slots", "ids"]


def test_a_check_runs_after_what_it_needs_even_when_written_before() -> None:
    registry, _ran = table(("late", ("early",)), ("other", ()), ("early", ()))
    assert [c.name for c in registry.checks] == ["other", "early", "late"]
    assert run(registry, {"early", "late"}) == ["`early` is broken"]
    assert [(r.name, r.codes, r.needs) for r in registry.rows()] == [
        ("other", ("E9901",), ()), ("early", ("E9902",), ()), ("late", ("E9900",), ("early",))]


def test_an_unknown_prerequisite_is_refused() -> None:
    with pytest.raises(checks.TableError, match="`a` needs `nothing`, which is not a check"):
        table(("a", ("nothing",)))


@pytest.mark.parametrize("spec", [
    [("a", ("a",))],
    [("a", ("b",)), ("b", ("a",))],
    [("a", ("c",)), ("b", ("a",)), ("c", ("b",))],
])
def test_a_cycle_is_refused_when_it_closes(spec: list[tuple[str, tuple[str, ...]]]) -> None:
    with pytest.raises(checks.TableError, match="prerequisites form a cycle"):
        table(*spec)


def test_a_name_or_a_code_used_twice_is_refused() -> None:
    with pytest.raises(checks.TableError, match="two checks are named `a`"):
        table(("a", ()), ("a", ()))
    registry: checks.Registry[Broken] = checks.Registry("toy")
    registry.check("a", "E9900", "")(lambda broken, diags: None)
    with pytest.raises(checks.TableError, match="one code per rule"):
        registry.check("b", ["E9901", "E9900"], "")(lambda broken, diags: None)


def test_a_sealed_table_takes_no_more_checks() -> None:
    registry, _ran = table(("a", ()))
    with pytest.raises(checks.TableError, match="sealed"):
        registry.check("b", "E9999", "")(lambda broken, diags: None)


@pytest.mark.parametrize("registry", [schema_checks.TABLE, validate.TABLE],
                         ids=["schema", "tree"])
def test_the_shipped_tables_are_sealed_and_list_every_check(
        registry: checks.Registry[object]) -> None:
    rows = registry.rows()
    assert rows and all(r.name and r.codes and r.summary for r in rows)
    with pytest.raises(checks.TableError, match="sealed"):
        registry.check("late", "E9999", "")(lambda subject, diags: None)


def test_every_check_of_the_tree_table_is_documented_with_its_rule() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "diagnostics.md").read_text(
        encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in docs.splitlines()
            if line.startswith("| `E")}
    for check in validate.TABLE.rows():
        for code in check.codes:
            assert code in rows, f"{code} ({check.name}) has no row in docs/diagnostics.md"
            assert f"rule `{check.name}`" in rows[code], f"{code}'s row does not name its rule"
    for check in schema_checks.TABLE.rows():
        assert all(code in rows for code in check.codes), check
