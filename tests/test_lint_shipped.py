"""`mschema lint` on the shipped schemas and stdlib, through the real CLI: all of them at
once, as `lint` without paths does, and each of them named (in one run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(
    str(p.relative_to(ROOT))
    for p in [*ROOT.glob("schemas/*/*.machine"), *ROOT.glob("stdlib/*.mschema")]
)


def lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compiler", "lint", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_shipped_files_exist() -> None:
    assert "schemas/pc-q35/pc-q35-7.2.machine" in SHIPPED
    assert "schemas/pseries/pseries-7.2.machine" in SHIPPED
    assert {"stdlib/buses.mschema", "stdlib/pc.mschema", "stdlib/spapr.mschema"} <= set(SHIPPED)


def test_lint_all_shipped_is_clean_and_silent() -> None:
    done = lint()
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_lint_all_shipped_json() -> None:
    done = lint("--format", "json")
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


@pytest.fixture(scope="module")
def each_file_linted() -> subprocess.CompletedProcess[str]:
    """One `lint --format json` of every shipped file, each named on the command line (a
    lint reads every shipped file anyway: once is enough for all of them)."""
    return lint("--format", "json", *SHIPPED)


def test_lint_of_every_shipped_file_named_is_clean(
        each_file_linted: subprocess.CompletedProcess[str]) -> None:
    done = each_file_linted
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


@pytest.mark.parametrize("path", SHIPPED)
def test_lint_each_shipped_file(path: str,
                                each_file_linted: subprocess.CompletedProcess[str]) -> None:
    assert path in each_file_linted.args, f"{path} was not linted"
    findings = json.loads(each_file_linted.stdout or "null")
    assert isinstance(findings, list), each_file_linted.stderr
    assert [d for d in findings if d["path"] == path] == []


def test_the_fdt_sweep_is_not_vacuous() -> None:
    """Lint's device-tree sweep (compiler/ops/fdt_lint.py) builds, for every shipped machine,
    a spec holding one device of each `implement` case: it compiles (else the sweep would
    try nothing), and holds more devices than the bare machine."""
    from compiler import driver
    from compiler.build import expand, tree
    from compiler.lang.resolve import load_library
    from compiler.ops import fdt_lint

    library = load_library()
    for m in library.machines.values():
        specs = list(fdt_lint._specs(m))
        built = [fdt_lint._compiled(s, library, driver.compile_loose) for s in specs]
        assert all(b is not None for b in built), (m.name, specs)
        bare = sum(1 for _ in tree.walk(expand.show(m, dict(next(fdt_lint.option_sets(m))))
                                        .root))
        assert all(sum(1 for _ in tree.walk(b.root)) > bare for b in built if b), m.name
