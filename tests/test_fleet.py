"""Many inputs in one run (`compiler/fleet.py`): `compile`, `verify` and `migrate-check` over
files and directories, in worker processes, with a summary table or JSON records. Run as
users run it: `python -m compiler` in a subprocess (verify against the real QEMU 7.2)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from qemu_support import require_binary

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests/vm"  # golden cases: each compiles


def mschema(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"],
                               "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]})


def _specs(tmp_path: Path) -> Path:
    """Three golden specs and one bad one, in a directory with a subdirectory."""
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    for name in ("q35-virtio-disk-user-nic", "pseries-boot"):
        (specs / f"{name}.toml").write_text((GOOD / f"{name}.toml").read_text())
    (specs / "sub/web.toml").write_text('machine = "pc-q35"\nname = "web"\n[[nic]]\n'
                                        'network = "user"\n')
    (specs / "bad.toml").write_text('machine = "pc-q35"\ncpus = "two"\n')
    return specs


def test_a_directory_compiles_each_input_and_one_failure_stops_nothing(
        tmp_path: Path) -> None:
    specs, out = _specs(tmp_path), tmp_path / "out"
    result = mschema("compile", str(specs), "-o", str(out), "-j", "2")
    assert result.returncode == 1, result.stderr
    table = result.stdout.splitlines()
    assert table[0].split() == ["result", "time", "input", "first", "diagnostic"]
    rows = {line.split()[2]: line for line in table[1:-1]}
    assert sorted(rows) == sorted(str(p) for p in specs.rglob("*.toml"))
    assert rows[str(specs / "bad.toml")].split()[0] == "failed"
    assert rows[str(specs / "bad.toml")].endswith(
        f"{specs / 'bad.toml'}:2:8: error[E1003]: `cpus` must be an integer or a table, not "
        'the string `"two"`')
    assert table[-1].startswith("compile: 4 input(s), 3 ok, 1 failed in ")
    assert not (out / "bad").exists()
    # each input's outputs are what a compile of it alone writes, byte for byte
    for spec, directory in ((specs / "q35-virtio-disk-user-nic.toml",
                             out / "q35-virtio-disk-user-nic"),
                            (specs / "sub/web.toml", out / "sub/web")):
        alone = tmp_path / "alone" / spec.stem
        assert mschema("compile", str(spec), "-o", str(alone)).returncode == 0
        assert ({p.name: p.read_bytes() for p in directory.iterdir()}
                == {p.name: p.read_bytes() for p in alone.iterdir()})
        assert os.access(next(directory.glob("*.sh")), os.X_OK)


def _records(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    records = [json.loads(line) for line in result.stdout.splitlines()]
    for r in records:
        r.pop("seconds")
    return records


def test_json_records_are_in_input_order_and_the_same_for_any_number_of_workers(
        tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    runs = [mschema("compile", str(specs), "-o", str(tmp_path / f"out{j}"), "--emit", "argv",
                    "--format", "json", "-j", j) for j in ("1", "2")]
    one, two = (_records(r) for r in runs)
    assert [r["input"] for r in one] == sorted(str(p) for p in specs.rglob("*.toml"))
    assert [r["ok"] for r in one] == [False, True, True, True]
    assert one[0]["diagnostics"][0]["code"] == "E1003"  # type: ignore[index]
    def relative(records: list[dict[str, object]], out: Path) -> list[dict[str, object]]:
        return [{**r, "outputs": [Path(str(o)).relative_to(out)
                                  for o in r["outputs"]]}  # type: ignore[attr-defined]
                for r in records]

    assert relative(one, tmp_path / "out1") == relative(two, tmp_path / "out2")


def test_two_inputs_that_would_share_an_output_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('machine = "pc-q35"\n')
    (tmp_path / "a.json").write_text('{"machine": "pc-q35"}\n')
    result = mschema("compile", str(tmp_path), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "error[E2302]: `" in result.stderr and "under `a/`" in result.stderr
    assert not (tmp_path / "out").exists()


def test_migrate_check_pairs_two_directories(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    base = 'machine = "pc-q35"\nname = "vm"\n[[nic]]\nnetwork = "user"\n'
    (src / "same.toml").write_text(base)
    (dst / "same.toml").write_text(base)
    (src / "grown.toml").write_text(base)
    (dst / "grown.toml").write_text(base + '[[usb]]\ndevice = "tablet"\n')
    (src / "alone.toml").write_text(base)
    result = mschema("migrate-check", str(src), str(dst), "--format", "json")
    assert result.returncode == 1, result.stderr
    records = {Path(str(r["input"]).split(" → ")[0]).name: r for r in _records(result)}
    assert records["same.toml"]["ok"] is True
    assert records["grown.toml"]["ok"] is False
    assert "usb" in str(records["grown.toml"]["summary"])
    assert records["alone.toml"]["diagnostics"][0]["code"] == "E2301"  # type: ignore[index]


def test_verify_many_in_qemu(tmp_path: Path) -> None:
    """Two inputs QEMU 7.2 builds as predicted and one whose disk image is missing: the
    missing image is that input's diagnostic, and the others are verified in QEMU."""
    require_binary("qemu-system-x86_64")
    require_binary("qemu-system-ppc64")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "q35.toml").write_text('machine = "pc-q35"\n[[nic]]\nnetwork = "user"\n'
                                    '[[usb]]\ndevice = "tablet"\n')
    (specs / "ppc.toml").write_text('machine = "pseries"\n[[nic]]\nnetwork = "user"\n')
    (specs / "nodisk.toml").write_text('machine = "pc-q35"\n[[disk]]\n'
                                       f'file = "{tmp_path}/missing.qcow2"\n')
    result = mschema("verify", str(specs), "--format", "json", "-j", "2")
    records = {Path(str(r["input"])).name: r for r in _records(result)}
    assert result.returncode == 1, result.stdout + result.stderr
    assert records["q35.toml"]["ok"] and records["ppc.toml"]["ok"], records
    assert str(records["q35.toml"]["summary"]).startswith("QEMU built the ")
    assert records["nodisk.toml"]["ok"] is False


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    for i in range(10):
        (specs / f"vm{i}.toml").write_text(f'machine = "pc-q35"\nname = "vm{i}"\n')
    plain = mschema("compile", str(specs), "-o", str(tmp_path / "out"), "--emit", "argv")
    assert plain.returncode == 0
    assert plain.stderr.splitlines()[-1] == "mschema: 10/10 done, 0 failed"
    assert len(plain.stderr.splitlines()) == 10
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "compiler", "compile", str(specs), "-o",
             str(tmp_path / "out2"), "--emit", "argv"], cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=terminal,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        os.close(terminal)  # the child has its own: the terminal closes when it exits
        shown = b""
        while True:  # read while it runs: Linux drops a pty's unread output at the end
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        proc.wait(timeout=120)
    finally:
        os.close(controller)
    assert proc.returncode == 0
    assert b"input/s" in shown or b"s/input" in shown, shown  # tqdm's rate
    assert b"done, 0 failed" not in shown


