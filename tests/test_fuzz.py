"""Mutation fuzzing of every input kind (issue 13): schema files, loose specs (TOML and JSON),
precise blobs and hot-plug fragments, each mutated from the repository's own good cases and
fed to the real command in-process. Any outcome but a clean result (exit 0) or diagnostics
(exit 1, CONTRACT's `PATH:LINE:COL: error[CODE]: …`, no output file) fails: above all
`error[E9999]` (an exception that escaped). Runs are derandomized: the same inputs every
time, so CI is deterministic.

The bounded run in CI tries a fixed number of inputs per kind (`BUDGET`: fewer for schema
files, whose lint takes longest), well under a minute in all; MSCHEMA_FUZZ_EXAMPLES sets one
number for every kind. The long run of the README is `tools/fuzz_long.py`: the same mutations
and checks, counting every failure and each input's CPU time instead of stopping at the
first.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import cli

ROOT = Path(__file__).resolve().parent.parent
# inputs per kind in the bounded run (about 0.3 s per schema file, 10-30 ms per spec or blob)
BUDGET = {"machine": 40, "stdlib": 40, "blob": 120, "toml-spec": 300, "json-spec": 300,
          "hotplug": 200, "policy": 200}
OVERRIDE = os.environ.get("MSCHEMA_FUZZ_EXAMPLES")

# What mutations splice in: the syntax of every input kind, and the values known to break
# careless readers (deep nesting, huge numbers, lone surrogates, NUL, long names).
TOKENS = [b"[", b"]", b"{", b"}", b'"', b"'", b",", b":", b"=", b"\n", b"#", b"\\", b"\\u",
          b"\\ud800", b"\x00", b"\xff\xfe", b"0x", b"-", b"9" * 5000, b"1e999", b"true",
          b"null", b"[" * 2000, b"{" * 2000, b"not " * 3000, b"a" * 300, b"when", b"use",
          b"machine", b"device", b"bus", b"prop", b"at", b"..", b"%", b"$(id)", b"`",
          b"\xe2\x80\xae", b"\r", b"\t", b"0", b"-1", b"18446744073709551616",
          # balanced deep nesting: well-formed, so it reaches the parsers' recursion (and,
          # in the schema language, the builder's) instead of stopping at a syntax error
          b"[" * 100 + b"]" * 100, b"{" * 100 + b"}" * 100, b"[{" * 60 + b"}]" * 60,
          b'{"a":' * 100 + b"1" + b"}" * 100, b"{a=" * 100 + b"1" + b"}" * 100,
          b"a." * 200 + b"b", b"(" * 300 + b"x" + b")" * 300, b"not " * 300,
          b"1 + " * 300 + b"1", b"9" * 41, b"\"" + b"9" * 5000 + b"\""]


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


def _run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(args)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


# the first line of a rejection: PATH:LINE:COL: error[CODE]: MESSAGE (CONTRACT, Diagnostics)
FIRST_LINE = re.compile(r"^(?P<path>.+):\d+:\d+: error\[E(?!9999)\d{4}\]: \S.*$")


def _check(tmp: Path, name: str, data: bytes,
           command: Callable[[Path, Path], list[str]], others: tuple[str, ...] = ()) -> None:
    """`others`: inputs besides the mutated one that a diagnostic may point at."""
    path, output = tmp / name, tmp / "out" / "result"
    path.write_bytes(data)
    if output.exists():
        output.unlink()
    code, out, err = _run(command(path, output))
    assert code in (0, 1), f"exit {code}:\n{err[-3000:]}"
    assert "Traceback" not in err and "error[E9999]" not in err, err[-3000:]
    if code == 1:  # diagnostics, at a place of the input (or the command line); no output
        first = err.splitlines()[0] if err else ""
        found = FIRST_LINE.match(first)
        assert found, f"not a diagnostic: {first!r}"
        assert found.group("path") in (str(path), "<command line>", *others), first
        assert not output.exists() and out == "", "a failed command wrote output"


def _settings(kind: str) -> settings:
    return settings(max_examples=int(OVERRIDE) if OVERRIDE else BUDGET[kind], deadline=None,
                    derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _compile(path: Path, output: Path) -> list[str]:
    return ["compile", str(path), "--emit", "argv", "-o", str(output)]


POLICED = str(ROOT / "tests/policy/good/within-policy/input.toml")
KINDS: dict[str, tuple[list[bytes], str, Callable[[Path, Path], list[str]]]] = {
    "machine": (_files("tests/lang/good/*.machine", "schemas/*/*.machine"), "fuzz.machine",
                lambda p, _o: ["lint", str(p)]),
    "stdlib": (_files("tests/lang/good/*.mschema", "stdlib/*.mschema"), "fuzz.mschema",
               lambda p, _o: ["lint", str(p)]),
    "toml-spec": (_files("tests/spec/good/*.toml", "tests/vm/*.toml", "examples/*.toml"),
                  "fuzz.toml", _compile),
    "json-spec": (_files("tests/spec/good/*.json"), "fuzz.json",
                  _compile),
    "blob": (_files("tests/blob/good/*.json", "tests/vm/q35-minimal.json",
                    "tests/vm/pseries-minimal.json"), "fuzz.json",
             _compile),
    # a `--policy` file: the platform's, trusted, but still never a traceback
    "policy": (_files("tests/policy/*/*/policy.toml"), "fuzz-policy.toml",
               lambda p, o: ["compile", POLICED, "--emit", "argv", "-o", str(o), "--policy",
                             str(p)]),
}
OTHERS = {"policy": (POLICED,)}  # a policy's violations point into the spec it confines


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_input_escapes_the_diagnostics(kind: str, tmp_path: Path) -> None:
    seeds, name, command = KINDS[kind]

    @_settings(kind)
    @given(data=mutated(seeds))
    def one(data: bytes) -> None:
        _check(tmp_path, name, data, command, OTHERS.get(kind, ()))

    one()


def test_hotplug_fragments(tmp_path: Path) -> None:
    blob = tmp_path / "vm.json"
    blob.write_bytes((ROOT / "tests/vm/q35-minimal.json").read_bytes())
    seeds = [b'[[disk]]\nfile = "new.qcow2"\n', b'[[nic]]\nnetwork = "user"\n',
             b'[[device]]\ntype = "virtio-rng-pci"\n', b'[[usb]]\ndevice = "tablet"\n']

    @_settings("hotplug")
    @given(data=mutated(seeds))
    def one(data: bytes) -> None:
        _check(tmp_path, "add.toml", data,
               lambda p, o: ["hotplug", str(blob), "--add", str(p), "--emit", "qmp", "-o",
                             str(o)])

    one()
