"""Outputs are atomic (`compiler/base/outputs.py`, README "Outputs"): each file through a
hidden temporary file and a rename, the set of one command written whole before the first
rename, temporary files removed on every error path, modes from the umask, and every bad
`-o` one diagnostic (E1502, E1503) with nothing written."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_support import codes_of

from compiler.base import outputs
from compiler.base.diagnostics import CompileError

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests/vm/q35-virtio-disk-user-nic.toml"
NAMES = ("web01.json", "web01.argv.json", "web01.sh", "web01.dtb", "web01.dts")


def mschema(*args: str, cwd: Path = ROOT, umask: int | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False,
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)),
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]})


def refused(result: subprocess.CompletedProcess[str], code: str, path: Path | str) -> None:
    assert result.returncode == 1, result.stderr
    assert codes_of(result.stderr) == [code], result.stderr
    assert result.stderr.startswith(f"{path}:1:1: error[{code}]: "), result.stderr
    assert f"`{path}`" in result.stderr
    assert "Traceback" not in result.stderr


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under `directory`, hidden ones included."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def old_outputs(out: Path) -> dict[str, bytes]:
    out.mkdir()
    for name in NAMES:
        (out / name).write_bytes(b"old " + name.encode())
    return tree(out)


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(outputs.TEMP_SUFFIX))


def test_a_compile_writes_every_output_with_the_umask_and_an_executable_script(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = mschema("compile", str(SPEC), "-o", str(out), umask=0o027)
    assert (result.returncode, result.stderr) == (0, "")
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)  # no temporary file left
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {name: 0o750 if name.endswith(".sh") else 0o640 for name in NAMES}
    single = tmp_path / "web01.sh"
    result = mschema("compile", str(SPEC), "--emit", "shell", "-o", str(single), umask=0o002)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(single.stat().st_mode) == 0o775


def test_a_new_compile_replaces_the_old_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old_outputs(out)
    assert mschema("compile", str(SPEC), "-o", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
    assert not any(content.startswith(b"old ") for content in tree(out).values())


def test_o_naming_a_regular_file_where_a_directory_is_needed(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("mine\n")
    refused(mschema("compile", str(SPEC), "-o", str(target)), "E1502", target)
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_o_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine\n")
    refused(mschema("compile", str(SPEC), "-o", str(tmp_path / "file/sub")), "E1502",
            tmp_path / "file")
    refused(mschema("compile", str(SPEC), "--emit", "json", "-o",
                    str(tmp_path / "file/sub/x.json")), "E1502", tmp_path / "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_o_naming_a_directory_for_one_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = old_outputs(out)
    refused(mschema("compile", str(SPEC), "--emit", "json", "-o", str(out)), "E1502", out)
    assert tree(out) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod'ed directory: "
                    "test_o_in_a_place_root_cannot_write covers it")
def test_o_in_a_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    before = old_outputs(locked)
    locked.chmod(0o555)
    try:
        refused(mschema("compile", str(SPEC), "-o", str(locked)), "E1502",
                locked / "web01.json")
        refused(mschema("compile", str(SPEC), "-o", str(locked / "sub")), "E1502",
                locked / "sub")
        assert tree(locked) == before
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="no sysfs")
def test_o_in_a_place_root_cannot_write(tmp_path: Path) -> None:
    """sysfs takes no new files, not even from root."""
    refused(mschema("compile", str(SPEC), "-o", "/sys/kernel"), "E1502", "/sys/kernel/web01.json")
    refused(mschema("compile", str(SPEC), "-o", "/sys/kernel/mschema/out"), "E1502",
            "/sys/kernel/mschema")
    assert not os.path.lexists("/sys/kernel/web01.json")


def test_missing_directories_are_created(tmp_path: Path) -> None:
    result = mschema("compile", str(SPEC), "--emit", "json", "-o", str(tmp_path / "a/b/x.json"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a/b/x.json").read_text().startswith("{")


def test_unencodable_and_nul_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A name from the shell always encodes (surrogateescape); one passed to `main` may not."""
    from compiler import cli

    for name in ("out\ud800", "out\0x"):
        assert cli.main(["compile", str(SPEC), "-o", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err
        assert codes_of(err) == ["E1502"], err
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("mine\n")
    link = tmp_path / "web01.json"
    link.symlink_to(target)
    refused(mschema("compile", str(SPEC), "--emit", "json", "-o", str(link)), "E1503", link)
    assert link.is_symlink() and target.read_text() == "mine\n"
    refused(mschema("compile", str(SPEC), "-o", str(tmp_path)), "E1503", link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.json", "web01.json"]
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    refused(mschema("compile", str(SPEC), "-o", str(dangling)), "E1503", dangling)


def test_o_directory_through_a_symlink_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real")
    assert mschema("compile", str(SPEC), "-o", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out").is_symlink()
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == sorted(NAMES)


def _set(out: Path) -> list[outputs.Output]:
    return [outputs.Output(out / name, name.encode() * 200_000) for name in NAMES]


@pytest.mark.parametrize("raised", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space")])
def test_an_error_while_writing_leaves_the_old_set(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   raised: BaseException) -> None:
    """The third file fails half-way: no temporary file stays, every old output is intact."""
    out = tmp_path / "out"
    before = old_outputs(out)
    real_write = os.write
    calls = []

    def failing(fd: int, data: bytes) -> int:
        calls.append(fd)
        if len(calls) == 6:  # each file is two chunks: the third file's second one
            raise raised
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing)
    expected = KeyboardInterrupt if isinstance(raised, KeyboardInterrupt) else CompileError
    with pytest.raises(expected) as caught:
        outputs.write(_set(out))
    if isinstance(caught.value, CompileError):
        assert [d.code for d in caught.value.diagnostics] == ["E1502"]
        assert "no space" in caught.value.diagnostics[0].message
    assert tree(out) == before


def test_directories_created_for_a_failed_set_are_removed(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(CompileError):
        outputs.write(_set(tmp_path / "a/b/out"))
    assert list(tmp_path.iterdir()) == []


KILLED = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from compiler import cli
real, calls = os.write, []
def slow(fd, data):
    calls.append(fd)
    if len(calls) == 2:  # the blob is written, the second output's first bytes are
        n = real(fd, data[:100])
        print("writing", flush=True)
        time.sleep(120)
        return n
    return real(fd, data)
os.write = slow
cli.main(["compile", sys.argv[2], "-o", sys.argv[3]])
"""


def test_sigkill_mid_write_leaves_the_old_outputs_and_the_next_run_cleans_up(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = old_outputs(out)
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(ROOT), str(SPEC), str(out)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "writing\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    left = temps(out)
    assert len(left) == 2 and all(name.startswith(".web01.") for name in left), left
    assert {k: v for k, v in tree(out).items() if not k.startswith(".")} == before
    result = mschema("compile", str(SPEC), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)


def test_a_temporary_file_of_a_live_process_is_kept(tmp_path: Path) -> None:
    """A concurrent writer's temporary file is not removed under it."""
    mine = tmp_path / f".web01.json.{os.getpid()}.abcd{outputs.TEMP_SUFFIX}"
    mine.write_text("in progress")
    assert mschema("compile", str(SPEC), "-o", str(tmp_path)).returncode == 0
    assert mine.exists()



def test_hotplug_writes_through_the_same_writer(tmp_path: Path) -> None:
    fragment = tmp_path / "more.toml"
    fragment.write_text('[[nic]]\nnetwork = "user"\n')
    blob = SPEC.with_suffix(".json")
    link = tmp_path / "next.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    refused(mschema("hotplug", str(blob), "--add", str(fragment), "-o", str(link)), "E1503",
            link)
    result = mschema("hotplug", str(blob), "--add", str(fragment), "-o",
                     str(tmp_path / "new/next.json"), umask=0o022)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "new/next.json").stat().st_mode) == 0o644
    assert temps(tmp_path / "new") == []


def test_an_output_directory_made_meanwhile_by_another_process_is_no_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch's workers write into one `-o`: one finds it missing, and the other makes it
    # before the first one's next look (seen in CI as a false E1502 "it is a file").
    target = tmp_path / "out"
    real_is_dir = Path.is_dir
    looks = []

    def is_dir_made_after_the_first_look(self: Path) -> bool:
        if self == target and not looks:
            looks.append(self)
            target.mkdir()  # the other worker, right after this look
            return False
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir_made_after_the_first_look)
    created: list[Path] = []
    outputs._make_directory(target, created)
    assert looks == [target] and real_is_dir(target) and created == []
