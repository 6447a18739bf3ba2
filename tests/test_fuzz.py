"""Mutation fuzzing of every input kind (issue 13): schema files, loose specs (TOML and JSON),
precise blobs and hot-plug fragments, each mutated from the repository's own good cases and
fed to the real command in-process. Any outcome but a clean result (exit 0) or diagnostics
(exit 1) fails: above all `error[E9999]` (an exception that escaped) and a hang (each input
has a deadline).

The bounded run in CI tries MSCHEMA_FUZZ_EXAMPLES inputs per kind (default 150); the long
run of the README sets it to 100000: `MSCHEMA_FUZZ_EXAMPLES=100000 python -m pytest
tests/test_fuzz.py`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("MSCHEMA_FUZZ_EXAMPLES", "150"))
DEADLINE_MS = 5000

# What mutations splice in: the syntax of every input kind, and the values known to break
# careless readers (deep nesting, huge numbers, lone surrogates, NUL, long names).
TOKENS = [b"[", b"]", b"{", b"}", b'"', b"'", b",", b":", b"=", b"\n", b"#", b"\\", b"\\u",
          b"\\ud800", b"\x00", b"\xff\xfe", b"0x", b"-", b"9" * 5000, b"1e999", b"true",
          b"null", b"[" * 2000, b"{" * 2000, b"not " * 3000, b"a" * 300, b"when", b"use",
          b"machine", b"device", b"bus", b"prop", b"at", b"..", b"%", b"$(id)", b"`",
          b"\xe2\x80\xae", b"\r", b"\t", b"0", b"-1", b"18446744073709551616"]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate", "replace"]))
        if kind == "insert":
            data[where:where] = draw(st.sampled_from(TOKENS) | st.binary(max_size=8))
        elif kind == "delete":
            del data[where:where + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            chunk = data[where:where + draw(st.integers(1, 256))]
            data[where:where] = chunk * draw(st.integers(1, 50))
        else:
            data[where:where + 1] = draw(st.sampled_from(TOKENS))
    return bytes(data)


def _files(*patterns: str) -> list[bytes]:
    found = sorted({p for pattern in patterns for p in ROOT.glob(pattern)})
    assert found, patterns
    return [p.read_bytes() for p in found]


def _run(args: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(args)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def _check(tmp: Path, name: str, data: bytes, command: Callable[[Path], list[str]]) -> None:
    path = tmp / name
    path.write_bytes(data)
    code, err = _run(command(path))
    assert code in (0, 1), f"exit {code}:\n{err[-3000:]}"
    assert "E9999" not in err, err[-3000:]
    if code == 1:  # every rejection says where (PATH:LINE:COL) or names the file
        first = err.splitlines()[0] if err else ""
        assert first.startswith(str(path)) or first.startswith("<"), first


SETTINGS = settings(max_examples=EXAMPLES, deadline=DEADLINE_MS, database=None,
                    suppress_health_check=list(HealthCheck))
KINDS: dict[str, tuple[list[bytes], str, Callable[[Path], list[str]]]] = {
    "machine": (_files("tests/lang/good/*.machine", "schemas/*/*.machine"), "fuzz.machine",
                lambda p: ["lint", str(p)]),
    "stdlib": (_files("tests/lang/good/*.mschema", "stdlib/*.mschema"), "fuzz.mschema",
               lambda p: ["lint", str(p)]),
    "toml-spec": (_files("tests/spec/good/*.toml", "tests/vm/*.toml", "examples/*.toml"),
                  "fuzz.toml", lambda p: ["compile", str(p), "--emit", "argv"]),
    "json-spec": (_files("tests/spec/good/*.json"), "fuzz.json",
                  lambda p: ["compile", str(p), "--emit", "argv"]),
    "blob": (_files("tests/blob/good/*.json", "tests/vm/q35-minimal.json",
                    "tests/vm/pseries-minimal.json"), "fuzz.json",
             lambda p: ["compile", str(p), "--emit", "argv"]),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_input_escapes_the_diagnostics(kind: str, tmp_path: Path) -> None:
    seeds, name, command = KINDS[kind]

    @SETTINGS
    @given(data=mutated(seeds))
    def one(data: bytes) -> None:
        _check(tmp_path, name, data, command)

    one()


def test_hotplug_fragments(tmp_path: Path) -> None:
    blob = tmp_path / "vm.json"
    blob.write_bytes((ROOT / "tests/vm/q35-minimal.json").read_bytes())
    seeds = [b'[[disk]]\nfile = "new.qcow2"\n', b'[[nic]]\nnetwork = "user"\n',
             b'[[device]]\ntype = "virtio-rng-pci"\n', b'[[usb]]\ndevice = "tablet"\n']

    @SETTINGS
    @given(data=mutated(seeds))
    def one(data: bytes) -> None:
        _check(tmp_path, "add.toml", data,
               lambda p: ["hotplug", str(blob), "--add", str(p), "--emit", "qmp"])

    one()
