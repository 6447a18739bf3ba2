"""Start a real QEMU and read back what it built.

The compiler's checks on machine descriptions are only worth something if
they agree with QEMU itself, so this module runs an actual ``qemu-system-*``
binary: it boots a machine paused (``-S``), asks it questions over QMP
(``info qtree`` by default), or has a pseries machine dump its device tree,
and then makes sure the process is gone again.  It also parses the text of
``info qtree`` into a small immutable tree.

Nothing else in ``compiler`` imports this module at import time, and it
imports ``qemu.qmp``, ``asyncio`` and ``subprocess`` only inside the
functions that need them: the package runs under pre-commit, where start-up
time matters and QEMU may not even be installed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import subprocess

    from qemu.qmp import QMPClient


class QemuError(Exception):
    """QEMU could not be started, failed, timed out or answered with an error.

    ``stderr`` holds what QEMU wrote to its standard error (possibly empty);
    when there is any, it is also part of the message.
    """

    def __init__(self, message: str, stderr: str = "") -> None:
        self.message = message
        self.stderr = stderr
        text = stderr.strip()
        super().__init__(f"{message}\nQEMU's stderr:\n{text}" if text else message)


def find_binary(name: str) -> str | None:
    """The full path of the executable ``name`` on ``PATH``, or None."""
    return shutil.which(name)


# --------------------------------------------------------------------------
# Running QEMU


@attrs.frozen
class QueryResult:
    """The answers of one :func:`query`, in the order the commands were given."""

    hmp: tuple[str, ...]
    qmp: tuple[object, ...]
    stderr: str


class _Run:
    """One QEMU process, its scratch directory and the deadline for all waits."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr_path: str, deadline: float) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self.deadline = deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def stderr(self) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def exited_error(self, what: str) -> QemuError:
        return QemuError(f"QEMU exited with status {self.proc.returncode} {what}", self.stderr())

    def kill(self) -> None:
        """Make sure the process is gone (a no-op if it already exited)."""
        if self.proc.poll() is None:
            self.proc.kill()
        import subprocess

        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable process
            pass


def release(binary: Sequence[str], timeout: float = 30.0) -> tuple[int, int, int]:
    """The version of a QEMU binary, as QMP `query-version` gives it: (major, minor, micro).
    Starts it with no machine (`-machine none`); a binary that will not start so (a wrapper
    adding devices) is asked `--version` instead; raises QemuError when neither answers."""
    import subprocess

    try:
        answer = query([*binary, "-machine", "none", "-nodefaults"], hmp=(),
                       qmp=[("query-version", {})], timeout=timeout).qmp[0]
    except QemuError as exc:
        try:
            done = subprocess.run([*binary, "--version"], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            raise exc from None
        m = re.search(r"QEMU emulator version (\d+)\.(\d+)\.(\d+)", done.stdout)
        if m is None:
            raise
        return int(m[1]), int(m[2]), int(m[3])
    version = answer.get("qemu") if isinstance(answer, dict) else None
    if not isinstance(version, dict) or not all(
            isinstance(version.get(k), int) for k in ("major", "minor", "micro")):
        raise QemuError(f"query-version gave {answer!r}", "")
    return int(version["major"]), int(version["minor"]), int(version["micro"])


def query(
    argv: Sequence[str],
    hmp: Sequence[str] = ("info qtree",),
    qmp: Sequence[tuple[str, Mapping[str, object]]] = (),
    timeout: float = 30.0,
) -> QueryResult:
    """Start QEMU paused, run monitor commands, quit, and return the answers.

    ``argv`` is the full command line (binary first) describing the machine;
    ``-S -display none`` and a QMP socket are appended.  Each command of
    ``hmp`` runs through ``human-monitor-command`` and gives its text output
    (with plain newline line ends); each ``(command, arguments)`` of ``qmp``
    gives its decoded return value.
    All waiting together is bounded by ``timeout`` seconds.  Raises
    :class:`QemuError` on any failure; no QEMU process outlives the call.
    """
    import subprocess

    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="compiler-qemu-") as tmp:
        sock = os.path.join(tmp, "qmp.sock")
        stderr_path = os.path.join(tmp, "stderr")
        full = [*argv, "-S", "-display", "none", "-qmp", f"unix:{sock},server=on,wait=off"]
        with open(stderr_path, "wb") as stderr_file:
            try:
                proc = subprocess.Popen(
                    full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr_file
                )
            except OSError as e:
                raise QemuError(f"cannot start {argv[0] if argv else 'QEMU'}: {e}") from e
        run = _Run(proc, stderr_path, deadline)
        try:
            return _query(run, sock, hmp, qmp, timeout)
        finally:
            run.kill()


