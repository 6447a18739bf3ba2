"""Test helpers around a real QEMU.

The comparison of a blob with what QEMU built lives in the package (`compiler/qemu/compare.py`,
used by `mschema verify` and `mschema extract`), the host-side helpers in
`compiler/qemu/verify.py`; both are re-exported here for the tests that import them from this
module. Also here: a QEMU left running with a QMP socket (`running`), for `extract`, and the
layout of the argv goldens (`tests/vm/<case>.argv`: one argument per line, so that a diff
shows the argument that changed; `--emit argv` itself prints JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from qemu_support import require_binary

from compiler.qemu.compare import (  # noqa: F401  (re-exported)
    MACHINE_REQUESTS,
    BusEntry,
    Entry,
    blob_buses,
    blob_entries,
    blob_walk,
    compare,
    differences,
    emitted_ids,
    machine_differences,
    prop_differences,
    qom_differences,
    qom_requests,
    qtree_addr,
    qtree_buses,
    qtree_entries,
    qtree_value,
    usb_ports,
)
from compiler.qemu.verify import backing_files, runnable_argv  # noqa: F401  (re-exported)


def argv_golden_text(argv: Sequence[str]) -> str:
    """An argv as its golden file holds it: one argument per line."""
    for arg in argv:
        assert arg and "\n" not in arg, f"{arg!r} cannot be one line of an argv golden"
    return "".join(f"{arg}\n" for arg in argv)


def argv_from_golden(text: str) -> list[str]:
    assert text.endswith("\n"), "an argv golden ends with a newline"
    return text[:-1].split("\n")


def read_argv_golden(path: Path) -> list[str]:
    """The argv of a golden case (`tests/vm/<case>.argv`)."""
    return argv_from_golden(path.read_text(encoding="utf-8"))


def emitted_argv_json(argv: Sequence[str]) -> str:
    """What `--emit argv` prints for `argv`, byte for byte."""
    return json.dumps(list(argv)) + "\n"


@contextlib.contextmanager
def started(argv: Sequence[str], sock: str, log: str, cwd: str | None = None,
            timeout: float = 20.0) -> Iterator[str]:
    """QEMU started paused from `argv` with a QMP socket at `sock` and its stderr in `log`;
    yields once the machine is built (RuntimeError with QEMU's stderr if it never is), and
    kills QEMU afterwards."""
    with open(log, "wb") as err:
        proc = subprocess.Popen([*argv, "-S", "-display", "none", "-qmp",
                                 f"unix:{sock},server=on,wait=off"], cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + timeout
        while not _listening(sock) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        try:  # answers once the machine is built, or QEMU has exited
            qmp(sock, ("query-status", {}))
        except Exception as exc:
            proc.kill()
            proc.wait(timeout=10)
            with open(log, encoding="utf-8", errors="replace") as f:
                raise RuntimeError(f"QEMU did not start:\n{f.read()}") from exc
        yield sock
    finally:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def running(argv: Sequence[str], timeout: float = 20.0) -> Iterator[str]:
    """QEMU started paused from `argv` (binary first) with a QMP socket, as anyone would
    start it; yields the socket's path, and kills QEMU afterwards."""
    with tempfile.TemporaryDirectory(prefix="mschema-qmp-") as tmp, started(
            [*argv, "-accel", "tcg"], os.path.join(tmp, "qmp.sock"),
            os.path.join(tmp, "stderr"), timeout=timeout) as sock:
        yield sock


def _listening(sock: str) -> bool:
    import socket

    if not os.path.exists(sock):
        return False
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sock)
    except OSError:
        return False
    finally:
        s.close()
    return True


def qmp(sock: str, *commands: tuple[str, Mapping[str, object]]) -> list[object]:
    """Run QMP commands on a running QEMU (one session), e.g. `device_add`."""
    from qemu.qmp import QMPClient

    async def session() -> list[object]:
        client = QMPClient("mschema-tests")
        await client.connect(sock)
        try:
            return [await client.execute(name, dict(args)) for name, args in commands]
        finally:
            await client.disconnect()

    return asyncio.run(asyncio.wait_for(session(), 20))


def make_host_files(blob: Mapping[str, Any], directory: Path, size: int = 1 << 20) -> None:
    """The host side a blob's backends need, under `directory`: qcow2 or raw images
    (`size` bytes), and the directories fsdevs export."""
    for name, fmt in backing_files(blob):
        path = directory / name
        if fmt == "directory":
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            continue
        if fmt == "qcow2":
            subprocess.run([require_binary("qemu-img"), "create", "-q", "-f", "qcow2",
                            str(path), "64M"], check=True, timeout=30)
        else:
            with path.open("wb") as f:
                f.truncate(size)
