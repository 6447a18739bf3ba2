"""A fake QMP server for tests: an asyncio unix socket that speaks QMP's greeting and
capabilities negotiation, then answers each command as a scenario says — like QEMU, or with
garbage, truncated JSON, a huge line, a reply of the wrong shape, nothing at all, a hang-up in
the middle, or a flood of events.

    with peer(path, "cpus-string"):
        ... `mschema extract --qmp path` ...

The peer runs in a thread of the test process with its own event loop; leaving the `with`
stops it and every connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0},
                                "package": "fake"}, "capabilities": ["oob"]}}

# Answers of the right shape: enough for `extract` to read a (nearly empty) q35 machine.
QTREE = "bus: main-system-bus\n  type System\n"
ANSWERS: dict[str, object] = {
    "qom-list": [{"name": "type", "type": "string"}],
    "query-cpus-fast": [],
    "query-machines": [],
    "query-memory-size-summary": {"base-memory": 134217728},
    "query-name": {},
    "query-block": [],
    "query-named-block-nodes": [],
    "query-chardev": [],
    "query-uuid": {"UUID": "00000000-0000-0000-0000-000000000000"},
}

# scenario → (command, answer of the wrong shape)
WRONG_SHAPES: dict[str, tuple[str, object]] = {
    "qom-list-dict": ("qom-list", {"name": "type", "type": "string"}),
    "qom-list-items": ("qom-list", [{"type": "string"}]),
    "cpus-string": ("query-cpus-fast", "cpu0"),
    "hmp-number": ("human-monitor-command", 42),
    "memory-list": ("query-memory-size-summary", [134217728]),
    "qtree-garbage": ("human-monitor-command", "hello, this is no device tree"),
}

SCENARIOS = ("no-greeting", "garbage-greeting", "garbage", "truncated", "truncated-hang",
             "huge", "silent", "die", "flood", *WRONG_SHAPES)


def _answer(command: str, arguments: dict[str, object]) -> object:
    if command == "qom-get":
        if arguments.get("path") == "/machine" and arguments.get("property") == "type":
            return "pc-q35-7.2-machine"
        return None
    if command == "human-monitor-command":
        return QTREE if arguments.get("command-line") == "info qtree" else ""
    return ANSWERS.get(command, {})


async def _messages(reader: asyncio.StreamReader) -> AsyncIterator[dict[str, object]]:
    """The client's JSON objects (QMP clients need not end them with a newline)."""
    decoder = json.JSONDecoder()
    buffer = ""
    while chunk := await reader.read(65536):
        buffer += chunk.decode()
        while buffer.strip():
            try:
                message, end = decoder.raw_decode(buffer.lstrip())
            except ValueError:
                break  # the rest of the object is still on its way
            buffer = buffer.lstrip()[end:]
            yield message


def _line(message: object) -> bytes:
    return json.dumps(message).encode() + b"\r\n"


class Peer:
    def __init__(self, path: Path, scenario: str) -> None:
        assert scenario in SCENARIOS, scenario
        self.path = path
        self.scenario = scenario
        self.commands: list[str] = []  # every command received, in order
        self.events = 0  # how many events a flood has sent
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self._ready.set()
        async with server:
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "the fake QMP peer did not start"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client hung up, or the peer is stopping
        finally:
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                        ) -> None:
        scenario = self.scenario
        if scenario == "no-greeting":
            await asyncio.sleep(3600)
        if scenario == "garbage-greeting":
            writer.write(b"\x00\xffHELLO this is not QMP\r\n")
            await writer.drain()
            await asyncio.sleep(3600)
        writer.write(_line(GREETING))
        await writer.drain()
        flood: asyncio.Task[None] | None = None
        try:
            async for message in _messages(reader):
                command = str(message.get("execute"))
                self.commands.append(command)
                reply_id = message.get("id")
                if command == "qmp_capabilities":
                    if scenario == "silent":
                        await asyncio.sleep(3600)
                    writer.write(_line({"return": {}, "id": reply_id}))
                    await writer.drain()
                    if scenario == "flood":
                        flood = asyncio.create_task(self._flood(writer))
                    continue
                if scenario == "flood":
                    continue  # commands are never answered: only events come
                if scenario == "garbage":
                    writer.write(b"{\"return\": nonsense \xff\xfe}\r\n")
                elif scenario in ("truncated", "truncated-hang"):
                    writer.write(_line({"return": "pc-q35-7.2-machine", "id": reply_id})[:20])
                    await writer.drain()
                    if scenario == "truncated-hang":
                        await asyncio.sleep(3600)
                    return
                elif scenario == "huge":
                    writer.write(b'{"return": "' + b"x" * (16 << 20) + b'"}\r\n')
                elif scenario == "die" and len(self.commands) > 3:
                    return  # hang up in the middle of the conversation
                else:
                    arguments = message.get("arguments") or {}
                    wrong = WRONG_SHAPES.get(scenario)
                    answer = (wrong[1] if wrong and wrong[0] == command
                              else _answer(command, arguments))
                    writer.write(_line({"return": answer, "id": reply_id}))
                await writer.drain()
        finally:
            if flood is not None:
                flood.cancel()

    async def _flood(self, writer: asyncio.StreamWriter) -> None:
        event = _line({"event": "FLOOD", "data": {"n": 1},
                       "timestamp": {"seconds": 0, "microseconds": 0}})
        batch = event * 256
        while True:
            writer.write(batch)
            await writer.drain()
            self.events += 256


@contextlib.contextmanager
def peer(path: Path, scenario: str) -> Iterator[Peer]:
    running = Peer(path, scenario)
    running.start()
    try:
        yield running
    finally:
        running.stop()
