"""Writing output files: every command's files go through here (`compile -o`, `hotplug -o`,
`extract -o`).

What is guaranteed (README, "Outputs"):
- Nothing is written before every output is rendered, and a problem with a path is one
  diagnostic (E1502, E1503) with nothing written, never a traceback.
- Each file is first written whole to a hidden temporary file beside it
  (`.NAME.PID.<random>.mschema-tmp`), flushed to disk, then renamed over NAME: a reader sees
  the old file or the new one, never a half one. All the temporary files of one command are
  written before the first rename, so a failure while writing (a full disk, a read-only
  place, Ctrl-C) removes them and leaves every old output untouched. The renames themselves
  are one after the other (POSIX has no rename of several files at once): a process killed
  between two of them (microseconds) leaves some outputs new and the others old.
- A temporary file left by a killed process (SIGKILL, power loss) is hidden (a dot name);
  the next write of that output into the same directory removes it once its process is gone.
- Modes follow the umask, as a shell's `>` does (0666 & ~umask; the `.sh` 0777 & ~umask).
- An output's own name is never a symbolic link that mschema replaces or writes through
  (E1503); directories on the way, `-o DIR` itself included, may be links.
- Missing directories on the way are created (as `mkdir -p`), and removed again when the
  command fails.
- A batch run (`compile DIR`) writes with `durable=False`: the same temp-and-rename (a
  killed process still leaves old or new files, never half ones), but one `sync()` at the
  end of the run instead of a flush per file, which would cost more than the compile.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from compiler.base.diagnostics import CompileError, error
from compiler.base.source import whole_file

TEMP_SUFFIX = ".mschema-tmp"
_CHUNK = 1 << 20


@attrs.frozen
class Output:
    path: Path
    content: bytes
    executable: bool = False


def shown(path: Path | str) -> str:
    """A path as a diagnostic can print it (undecodable bytes and surrogates escaped)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def _fail(path: Path, code: str, message: str, help: str | None = None,
          notes: Sequence[str] = ()) -> CompileError:
    name = shown(path)
    return CompileError([error(code, message.replace("{path}", f"`{name}`"), whole_file(name),
                               notes=notes, help=help)])


def _os_error(path: Path, exc: OSError | ValueError) -> CompileError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return _fail(path, "E1502", f"cannot write output {{path}}: {reason.lower()}",
                 help="give `-o` a place where you may write")


def _check_name(path: Path) -> None:
    try:
        encoded = os.fsencode(path)
    except UnicodeError:
        raise _fail(path, "E1502", "cannot write output {path}: its name cannot be encoded "
                    "as a file name", help="give `-o` a name in the file system's "
                    "encoding (UTF-8)") from None
    if b"\0" in encoded:
        raise _fail(path, "E1502", "cannot write output {path}: a file name cannot hold a "
                    "NUL character")


def _not_a_directory(path: Path) -> CompileError:
    return _fail(path, "E1502", "cannot write output {path}: it is a file, and a directory "
                 "is needed there", help="give `-o` a directory, or a new name")


def _dangling_directory_link(path: Path) -> CompileError:
    return _fail(path, "E1503", "cannot write output {path}: it is a symbolic link to no "
                 "directory", help="point the link at a directory, or remove it")


def _make_directory(directory: Path, created: list[Path]) -> None:
    """`mkdir -p`, recording each directory it creates (to remove them on failure)."""
    if directory.is_dir():
        return
    if directory.is_symlink():
        raise _dangling_directory_link(directory)
    if os.path.lexists(directory) and not directory.is_dir():  # is_dir again: see below
        raise _not_a_directory(directory)
    if directory.parent != directory:
        _make_directory(directory.parent, created)
    try:
        directory.mkdir()
    except FileExistsError:
        # Another process (a batch's other worker writing into the same `-o`) may make the
        # directory between the checks above and here: that is not an error.
        if directory.is_dir():
            return
        if directory.is_symlink():
            raise _dangling_directory_link(directory) from None
        raise _not_a_directory(directory) from None
    except OSError as exc:
        raise _os_error(directory, exc) from None
    created.append(directory)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temps(directory: Path, name: str) -> None:
    """Remove the temporary files of `name` in `directory` whose process is gone."""
    prefix = f".{name}."
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX)):
            continue
        pid_text = entry.name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this run's temps are all its own: an old one is a leftover
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def _write_temp(output: Output, mode: int, durable: bool) -> str:
    import tempfile

    directory = output.path.parent
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{output.path.name}.{os.getpid()}.",
                                suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, mode)
        view = memoryview(output.content)
        while view:
            written = os.write(fd, view[:_CHUNK])
            view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    return temp


def write(outputs: Sequence[Output], durable: bool = True) -> None:
    """Write `outputs` as one set (see the module's doc); raise `CompileError` (E1502,
    E1503) with nothing written when a path cannot take them."""
    for output in outputs:
        _check_name(output.path)
    created: list[Path] = []
    temps: list[tuple[str, Output]] = []
    done = 0
    try:
        for directory in dict.fromkeys(o.path.parent for o in outputs):
            _make_directory(directory, created)
        for output in outputs:
            if output.path.is_symlink():
                raise _fail(output.path, "E1503", "output {path} is a symbolic link: mschema "
                            "neither replaces a link nor writes through it",
                            notes=[f"it points to `{shown(os.readlink(output.path))}`"],
                            help="remove the link, or give `-o` the file it points to")
            if output.path.is_dir():
                raise _fail(output.path, "E1502", "cannot write output {path}: it is a "
                            "directory", help="give `-o` a file name")
            remove_stale_temps(output.path.parent, output.path.name)
        mask = _umask()
        for output in outputs:
            mode = (0o777 if output.executable else 0o666) & ~mask
            try:
                temps.append((_write_temp(output, mode, durable), output))
            except OSError as exc:
                raise _os_error(output.path, exc) from None
        for temp, output in temps:
            try:
                os.replace(temp, output.path)
            except OSError as exc:
                raise _os_error(output.path, exc) from None
            done += 1
    except BaseException:
        for temp, _output in temps[done:]:
            try:
                os.unlink(temp)
            except OSError:
                pass
        if not done:
            for directory in reversed(created):
                try:
                    directory.rmdir()
                except OSError:
                    break
        raise
    if durable:
        for directory in dict.fromkeys(o.path.parent for o in outputs):
            _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    """Make the renames durable (best effort: not every file system can)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