def test_an_internal_error_in_one_input_is_its_record() -> None:
    from compiler import fleet

    def job(item: fleet.Item) -> fleet.Done:
        if item.name == "b":
            raise RuntimeError("boom")
        return fleet.Done("fine")

    records = fleet.run(job, [fleet.Item((Path(n),), n) for n in "abc"], 1, None)
    assert [r.ok for r in records] == [True, False, True]
    assert records[1].diagnostics[0]["code"] == "E9999"
    assert records[1].first.endswith("error[E9999]: internal error: RuntimeError: boom")


@pytest.mark.parametrize("command", [["compile", "--emit", "argv"], ["compile", "--emit",
                                                                       "json"]])
def test_batch_and_single_runs_import_no_progress_bar_off_a_terminal(
        tmp_path: Path, command: list[str]) -> None:
    spec = ROOT / "examples/web01.toml"
    code = ("import sys, runpy; sys.argv = ['mschema', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('compiler', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('tqdm' in sys.modules, file=sys.stderr)\n")
    for extra in ([], ["-j", "1", "-o", str(tmp_path / "o")]):
        result = subprocess.run([sys.executable, "-c", code, *command[:1], str(spec),
                                 *command[1:], *extra], capture_output=True, text=True,
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                timeout=60)
        assert result.stderr.splitlines()[-1] == "False", result.stderr


def test_lint_takes_directories_and_an_empty_one_is_a_diagnostic(tmp_path: Path) -> None:
    result = mschema("lint", "schemas/pc-q35", "stdlib")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    for command in (["lint"], ["compile"], ["verify"]):
        result = mschema(*command, str(tmp_path))
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("<command line>:1:1: error[E2303]: directory "
                                        f"`{tmp_path}` holds no "), result.stderr
