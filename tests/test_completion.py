"""Shell completion (argcomplete's protocol, as bash's hook drives it: COMP_LINE and
COMP_POINT in the environment, the answers in a file) and `mschema --version`."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def complete(line: str, tmp_path: Path) -> list[str]:
    out = tmp_path / "completions"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n",
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    done = subprocess.run([sys.executable, "-m", "compiler"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [w.strip() for w in out.read_text().split("\n") if w.strip()]


@pytest.mark.parametrize(("line", "expected"), [
    ("mschema ", {"compile", "lint", "show", "graph", "docs", "explain", "migrate-check"}),
    ("mschema show --f", {"--format"}),
    ("mschema graph x --format ", {"dot", "svg", "png", "mermaid", "html"}),
    ("mschema show ", {"q35", "pc-q35", "pc-q35-7.1", "pseries", "pseries-5.1"}),
    ("mschema show q35 --option s", {"sata=", "smbus=", "smm="}),
    ("mschema show pseries --option ic-mode=", {"ic-mode=xics", "ic-mode=xive",
                                                "ic-mode=dual"}),
    ("mschema graph pc-q35-7.0 --option u", {"usb="}),
    ("mschema schema-diff pc-q35-7.", {"pc-q35-7.0", "pc-q35-7.1", "pc-q35-7.2"}),
    ("mschema explain E220", {"E2201", "E2202", "E2203", "E2204", "E2205"}),
    ("mschema explain virtio-rng", {"virtio-rng-pci", "virtio-rng-device"}),
])
def test_completes(line: str, expected: set[str], tmp_path: Path) -> None:
    found = complete(line, tmp_path)
    assert expected <= set(found), found
    last = line.rsplit(" ", 1)[-1]
    assert all(w.startswith(last) for w in found)


def test_an_option_of_another_machine_is_not_offered(tmp_path: Path) -> None:
    assert complete("mschema show pseries --option s", tmp_path) == []
    assert "cap-htm=" in complete("mschema show pseries --option cap-h", tmp_path)


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "compiler", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert (done.returncode, done.stdout) == (0, f"mschema {version}\n")
