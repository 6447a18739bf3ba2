"""Strings that reach QEMU's command line: each reaches QEMU verbatim (read back over QMP) or
is refused with a diagnostic, never a changed option. And the shell output parses back
(shlex) to exactly the argv. Values with QEMU's separators (`,`, `=`), quotes, shell
metacharacters, a leading `-`, spaces and non-ASCII, in the fields a spec gives QEMU as
text: a disk image's path and a disk's serial."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from qemu_support import require_binary
from vm_support import qmp, running

ROOT = Path(__file__).resolve().parent.parent
NASTY = ["a,b", "a,,b", "a=b", "x,file=/etc/passwd", "-readonly", 'q"uote', "it's",
         "$(touch pwned)", "`id`", "sp ace", "ünï", "semi;colon", "back\\slash"]
DIAGNOSTIC = re.compile(r"^\S.*:\d+:\d+: error\[E\d{4}\]: ", re.M)


def compile_spec(spec: str, where: Path) -> subprocess.CompletedProcess[str]:
    path = where / "vm.toml"
    path.write_text(spec, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "compiler", "compile", str(path), "--emit",
                           "argv", "--emit", "shell", "-o", str(where / "out")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


@pytest.mark.parametrize("value", NASTY)
def test_strings_reach_qemu_verbatim(value: str, tmp_path: Path) -> None:
    image = tmp_path / f"disk{value.replace('/', '_')}.raw"
    image.write_bytes(b"\0" * 65536)
    spec = (f'machine = "pc-q35"\n'
            f'[[disk]]\nfile = {toml_string(str(image))}\nserial = {toml_string(value)}\n')
    done = compile_spec(spec, tmp_path)
    if done.returncode != 0:  # refused: a diagnostic, nothing written
        assert done.returncode == 1 and DIAGNOSTIC.search(done.stderr), done.stderr
        assert not (tmp_path / "out").exists()
        return
    (argv_file,) = (tmp_path / "out").glob("*.argv.json")  # named after the machine
    (shell_file,) = (tmp_path / "out").glob("*.sh")
    argv = json.loads(argv_file.read_text(encoding="utf-8"))
    shell = shell_file.read_text(encoding="utf-8")
    assert shlex.split(shell) == argv
    with running([require_binary(argv[0]), *argv[1:]]) as sock:
        blocks, serial = qmp(sock, ("query-block", {}),
                             ("qom-get", {"path": "/machine/peripheral/disk0",
                                          "property": "serial"}))
    assert isinstance(blocks, list)
    files = [b["inserted"]["file"] for b in blocks if "inserted" in b]
    assert files == [str(image)]
    assert serial == value