def _query(
    run: _Run,
    sock: str,
    hmp: Sequence[str],
    qmp: Sequence[tuple[str, Mapping[str, object]]],
    timeout: float,
) -> QueryResult:
    import asyncio
    import subprocess

    try:
        hmp_out, qmp_out = asyncio.run(_session(run, sock, hmp, qmp))
    except QemuError:
        raise
    except TimeoutError as e:
        run.kill()
        raise QemuError(f"QEMU did not answer within {timeout} s", run.stderr()) from e
    except Exception as e:
        # Most often QEMU rejected its command line just after opening the
        # socket; give it a moment to exit so that we can say why.
        try:
            run.proc.wait(timeout=min(run.remaining(), 2.0))
        except subprocess.TimeoutExpired:
            raise QemuError(f"QMP session with QEMU failed: {e}", run.stderr()) from e
        raise run.exited_error("during the QMP session") from e
    try:
        status = run.proc.wait(timeout=run.remaining())
    except subprocess.TimeoutExpired as e:
        run.kill()
        raise QemuError(f"QEMU did not exit within {timeout} s", run.stderr()) from e
    if status != 0:
        raise run.exited_error("after quit")
    return QueryResult(tuple(hmp_out), tuple(qmp_out), run.stderr())


async def _session(
    run: _Run,
    sock: str,
    hmp: Sequence[str],
    qmp: Sequence[tuple[str, Mapping[str, object]]],
) -> tuple[list[str], list[object]]:
    import asyncio

    from qemu.qmp import ExecInterruptedError, ExecuteError, QMPClient

    while not os.path.exists(sock):
        if run.proc.poll() is not None:
            raise run.exited_error("before opening its QMP socket")
        if run.remaining() <= 0:
            raise TimeoutError
        await asyncio.sleep(0.005)

    from qemu.qmp import ConnectError

    client = QMPClient("compiler.qemu")
    client.events.event_filter = lambda _event: False  # unread: never queue them
    try:
        # The socket file appears at bind(), a moment before QEMU listens: retry refusals.
        while True:
            try:
                await asyncio.wait_for(client.connect(sock), run.remaining())
                break
            except ConnectError:
                if run.proc.poll() is not None:
                    raise run.exited_error("before accepting a QMP connection") from None
                if run.remaining() <= 0:
                    raise TimeoutError from None
                await asyncio.sleep(0.01)
        hmp_out: list[str] = []
        for line in hmp:
            out = await _execute(client, "human-monitor-command", {"command-line": line}, run)
            if not isinstance(out, str):
                raise QemuError(f"HMP command {line!r} returned {out!r}, not text")
            hmp_out.append(out.replace("\r\n", "\n"))
        qmp_out: list[object] = []
        for name, arguments in qmp:
            try:
                qmp_out.append(await _execute(client, name, arguments, run))
            except ExecuteError as e:
                raise QemuError(f"QMP command {name!r} failed: {e}", run.stderr()) from e
        try:
            await _execute(client, "quit", None, run)
        except ExecInterruptedError:
            pass  # QEMU may hang up before its reply arrives.
        return hmp_out, qmp_out
    finally:
        # disconnect() re-raises whatever broke the connection; the outcome
        # was decided above (and by QEMU's exit status), so ignore it here.
        try:
            await asyncio.wait_for(client.disconnect(), max(run.remaining(), 1.0))
        except Exception:
            import logging

            logging.getLogger(__name__).debug("QMP disconnect failed", exc_info=True)


async def _execute(
    client: QMPClient, name: str, arguments: Mapping[str, object] | None, run: _Run
) -> object:
    import asyncio

    return await asyncio.wait_for(client.execute(name, arguments), run.remaining())


