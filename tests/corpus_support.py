"""The one runner of the golden-file corpora (tests/lang, tests/spec, tests/blob): the runs of
the real CLI they ask for, the diagnostic header, and the golden check with
`--update-goldens`.

A corpus test says which runs it needs with a marker, `@pytest.mark.corpus("MODE", ...)`
(no mode: the test's own `mode` parameter), on a test parametrised with `case` (a path);
`plain=True` asks for a genuine `python -m compiler` run as well. At the start of the session
the `corpus` fixture (tests/conftest.py) starts every run that the collected tests of all
three corpora announce, at once, and `corpus(case, mode)` waits for one. A run nobody
announced (a file written by the test itself) is a plain subprocess.

The CLI runs in forked children of one warm process (tests/cli_server.py): real processes
with their own streams and exit codes, without Python's start-up for each case.
MSCHEMA_CORPUS_FORK=0 runs every case as a plain `python -m compiler` instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "tests" / "cli_server.py"
HEADER = re.compile(r"^(?P<path>\S+):(?P<line>\d+):(?P<col>\d+): (?P<severity>error|warning)"
                    r"\[(?P<code>E\d{4})\]: (?P<message>.*)$")
# any diagnostic's first line, located or not (`<info qtree of …>:3:5: warning[E1715]: …`)
DIAGNOSTIC = re.compile(r"^(?:.+?:\d+:\d+: )?(error|warning)\[(E\d{4})\]: ", re.MULTILINE)
USE_SERVER = hasattr(os, "fork") and os.environ.get("MSCHEMA_CORPUS_FORK", "1") != "0"
ENV = {**os.environ, "PYTHONHASHSEED": "0"}
ENV.pop("PYTHONWARNINGS", None)
# mode → the CLI's arguments after the case's path (`-o` gets a directory of the runner's)
MODES: dict[str, tuple[str, ...]] = {
    "lint": ("lint",),
    "lint-json": ("lint", "--format", "json"),
    "emit": ("compile", "--emit", "json"),
    "emit-argv": ("compile", "--emit", "argv"),
    "out": ("compile", "-o"),
}
Key = tuple[Path, str]  # a case and a mode


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def shown(path: Path) -> str:
    """A path as the CLI gets it: relative to the repository root when it is inside."""
    return rel(path) if path.is_relative_to(REPO) else str(path)


def codes_of(text: str) -> list[str]:
    """The code of every diagnostic a command printed (text format), in order."""
    return [m[2] for m in DIAGNOSTIC.finditer(text)]


def headers(text: str) -> list[re.Match[str]]:
    return [m for line in text.splitlines() if (m := HEADER.match(line))]


def check_golden(golden: Path, actual: str, update: bool) -> None:
    if update:
        golden.write_text(actual, encoding="utf-8")
        return
    assert golden.exists(), f"{rel(golden)} is missing: run pytest with --update-goldens"
    expected = golden.read_text(encoding="utf-8")
    assert actual == expected, f"output differs from {rel(golden)}"


class Result:
    """What one CLI run did: exit code and both streams (decoded as UTF-8)."""

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.returncode = returncode
        self.stdout = stdout.decode("utf-8")
        self.stderr = stderr.decode("utf-8")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and (
            (self.returncode, self.stdout, self.stderr)
            == (other.returncode, other.stdout, other.stderr))

    def __hash__(self) -> int:
        return hash((self.returncode, self.stdout, self.stderr))

    def __repr__(self) -> str:
        return f"Result({self.returncode}, {self.stdout!r}, {self.stderr!r})"


def collected_keys(items: list[pytest.Item]) -> tuple[list[Key], list[Key]]:
    """The runs that the collected tests marked `corpus` will ask for: all of them, and those
    that must also run as a plain process."""
    keys, plain = [], []
    for item in items:
        marker = item.get_closest_marker("corpus")
        params = getattr(getattr(item, "callspec", None), "params", {})
        case = params.get("case")
        if marker is None or not isinstance(case, Path):
            continue
        modes = marker.args or (params["mode"],)
        for mode in modes:
            keys.append((case, mode))
            if USE_SERVER and marker.kwargs.get("plain"):
                plain.append((case, mode))
    return keys, plain


class Runner:
    """Starts every announced run at once; `runner(case, mode)` waits for one. Runs not
    announced at the start, and `plain` ones, are genuine subprocesses."""

    def __init__(self, wanted: list[Key], plain: list[Key]) -> None:
        self.out_root = Path(tempfile.mkdtemp(prefix="mschema-corpus-"))
        self.pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1))
        self.futures: dict[Key, Future[Result]] = {}
        self.plain_futures = {key: self.pool.submit(self.run_plain, *key)
                              for key in dict.fromkeys(plain)}
        self.server: subprocess.Popen[bytes] | None = None
        wanted = list(dict.fromkeys(wanted))
        if USE_SERVER and wanted:
            self.start_server(wanted)
        else:
            for key in wanted:
                self.futures[key] = self.pool.submit(self.run_plain, *key)

    def out_dir(self, case: Path, mode: str) -> Path:
        """The `-o` of a run: a directory that must not exist afterwards."""
        corpus, kind = case.parent.parent.name, case.parent.name  # e.g. spec, bad
        return self.out_root / f"{corpus}-{kind}-{case.name}-{mode}" / "out"

    def argv(self, case: Path, mode: str) -> list[str]:
        command, *options = MODES[mode]
        if mode == "out":
            options.append(str(self.out_dir(case, mode)))
        return [command, shown(case), *options]

    def run_plain(self, case: Path, mode: str) -> Result:
        """`python -m compiler …` in a subprocess of its own, from the repository root."""
        proc = subprocess.run([sys.executable, "-m", "compiler", *self.argv(case, mode)],
                              cwd=REPO, capture_output=True, env=ENV, timeout=120, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def start_server(self, wanted: list[Key]) -> None:
        self.server = subprocess.Popen(
            [sys.executable, str(SERVER)], cwd=REPO, env=ENV,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        by_id: dict[int, Future[Result]] = {}
        for n, key in enumerate(wanted):
            by_id[n] = self.futures[key] = Future()
        assert self.server.stdin is not None
        self.server.stdin.write(b"".join(
            json.dumps({"id": n, "argv": self.argv(*key)}).encode() + b"\n"
            for n, key in enumerate(wanted)))
        self.server.stdin.close()
        threading.Thread(target=self.read_replies, args=(self.server, by_id),
                         daemon=True).start()

    @staticmethod
    def read_replies(server: subprocess.Popen[bytes], by_id: dict[int, Future[Result]]) -> None:
        assert server.stdout is not None and server.stderr is not None
        for line in server.stdout:
            reply = json.loads(line)
            by_id.pop(reply["id"]).set_result(Result(
                reply["returncode"], reply["stdout"].encode("latin-1"),
                reply["stderr"].encode("latin-1")))
        problem = server.stderr.read().decode("utf-8", "replace")
        for future in by_id.values():
            future.set_exception(RuntimeError(f"{rel(SERVER)} stopped early:\n{problem}"))

    def __call__(self, case: Path, mode: str) -> Result:
        key = (case, mode)
        if key not in self.futures:
            self.futures[key] = self.pool.submit(self.run_plain, *key)
        return self.futures[key].result(timeout=300)

    def plain(self, case: Path, mode: str) -> Result:
        """Always a genuine `python -m compiler`, whatever `USE_SERVER` says."""
        key = (case, mode)
        if key not in self.plain_futures:
            self.plain_futures[key] = self.pool.submit(self.run_plain, *key)
        return self.plain_futures[key].result(timeout=300)

    def close(self) -> None:
        if self.server is not None:
            try:
                self.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.out_root, ignore_errors=True)
