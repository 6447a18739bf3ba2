"""Many inputs in one run: `compile`, `verify` and `migrate-check` over a list of files or
directories, sharing one loaded library, in parallel worker processes.

The library is loaded once in this process before the workers are forked, so every worker
starts with it in (copy-on-write) memory. One input's failure is its record, never the end
of the run: every job's `CompileError` (or, as in the CLI's last resort, any exception, as
E9999) becomes a failed `Record` with its diagnostics. Records come back in input order
whatever order the workers finish in. Progress (a tqdm bar on a terminal, a plain line per
tenth otherwise) goes to stderr; the records are the command's output.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from compiler import driver
from compiler.base.diagnostics import CompileError, Diagnostic, error, to_json_objects
from compiler.base.source import SourceFile
from compiler.spec.policy import DEFAULT, Policy

if TYPE_CHECKING:
    from compiler.build import tree

SPEC_SUFFIXES = (".toml", ".json")


@attrs.frozen
class Item:
    """One input: a path (or, for migrate-check, a pair of paths) and the name its outputs
    go under (its path relative to the directory it was found in, without the suffix)."""

    paths: tuple[Path, ...]
    name: str

    @property
    def shown(self) -> str:
        return " → ".join(str(p) for p in self.paths)


@attrs.frozen
class Done:
    """What a job says of an input that worked: a one-line summary and the files written."""

    summary: str
    outputs: tuple[str, ...] = ()
    ok: bool = True


@attrs.frozen
class Record:
    input: str
    ok: bool
    seconds: float
    summary: str
    outputs: tuple[str, ...] = ()
    diagnostics: tuple[dict[str, object], ...] = ()

    @property
    def first(self) -> str:
        """The first diagnostic as its CONTRACT headline, or the summary of a failure."""
        if not self.diagnostics:
            return "" if self.ok else self.summary
        d = self.diagnostics[0]
        return (f"{d['path']}:{d['line']}:{d['col']}: {d['severity']}[{d['code']}]: "
                f"{d['message']}")

    def as_json(self) -> dict[str, object]:
        return {"input": self.input, "ok": self.ok, "seconds": round(self.seconds, 6),
                "summary": self.summary, "outputs": list(self.outputs),
                "diagnostics": list(self.diagnostics)}


Job = Callable[[Item], Done]


# ---- inputs ------------------------------------------------------------------------------
def items(paths: Sequence[Path], suffixes: Sequence[str] = SPEC_SUFFIXES) -> list[Item]:
    """Files as given, directories as the files below them with one of `suffixes` (sorted,
    so a run's order never depends on the file system)."""
    found: list[Item] = []
    for path in paths:
        if path.is_dir():
            below = sorted(p for p in path.rglob("*") if p.suffix in suffixes and p.is_file())
            if not below:
                raise CompileError([empty_directory(path, suffixes)])
            found += [Item((p,), str(p.relative_to(path).with_suffix(""))) for p in below]
        else:
            found.append(Item((path,), path.stem))
    return found


def empty_directory(path: Path, suffixes: Sequence[str]) -> Diagnostic:
    """A directory given as input that holds none: an input the user meant is not there."""
    text = str(path)
    return error("E2303", f"directory `{path}` holds no {' or '.join(suffixes)} file",
                 SourceFile.from_text("<command line>", text).span(0, len(text)))


def pairs(source: Path, destination: Path) -> list[Item]:
    """migrate-check's inputs: one pair, or two directories paired by relative path (a file
    on one side only is a pair with a missing half, which its job reports)."""
    if not (source.is_dir() and destination.is_dir()):
        return [Item((source, destination), source.stem)]
    left = {str(i.paths[0].relative_to(source)): i for i in items([source], (".json",
                                                                             ".toml"))}
    right = {str(i.paths[0].relative_to(destination)): i
             for i in items([destination], (".json", ".toml"))}
    return [Item((source / rel, destination / rel), str(Path(rel).with_suffix("")))
            for rel in sorted(left.keys() | right.keys())]


# ---- jobs --------------------------------------------------------------------------------
def compile_job(item: Item, kinds: tuple[str, ...], out: Path,
                policy: Policy = DEFAULT) -> Done:
    """Compile one input and write its outputs into `out/NAME/` (NAME: the input's name)."""
    from compiler.base import outputs
    from compiler.emit import kinds as emit_kinds

    machine = driver.compile_input(item.paths[0], policy)
    stem = machine.name or item.paths[0].stem
    directory = out / item.name
    files = [outputs.Output(directory / f"{stem}{emit_kinds.SUFFIXES[k]}",
                            _bytes(emit_kinds.render(machine, k)),
                            k in emit_kinds.EXECUTABLE) for k in kinds]
    outputs.write(files, durable=False)  # the run syncs once at its end (`run`)
    devices = sum(1 for _ in _devices(machine))
    return Done(f"{devices} devices", tuple(str(f.path) for f in files))


def verify_job(item: Item, binary: str | None, timeout: float, user_net: bool,
               policy: Policy = DEFAULT) -> Done:
    outcome = driver.verify(item.paths[0], binary, timeout, user_net, policy)
    if outcome.diagnostics:
        raise CompileError(outcome.diagnostics)
    return Done(f"QEMU built the {outcome.devices} devices and {outcome.buses} buses")


def migrate_job(item: Item, policy: Policy = DEFAULT) -> Done:
    from compiler.lang import resolve
    from compiler.ops import migrate

    source, destination = item.paths
    missing = [p for p in item.paths if not p.exists()]
    if missing:
        text = str(missing[0])
        span = SourceFile.from_text("<command line>", text).span(0, len(text))
        raise CompileError([error("E2301", f"`{missing[0]}` has no counterpart in the other "
                                  "directory", span, help="migrate-check pairs the files of "
                                  "two directories by their path below each")])
    found = migrate.differences(driver.compile_input(source, policy),
                                driver.compile_input(destination, policy),
                                resolve.load_library())
    count = {k: sum(1 for d in found if d.kind == k) for k in migrate.KINDS}
    guest = [d for d in found if d.kind == "guest-visible"]
    summary = ", ".join(f"{n} {kind} difference(s)" for kind, n in count.items())
    return Done(guest[0].text if guest else summary, ok=not guest)


def _devices(machine: tree.Machine) -> Iterator[tree.Device]:
    from compiler.build.tree import walk

    for _bus, device, _node in walk(machine.root):
        yield device


def _bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


# ---- running -----------------------------------------------------------------------------
def _run_one(job: Job, indexed: tuple[int, Item]) -> tuple[int, Record]:
    index, item = indexed
    start = time.perf_counter()
    try:
        done = job(item)
    except CompileError as exc:
        errors = [d for d in exc.diagnostics if d.severity == "error"] or list(exc.diagnostics)
        return index, Record(item.shown, False, time.perf_counter() - start,
                             f"{len(errors)} error(s)", (),
                             tuple(to_json_objects(errors)))
    except Exception as exc:  # the CLI's last resort, per input: the others go on
        text = f"{type(exc).__name__}: {str(exc)[:300]}"
        span = SourceFile.from_text(str(item.paths[0]), "").span(0, 0)
        bug = error("E9999", f"internal error: {text}", span)
        return index, Record(item.shown, False, time.perf_counter() - start,
                             "internal error", (), tuple(to_json_objects([bug])))
    return index, Record(item.shown, done.ok, time.perf_counter() - start, done.summary,
                         done.outputs)


def collisions(found: Sequence[Item]) -> list[Diagnostic]:
    """Two inputs whose outputs would go into one directory (`a.toml` and `a.json`)."""
    seen: dict[str, Item] = {}
    problems = []
    for item in found:
        if item.name in seen:
            text = str(item.paths[0])
            problems.append(error(
                "E2302", f"`{item.paths[0]}` and `{seen[item.name].paths[0]}` would both "
                f"write their outputs under `{item.name}/`",
                SourceFile.from_text("<command line>", text).span(0, len(text)),
                help="rename one of them, or compile them in two runs"))
        seen.setdefault(item.name, item)
    return problems


def run(job: Job, found: Sequence[Item], jobs: int, progress: IO[str] | None) -> list[Record]:
    """Every item through `job`, `jobs` at a time (1: in this process), in input order."""
    from compiler.lang import resolve

    resolve.load_library()  # once, before forking: the workers inherit it
    records: list[Record | None] = [None] * len(found)
    work = functools.partial(_run_one, job)
    meter = _Progress(len(found), progress)
    indexed = list(enumerate(found))
    if jobs <= 1 or len(found) <= 1:
        for pair in indexed:
            index, record = work(pair)
            records[index] = record
            meter.step(record)
    else:
        import multiprocessing

        chunk = max(1, min(32, len(found) // (jobs * 8)))
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for index, record in pool.imap_unordered(work, indexed, chunksize=chunk):
                records[index] = record
                meter.step(record)
    meter.close()
    if hasattr(os, "sync"):
        os.sync()  # the batch's outputs, made durable at once (`outputs.write(durable=False)`)
    return [r for r in records if r is not None]


class _Progress:
    """A tqdm bar on a terminal (imported only then), else a plain line at every tenth."""

    def __init__(self, total: int, stream: IO[str] | None) -> None:
        self.total, self.stream, self.done, self.failed = total, stream, 0, 0
        self.bar: Any = None
        if stream is not None and total > 1 and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=stream, unit="input", leave=False)

    def step(self, record: Record) -> None:
        self.done += 1
        self.failed += not record.ok
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed, refresh=False)
        elif self.stream is not None and self.total >= 10 and (
                self.done * 10 // self.total != (self.done - 1) * 10 // self.total):
            self.stream.write(f"mschema: {self.done}/{self.total} done, {self.failed} "
                              "failed\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---- the summary -------------------------------------------------------------------------
ROWS_SHOWN = 100  # past this many inputs, the table lists only the failed ones


def summary_text(command: str, records: Sequence[Record], seconds: float, jobs: int) -> str:
    """The table (result, time, input, first diagnostic) and a totals line."""
    failed = [r for r in records if not r.ok]
    shown = records if len(records) <= ROWS_SHOWN else failed
    width = max([len(r.input) for r in shown] + [5])
    lines = [f"{'result':<7} {'time':>9}  {'input':<{width}}  first diagnostic"] if shown else []
    for r in shown:
        lines.append(f"{'ok' if r.ok else 'failed':<7} {r.seconds * 1000:>7.1f}ms  "
                     f"{r.input:<{width}}  {r.first}".rstrip())
    if len(shown) < len(records):
        lines.append(f"({len(records) - len(shown)} ok inputs not listed; `--format json` "
                     "gives a record for each)")
    rate = len(records) / seconds if seconds > 0 else 0.0
    lines.append(f"{command}: {len(records)} input(s), {len(records) - len(failed)} ok, "
                 f"{len(failed)} failed in {seconds:.2f} s (-j {jobs}, {rate:.0f}/s)")
    return "\n".join(lines) + "\n"


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)

