"""The long fuzz run of the README's Security section (issue 13): the mutations of
tests/test_fuzz.py, without hypothesis's stop-at-first-failure, so that a run of hours counts
every outcome: inputs tried per kind, tracebacks (any outcome but exit 0 or CONTRACT
diagnostics with exit 1 and nothing written, above all `error[E9999]`), and inputs that took
more than 5 s of CPU time (a hang; CPU time, since a run shares its cores under `nice`; the
wall time of the slowest is reported too, and each input is cut off after `--cutoff` seconds
of CPU time and counted as a hang).

    nice -n 19 python3 tools/fuzz_long.py --count 100000 --report build/fuzz-long.json

Kinds run round-robin (one input of each in turn), each from its own seeded random stream,
so a run is reproducible and an interrupted one still has figures for every kind. The report
is rewritten every `--every` inputs; each failing input is kept under `--keep`.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import test_fuzz  # noqa: E402

HANG = 5.0
HOTPLUG_SEEDS = [b'[[disk]]\nfile = "new.qcow2"\n', b'[[nic]]\nnetwork = "user"\n',
                 b'[[device]]\ntype = "virtio-rng-pci"\n', b'[[usb]]\ndevice = "tablet"\n']


class Cutoff(BaseException):  # not an Exception: the CLI's last resort must not catch it
    pass


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """The mutations of test_fuzz.mutated, from a plain random stream."""
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        where = rng.randint(0, len(data))
        kind = rng.choice(["insert", "delete", "duplicate", "replace"])
        if kind == "insert":
            if rng.random() < 0.5:
                data[where:where] = rng.choice(test_fuzz.TOKENS)
            else:
                data[where:where] = rng.randbytes(rng.randint(0, 8))
        elif kind == "delete":
            del data[where:where + rng.randint(1, 64)]
        elif kind == "duplicate":
            chunk = data[where:where + rng.randint(1, 256)]
            data[where:where] = chunk * rng.randint(1, 50)
        else:
            data[where:where + 1] = rng.choice(test_fuzz.TOKENS)
    return bytes(data)


def kinds(tmp: Path) -> dict[str, tuple[list[bytes], str, Callable[[Path, Path], list[str]]]]:
    table = dict(test_fuzz.KINDS)
    blob = tmp / "vm.json"
    blob.write_bytes((ROOT / "tests/vm/q35-minimal.json").read_bytes())
    table["hotplug"] = (HOTPLUG_SEEDS, "add.toml",
                        lambda p, o: ["hotplug", str(blob), "--add", str(p), "--emit", "qmp",
                                      "-o", str(o)])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs per kind")
    parser.add_argument("--kinds", nargs="*", help="default: every kind")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--cutoff", type=float, default=60.0,
                        help="CPU seconds after which an input is abandoned (counted as a hang)")
    parser.add_argument("--report", type=Path, default=ROOT / "build/fuzz-long.json")
    parser.add_argument("--keep", type=Path, default=ROOT / "build/fuzz-failures")
    parser.add_argument("--every", type=int, default=200)
    args = parser.parse_args(argv)

    def on_alarm(_sig: int, _frame: FrameType | None) -> None:
        raise Cutoff

    signal.signal(signal.SIGPROF, on_alarm)
    with tempfile.TemporaryDirectory(prefix="mschema-fuzz-") as scratch:
        tmp = Path(scratch)
        table = kinds(tmp)
        names = args.kinds or sorted(table)
        streams = {k: random.Random(f"{args.seed}:{k}") for k in names}
        stats = {k: {"inputs": 0, "clean": 0, "tracebacks": 0,
                     "hangs_over_5s": 0, "slowest_s": 0.0, "slowest_cpu_s": 0.0,
                     "seconds": 0.0} for k in names}
        started = time.monotonic()
        done = 0
        for _ in range(args.count):
            for kind in names:
                seeds, name, command = table[kind]
                data = mutate(streams[kind], seeds)
                stat = stats[kind]
                verdict = ""
                t0, c0 = time.monotonic(), time.process_time()
                signal.setitimer(signal.ITIMER_PROF, args.cutoff)
                try:
                    test_fuzz._check(tmp, name, data, command, test_fuzz.OTHERS.get(kind, ()))
                except Cutoff:
                    verdict = "cutoff"
                except AssertionError as exc:
                    verdict = f"failure: {str(exc)[:500]}"
                except Exception as exc:
                    verdict = f"exception: {exc!r}"[:500]
                finally:
                    signal.setitimer(signal.ITIMER_PROF, 0)
                took, cpu = time.monotonic() - t0, time.process_time() - c0
                stat["inputs"] += 1
                stat["seconds"] = round(float(stat["seconds"]) + took, 3)
                stat["slowest_s"] = round(max(float(stat["slowest_s"]), took), 3)
                stat["slowest_cpu_s"] = round(max(float(stat["slowest_cpu_s"]), cpu), 3)
                if cpu > HANG or verdict == "cutoff":
                    stat["hangs_over_5s"] += 1
                    verdict = verdict or f"slow: {cpu:.1f} s of CPU ({took:.1f} s)"
                elif verdict:
                    stat["tracebacks"] += 1
                else:
                    stat["clean"] += 1
                if verdict:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    n = stat["inputs"]
                    (args.keep / f"{kind}-{n}.input").write_bytes(data)
                    (args.keep / f"{kind}-{n}.txt").write_text(verdict + "\n")
                done += 1
                if done % args.every == 0:
                    _report(args.report, stats, started, args)
        _report(args.report, stats, started, args, finished=True)
    failures = sum(int(s["tracebacks"]) + int(s["hangs_over_5s"]) for s in stats.values())
    return 1 if failures else 0


def _report(path: Path, stats: dict[str, dict[str, float]], started: float,
            args: argparse.Namespace, finished: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"finished": finished, "count_per_kind": args.count, "seed": args.seed,
            "elapsed_s": round(time.monotonic() - started, 1), "kinds": stats}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
