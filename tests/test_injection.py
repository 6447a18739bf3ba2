"""Strings that reach QEMU's command line: each reaches QEMU verbatim (read back over QMP) or
is refused with a diagnostic, never a changed option. And the shell output parses back
(shlex) to exactly the argv. Values with QEMU's separators (`,`, `=`), quotes, shell
metacharacters, a leading `-`, spaces and non-ASCII, in the fields a spec gives QEMU as
text: a disk image's path and a disk's serial."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from qemu_support import require_binary
from vm_support import qmp, running

ROOT = Path(__file__).resolve().parent.parent
NASTY = ["a,b", "a,,b", "a=b", "x,file=/etc/passwd", "-readonly", 'q"uote', "it's",
         "$(touch pwned)", "`id`", "sp ace", "ünï", "semi;colon", "back\\slash"]
DIAGNOSTIC = re.compile(r"^\S.*:\d+:\d+: error\[E\d{4}\]: ", re.M)


def compile_spec(spec: str, where: Path) -> subprocess.CompletedProcess[str]:
    path = where / "vm.toml"
    path.write_text(spec, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "compiler", "compile", str(path), "--emit",
                           "argv", "--emit", "shell", "-o", str(where / "out")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


@pytest.mark.parametrize("value", NASTY)
def test_strings_reach_qemu_verbatim(value: str, tmp_path: Path) -> None:
    image = tmp_path / f"disk{value.replace('/', '_')}.raw"
    image.write_bytes(b"\0" * 65536)
    spec = (f'machine = "pc-q35"\n'
            f'[[disk]]\nfile = {toml_string(str(image))}\nserial = {toml_string(value)}\n')
    done = compile_spec(spec, tmp_path)
    if done.returncode != 0:  # refused: a diagnostic, nothing written
        assert done.returncode == 1 and DIAGNOSTIC.search(done.stderr), done.stderr
        assert not (tmp_path / "out").exists()
        return
    (argv_file,) = (tmp_path / "out").glob("*.argv.json")  # named after the machine
    (shell_file,) = (tmp_path / "out").glob("*.sh")
    argv = json.loads(argv_file.read_text(encoding="utf-8"))
    shell = shell_file.read_text(encoding="utf-8")
    assert shlex.split(shell) == argv
    with running([require_binary(argv[0]), *argv[1:]]) as sock:
        blocks, serial = qmp(sock, ("query-block", {}),
                             ("qom-get", {"path": "/machine/peripheral/disk0",
                                          "property": "serial"}))
    assert isinstance(blocks, list)
    files = [b["inserted"]["file"] for b in blocks if "inserted" in b]
    assert files == [str(image)]
    assert serial == value


# ---- every other string field, table-driven, a few QEMU starts per field ------------------
# Each value is compiled alone first: refused with a diagnostic (a NUL, a lone surrogate:
# always), or accepted, and then its shell output parses back to its argv. The accepted
# values of a field then go into a few VMs together, and QEMU says over QMP what it got.
VALUES = [*NASTY, "line\nbreak", "nul\0byte", "sur\udc80", "--", "a\tb"]
NEVER = ("\0", "\udc80")  # values no command line carries: always refused (E2033)


def _safe(value: str) -> str:
    return value.replace("/", "_")  # a file name cannot hold `/`; everything else it can


def _compile_json(spec: dict[str, object], where: Path) -> tuple[int, str, list[str], str]:
    """In-process `compile SPEC.json --emit argv --emit shell -o OUT`: code, stderr, argv,
    shell line."""
    import contextlib
    import io
    import shutil

    from compiler import cli

    path, out = where / "vm.json", where / "out"
    path.write_text(json.dumps(spec), encoding="utf-8")  # surrogates as `\udc80` escapes
    shutil.rmtree(out, ignore_errors=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["compile", str(path), "--emit", "argv", "--emit", "shell", "-o",
                         str(out)])
    if code != 0:
        assert not out.exists(), "a refused compile wrote output"
        return code, err.getvalue(), [], ""
    (argv_file,) = out.glob("*.argv.json")
    (shell_file,) = out.glob("*.sh")
    return (code, err.getvalue(), json.loads(argv_file.read_text(encoding="utf-8")),
            shell_file.read_text(encoding="utf-8"))


def _paths(values: list[str], where: Path, prefix: str, directory: bool = False) -> list[Path]:
    """A host file (or directory) whose name holds each value, made under `where`."""
    made = []
    for i, value in enumerate(values):
        path = where / f"{prefix}{i}{_safe(value)}"
        if any(c in value for c in NEVER):
            pass  # no file system takes the name either: compile refuses it first
        elif directory:
            path.mkdir(exist_ok=True)
        elif "sock" not in prefix and "log" not in prefix:
            path.write_bytes(b"\0" * 65536)
        made.append(path)
    return made


def _qom(sock: str, pairs: list[tuple[str, str]]) -> list[object]:
    return qmp(sock, *(("qom-get", {"path": p, "property": prop}) for p, prop in pairs))


def _node_files(sock: str) -> set[str]:
    (nodes,) = qmp(sock, ("query-named-block-nodes", {}))
    assert isinstance(nodes, list)
    return {str(n.get("file")) for n in nodes}


class Field:
    """One string field: the spec part for values (ids d0, d1, …), how many fit one VM, and
    what QEMU must show for them."""

    def __init__(self, items: Callable[[list[str], Path], dict[str, object]], per_vm: int,
                 check: Callable[[str, list[str], Path], None]) -> None:
        self.items, self.per_vm, self.check = items, per_vm, check


def _serials(kind: str) -> Field:
    def items(values: list[str], where: Path) -> dict[str, object]:
        files = _paths(values, where, "img")
        return {"disk": [{"file": str(f), "format": "raw", "interface": kind, "serial": v,
                          "id": f"d{i}"} for i, (f, v) in enumerate(zip(files, values,
                                                                        strict=True))]}

    def check(sock: str, values: list[str], _where: Path) -> None:
        got = _qom(sock, [(f"/machine/peripheral/d{i}", "serial") for i in range(len(values))])
        assert got == values

    return Field(items, 6, check)


def _image_files(kind: str, extra: dict[str, object], per_vm: int) -> Field:
    def items(values: list[str], where: Path) -> dict[str, object]:
        files = _paths(values, where, f"{kind}-")
        return {kind: [{"file": str(f), "format": "raw", **extra} for f in files]}

    def check(sock: str, values: list[str], where: Path) -> None:
        expected = {str(p) for p in _paths(values, where, f"{kind}-")}
        assert expected <= _node_files(sock)

    return Field(items, per_vm, check)


def _chardev_files() -> Field:
    def items(values: list[str], where: Path) -> dict[str, object]:
        logs = where / "logs"
        logs.mkdir(exist_ok=True)
        return {"serial": [{"backend": f"file:{p}", "id": f"s{i}"}
                           for i, p in enumerate(_paths(values, logs, "log"))]}

    def check(_sock: str, values: list[str], where: Path) -> None:
        # QEMU 7.2 does not show a file chardev's path: it created exactly these files
        logs = where / "logs"
        assert sorted(p.name for p in logs.iterdir()) == sorted(
            p.name for p in _paths(values, logs, "log"))
        for p in logs.iterdir():
            p.unlink()

    return Field(items, 4, check)


def _chardev_sockets() -> Field:
    def items(values: list[str], where: Path) -> dict[str, object]:
        return {"serial": [{"backend": f"socket:{p}", "id": f"s{i}"}
                           for i, p in enumerate(_paths(values, where, "sock"))]}

    def check(sock: str, values: list[str], where: Path) -> None:
        (chardevs,) = qmp(sock, ("query-chardev", {}))
        assert isinstance(chardevs, list)
        shown = {c["label"]: c["filename"] for c in chardevs}
        for i, p in enumerate(_paths(values, where, "sock")):
            filename = str(shown[f"s{i}"]).removeprefix("disconnected:")
            assert filename == f"unix:{p},server=on", filename
            assert p.is_socket()

    return Field(items, 4, check)


def _filesystems(what: str) -> Field:
    def items(values: list[str], where: Path) -> dict[str, object]:
        dirs = _paths(values, where, "share", directory=True)
        return {"filesystem": [
            {"path": str(d) if what == "path" else str(where),
             "tag": f"t{i}" if what == "path" else v, "id": f"f{i}"}
            for i, (d, v) in enumerate(zip(dirs, values, strict=True))]}

    def check(sock: str, values: list[str], _where: Path) -> None:
        # QEMU opens each directory at start (a wrong path does not start); tags over QOM
        got = _qom(sock, [(f"/machine/peripheral/f{i}", "mount_tag")
                          for i in range(len(values))])
        assert got == ([f"t{i}" for i in range(len(values))] if what == "path" else values)

    return Field(items, 8, check)


def _rng_sources() -> Field:
    def items(values: list[str], where: Path) -> dict[str, object]:
        return {"rng": [{"backend": f"random:{p}"} for p in _paths(values, where, "rng")]}

    def check(sock: str, values: list[str], where: Path) -> None:
        (objects,) = qmp(sock, ("qom-list", {"path": "/objects"}))
        assert isinstance(objects, list)
        ids = [o["name"] for o in objects if str(o.get("type", "")).startswith("child<rng")]
        got = _qom(sock, [(f"/objects/{i}", "filename") for i in ids])
        assert sorted(map(str, got)) == sorted(str(p) for p in _paths(values, where, "rng"))

    return Field(items, 8, check)


def _usb_serials() -> Field:
    def items(values: list[str], _where: Path) -> dict[str, object]:
        return {"device": [{"type": "usb-kbd", "id": f"k{i}", "props": {"serial": v}}
                           for i, v in enumerate(values)]}

    def check(sock: str, values: list[str], _where: Path) -> None:
        got = _qom(sock, [(f"/machine/peripheral/k{i}", "serial") for i in range(len(values))])
        assert got == values

    return Field(items, 8, check)


def _taps() -> Field:
    def items(values: list[str], _where: Path) -> dict[str, object]:
        return {"nic": [{"network": f"tap:{v}", "id": f"n{i}"} for i, v in enumerate(values)]}

    def check(sock: str, values: list[str], _where: Path) -> None:
        # QEMU (as root) made each tap with the name as given: Linux lists it so
        present = set(os.listdir("/sys/class/net"))
        assert set(values) <= present, set(values) - present
        (shown,) = qmp(sock, ("human-monitor-command", {"command-line": "info network"}))
        assert all(f"ifname={v},script=no" in str(shown) for v in values), shown

    return Field(items, 8, check)


FIELDS: dict[str, Field] = {
    "tap name": _taps(),
    "scsi disk serial": _serials("scsi"),
    "sata disk serial": _serials("sata"),
    "cdrom file": _image_files("cdrom", {}, 6),
    "usb storage file": _image_files("usb", {"device": "storage"}, 8),
    "pflash file": _image_files("pflash", {}, 2),
    "chardev file path": _chardev_files(),
    "chardev socket path": _chardev_sockets(),
    "9p directory": _filesystems("path"),
    "9p mount tag": _filesystems("tag"),
    "rng source": _rng_sources(),
    "device props string": _usb_serials(),
}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_each_string_field_reaches_qemu_verbatim_or_is_refused(field: str,
                                                                tmp_path: Path) -> None:
    spec_of = FIELDS[field]
    if field == "tap name" and (os.geteuid() != 0 or not os.path.exists("/dev/net/tun")):
        message = "QEMU makes taps only as root, with /dev/net/tun"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    accepted = []
    for value in VALUES:
        scratch = tmp_path / "one"
        scratch.mkdir(exist_ok=True)
        code, err, argv, shell = _compile_json(
            {"machine": "pc-q35", **spec_of.items([value], scratch)}, scratch)
        if code != 0:
            assert code == 1 and DIAGNOSTIC.search(err), err
            continue
        assert not any(c in value for c in NEVER), f"{value!r} was not refused"
        assert shlex.split(shell) == argv, value
        accepted.append(value)
    assert accepted, "nothing reached QEMU: the field proves nothing"
    for start in range(0, len(accepted), spec_of.per_vm):
        chunk = accepted[start:start + spec_of.per_vm]
        vm = tmp_path / f"vm{start}"
        vm.mkdir()
        code, err, argv, _shell = _compile_json({"machine": "pc-q35",
                                                 **spec_of.items(chunk, vm)}, vm)
        assert code == 0, err
        with running([require_binary(argv[0]), *argv[1:]]) as sock:
            spec_of.check(sock, chunk, vm)


def test_values_that_cannot_be_an_id_mac_or_interface_name_are_refused(tmp_path: Path) -> None:
    """Fields with a grammar of their own take none of the crafted values (an id ending in a
    newline once passed); each refusal is a diagnostic at the value."""
    for value in VALUES:
        for item in ({"disk": [{"file": "d.raw", "id": value}]},
                     {"nic": [{"network": "user", "mac": value}]},
                     {"uuid": value}):
            code, err, _argv, _shell = _compile_json({"machine": "pc-q35", **item}, tmp_path)
            assert code == 1 and DIAGNOSTIC.search(err), (item, err)
    for value in ("a,b", "a=b", "-readonly", 'q"uote', "`id`"):  # valid Linux names
        for network in (f"tap:{value}", f"bridge:{value}"):
            code, err, argv, shell = _compile_json(
                {"machine": "pc-q35", "nic": [{"network": network}]}, tmp_path)
            assert code == 0, err
            assert shlex.split(shell) == argv
            netdev = json.loads(argv[argv.index("-netdev") + 1])
            assert value in (netdev.get("ifname"), netdev.get("br"))
