"""The on-disk cache (`compiler/lang/cache.py`): never stale, safe with concurrent runs, and the
pickled shipped library is the library, spans included. Each test has its own
`$XDG_CACHE_HOME`."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import attrs
import pytest

from compiler import cli, driver
from compiler.base.diagnostics import Collector
from compiler.base.source import SourceFile, Span
from compiler.lang import cache, model, resolve

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("MSCHEMA_CACHE", raising=False)
    return home / "mschema"


def entries(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir()) if where.is_dir() else []


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# ---- facts -------------------------------------------------------------------------
def test_an_entry_holds_only_while_its_files_are_unchanged(tmp_path: Path,
                                                           cache_home: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    fact = ("file", str(f), hashlib.sha256(b"one").hexdigest())
    cache.store("t", ["k"], [fact], b"payload")
    assert cache.lookup("t", ["k"]) == b"payload"
    assert cache.lookup("t", ["other key"]) is None
    f.write_text("two")
    assert cache.lookup("t", ["k"]) is None
    f.write_text("one")
    assert cache.lookup("t", ["k"]) == b"payload"
    f.unlink()
    assert cache.lookup("t", ["k"]) is None


def test_glob_and_isdir_facts_see_new_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.mschema").write_text("")
    glob = ("glob", f"{tmp_path / 'd'}\0*.mschema")
    isdir = ("isdir", str(tmp_path / "e"))
    before = cache.answers([glob, isdir])
    (tmp_path / "d" / "b.mschema").write_text("")
    (tmp_path / "d" / "c.txt").write_text("")
    after = cache.answers([glob, isdir])
    assert before[0] != after[0]
    (tmp_path / "d" / "b.mschema").unlink()
    assert cache.answers([glob]) == before[:1]
    (tmp_path / "e").mkdir()
    assert cache.answers([isdir]) != before[1:]


def test_corrupt_or_foreign_entries_are_misses(tmp_path: Path, cache_home: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    fact = ("file", str(f), hashlib.sha256(b"one").hexdigest())
    cache.store("t", ["k"], [fact], b"payload")
    (entry,) = cache_home.iterdir()
    data = entry.read_bytes()
    entry.write_bytes(data[:-1])  # a payload that does not match its checksum
    assert cache.lookup("t", ["k"]) is None
    entry.write_bytes(b"not json\n" + data.partition(b"\n")[2])
    assert cache.lookup("t", ["k"]) is None
    entry.write_bytes(data)
    assert cache.lookup("t", ["k"]) == b"payload"
    if os.getuid() == 0:
        os.chown(entry, 65534, 65534)
        assert cache.lookup("t", ["k"]) is None  # only what this user wrote is trusted


def test_the_fingerprint_is_part_of_the_key(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    cache.store("t", ["k"], [("file", str(f), hashlib.sha256(b"one").hexdigest())], b"x")
    with mock.patch.object(cache, "fingerprint", return_value="another mschema"):
        assert cache.lookup("t", ["k"]) is None
    assert cache.lookup("t", ["k"]) == b"x"


def test_off_and_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            cache_home: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    fact = ("file", str(f), hashlib.sha256(b"one").hexdigest())
    monkeypatch.setenv("MSCHEMA_CACHE", "off")
    cache.store("t", ["k"], [fact], b"x")
    assert cache.lookup("t", ["k"]) is None and not cache_home.exists()
    monkeypatch.delenv("MSCHEMA_CACHE")
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    cache.store("t", ["k"], [fact], b"x")  # cannot be written: no error, no entry
    assert cache.lookup("t", ["k"]) is None


def test_old_entries_are_pruned(tmp_path: Path, cache_home: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    fact = ("file", str(f), hashlib.sha256(b"one").hexdigest())
    for i in range(cache.MAX_ENTRIES + 5):
        cache.store("t", [str(i)], [fact], b"x")
    assert len(entries(cache_home)) == cache.MAX_ENTRIES


def test_concurrent_writers_leave_one_whole_entry(tmp_path: Path, cache_home: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    fact = ("file", str(f), hashlib.sha256(b"one").hexdigest())
    payload = os.urandom(1 << 20)

    def write_and_read(_: int) -> bytes | None:
        cache.store("t", ["k"], [fact], payload)
        return cache.lookup("t", ["k"])

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(write_and_read, range(32)))
    assert all(s == payload for s in seen)  # whole entries only
    assert len(entries(cache_home)) == 1  # no temporary file left behind


# ---- lint ----------------------------------------------------------------------------
@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    """A user file that `use`s another one beside it."""
    d = tmp_path / "my"
    (d / "lib").mkdir(parents=True)
    (d / "lib" / "a.mschema").write_text('use "buses"\n\nbus t-a-bus { qtree "T-A" }\n'
                                         'device t-a { plugs system  bus t-a-bus "{id}" }\n')
    (d / "top.mschema").write_text('use "lib/a.mschema"\n\ndevice t-top { plugs t-a-bus }\n')
    return d


def test_lint_is_clean_only_for_what_was_linted(schemas: Path) -> None:
    top = schemas / "top.mschema"
    assert not cache.lint_is_clean([top])
    assert cli.main(["lint", str(top)]) == 0
    assert cache.lint_is_clean([top])
    assert not cache.lint_is_clean([])  # another question
    (schemas / "lib" / "a.mschema").write_text(
        'use "buses"\n\nbus t-a-bus { qtree "T-A" }\ndevice t-a { plugs no-such-bus }\n')
    assert not cache.lint_is_clean([top])  # a file it `use`s changed


def test_unchanged_lint_does_not_run_again(schemas: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    top = schemas / "top.mschema"
    with mock.patch.object(driver, "lint", wraps=driver.lint) as real:
        assert cli.main(["lint", str(top), "--format", "json"]) == 0
        assert cli.main(["lint", str(top), "--format", "json"]) == 0
    assert real.call_count == 1  # the second answer came from the cache
    assert capsys.readouterr().out == "[]\n[]\n"


def test_lint_after_an_edit_reports_it(schemas: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    top = schemas / "top.mschema"
    assert cli.main(["lint", str(top)]) == 0
    a = schemas / "lib" / "a.mschema"
    good = a.read_text()
    a.write_text(good.replace('plugs system', 'plugs no-such-bus'))
    assert cli.main(["lint", str(top)]) == 1
    assert "error[E0201]: unknown bus kind `no-such-bus`" in capsys.readouterr().err
    assert cli.main(["lint", str(top)]) == 1  # a failure is never cached
    a.write_text(good)
    assert cli.main(["lint", str(top)]) == 0


def test_a_symlink_pointed_elsewhere_is_a_miss(schemas: Path) -> None:
    """`use "lib/a.mschema"` through a symlinked directory: same texts, other file."""
    real, other = schemas / "lib", schemas / "lib2"
    other.mkdir()
    (other / "a.mschema").write_text((real / "a.mschema").read_text().replace(
        "plugs system", "plugs no-such-bus"))
    (schemas / "top.mschema").write_text('use "link/a.mschema"\n\ndevice t-top { plugs t-a-bus }\n')
    (schemas / "link").symlink_to(real)
    top = schemas / "top.mschema"
    assert cli.main(["lint", str(top)]) == 0
    assert cache.lint_is_clean([top])
    (schemas / "link").unlink()
    (schemas / "link").symlink_to(other)
    assert not cache.lint_is_clean([top])
    assert cli.main(["lint", str(top)]) == 1


def test_a_change_during_the_run_is_not_recorded(schemas: Path) -> None:
    top = schemas / "top.mschema"
    shipped = cache.answers(resolve.shipped_questions())
    changed = [(k, s, "something else") if k == "glob" else (k, s, a) for k, s, a in shipped]
    diags = Collector()
    modules = resolve.load_modules([top], diags)
    cache.record_lint_clean([top], modules, [], shipped, changed)
    assert not cache.lint_is_clean([top])
    cache.record_lint_clean([top], modules, [], shipped, shipped)
    assert cache.lint_is_clean([top])


def test_concurrent_lint_runs(cache_home: Path) -> None:
    env = {**child_env(), "XDG_CACHE_HOME": str(cache_home.parent)}
    procs = [subprocess.Popen([sys.executable, "-m", "compiler", "lint"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert (p.returncode, out, err) == (0, b"", b"")
    assert [n for n in entries(cache_home) if n.startswith(".")] == []
    assert cache.lint_is_clean([])
    done = run("lint", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# ---- the shipped library ---------------------------------------------------------------
def fresh_library() -> model.Library:
    diags = Collector()
    library = resolve.resolve(resolve.load_modules(resolve.shipped_files(), diags), diags)
    diags.check()
    return library


def same_everywhere(a: object, b: object, path: str = "library") -> None:
    """Equal, and so are the fields equality leaves out (spans, source files)."""
    assert type(a) is type(b), path
    if isinstance(a, Span):
        assert (a.source.path, a.source.text, a.start, a.end) == (
            b.source.path, b.source.text, b.start, b.end), path  # type: ignore[attr-defined]
    elif isinstance(a, SourceFile):
        assert (a.path, a.text) == (b.path, b.text), path  # type: ignore[attr-defined]
    elif attrs.has(type(a)):
        for field in attrs.fields(type(a)):  # type: ignore[arg-type]
            same_everywhere(getattr(a, field.name), getattr(b, field.name),
                            f"{path}.{field.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), path  # type: ignore[call-overload]
        for k in a:
            same_everywhere(a[k], b[k], f"{path}[{k!r}]")  # type: ignore[index]
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path  # type: ignore[arg-type]
        for i, (x, y) in enumerate(zip(a, b, strict=True)):  # type: ignore[call-overload]
            same_everywhere(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_the_library_pickle_round_trips() -> None:
    library = fresh_library()
    back = pickle.loads(pickle.dumps(library, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == library
    same_everywhere(library, back)


def test_the_library_cache_gives_the_library_back(cache_home: Path) -> None:
    files = resolve.shipped_files()
    key = [str(p) for p in files]
    display = str
    assert cache.load_library(key, display) is None
    diags = Collector()
    modules = resolve.load_modules(files, diags)
    library = resolve.resolve(modules, diags)
    cache.store_library(key, modules, files, library)
    assert [n.split("-")[0] for n in entries(cache_home)] == ["library"]
    loaded = cache.load_library(key, lambda path: resolve._display(Path(path)))
    assert loaded is not None
    same_everywhere(library, loaded)
    # shown another way (another working directory): a miss, never wrong spans
    assert cache.load_library(key, lambda path: "elsewhere/" + path) is None


def test_compile_is_the_same_from_the_cache(tmp_path: Path, cache_home: Path) -> None:
    env = {**child_env(), "XDG_CACHE_HOME": str(cache_home.parent)}
    spec = str(ROOT / "examples" / "web01.toml")
    reference = run("compile", spec, "--emit", "json", env={**env, "MSCHEMA_CACHE": "off"})
    assert reference.returncode == 0, reference.stderr
    first = run("compile", spec, "--emit", "json", env=env)  # writes the library entry
    assert any(n.startswith("library-") for n in entries(cache_home))
    second = run("compile", spec, "--emit", "json", env=env)  # reads it
    assert reference.stdout == first.stdout == second.stdout
    # from another directory, schema paths are shown otherwise: not from the same entry
    why = [run("compile", spec, "--why", "disk0", env=e, cwd=tmp_path)
           for e in (env, env, {**env, "MSCHEMA_CACHE": "off"})]
    assert why[0].returncode == 0, why[0].stderr
    assert why[0].stdout == why[1].stdout == why[2].stdout