def dump_dtb(argv: Sequence[str], timeout: float = 30.0) -> bytes:
    """The flattened device tree a pseries machine would hand its guest.

    ``argv`` must contain ``-machine X``; ``,dumpdtb=FILE`` is appended to
    ``X`` so that QEMU writes the tree and exits by itself.  Raises
    :class:`QemuError` if it fails or takes longer than ``timeout`` seconds,
    and ValueError if ``argv`` has no ``-machine`` option.
    """
    import subprocess

    args = list(argv)
    try:
        i = next(i for i, a in enumerate(args) if a in ("-machine", "-M", "--machine"))
    except StopIteration:
        raise ValueError(f"no -machine option in {args!r}") from None
    if i + 1 >= len(args):
        raise ValueError(f"-machine without a value in {args!r}")
    with tempfile.TemporaryDirectory(prefix="compiler-qemu-") as tmp:
        path = os.path.join(tmp, "machine.dtb")
        args[i + 1] += f",dumpdtb={path}"
        args += ["-display", "none"]
        try:
            done = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout,
                check=False,
            )
        except OSError as e:
            raise QemuError(f"cannot start {args[0]}: {e}") from e
        except subprocess.TimeoutExpired as e:  # run() has killed QEMU already
            stderr = (e.stderr or b"").decode("utf-8", errors="replace")
            raise QemuError(f"QEMU did not dump its device tree within {timeout} s", stderr) from e
        stderr = done.stderr.decode("utf-8", errors="replace")
        if done.returncode != 0 and "doesn't have an FDT" in stderr:
            # QEMU 9.0 and newer build pseries' tree at reset, after `-machine dumpdtb=` is
            # handled; they have the `dumpdtb` monitor command instead (the tree before CAS,
            # as the paused guest has not run)
            query(list(argv), hmp=(), qmp=[("dumpdtb", {"filename": path})], timeout=timeout)
        elif done.returncode != 0:
            raise QemuError(f"QEMU exited with status {done.returncode}", stderr)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise QemuError(f"QEMU exited without writing a device tree: {e}", stderr) from e
        if not data:
            raise QemuError("QEMU wrote an empty device tree", stderr)
        return data


# --------------------------------------------------------------------------
# `info qtree`


@attrs.frozen
class QtreeDevice:
    """A ``dev:`` entry: its type, id, PCI-style ``addr``, properties and buses."""

    type: str
    id: str
    addr: str | None
    props: tuple[tuple[str, str], ...]
    buses: tuple[QtreeBus, ...]
    # its place among the `dev:` lines of the text (which `regraft` may reorder)
    line: int = attrs.field(default=-1, eq=False, kw_only=True)

    def prop(self, name: str) -> str | None:
        """The raw text of property ``name``, or None if the device has none."""
        return next((value for key, value in self.props if key == name), None)


@attrs.frozen
class QtreeBus:
    """A ``bus:`` entry with its type and devices, in QEMU's (newest first) order."""

    name: str
    type: str
    devices: tuple[QtreeDevice, ...]


def walk(bus: QtreeBus) -> Iterator[tuple[QtreeBus, QtreeDevice]]:
    """Every (bus, device) pair under ``bus``, depth first, in QEMU's order."""
    for device in bus.devices:
        yield bus, device
        for child in device.buses:
            yield from walk(child)


_DEV = re.compile(r'dev: (?P<type>.+?), id "(?P<id>.*)"')
_PROP = re.compile(r"(?P<name>[^\s=]+) = (?P<value>.*)", re.DOTALL)
# a string property whose closing quote is on a later line (see _QtreeParser)
_OPEN_STRING = re.compile(r'[^\s=]+ = "(?:[^"]*|.*[^"])', re.DOTALL)


