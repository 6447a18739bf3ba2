"""What a hostile or careless input can do to the CLI's output: bounded diagnostics, and never
a traceback (issue 13). Real `python -m compiler` processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, code: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m",
                                                                 "compiler", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def test_an_internal_error_is_e9999_with_exit_3_not_a_traceback() -> None:
    # a genuine bug stands in: show's stage raises something no stage expects
    done = run(code="import sys; from compiler import cli, driver\n"
                    "def broken(*args): raise KeyError('devices')\n"
                    "driver.show = broken\n"
                    "sys.exit(cli.main(['show', 'pc-q35']))")
    assert done.returncode == 3
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == "mschema: error[E9999]: internal error: KeyError: 'devices'"
    assert lines[1].startswith("  = note: raised at <string>:")
    assert lines[2].startswith("  = help: this is a bug in mschema, not a problem with your "
                               "input")
    assert "Traceback" not in done.stderr


def test_mschema_debug_shows_the_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from compiler import cli, driver\n"
         "def broken(*args): raise KeyError('devices')\n"
         "driver.show = broken\nsys.exit(cli.main(['show', 'pc-q35']))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**__import__("os").environ, "MSCHEMA_DEBUG": "1"})
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "KeyError: 'devices'" in done.stderr


def test_many_diagnostics_print_the_first_200_and_count_the_rest(tmp_path: Path) -> None:
    spec = {"machine": "pc-q35", **{f"unknown{i:03}": 1 for i in range(250)}}
    path = tmp_path / "many.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    done = run("compile", str(path), "--emit", "json")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count(": error[E") == 200
    assert done.stderr.endswith("… and 50 more diagnostics (the first 200 are shown; "
                                "`--format json` lists every one)\n")
    every = run("compile", str(path), "--emit", "json", "--format", "json")
    assert len(json.loads(every.stderr)) == 250


def test_a_long_line_shows_a_window_around_the_caret(tmp_path: Path) -> None:
    # a one-line spec: each caret block shows at most 200 columns of it, around the problem
    spec = {"machine": "pc-q35", "name": "x" * 5000, "bogus": 1}
    path = tmp_path / "long.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    done = run("compile", str(path), "--emit", "json")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert max(len(line) for line in lines) <= 210, max(len(line) for line in lines)
    source, carets = (next(line for line in lines if line.startswith("1 | ")),
                      next(line for line in lines if "^" in line))
    assert source.startswith("1 | …")
    assert source[carets.index("^"):].startswith('"bogus"')
