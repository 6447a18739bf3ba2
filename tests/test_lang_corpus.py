"""The bad-input corpus of `mschema lint`, run through the real CLI.

`tests/lang/bad/<what-is-wrong>.mschema|.machine` holds exactly one mistake; beside it,
`<case>.err` is what `mschema lint <case>` prints on stderr (byte for byte) and, where it
exists, `<case>.json` what `--format json` prints on stdout. `tests/lang/good/*-ok.*` are
near misses that must lint clean. Helper files a case `use`s live in `<case>.d/`.

Cases are found on disk: adding one needs no change here. Create or refresh the goldens
with `pytest tests/test_lang_corpus.py --update-goldens` (for a new JSON golden, create an
empty `<case>.json` first), then read the diff.

Every `lint` is `python -m compiler lint PATH` in a process of its own, from the repository
root, so exit codes and streams are real. The corpus runner (`tests/corpus_support.py`, one
for the lang, spec and blob corpora) forks those processes from one warm interpreter
(Python's start-up and imports cost more than linting a case) and runs them in parallel;
`test_same_as_plain_cli` checks a sample against genuine `python -m compiler` subprocesses,
and `MSCHEMA_CORPUS_FORK=0` uses those for all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from corpus_support import USE_SERVER, Runner, check_golden, headers, rel

REPO = Path(__file__).resolve().parent.parent
LANG = REPO / "tests" / "lang"
BAD = LANG / "bad"
GOOD = LANG / "good"
DOCS = REPO / "docs" / "diagnostics.md"
SOURCE_SUFFIXES = (".mschema", ".machine")
# In a row of docs/diagnostics.md: the code comes from a command other than `lint` only.
NOT_FROM_LINT = "not from `lint`"
# a code no input can cause: an internal error (E9999) has, by its nature, no bad case
NO_INPUT = "*any command*: an internal error"


def cases(directory: Path) -> list[Path]:
    """The case files of a directory (not the helpers in `<case>.d/`)."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in SOURCE_SUFFIXES)



BAD_CASES = cases(BAD)
GOOD_CASES = cases(GOOD)
JSON_CASES = [c for c in BAD_CASES if c.with_suffix(".json").exists()]


# ---- the cases ---------------------------------------------------------------------------
@pytest.mark.corpus("lint")
@pytest.mark.parametrize("case", BAD_CASES, ids=lambda p: p.name)
def test_bad_case_text(case: Path, corpus: Runner, update_goldens: bool) -> None:
    result = corpus(case, "lint")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    errors = headers(result.stderr)
    assert len(errors) == 1, f"expected exactly one error, got:\n{result.stderr}"
    assert errors[0]["path"] == rel(case), "the error must be reported in the case file"
    check_golden(case.with_suffix(".err"), result.stderr, update_goldens)


@pytest.mark.corpus("lint-json")
@pytest.mark.parametrize("case", JSON_CASES, ids=lambda p: p.name)
def test_bad_case_json(case: Path, corpus: Runner, update_goldens: bool) -> None:
    result = corpus(case, "lint-json")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    objects = json.loads(result.stdout)
    assert isinstance(objects, list) and objects
    # the same diagnostics as the text golden, field by field
    text = case.with_suffix(".err").read_text(encoding="utf-8")
    assert [(o["path"], o["line"], o["col"], o["severity"], o["code"], o["message"])
            for o in objects] == [
        (m["path"], int(m["line"]), int(m["col"]), m["severity"], m["code"], m["message"])
        for m in headers(text)]
    for o in objects:
        assert {"end_line", "end_col"} <= o.keys()
    check_golden(case.with_suffix(".json"), result.stdout, update_goldens)


@pytest.mark.corpus("lint")
@pytest.mark.parametrize("case", GOOD_CASES, ids=lambda p: p.name)
def test_good_case(case: Path, corpus: Runner) -> None:
    result = corpus(case, "lint")
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# The forked runs against genuine `python -m compiler lint` processes, on a sample: two JSON
# goldens, two text ones (one with bytes that are not UTF-8), a good case.
PLAIN_SAMPLE = [*((c, "lint-json") for c in JSON_CASES[:2]),
                (BAD / "not-utf8.mschema", "lint"), (BAD / "use-cycle-3.mschema", "lint"),
                (GOOD_CASES[0], "lint")]


@pytest.mark.skipif(not USE_SERVER, reason="every run is a plain `python -m compiler` already")
@pytest.mark.corpus(plain=True)
@pytest.mark.parametrize(("case", "mode"), PLAIN_SAMPLE,
                         ids=[f"{c.name}-{m}" for c, m in PLAIN_SAMPLE])
def test_same_as_plain_cli(case: Path, mode: str, corpus: Runner) -> None:
    assert corpus(case, mode) == corpus.plain(case, mode)


# ---- the corpus itself (after the cases, so --update-goldens has written them) -----------
def test_corpus_is_big_enough() -> None:
    assert len(BAD_CASES) >= 45
    assert GOOD_CASES


def test_every_bad_case_has_its_golden() -> None:
    missing = [rel(c) for c in BAD_CASES if not c.with_suffix(".err").exists()]
    assert not missing, f"cases without a .err golden: {missing}"
    stems = {c.with_suffix("") for c in BAD_CASES}
    orphans = [rel(g) for g in sorted([*BAD.glob("*.err"), *BAD.glob("*.json")])
               if g.with_suffix("") not in stems]
    assert not orphans, f"goldens without a case: {orphans}"


def documented_codes() -> dict[str, str]:
    """Code → its table row in docs/diagnostics.md."""
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and re.fullmatch(r"`?E\d{4}`?", cells[0]):
            rows[cells[0].strip("`")] = line
    return rows


def test_every_documented_code_has_a_bad_case() -> None:
    """Every code in the table, except rows whose stage `lint` never runs (marked so)."""
    rows = {code: row for code, row in documented_codes().items()
            if NOT_FROM_LINT not in row and NO_INPUT not in row}
    assert rows, f"{rel(DOCS)} lists no codes"
    covered = {m["code"] for c in BAD_CASES if c.with_suffix(".err").exists()
               for m in headers(c.with_suffix(".err").read_text(encoding="utf-8"))}
    missing = sorted(set(rows) - covered)
    assert not missing, f"documented codes without a case in tests/lang/bad: {missing}"


def test_documented_examples_exist_and_fit() -> None:
    for code, row in documented_codes().items():
        for link in re.findall(r"\]\(([^)]+)\)", row):
            path = (DOCS.parent / link).resolve()
            assert path.exists(), f"{code}: {link} does not exist"
            if path.parent == BAD:
                err = path.with_suffix(".err").read_text(encoding="utf-8")
                assert f"[{code}]" in err, f"{code}: {link} does not produce it"


# The modules on `lint`'s path; every code they can emit must be documented (and so, by the
# test above, have a bad case).
LINT_MODULES = ("lang/parse.py", "lang/resolve/*.py", "lang/schema_checks.py",
                "base/diagnostics.py")


def test_every_lint_code_is_documented() -> None:
    used = {code for name in LINT_MODULES for path in (REPO / "compiler").glob(name)
            for code in re.findall(r"[\"'](E\d{4})[\"']", path.read_text(encoding="utf-8"))}
    missing = sorted(used - set(documented_codes()))
    assert not missing, f"codes emitted by compiler/ but missing from {rel(DOCS)}: {missing}"
