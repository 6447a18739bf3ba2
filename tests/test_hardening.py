"""What a hostile or careless input can do to the CLI's output: bounded diagnostics, and never
a traceback (issue 13). Real `python -m compiler` processes."""

from __future__ import annotations

import json
import re
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
    shown = [line for line in lines if re.match(r"^\s*(\d+ )?\|", line)]  # source, carets
    assert max(len(line) for line in shown) <= 210, max(len(line) for line in shown)
    source, carets = (next(line for line in lines if line.startswith("1 | ")),
                      next(line for line in lines if "^" in line))
    assert source.startswith("1 | …")
    assert source[carets.index("^"):].startswith('"bogus"')


def test_inputs_past_the_limits_are_diagnostics_not_crashes(tmp_path: Path) -> None:
    # each once crashed: tomllib's and json's recursion, Python's 4300-digit int() limit,
    # a dotted key as deep as nested tables
    deep = "[" * 3000 + "]" * 3000
    cases = {
        "deep.toml": f'machine = "pc-q35"\nx = {deep}\n',
        "dotted.toml": 'machine = "pc-q35"\n[options]\n' + ".".join(["a"] * 3000) + " = 1\n",
        "deep.json": f'{{"machine": "pc-q35", "x": {deep}}}',
        "digits.toml": f'machine = "pc-q35"\nmemory = {"9" * 5000}\n',
        "digits.json": f'{{"machine": "pc-q35", "memory": {"9" * 5000}}}',
        "size.toml": f'machine = "pc-q35"\nmemory = "{"9" * 5000}G"\n',
        "blob.json": f'{{"format": "mschema-precise/1", "x": {deep}}}',
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        out = tmp_path / f"{name}.out"
        done = run("compile", str(path), "--emit", "json", "-o", str(out))
        assert done.returncode == 1, (name, done.stderr[-2000:])
        assert done.stderr.startswith(f"{path}:") and "error[E1012]" in done.stderr, name
        assert not out.exists(), name
    fragment = tmp_path / "add.toml"
    fragment.write_text('[[nic]]\nnetwork = "user"\n', encoding="utf-8")
    done = run("hotplug", str(tmp_path / "blob.json"), "--add", str(fragment))
    assert done.returncode == 1 and "error[E1012]" in done.stderr, done.stderr[-2000:]
    done = run("hotplug", str(tmp_path / "missing.json"), "--add", str(fragment))
    assert done.returncode == 1 and "error[E1001]" in done.stderr, done.stderr[-2000:]


def test_a_schema_past_the_limits_is_a_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "deep.machine"
    path.write_text("machine m {\n    check c: " + "not " * 3000 + "true else \"x\"\n}\n",
                    encoding="utf-8")
    done = run("lint", str(path))
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.startswith(f"{path}:2:") and "error[E0104]" in done.stderr
