"""Real migrations for the tests: a paused source QEMU migrates into a file
(`migrate exec:cat > FILE`), a destination QEMU loads it (`-incoming "exec:cat FILE"`), and
the outcome is whether the destination reached `completed` and, if not, what it said."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Sequence

import attrs


@attrs.frozen
class Outcome:
    completed: bool
    message: str  # the destination's status or its last stderr line


async def _client(sock: str, proc: subprocess.Popen[bytes], deadline: float) -> object:
    """A QMP session with `proc`; RuntimeError once it has exited (a destination that
    refuses the stream exits)."""
    from qemu.qmp import QMPClient

    while True:
        if proc.poll() is not None:
            raise RuntimeError("QEMU exited before QMP")
        client = QMPClient("mschema-tests")
        try:
            await client.connect(sock)
            return client
        except Exception:  # not listening yet, or hung up while exiting
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def _close(client: object) -> None:
    try:
        await client.disconnect()  # type: ignore[attr-defined]
    except Exception:
        pass  # QEMU went away first: the outcome is already known


async def _wait_migration(client: object, proc: subprocess.Popen[bytes], deadline: float
                          ) -> str:
    """`query-migrate`'s status once it is final (or the process's exit)."""
    status = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited"
        try:
            answer = await client.execute("query-migrate")  # type: ignore[attr-defined]
        except Exception:
            return "exited"
        status = str(answer.get("status", "")) if isinstance(answer, dict) else ""
        if status in ("completed", "failed", "cancelled"):
            return status
        await asyncio.sleep(0.05)
    return f"timeout ({status})"


def _start(argv: Sequence[str], sock: str, stderr_path: str,
           extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    with open(stderr_path, "wb") as err:
        return subprocess.Popen([*argv, "-S", "-display", "none", "-accel", "tcg", *extra,
                                 "-qmp", f"unix:{sock},server=on,wait=off"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)


def _last_line(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else ""


async def migrate_async(source: Sequence[str], destination: Sequence[str],
                        timeout: float = 60.0) -> Outcome:
    """Migrate a paused `source` (a full argv) into `destination` through a file."""
    deadline = time.monotonic() + timeout
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="mschema-migrate-") as tmp:
        stream = os.path.join(tmp, "stream")
        try:
            src = _start(source, os.path.join(tmp, "src.sock"), os.path.join(tmp, "src.err"))
            procs.append(src)
            client = await _client(os.path.join(tmp, "src.sock"), src, deadline)
            await client.execute("migrate",  # type: ignore[attr-defined]
                                 {"uri": f"exec:cat > {shlex.quote(stream)}"})
            status = await _wait_migration(client, src, deadline)
            await _close(client)
            if status != "completed":
                return Outcome(False, f"source: {status}: {_last_line(tmp + '/src.err')}")
            dst = _start(destination, os.path.join(tmp, "dst.sock"),
                         os.path.join(tmp, "dst.err"),
                         ("-incoming", f"exec:cat {shlex.quote(stream)}"))
            procs.append(dst)
            try:
                client = await _client(os.path.join(tmp, "dst.sock"), dst, deadline)
            except RuntimeError:
                return Outcome(False, _last_line(tmp + "/dst.err"))
            status = await _wait_migration(client, dst, deadline)
            await _close(client)
            if status == "completed":
                return Outcome(True, status)
            return Outcome(False, _last_line(tmp + "/dst.err") or status)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()


def migrate_all(jobs: Sequence[tuple[Sequence[str], Sequence[str]]], parallel: int = 2
                ) -> list[Outcome]:
    """Every (source, destination) migration, `parallel` at a time, in one event loop (no
    threads: QEMU does the work in its own processes)."""
    async def run() -> list[Outcome]:
        gate = asyncio.Semaphore(parallel)

        async def one(source: Sequence[str], destination: Sequence[str]) -> Outcome:
            async with gate:
                return await migrate_async(source, destination)

        return list(await asyncio.gather(*(one(s, d) for s, d in jobs)))

    return asyncio.run(run())
