"""`--format sarif` and `--format github` of lint, compile, verify and migrate-check: the
SARIF log validated against the official SARIF 2.1.0 JSON Schema (vendored in tests/sarif/,
its source in SOURCE.md beside it), holding the same diagnostics as `--format json` (rule
ids = codes, help from the registry's explanations, labels as related locations); the
GitHub lines in the workflow-command syntax, escaped; exit codes as with text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from qemu_support import require_binary

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests/sarif/sarif-schema-2.1.0.json").read_text())
BAD_SCHEMA = "tests/lang/bad/address-collision.machine"    # one error with a label
BAD_SPEC = "tests/spec/bad/disk-interface-unknown.toml"
GOOD_SPEC = "tests/vm/q35-minimal.toml"
# `::error file=F,line=L,col=C[,endLine=L,endColumn=C],title=T::MESSAGE`
GITHUB_LINE = re.compile(r"::(error|warning) ((?:[a-zA-Z]+=[^,:]*,)*title=[^,:]*)::(.*)")


def mschema(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def sarif_of(*args: str, code: int) -> dict[str, object]:
    result = mschema(*args, "--format", "sarif")
    assert result.returncode == code, result.stderr
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    return log  # type: ignore[no-any-return]


def json_of(*args: str) -> list[dict[str, object]]:
    result = mschema(*args, "--format", "json")
    return json.loads(result.stdout if args[0] == "lint" else result.stderr)  # type: ignore[no-any-return]


def test_the_schema_refuses_a_broken_log() -> None:
    """The validator is live: a log without `runs`, or with a result of unknown level, fails."""
    validator = jsonschema.Draft4Validator(SCHEMA)
    assert not validator.is_valid({"version": "2.1.0"})
    log = json.loads(mschema("compile", BAD_SPEC, "--format", "sarif").stdout)
    log["runs"][0]["results"][0]["level"] = "fatal"
    assert not validator.is_valid(log)


@pytest.mark.parametrize("args", [("lint", BAD_SCHEMA), ("compile", BAD_SPEC)])
def test_sarif_holds_the_json_diagnostics(args: tuple[str, ...]) -> None:
    log = sarif_of(*args, code=1)
    run = log["runs"][0]  # type: ignore[index]
    expected = json_of(*args)
    results = run["results"]
    assert [r["ruleId"] for r in results] == [d["code"] for d in expected]
    rules = run["tool"]["driver"]["rules"]
    for r, d in zip(results, expected, strict=True):
        assert rules[r["ruleIndex"]]["id"] == d["code"]
        assert r["level"] == d["severity"]
        assert r["message"]["text"].split("\n")[0] == d["message"]
        region = r["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == (d["line"], d["col"])
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == d["path"]
        labels = d.get("labels", [])
        related = r.get("relatedLocations", [])
        assert [(x["message"]["text"], x["physicalLocation"]["region"]["startLine"])
                for x in related] == [(lb["message"], lb["line"]) for lb in labels]
    for rule in rules:
        assert rule["help"]["text"].startswith(f"{rule['id']}: ")
        assert f"mschema explain {rule['id']}" in rule["help"]["markdown"]


def test_a_label_becomes_a_related_location() -> None:
    log = sarif_of("lint", BAD_SCHEMA, code=1)
    (result,) = log["runs"][0]["results"]  # type: ignore[index]
    assert result["ruleId"] == "E0502"
    (related,) = result["relatedLocations"]
    assert related["message"]["text"] == "`nic0` is here"
    assert related["physicalLocation"]["region"]["startLine"] == 17


@pytest.mark.parametrize("args", [("lint",), ("compile", GOOD_SPEC)])
def test_a_clean_run_is_an_empty_log(args: tuple[str, ...], tmp_path: Path) -> None:
    extra = ("-o", str(tmp_path / "out")) if args[0] == "compile" else ()
    log = sarif_of(*args, *extra, code=0)
    assert log["runs"][0]["results"] == []  # type: ignore[index]
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is True  # type: ignore[index]
    assert mschema(*args, *extra, "--format", "github").stdout == ""


def test_compile_keeps_stdout_for_the_log() -> None:
    result = mschema("compile", GOOD_SPEC, "--emit", "argv", "--format", "sarif")
    assert result.returncode == 2 and result.stdout == ""


def test_github_lines() -> None:
    result = mschema("compile", BAD_SPEC, "--format", "github")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == len(json_of("compile", BAD_SPEC)) == 1
    match = GITHUB_LINE.fullmatch(lines[0])
    assert match is not None, lines[0]
    props = dict(p.split("=", 1) for p in match.group(2).split(","))
    assert props == {"file": BAD_SPEC, "line": "5", "col": "13", "endLine": "5",
                     "endColumn": "18", "title": "mschema E1101"}
    assert match.group(3).startswith("[E1101] `pc-q35-7.2` has no disk interface `ide`%0Anote:")
    lint = mschema("lint", BAD_SCHEMA, "--format", "github").stdout
    assert "%0Anote: tests/lang/bad/address-collision.machine:17:17: `nic0` is here" in lint


def test_github_escapes_what_would_break_a_command(tmp_path: Path) -> None:
    bad = tmp_path / "a,b:c%.toml"
    bad.write_text('machine = "pc-q35"\n[[disk]]\nfile = "x"\ninterface = "i,d:e%"\n')
    line = mschema("compile", str(bad), "--format", "github").stdout.strip()
    assert "file=" + str(tmp_path).replace(":", "%3A").replace(",", "%2C") \
        + "/a%2Cb%3Ac%25.toml," in line
    assert line.count("::") == 2 and "\n" not in line


def test_migrate_check(tmp_path: Path) -> None:
    src = ROOT / "tests/vm/q35-virtio-disk-user-nic.json"
    moved = tmp_path / "dst.json"
    moved.write_text(src.read_text().replace('"file": "web01.qcow2"',
                                             '"file": "elsewhere.qcow2"'))
    log = sarif_of("migrate-check", str(src), str(moved), code=0)
    results = log["runs"][0]["results"]  # type: ignore[index]
    assert [(r["ruleId"], r["level"]) for r in results] == [("E2205", "warning")]
    other = sarif_of("migrate-check", str(src), str(ROOT / "tests/vm/q35-minimal.json"),
                     code=1)
    found = other["runs"][0]["results"]  # type: ignore[index]
    assert found and {r["ruleId"] for r in found} <= {"E2204", "E2205"}
    assert any(r["ruleId"] == "E2204" for r in found)
    text = mschema("migrate-check", str(src), str(ROOT / "tests/vm/q35-minimal.json"))
    guest = sum(1 for line in text.stdout.splitlines() if line.startswith("guest-visible:"))
    assert guest == sum(1 for r in found if r["ruleId"] == "E2204")


def test_verify(tmp_path: Path) -> None:
    """A clean verify against the real QEMU is an empty log; a missing image, one result."""
    require_binary("qemu-system-x86_64")
    log = sarif_of("verify", GOOD_SPEC, code=0)
    assert log["runs"][0]["results"] == []  # type: ignore[index]
    spec = tmp_path / "vm.toml"
    spec.write_text('machine = "pc-q35"\n[[disk]]\nfile = "missing.qcow2"\n')
    bad = sarif_of("verify", str(spec), code=1)
    assert [r["ruleId"] for r in bad["runs"][0]["results"]] == ["E1702"]  # type: ignore[index]
