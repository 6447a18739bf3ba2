"""The `mschema compile` command line (CONTRACT): outputs, `-o`, `--why`, `--format json`,
exit codes. Run as users run it: `python -m compiler` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from corpus_support import codes_of
from qemu_support import binary_of
from vm_support import read_argv_golden

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests/vm/q35-virtio-disk-user-nic.toml"


def mschema(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]})


def test_without_emit_every_output_goes_to_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = mschema("compile", str(SPEC), "-o", str(out))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    name = json.loads(SPEC.with_suffix(".json").read_text()).get("name", SPEC.stem)
    files = {p.name for p in out.iterdir()}
    assert {f"{name}.json", f"{name}.argv.json", f"{name}.sh"} <= files
    assert (out / f"{name}.json").read_text() == SPEC.with_suffix(".json").read_text()
    argv = json.loads((out / f"{name}.argv.json").read_text())
    assert argv == read_argv_golden(SPEC.with_suffix(".argv"))


def test_default_directory_is_build_name(tmp_path: Path) -> None:
    spec = tmp_path / "web01.toml"
    spec.write_text('machine = "pc-q35"\nname = "web01"\n')
    result = mschema("compile", str(spec), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "build/web01/web01.json").is_file()


def test_a_failed_compile_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('machine = "pc-q35"\n[[disk]]\ninterface = "floppy"\nfile = "a.raw"\n')
    out = tmp_path / "out"
    result = mschema("compile", str(spec), "-o", str(out))
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E1101"]), result.stderr
    assert not out.exists()
    single = tmp_path / "one.json"
    assert mschema("compile", str(spec), "--emit", "json", "-o", str(single)).returncode == 1
    assert not single.exists()


def test_shell_is_the_argv_quoted() -> None:
    import shlex

    shell = mschema("compile", str(SPEC), "--emit", "shell").stdout
    argv = json.loads(mschema("compile", str(SPEC), "--emit", "argv").stdout)
    assert shlex.split(shell) == argv
    assert argv[0] == binary_of("pc-q35")


def test_why_walks_to_the_root() -> None:
    result = mschema("compile", str(SPEC.relative_to(ROOT)), "--why", "disk0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("`disk0` (virtio-blk-pci), origin spec, on `rp")
    assert any("asked for by: tests/vm/q35-virtio-disk-user-nic.toml:" in ln for ln in lines)
    assert any("`q35` (q35-pcihost), origin machine" in ln for ln in lines)


def test_why_of_an_unknown_device_is_a_diagnostic() -> None:
    result = mschema("compile", str(SPEC), "--why", "nope")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("<command line>:1:1: error[E1501]: no device `nope`")


def test_format_json_diagnostics() -> None:
    bad = ROOT / "tests/spec/bad/too-many-cpus-q35.toml"
    result = mschema("compile", str(bad), "--format", "json")
    assert result.returncode == 1 and result.stdout == ""
    [diag] = json.loads(result.stderr)
    assert (diag["code"], diag["line"], diag["col"]) == ("E1301", 4, 8)


def test_usage_errors_exit_2() -> None:
    assert mschema("compile").returncode == 2
    assert mschema("compile", str(SPEC), "--emit", "floppy").returncode == 2


def test_the_examples_compile() -> None:
    examples = sorted((ROOT / "examples").glob("*.toml"))
    assert examples
    for spec in examples:
        result = mschema("compile", str(spec), "--emit", "json")
        assert result.returncode == 0, (spec.name, result.stderr)
        assert json.loads(result.stdout)["format"] == "mschema-precise/1"
