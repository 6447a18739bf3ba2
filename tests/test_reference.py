"""`mschema docs` and `mschema explain`: the committed reference (docs/reference/) is what
the shipped schemas, stdlib and diagnostics registry generate today
(`--update-goldens` rewrites it); every code has its page; option effects are computed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from corpus_support import codes_of

from compiler.present import reference

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / reference.HOME


def mschema(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_committed_reference_is_generated(update_goldens: bool) -> None:
    if update_goldens:
        for stale in reference.stale(COMMITTED):
            (COMMITTED / stale).unlink(missing_ok=True)
        reference.write(COMMITTED)
    assert list(reference.stale(COMMITTED)) == [], (
        "docs/reference/ is out of date: python3 -m pytest tests/test_reference.py "
        "--update-goldens")


def test_docs_command_writes_the_same_from_anywhere(tmp_path: Path) -> None:
    out = tmp_path / "ref"
    result = mschema("docs", "-o", str(out), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.md"))
    assert written == sorted(p.relative_to(COMMITTED).as_posix()
                             for p in COMMITTED.rglob("*.md"))
    for rel in written:
        assert (out / rel).read_text() == (COMMITTED / rel).read_text(), rel


def test_every_code_of_the_registry_has_a_page() -> None:
    table = (ROOT / "docs/diagnostics.md").read_text()
    codes = [c.code for c in reference.codes()]
    assert codes and len(codes) == len(set(codes))
    assert all(f"| `{c}` |" in table for c in codes)
    assert table.count("\n| `E") == len(codes)
    page = (COMMITTED / "diagnostics.md").read_text()
    assert all(f"\n## {c}\n" in page for c in codes)


def test_explain_prints_one_code() -> None:
    result = mschema("explain", "e0203")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# E0203\n")
    assert "unknown option" in result.stdout
    assert "tests/lang/bad/unknown-option.machine" in result.stdout
    assert "error[E0203]" in result.stdout      # the case's expected output


def test_explain_an_unknown_code() -> None:
    result = mschema("explain", "E7777")
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E2203"])
    assert result.stdout == ""


def test_option_effects_are_computed() -> None:
    page = (COMMITTED / "machines/pc-q35-7.2.md").read_text()
    assert "| `sata` | `true` or `false` | `on` | `off`: removes `sata` (ich9-ahci) on " \
           "`pcie.0` at 1f.2 |" in page
    assert "`usb` | `true` or `false` | `off` | `on`: adds `uhci1`" in page
    pseries = (COMMITTED / "machines/pseries-7.2.md").read_text()
    assert "## `implement`" in pseries and "## `check` rules" in pseries


def test_html_pages_with_pictures(tmp_path: Path) -> None:
    """`docs --html`: a page per machine version, its picture inline, every device of the
    machine in it, the page clean in headless Chromium."""
    from qemu_support import require_binary

    require_binary("dot")
    chromium = require_binary("chromium")
    out = tmp_path / "ref"
    result = mschema("docs", "-o", str(out), "--html")
    assert result.returncode == 0, result.stderr
    machines = sorted(p.stem for p in (COMMITTED / "machines").glob("*.md"))
    assert sorted(p.stem for p in (out / "machines").glob("*.html")) == machines
    page = out / "machines/pseries-7.2.html"
    text = page.read_text()
    assert "<svg" in text and 'data-dev="nvram"' in text
    assert not list(COMMITTED.rglob("*.html"))      # pictures are not committed
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
                           "--v=0", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0
    assert [line for line in done.stderr.splitlines() if ":CONSOLE" in line] == []
    assert 'data-dev="xive"' in done.stdout and 'id="dev-xive"' in done.stdout