class _QtreeParser:
    def __init__(self, text: str) -> None:
        self.lines: list[tuple[int, int, str]] = []  # (line number, depth, content)
        # QEMU prints a string property as `"%s"`, unescaped: a value may hold any byte but
        # NUL, and isa-applesmc's default key is 64 bytes with no NUL after it, so its `osk`
        # runs on into whatever memory follows, newlines and form feeds included. Lines are
        # therefore split at "\n" only, and a string value left open runs on to the next line
        # that closes it.
        raw_lines = iter(enumerate(text.split("\n"), 1))
        for number, raw in raw_lines:
            line = raw.rstrip()
            while _OPEN_STRING.fullmatch(line.lstrip(" ")):
                more = next(raw_lines, None)
                if more is None:
                    raise ValueError(f"qtree line {number}: a string value never closed: {raw!r}")
                line = line + "\n" + more[1].rstrip()
            if not line:
                continue
            content = line.lstrip(" ")
            spaces = len(line) - len(content)
            if spaces % 2:
                raise ValueError(f"qtree line {number}: odd indentation: {raw!r}")
            self.lines.append((number, spaces // 2, content))
        self.pos = 0
        self.devices = 0  # `dev:` lines read so far

    def error(self, message: str) -> ValueError:
        number, _, content = self.lines[self.pos]
        return ValueError(f"qtree line {number}: {message}: {content!r}")

    def children(self, depth: int) -> Iterator[str]:
        """The contents of the following lines one level below ``depth``."""
        while self.pos < len(self.lines) and self.lines[self.pos][1] > depth:
            if self.lines[self.pos][1] != depth + 1:
                raise self.error("unexpected indentation")
            yield self.lines[self.pos][2]

    def bus(self, depth: int) -> QtreeBus:
        name = self.lines[self.pos][2].removeprefix("bus: ")
        self.pos += 1
        type_ = ""
        devices: list[QtreeDevice] = []
        for content in self.children(depth):
            if content.startswith("type "):
                type_ = content.removeprefix("type ")
                self.pos += 1
            elif content.startswith("dev: "):
                devices.append(self.device(depth + 1))
            else:
                raise self.error("expected 'type' or 'dev:' in a bus")
        return QtreeBus(name, type_, tuple(devices))

    def device(self, depth: int) -> QtreeDevice:
        header = _DEV.fullmatch(self.lines[self.pos][2])
        if header is None:
            raise self.error("malformed 'dev:' line")
        self.pos += 1
        line = self.devices
        self.devices += 1
        props: list[tuple[str, str]] = []
        buses: list[QtreeBus] = []
        for content in self.children(depth):
            if content.startswith("bus: "):
                buses.append(self.bus(depth + 1))
                continue
            prop = _PROP.fullmatch(content)
            if prop is not None:
                props.append((prop["name"], prop["value"]))
            # Anything else (gpio, mmio, bar, class, ...) is not a property.
            self.pos += 1
        addr = next((value for name, value in props if name == "addr"), None)
        return QtreeDevice(header["type"], header["id"], addr, tuple(props), tuple(buses),
                           line=line)


def parse_qtree(text: str, parents: Mapping[str, frozenset[str]] | None = None) -> QtreeBus:
    """Parse the output of ``info qtree`` into its root bus, with the buses QEMU shows
    under a stand-in device hung back below their device (`regraft`; `parents`: the
    stdlib's `qtree-parent` declarations unless given).

    Raises ValueError if ``text`` does not have the expected shape.
    """
    parser = _QtreeParser(text)
    if not parser.lines:
        raise ValueError("empty qtree")
    if parser.lines[0][1] != 0 or not parser.lines[0][2].startswith("bus: "):
        raise parser.error("expected a top-level 'bus:' line")
    root = parser.bus(0)
    if parser.pos != len(parser.lines):
        raise parser.error("text after the root bus")
    return regraft(root, qtree_parents() if parents is None else parents)


def qtree_parents() -> dict[str, frozenset[str]]:
    """The stdlib's `qtree-parent` declarations: stand-in type → the device types whose
    buses QEMU shows under it (`pxb-host` → pxb-pcie)."""
    from compiler.lang import resolve

    found: dict[str, set[str]] = {}
    for name, dtype in resolve.load_library().devices.items():
        if dtype.qtree_parent is not None:
            found.setdefault(dtype.qtree_parent, set()).add(name)
    return {host: frozenset(types) for host, types in found.items()}


def regraft(root: QtreeBus, parents: Mapping[str, frozenset[str]]) -> QtreeBus:
    """QEMU hangs a PCI expander's root bus, named as the expander's id, on a host bridge
    device of the main system bus (`pxb-host`): move each such bus below the device of a
    declaring type with that id, and drop a stand-in whose buses all moved. A bus without
    such a device (an expander without id) stays where QEMU shows it."""
    if not parents:
        return root
    owners = {d.id: d.type for _, d in walk(root) if d.id}
    moved: dict[str, QtreeBus] = {}
    kept: list[QtreeDevice] = []
    for device in root.devices:
        types = parents.get(device.type, frozenset())
        movable = [b for b in device.buses if owners.get(b.name) in types]
        if types and movable and len(movable) == len(device.buses):
            moved.update((b.name, b) for b in movable)
        else:
            kept.append(device)
    if not moved:
        return root

    def place(bus: QtreeBus) -> QtreeBus:
        devices = []
        for d in bus.devices:
            extra = (moved[d.id],) if d.id in moved else ()
            devices.append(attrs.evolve(d, buses=tuple(place(b) for b in (*d.buses, *extra))))
        return attrs.evolve(bus, devices=tuple(devices))

    return place(attrs.evolve(root, devices=tuple(kept)))


def qtree_devices(argv: Sequence[str], timeout: float = 30.0) -> QtreeBus:
    """The device tree QEMU builds for ``argv``, as parsed from ``info qtree``."""
    result = query(argv, hmp=("info qtree",), timeout=timeout)
    return parse_qtree(result.hmp[0])
