"""The real-world corpus (`tests/realworld/`, README "Real-world corpus"): QEMU command lines
from public projects' test data, each started, extracted, compiled and started again, QEMU's
two views compared (tests/realworld_support.py). `tests/realworld/EXPECTED` says per case
`rebuilds` or `fails: REASON`, and each case must do exactly that: a case listed as failing
that now rebuilds fails too (a strict xfail), so the list only shrinks by being rewritten
(`--update-goldens`, which also rewrites the README's list of failing cases).
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu_support import require_binary
from realworld_support import (
    CORPUS,
    EXPECTED,
    ROOT,
    Outcome,
    cases,
    read_expected,
    run_argv,
    run_in_scratch,
    view,
    view_differences,
    write_expected,
)

README = ROOT / "README.md"
BEGIN = "<!-- realworld-failures: generated from tests/realworld/EXPECTED (--update-goldens) -->"
END = "<!-- /realworld-failures -->"
CASES = cases()
WORKERS = 2


def _selected(session: pytest.Session) -> list[str]:
    return [str(item.callspec.params["case"]) for item in session.items
            if isinstance(item, pytest.Function) and item.originalname == "test_case"
            and item.module is not None and item.module.__name__ == __name__]


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, update_goldens: bool) -> Iterator[dict[str, Outcome]]:
    """Every selected case, run two at a time (each mostly waits for QEMU and mschema); with
    `--update-goldens`, EXPECTED and the README's list are rewritten from them afterwards."""
    require_binary("qemu-system-x86_64")
    require_binary("qemu-system-ppc64")
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        found = dict(pool.map(run_in_scratch, _selected(request.session)))
    yield found
    if update_goldens:
        old = read_expected() if EXPECTED.exists() else {}
        new = {c: found[c].line() if c in found else old.get(c, "fails: not run yet")
               for c in CASES}
        write_expected(new)
        README.write_text(with_failures(README.read_text(encoding="utf-8"), new),
                          encoding="utf-8")


def test_corpus_is_large_and_sourced() -> None:
    """At least 60 cases, each with its row in SOURCES.md (source, licence, changes)."""
    assert len(CASES) >= 60
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \|", sources, re.MULTILINE)
    assert sorted(case for case, _, _ in rows) == CASES
    assert all(source.strip() and licence.strip() for _, source, licence in rows)


def test_expected_lists_every_case(update_goldens: bool) -> None:
    if update_goldens:
        pytest.skip("EXPECTED is being rewritten")
    assert sorted(read_expected()) == CASES


@pytest.mark.parametrize("case", CASES)
def test_case(case: str, outcomes: dict[str, Outcome], update_goldens: bool) -> None:
    outcome = outcomes[case]
    if update_goldens:
        return
    expected = read_expected().get(case)
    details = "\n".join(f"  {d}" for d in outcome.details[:20])
    assert outcome.line() == expected, (
        f"{case}: expected `{expected}`, got `{outcome.line()}`\n{details}\n(if that is "
        "progress, rewrite tests/realworld/EXPECTED with --update-goldens)")


def failures_text(expected: dict[str, str]) -> str:
    """The README's list: each reason once, with the cases that fail for it."""
    by_reason: dict[str, list[str]] = {}
    for case, outcome in sorted(expected.items()):
        if outcome.startswith("fails: "):
            by_reason.setdefault(outcome.removeprefix("fails: "), []).append(case)
    rebuilt = sum(1 for o in expected.values() if o == "rebuilds")
    lines = [f"{rebuilt} of {len(expected)} real-world cases rebuild into the same machine "
             "(`tests/realworld/EXPECTED`);", "the others fail, for these reasons (the first "
             "thing each lacks; how many cases):", ""]
    for reason, names in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"- {reason.replace('|', '/')} ({len(names)}): " +
                     ", ".join(f"`{n}`" for n in names))
    return "\n".join(lines)


def with_failures(readme: str, expected: dict[str, str]) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    assert head and tail, f"README has no {BEGIN} … {END} block"
    return f"{head}{BEGIN}\n{failures_text(expected)}\n{END}{tail}"


def test_readme_lists_the_failures(update_goldens: bool) -> None:
    if update_goldens:
        pytest.skip("the README is being rewritten")
    readme = README.read_text(encoding="utf-8")
    assert with_failures(readme, read_expected()) == readme, (
        "the README's list of failing real-world cases is not EXPECTED's: "
        "run with --update-goldens")


def test_comparison_is_not_vacuous(tmp_path: Path) -> None:
    """Two QEMUs that differ in one device's address, one device's prop and one machine
    setting: each is a difference."""
    from realworld_support import _started

    binary = require_binary("qemu-system-x86_64")
    base = [binary, "-machine", "pc-q35-7.2", "-nodefaults", "-accel", "tcg"]
    with _started([*base, "-boot", "strict=on", "-device", "virtio-rng-pci,addr=05.0",
                   "-device", "e1000e,addr=06.0,mac=52:54:00:00:00:01"], tmp_path) as sock:
        a = view(sock)
    with _started([*base, "-device", "virtio-rng-pci,addr=07.0",
                   "-device", "e1000e,addr=06.0,mac=52:54:00:00:00:02"], tmp_path) as sock:
        b = view(sock)
    found = view_differences(a, b)
    assert any("virtio-rng-pci[addr=05.0] is not rebuilt" in f for f in found), found
    assert any("virtio-rng-pci[addr=07.0] is rebuilt but was not there" in f for f in found)
    assert any("e1000e[addr=06.0]: `mac`" in f for f in found), found
    assert any(f.startswith("machine /machine boot") for f in found), found
    assert view_differences(a, a) == []


@pytest.mark.parametrize("golden", ["q35-rng", "pseries-options"])
def test_what_mschema_compiled_rebuilds(golden: str, tmp_path: Path) -> None:
    """The other side: a machine mschema compiled itself (a golden argv) goes through the
    same start, extract, compile, start and compare, and rebuilds."""
    words = (ROOT / "tests" / "vm" / f"{golden}.argv").read_text(encoding="utf-8").split("\n")
    argv = [require_binary(words[0].rsplit("/", 1)[-1]), *filter(None, words[1:]), "-accel",
            "tcg"]
    outcome = run_argv(argv, tmp_path)
    assert outcome.line() == "rebuilds", outcome.details
