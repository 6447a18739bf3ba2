"""A content-hash cache on disk, so that unchanged inputs are not parsed and checked again.

Entries live in `$XDG_CACHE_HOME/mschema` (default `~/.cache/mschema`; `MSCHEMA_CACHE=off`
turns the cache off). An entry is found by a key (what was asked, and a fingerprint of
mschema itself: its version, every module and the grammar, the Python and the lark and attrs
it runs with) and holds *facts*: each file it was made from with the SHA-256 of the exact text
that was read, and whatever else the result depended on (which data directories exist, what
a glob matches, how a path is displayed). It is used only if every fact still holds, so an
edit anywhere — a schema, a file it `use`s, a new schema beside it, the grammar, mschema — is a
miss, never a stale hit. Entries are written to a temporary file and renamed into place, so
concurrent runs see a whole entry or none; the payload carries its own checksum. Any problem
with the cache (unwritable, corrupt, another user's, another version) is a miss: the cache only
makes a run faster and never changes its result. Only clean outcomes are stored (a lint that
found nothing, a resolved library), so diagnostics always come from a real run.

Two users: `mschema lint` asks `lint_is_clean` before importing the compiler proper (this
module imports only the standard library at start-up), and `resolve._shipped_library` keeps
the resolved shipped library as a pickle of the frozen model. Both also call
`spare_the_last_collection`, a saving at process exit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compiler.lang import ast, model

FORMAT = 1  # bump when the layout of an entry changes
MAX_ENTRIES = 64  # older entries are removed when a new one is written
OFF = ("0", "off", "no", "false")

# (kind, subject, answer): `answer(kind, subject)` must give `answer` again for a hit.
# kinds: "file" (SHA-256 of the content), "realpath" (where a path leads, symlinks
# followed), "isdir" ("1"/"0"), "glob" (subject "DIR\0PATTERN", SHA-256 of the sorted
# matches), "display" (how the path is shown).
Fact = tuple[str, str, str]
Question = tuple[str, str]


def directory() -> Path | None:
    """Where entries live, or None when the cache is off."""
    if os.environ.get("MSCHEMA_CACHE", "").strip().lower() in OFF:
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: ignored, as XDG says
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "mschema"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache
def fingerprint() -> str:
    """mschema itself: a change to any of it makes every entry a miss."""
    import importlib.util

    from compiler import __version__

    h = hashlib.sha256(f"mschema {__version__}\0cache {FORMAT}\0python "
                       f"{sys.version_info[0]}.{sys.version_info[1]}\0".encode())
    package = Path(__file__).parents[1]  # every module, wherever it sits in the package
    for path in sorted(p for pattern in ("*.py", "*.json", "*.lark")
                       for p in package.rglob(pattern)):
        h.update(f"{path.relative_to(package).as_posix()}\0".encode())
        h.update(_sha(path.read_bytes()).encode())
    for dependency in ("lark", "attr", "attrs"):
        spec = importlib.util.find_spec(dependency)
        origin = spec.origin if spec is not None else None
        if origin is None:
            h.update(f"{dependency} -\0".encode())
            continue
        st = os.stat(origin)
        h.update(f"{dependency} {origin} {st.st_size} {st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def answer(kind: str, subject: str, display: Callable[[str], str] | None = None) -> str:
    """The current answer to a question (see `Fact`); "" where there is none."""
    try:
        if kind == "file":
            with open(subject, "rb") as f:
                return _sha(f.read())
        if kind == "realpath":
            return os.path.realpath(subject)
        if kind == "isdir":
            return "1" if os.path.isdir(subject) else "0"
        if kind == "glob":
            where, _, pattern = subject.partition("\0")
            return _sha("\0".join(sorted(str(p) for p in Path(where).glob(pattern))).encode())
        if kind == "display" and display is not None:
            return display(subject)
    except OSError:
        pass
    return ""


def answers(questions: Iterable[Question]) -> list[Fact]:
    return [(kind, subject, answer(kind, subject)) for kind, subject in questions]


def module_facts(modules: Iterable[ast.Module], followed: Iterable[Path],
                 display: bool = False) -> list[Fact]:
    """Each parsed file, by the text that was parsed (not read again: an edit during the
    run cannot slip in); where each path `followed` to reach them leads (a symlink may be
    pointed elsewhere); with `display`, also the path its spans show."""
    facts: list[Fact] = []
    for m in modules:
        path = str(Path(m.path).resolve())
        facts.append(("file", path, _sha(m.span.source.text.encode("utf-8"))))
        if display:
            facts.append(("display", path, m.path))
    for p in dict.fromkeys(str(p) for p in followed):
        facts.append(("realpath", p, os.path.realpath(p)))
    return facts


# ---- entries -------------------------------------------------------------------------
def _entry(name: str, key_parts: Iterable[str]) -> Path | None:
    where = directory()
    if where is None:
        return None
    h = hashlib.sha256(f"{fingerprint()}\0{name}\0".encode())
    for part in key_parts:
        h.update(part.encode("utf-8", errors="surrogateescape") + b"\0")
    return where / f"{name}-{h.hexdigest()[:40]}"


def lookup(name: str, key_parts: Iterable[str],
           display: Callable[[str], str] | None = None) -> bytes | None:
    """The payload stored under this key, if every fact stored with it still holds."""
    try:
        path = _entry(name, key_parts)
        if path is None:
            return None
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_uid != os.getuid():
                return None  # only trust what this user wrote
            data = f.read()
        header, _, payload = data.partition(b"\n")
        meta = json.loads(header)
        if meta.get("format") != FORMAT or meta.get("payload") != _sha(payload):
            return None
        for kind, subject, expected in meta["facts"]:
            if answer(kind, subject, display) != expected:
                return None
    except Exception:  # unreadable, corrupt, or from a layout of its own: a miss
        return None
    return payload


def store(name: str, key_parts: Iterable[str], facts: Sequence[Fact],
          payload: bytes = b"") -> None:
    """Write an entry atomically (temporary file, then rename); failures are ignored."""
    import tempfile

    try:
        path = _entry(name, key_parts)
        if path is None or any(not expected for kind, _s, expected in facts
                               if kind == "file"):
            return
        header = json.dumps({"format": FORMAT, "payload": _sha(payload), "facts": facts},
                            separators=(",", ":"))
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header.encode("utf-8") + b"\n" + payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        _prune(path.parent)
    except Exception:  # a cache that cannot be written is no cache, not an error
        pass


def _prune(where: Path) -> None:
    """Keep the newest `MAX_ENTRIES` entries (stale ones are never hit, only kept)."""
    entries = []
    for p in where.iterdir():
        try:
            entries.append((p.stat().st_mtime_ns, p))
        except OSError:
            continue
    entries.sort(reverse=True)
    for _mtime, p in entries[MAX_ENTRIES:]:
        try:
            p.unlink()
        except OSError:
            pass


# ---- lint ----------------------------------------------------------------------------
def _lint_key(paths: Sequence[Path]) -> list[str]:
    return [str(p.resolve()) for p in paths]


def lint_is_clean(paths: Sequence[Path]) -> bool:
    """Did `mschema lint PATHS` find nothing, with every file it read as it is now?"""
    try:
        key = _lint_key(paths)
    except Exception:  # e.g. a symlink loop: the real run reports it
        return False
    return lookup("lint", key) is not None


def record_lint_clean(paths: Sequence[Path], modules: Iterable[ast.Module],
                      followed: Iterable[Path], before: Sequence[Fact],
                      after: Sequence[Fact]) -> None:
    """`lint PATHS` found nothing in `modules`, read through the paths `followed`. `before`
    and `after` answer the same questions (which files are shipped) at the start and the end
    of the run: if they differ, something changed while it ran, and nothing is stored."""
    if list(before) != list(after):
        return
    store("lint", _lint_key(paths), [*module_facts(modules, followed), *after])


# ---- the resolved shipped library --------------------------------------------------------
def load_library(key_parts: Sequence[str], display: Callable[[str], str]
                 ) -> model.Library | None:
    payload = lookup("library", key_parts, display)
    if payload is None:
        return None
    import gc
    import pickle

    from compiler.lang import model

    collecting = gc.isenabled()
    gc.disable()  # thousands of small objects: collecting while loading only costs time
    try:
        library = pickle.loads(payload)
    except Exception:
        return None
    finally:
        if collecting:
            gc.enable()
    return library if isinstance(library, model.Library) else None


def store_library(key_parts: Sequence[str], modules: Iterable[ast.Module],
                  followed: Iterable[Path], library: model.Library) -> None:
    """Keep `library` (resolved from `modules`, read through the paths `followed`) if its
    pickle gives it back equal."""
    import pickle

    try:
        payload = pickle.dumps(library, protocol=pickle.HIGHEST_PROTOCOL)
        if pickle.loads(payload) != library:
            return
    except Exception:
        return
    store("library", key_parts, module_facts(modules, followed, display=True), payload)


# ---- exit ------------------------------------------------------------------------------
@functools.cache
def spare_the_last_collection() -> None:
    """At exit, freeze what is left, so that the interpreter's last collection does not go
    through it: the resolved library, lark's tables, networkx (20-40 ms of a `compile` or
    `lint` process). Nothing changes before the exit."""
    import atexit
    import gc

    atexit.register(gc.freeze)
