"""Start-up stays lean: `lint` and `compile` never import the presentation libraries
(jinja2 and markupsafe for pictures and docs, jsonschema, argcomplete) nor the modules
that use them. Checked in a fresh interpreter after a real run of each command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("jinja2", "markupsafe", "jsonschema", "argcomplete", "compiler.present.graph",
         "compiler.present.reference", "compiler.present.ci")
PROBE = """
import json, sys
from compiler import cli
code = cli.main(sys.argv[1:])
print(json.dumps([code, sorted(sys.modules)]))
"""


@pytest.mark.parametrize("args", [
    ["lint"],
    ["lint", "--format", "json"],
    ["compile", "examples/web01.toml", "--emit", "argv"],
    ["compile", "examples/ppc01.toml", "--emit", "json"],
    ["compile", "tests/vm/q35-minimal.json", "--emit", "shell"],
])
def test_lint_and_compile_do_not_import_presentation(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    code, modules = json.loads(done.stdout.splitlines()[-1])
    assert code == 0, done.stderr
    loaded = [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY]
    assert loaded == []


def test_graph_does_import_jinja2() -> None:
    """The probe can see an import: `graph` needs jinja2 and shows up."""
    done = subprocess.run([sys.executable, "-c", PROBE, "graph", "pc-q35", "--format",
                           "mermaid"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    code, modules = json.loads(done.stdout.splitlines()[-1])
    assert code == 0 and "jinja2" in modules and "compiler.present.graph" in modules
