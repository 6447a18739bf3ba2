"""Precise blobs as compile input: every corruption in tests/blob/bad is refused with exactly
the diagnostics in its `.err` (and nothing written), and every precise blob we ship or
generate compiles back to itself byte for byte, with the same argv as its spec.

Every run is the real CLI from the repository root, through the corpus runner shared with the
lang and spec corpora (`tests/corpus_support.py`): forked from one warm interpreter, in
parallel. `--update-goldens` rewrites the `.err` goldens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_support import Runner, check_golden

ROOT = Path(__file__).resolve().parent.parent
# blobs, and a few specs whose precise machine breaks a rule only a whole tree can show
BAD = sorted([*(ROOT / "tests/blob/bad").glob("*.json"),
              *(ROOT / "tests/blob/bad").glob("*.toml")])
GOOD = sorted((ROOT / "tests/blob/good").glob("*.json"))
# every golden blob of the VM cases is a precise blob too
VM_BLOBS = sorted((ROOT / "tests/vm").glob("*.json")) if (ROOT / "tests/vm").is_dir() else []
BASE_SPECS = sorted((ROOT / "tests/blob").glob("base-*.toml"))


@pytest.mark.corpus("emit", "out")
@pytest.mark.parametrize("case", BAD, ids=lambda p: p.stem)
def test_bad_blob(case: Path, corpus: Runner, update_goldens: bool) -> None:
    result = corpus(case, "emit")
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stdout) == (1, "")
    check_golden(case.with_suffix(".err"), result.stderr, update_goldens)
    again = corpus(case, "out")
    assert again.returncode == 1
    out = corpus.out_dir(case, "out")
    assert not out.exists() or not any(out.iterdir()), "a failed compile wrote output"


def test_every_bad_blob_has_its_golden() -> None:
    assert BAD, "no bad blob cases"
    missing = [p.name for p in BAD if not p.with_suffix(".err").exists()]
    assert not missing


@pytest.mark.corpus("emit")
@pytest.mark.parametrize("case", GOOD + VM_BLOBS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_blob_is_a_fixed_point(case: Path, corpus: Runner) -> None:
    result = corpus(case, "emit")
    assert result.returncode == 0, result.stderr
    assert result.stdout == case.read_text()


@pytest.mark.corpus("emit", "emit-argv")
@pytest.mark.parametrize("case", BASE_SPECS, ids=lambda p: p.stem)
def test_blob_gives_the_same_argv_as_its_spec(case: Path, corpus: Runner,
                                              tmp_path: Path) -> None:
    blob = tmp_path / "machine.json"
    blob.write_text(corpus(case, "emit").stdout)
    from_spec = corpus(case, "emit-argv")
    from_blob = corpus(blob, "emit-argv")  # written just now: a plain subprocess
    assert from_spec.returncode == from_blob.returncode == 0
    assert json.loads(from_blob.stdout) == json.loads(from_spec.stdout)


def test_every_golden_blob_matches_the_shipped_json_schema() -> None:
    import jsonschema
    schema = json.loads((ROOT / "compiler/spec/blob.schema.json").read_text())
    blobs = GOOD + VM_BLOBS
    assert len(blobs) > 20
    for path in blobs:
        jsonschema.validate(json.loads(path.read_text()), schema)


def test_the_json_schema_knows_every_backend_kind() -> None:
    """The blob's JSON Schema lists the backend kinds of the registry, no more, no fewer."""
    from compiler.base import backends
    schema = json.loads((ROOT / "compiler/spec/blob.schema.json").read_text())
    body = schema["properties"]["backends"]["additionalProperties"]
    assert body["properties"]["kind"]["enum"] == list(backends.KINDS)
