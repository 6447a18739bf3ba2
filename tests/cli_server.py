"""Run `python -m compiler ARGV...` many times over, without paying Python's start-up each time.

Used by the corpus runner (`tests/corpus_support.py`) for the lang, spec and blob corpora.
Started as `python tests/cli_server.py` from the repository root, it imports the compiler
once, reads requests (one JSON object per line, `{"id": ..., "argv": [...]}`) until end of
input, then runs each one in a forked child, a few at a time. A child does exactly what
`python -m compiler ARGV...` does after start-up: it runs the package's `__main__` with
`runpy` (as `-m` does), with its stdout and stderr on files of its own, and exits with the
CLI's exit code; an uncaught exception prints its traceback and exits 1, as Python does. One
JSON line per request comes back, in the order they finish: `{"id", "returncode", "stdout",
"stderr"}`, the streams' bytes as latin-1 text.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import runpy
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import NoReturn

WARM_MODULES = ("tomllib", "lark.exceptions", "lark.lexer", "networkx", "compiler.cli",
                "compiler.driver", "compiler.lang.parse", "compiler.lang.schema_checks",
                "compiler.build.validate", "compiler.build.precise", "compiler.base.units")


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _child(argv: list[str], out: int, err: int) -> NoReturn:
    code = 1
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.argv = ["-m", *argv]
        try:
            runpy.run_module("compiler", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def main() -> None:
    sys.path[0] = os.getcwd()  # the script's directory → the current one, as with `-m`
    # Warm up: what `lint` and `compile` import (some of it lazily) and the grammar; no
    # spec, schema or stdlib file is read or parsed here, so each child does all of that work
    # itself. A module that has moved is only a slower child, never a failure.
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    parse = sys.modules.get("compiler.lang.parse")
    if parse is not None and hasattr(parse, "_parser"):
        parse._parser()
    gc.freeze()  # keep the warm objects out of the children's collections (and their pages)
    requests = [json.loads(line) for line in sys.stdin if line.strip()]
    jobs = max(1, os.cpu_count() or 1)
    tmp = Path(tempfile.mkdtemp(prefix="mschema-cli-"))
    running: dict[int, tuple[object, Path, Path]] = {}  # pid → request id, its streams
    try:
        while requests or running:
            while requests and len(running) < jobs:
                request = requests.pop(0)
                out_path = tmp / f"{request['id']}.out"
                err_path = tmp / f"{request['id']}.err"
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                out, err = os.open(out_path, flags, 0o600), os.open(err_path, flags, 0o600)
                pid = os.fork()
                if pid == 0:
                    _child(list(request["argv"]), out, err)
                os.close(out)
                os.close(err)
                running[pid] = (request["id"], out_path, err_path)
            pid, status = os.wait()
            request_id, out_path, err_path = running.pop(pid)
            reply = {
                "id": request_id,
                "returncode": os.waitstatus_to_exitcode(status),
                "stdout": out_path.read_bytes().decode("latin-1"),
                "stderr": err_path.read_bytes().decode("latin-1"),
            }
            _write_all(1, (json.dumps(reply) + "\n").encode("ascii"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
