"""`--format sarif` and `--format github` of lint, compile, verify and migrate-check: the
SARIF log validated against SARIF 2.1.0's JSON Schema and by the SARIF SDK's own validator
(both from the SDK's multitool package, fetched once into the user's cache, not kept in the
repository), holding the same diagnostics as `--format json` (rule ids = codes, help from the
registry's explanations, labels as related locations); the GitHub lines in the
workflow-command syntax, escaped; exit codes as with text."""

from __future__ import annotations

import functools
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
BAD_SCHEMA = "tests/lang/bad/address-collision.machine"    # one error with a label
BAD_SPEC = "tests/spec/bad/disk-interface-unknown.toml"
GOOD_SPEC = "tests/vm/q35-minimal.toml"
# `::error file=F,line=L,col=C[,endLine=L,endColumn=C],title=T::MESSAGE`
GITHUB_LINE = re.compile(r"::(error|warning) ((?:[a-zA-Z]+=[^,:]*,)*title=[^,:]*)::(.*)")
# The official SARIF validator, the SARIF SDK's multitool (MIT; its npm package for Linux,
# self-contained), fetched once into the cache; its package carries the SARIF 2.1.0 schema
MULTITOOL_VERSION = "5.7.0"
MULTITOOL_HOME = Path.home() / ".cache/mschema" / f"sarif-multitool-{MULTITOOL_VERSION}"


def multitool() -> Path:
    """The unpacked package (fetched with `npm pack` once)."""
    package = MULTITOOL_HOME / "package"
    if not (package / "sarif-2.1.0.json").is_file():
        npm = require_binary("npm")
        MULTITOOL_HOME.mkdir(parents=True, exist_ok=True)
        packed = subprocess.run(
            [npm, "pack", f"@microsoft/sarif-multitool-linux@{MULTITOOL_VERSION}", "--silent"],
            cwd=MULTITOOL_HOME, capture_output=True, text=True, timeout=900)
        assert packed.returncode == 0, packed.stderr
        tarball = MULTITOOL_HOME / packed.stdout.strip().splitlines()[-1]
        subprocess.run(["tar", "xzf", str(tarball)], cwd=MULTITOOL_HOME, check=True,
                       timeout=300)
        tarball.unlink()
        (package / "Sarif.Multitool").chmod(0o755)
    return package


@functools.cache
def schema() -> dict[str, object]:
    """SARIF 2.1.0's JSON Schema as the SARIF SDK ships it (JSON Schema 2020-12)."""
    loaded = json.loads((multitool() / "sarif-2.1.0.json").read_text(encoding="utf-8"))
    assert loaded["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    return loaded  # type: ignore[no-any-return]


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def validated_by_multitool(log: dict[str, object], tmp_path: Path) -> list[str]:
    """The multitool's `validate` on `log`: its error lines (none for a valid log)."""
    path = tmp_path / "log.sarif"
    path.write_text(json.dumps(log), encoding="utf-8")
    result = subprocess.run([str(multitool() / "Sarif.Multitool"), "validate", str(path),
                             "--output", str(tmp_path / "validation.sarif"), "--log",
                             "ForceOverwrite"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DOTNET_CLI_TELEMETRY_OPTOUT": "1"})
    assert "Analysis completed" in result.stdout, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if ": error " in line]


def mschema(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def sarif_of(*args: str, code: int) -> dict[str, object]:
    result = mschema(*args, "--format", "sarif")
    assert result.returncode == code, result.stderr
    log = json.loads(result.stdout)
    validator().validate(log)
    return log  # type: ignore[no-any-return]


def json_of(*args: str) -> list[dict[str, object]]:
    result = mschema(*args, "--format", "json")
    return json.loads(result.stdout if args[0] == "lint" else result.stderr)  # type: ignore[no-any-return]


def test_the_schema_refuses_a_broken_log() -> None:
    """The validator is live: a log without `runs`, or with a result of unknown level, fails."""
    checker = validator()
    assert not checker.is_valid({"version": "2.1.0"})
    log = json.loads(mschema("compile", BAD_SPEC, "--format", "sarif").stdout)
    log["runs"][0]["results"][0]["level"] = "fatal"
    assert not checker.is_valid(log)


@pytest.mark.parametrize("args", [("lint", BAD_SCHEMA), ("compile", BAD_SPEC)])
def test_the_sarif_sdk_validates_the_log(args: tuple[str, ...], tmp_path: Path) -> None:
    """The SARIF SDK's own validator finds no error in the log (its warnings are advice),
    and finds one in a broken log: it is live."""
    log = sarif_of(*args, code=1)
    assert validated_by_multitool(log, tmp_path) == []
    del log["runs"][0]["tool"]  # type: ignore[index]
    assert [line.split(": error ")[1] for line in validated_by_multitool(log, tmp_path)] == [
        "JSON1002: runs[0]: The required property 'tool' is missing."]


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
