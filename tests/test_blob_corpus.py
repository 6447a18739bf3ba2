"""Precise blobs as compile input: every corruption in tests/blob/bad is refused with exactly
the diagnostics in its `.err` (and nothing written), and every precise blob we ship or
generate compiles back to itself byte for byte, with the same argv as its spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# blobs, and a few specs whose precise machine breaks a rule only a whole tree can show
BAD = sorted([*(ROOT / "tests/blob/bad").glob("*.json"),
              *(ROOT / "tests/blob/bad").glob("*.toml")])
GOOD = sorted((ROOT / "tests/blob/good").glob("*.json"))
# every golden blob of the VM cases is a precise blob too
VM_BLOBS = sorted((ROOT / "tests/vm").glob("*.json")) if (ROOT / "tests/vm").is_dir() else []


def mschema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("case", BAD, ids=lambda p: p.stem)
def test_bad_blob(case: Path, tmp_path: Path, update_goldens: bool) -> None:
    result = mschema("compile", rel(case), "--emit", "json")
    golden = case.with_suffix(".err")
    if update_goldens:
        golden.write_text(result.stderr)
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == golden.read_text()
    out = tmp_path / "out"
    again = mschema("compile", rel(case), "-o", str(out))
    assert again.returncode == 1
    assert not out.exists() or not any(out.iterdir()), "a failed compile wrote output"


def test_every_bad_blob_has_its_golden() -> None:
    assert BAD, "no bad blob cases"
    missing = [p.name for p in BAD if not p.with_suffix(".err").exists()]
    assert not missing


@pytest.mark.parametrize("blob", GOOD + VM_BLOBS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_blob_is_a_fixed_point(blob: Path) -> None:
    result = mschema("compile", rel(blob), "--emit", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == blob.read_text()


@pytest.mark.parametrize("spec", sorted((ROOT / "tests/blob").glob("base-*.toml")),
                         ids=lambda p: p.stem)
def test_blob_gives_the_same_argv_as_its_spec(spec: Path, tmp_path: Path) -> None:
    blob = tmp_path / "machine.json"
    blob.write_text(mschema("compile", rel(spec), "--emit", "json").stdout)
    from_spec = mschema("compile", rel(spec), "--emit", "argv")
    from_blob = mschema("compile", str(blob), "--emit", "argv")
    assert from_spec.returncode == from_blob.returncode == 0
    assert json.loads(from_blob.stdout) == json.loads(from_spec.stdout)


def test_every_golden_blob_matches_the_shipped_json_schema() -> None:
    import jsonschema
    schema = json.loads((ROOT / "compiler/spec/blob.schema.json").read_text())
    blobs = GOOD + VM_BLOBS
    assert len(blobs) > 20
    for path in blobs:
        jsonschema.validate(json.loads(path.read_text()), schema)
