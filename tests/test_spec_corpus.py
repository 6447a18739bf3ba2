"""The bad-input corpus of `mschema compile` on loose specs, run through the real CLI.

`tests/spec/bad/<what-is-wrong>.toml|.json` holds exactly one mistake; beside it,
`<case>.err` is what `mschema compile <case> --emit json` prints on stderr (byte for byte,
paths relative to the repository root). Each bad case also runs once with `-o DIR/out`:
the same diagnostics, and nothing written. `tests/spec/good/*` are near misses that must
compile.

Cases are found on disk: adding one needs no change here. Create or refresh the goldens with
`pytest tests/test_spec_corpus.py --update-goldens`, then read the diff.

Every run is `python -m compiler compile …` in a process of its own, from the repository
root. The corpus runner (`tests/corpus_support.py`, shared with the lang and blob corpora)
forks those processes from one warm interpreter and runs them in parallel;
`test_same_as_plain_cli` checks a sample against genuine subprocesses, and
`MSCHEMA_CORPUS_FORK=0` uses those for all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpus_support import USE_SERVER, Result, Runner, check_golden, headers, rel

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "tests" / "spec"
BAD = SPEC / "bad"
GOOD = SPEC / "good"
DOCS = REPO / "docs" / "diagnostics.md"
SUFFIXES = (".toml", ".json")
# The codes of the spec and plan stages: every one the compiler can emit needs a bad case.
SPEC_CODE = re.compile(r"[\"'](E1[01]\d\d)[\"']")
# Codes no shipped machine can produce, and why.
UNREACHABLE = {
    "E1011": "only a hot-plug fragment (`hotplug --add`) can break it: tests/test_hotplug.py",
    "E1047": "only a blob names a NUMA node's RAM backend (`memdev`): tests/blob/bad/",
    "E1049": "only `--emit libvirt` of a blob: tests/test_libvirt.py",
    "E1048": "a schema's mistake (`numa-node` on a prop that is no integer), `lint`'s: "
             "tests/lang/bad/",
}
# Cases whose golden says what the compiler should print but does not yet, because the
# diagnostic comes from a module this corpus does not own. Strict: fixing it fails the test
# until the case leaves this list.
PENDING: dict[str, str] = {}


def cases(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in SUFFIXES)



BAD_CASES = cases(BAD)
GOOD_CASES = cases(GOOD)


def bad_params() -> list[object]:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True,
                                                                reason=PENDING[c.name])])
            if c.name in PENDING else pytest.param(c, id=c.name) for c in BAD_CASES]


def assert_refused(case: Path, result: Result) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    errors = headers(result.stderr)
    assert len(errors) == 1, f"expected exactly one error, got:\n{result.stderr}"
    assert errors[0]["path"] == rel(case), "the error must be reported in the case file"


# ---- the cases ---------------------------------------------------------------------------
@pytest.mark.corpus("emit")
@pytest.mark.parametrize("case", bad_params())
def test_bad_case(case: Path, corpus: Runner, update_goldens: bool) -> None:
    result = corpus(case, "emit")
    assert_refused(case, result)
    # a pending case's golden is written by hand: what the compiler should print
    check_golden(case.with_suffix(".err"), result.stderr,
                 update_goldens and case.name not in PENDING)


@pytest.mark.corpus("out")
@pytest.mark.parametrize("case", bad_params())
def test_bad_case_writes_nothing(case: Path, corpus: Runner) -> None:
    result = corpus(case, "out")
    assert_refused(case, result)
    out = corpus.out_dir(case, "out")
    assert not out.exists() or not any(out.iterdir()), f"{out} was written"
    assert not out.parent.exists() or not any(out.parent.iterdir())
    golden = case.with_suffix(".err")
    assert golden.exists(), f"{rel(golden)} is missing: run pytest with --update-goldens"
    assert result.stderr == golden.read_text(encoding="utf-8")


@pytest.mark.corpus("emit")
@pytest.mark.parametrize("case", GOOD_CASES, ids=lambda p: p.name)
def test_good_case(case: Path, corpus: Runner) -> None:
    result = corpus(case, "emit")
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert json.loads(result.stdout)["format"] == "mschema-precise/1"


PLAIN_SAMPLE = [(BAD / "not-utf8.toml", "emit"), (BAD / "json-duplicate-key.json", "out"),
                (BAD / "mac-duplicate.toml", "emit"), (GOOD / "spec.json", "emit")]


@pytest.mark.skipif(not USE_SERVER, reason="every run is a plain `python -m compiler` already")
@pytest.mark.corpus(plain=True)
@pytest.mark.parametrize(("case", "mode"), PLAIN_SAMPLE,
                         ids=[f"{c.name}-{m}" for c, m in PLAIN_SAMPLE])
def test_same_as_plain_cli(case: Path, mode: str, corpus: Runner) -> None:
    assert corpus(case, mode) == corpus.plain(case, mode)


# ---- the corpus itself (after the cases, so --update-goldens has written them) -----------
def test_corpus_is_big_enough() -> None:
    assert len(BAD_CASES) >= 45
    assert len(GOOD_CASES) >= 9


def test_every_bad_case_has_its_golden() -> None:
    missing = [rel(c) for c in BAD_CASES if not c.with_suffix(".err").exists()]
    assert not missing, f"cases without a .err golden: {missing}"
    stems = {c.with_suffix("") for c in BAD_CASES}
    assert len(stems) == len(BAD_CASES), "a .toml and a .json case share a name (and a .err)"
    orphans = [rel(g) for g in sorted(BAD.glob("*.err")) if g.with_suffix("") not in stems]
    assert not orphans, f"goldens without a case: {orphans}"
    strays = [rel(p) for p in sorted([*BAD.iterdir(), *GOOD.iterdir()])
              if p.suffix not in (*SUFFIXES, ".err")]
    assert not strays, f"files that are neither a case nor a golden: {strays}"


def covered_codes() -> set[str]:
    return {m["code"] for c in BAD_CASES if c.with_suffix(".err").exists()
            for m in headers(c.with_suffix(".err").read_text(encoding="utf-8"))}


def emitted_codes() -> set[str]:
    """The spec (E10xx) and plan (E11xx) codes anywhere in the compiler."""
    return {code for path in sorted((REPO / "compiler").rglob("*.py"))
            for code in SPEC_CODE.findall(path.read_text(encoding="utf-8"))}


def test_every_spec_code_has_a_bad_case() -> None:
    missing = sorted(emitted_codes() - covered_codes() - set(UNREACHABLE))
    assert not missing, f"E10xx/E11xx codes without a case in tests/spec/bad: {missing}"
    stale = sorted(set(UNREACHABLE) & covered_codes())
    assert not stale, f"codes listed as unreachable that a case reaches: {stale}"


def documented_rows() -> dict[str, str]:
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and re.fullmatch(r"`?E\d{4}`?", cells[0]):
            rows[cells[0].strip("`")] = line
    return rows


def test_every_spec_code_is_documented() -> None:
    rows = documented_rows()
    missing = sorted(emitted_codes() - set(rows))
    assert not missing, f"codes emitted by compiler/ but missing from {rel(DOCS)}: {missing}"
    for code, row in rows.items():
        for link in re.findall(r"\]\(([^)]+)\)", row):
            path = (DOCS.parent / link).resolve()
            if path.parent in (BAD, GOOD):
                assert path.exists(), f"{code}: {link} does not exist"
            if path.parent == BAD:
                err = path.with_suffix(".err").read_text(encoding="utf-8")
                assert f"[{code}]" in err, f"{code}: {link} does not produce it"


# ---- positions: every value of every case that decodes is found, where it is written ------
TRICKY_TOML = '''\
"quoted key" = 1
'literal key' = 'C:\\no\\escapes "here"' # a literal string
bare-key_2 = "a # not a comment" # a comment
dotted . spaced . key = true
multi = """
line one
line "two" \\""""
literal-multi = \'\'\'x
y\'\'\'
date = 1979-05-27 07:32:00Z
numbers = [ 1, -2, +3, 0x1f, 1_000, 3.5e2, inf, nan, ]
nested = [ [1, 2], [ "a", { k = "v" } ] ]  # arrays in arrays
inline = { a = 1, b.c = "d", e = [ { f = 2 } ] }

[table."with quotes".x]
k = 1

[[aot]]
n = 1
[aot.sub]
m = 2
[[aot.inner]]
o = 3

[[aot]]
n = 4
'''


def leaves(value: object, path: tuple[str | int, ...] = ()) -> Iterator[
        tuple[tuple[str | int, ...], object]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))


def decodable() -> list[tuple[str, str, str]]:
    import tomllib

    found = [("tricky.toml", ".toml", TRICKY_TOML)]
    for case in [*BAD_CASES, *GOOD_CASES]:
        try:
            text = case.read_text(encoding="utf-8")
            (json.loads if case.suffix == ".json" else tomllib.loads)(text)
        except (ValueError, UnicodeDecodeError):
            continue
        found.append((case.name, case.suffix, text))
    return found


DECODABLE = decodable()


@pytest.mark.parametrize(("name", "suffix", "text"), DECODABLE, ids=[d[0] for d in DECODABLE])
def test_positions_cover_every_value(name: str, suffix: str, text: str) -> None:
    """The scanners find every value of a valid document, and the text at each value's span
    decodes to that value (tables from a `[header]` or dotted keys excepted: their span is
    the header, or the key and its value)."""
    import tomllib

    from compiler.spec import jsonpos, tomlpos

    if suffix == ".json":
        data, (where, dups) = json.loads(text), jsonpos.locate(text)
        if dups:
            pytest.skip("a key given twice: json keeps the last one, the scanner the first")
    else:
        data, where = tomllib.loads(text), tomlpos.locate(text)
    for path, value in leaves(data):
        if not path:
            continue
        assert path in where, f"{name}: no position for {path}"
        ks, ke, vs, ve = where[path]
        written, key = text[vs:ve], text[ks:ke]
        if isinstance(path[-1], str) and not key.startswith("["):
            named = json.loads(key) if suffix == ".json" else next(iter(tomllib.loads(
                f"{key} = 0")))
            assert named == path[-1], f"{name}: the key of {path} is written {key!r}"
        if isinstance(value, dict) and not written.startswith("{"):
            continue  # `[table]`, `[[array]]`, `a.b = …`
        if isinstance(value, list) and written.startswith("[["):
            continue
        again = json.loads(written) if suffix == ".json" else tomllib.loads(f"v = {written}")["v"]
        assert again == value or repr(again) == repr(value), (  # repr: nan != nan
            f"{name}: {path} is {value!r}, but {written!r} is written there")
