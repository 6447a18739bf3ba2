#!/usr/bin/env python3
"""mschema beside QEMU 7.2, in one run: `python bench/run.py [--json PATH]`.

For generated q35 and pseries specs of 16, 64, 256 and 1024 devices (virtio disks and NICs
alternating, so q35 needs root ports and, past 192 of them, pcie-pci-bridges; on pseries one
NIC in four is an spapr-vlan, and a PHB is added every 32 PCI devices), it measures:

- `mschema compile SPEC --emit argv` as a whole new process (the best of `--repeat`), with
  its peak RSS (`ru_maxrss` from `wait4`, in one more run forked by a small launcher);
- QEMU 7.2 building the machine from that argv: `compiler.qemu.process.query` with no command,
  i.e. start with `-S`, QMP handshake, `quit`, process gone (backing files created, host
  paths and networks made runnable as the golden tests do);
- the same compile in-process (`driver.compile_input` + the argv emitter, after a warm-up,
  the shipped library loaded);
- `mschema lint` of every shipped schema and stdlib file, with an empty cache (a new
  `$XDG_CACHE_HOME` each run) and with a warm one (nothing changed since the last run).

Every child runs `python -m compiler` from this checkout (PYTHONPATH), with bytecode cached
in a private PYTHONPYCACHEPREFIX (as an installed package has it; PYTHONDONTWRITEBYTECODE is
dropped for the children) and `$XDG_CACHE_HOME` in a scratch directory, so the user's cache is
never touched. A warm-up run of each command comes first and is not counted. "Cold" means a new
process; the mschema cache is warm unless the row says "empty cache" (lark's own grammar
cache, in the temporary directory, stays warm).

It prints a table, the ratios and the budget of issue 7, and writes everything as JSON (the
path given with --json, default bench/results.json). It only measures: nothing here fails on
a slow result (the exit status is 0 unless a command fails).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SIZES = (16, 64, 256, 1024)
MACHINES = {"q35": "pc-q35", "pseries": "pseries"}
BINARIES = {"x86_64": "qemu-system-x86_64", "ppc64": "qemu-system-ppc64"}

# issue 7's budget
BUDGET = {
    "compile_vs_qemu": 1 / 3,      # cold `mschema compile` of 256 devices / QEMU (aim: 1/5)
    "compile_vs_qemu_aim": 1 / 5,
    "inprocess_vs_qemu": 1 / 20,   # in-process compile of 256 devices / QEMU
    "lint_cold_s": 0.400,
    "lint_warm_s": 0.100,
    "scaling_1024_256": 4.5,       # n log n: time(1024) / time(256)
    "peak_rss_mb_1024": 150.0,
}
# issue 17's budget: start-up and fleets
FLEET_BUDGET = {
    "compile16_vs_qemu": 1 / 1.5,  # cold `mschema compile` of 16 devices / QEMU (goal)
    "lint_cold_s": 0.200,
    "lint_warm_s": 0.040,
    "specs_per_s_j2": 1000.0,      # a batch of 10,000 16-device specs with -j 2 (at least)
    "growth_10k_1k": 11.0,         # time(10,000) / time(1,000): linear
}
FLEET_SIZES = (1000, 10000)


RSS_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def spec_text(machine: str, n: int) -> str:
    """A loose spec with `n` devices: virtio disks and NICs alternating. On pseries one NIC
    in four is an spapr-vlan (VIO), the others virtio-net on the PHBs: QEMU 7.2 gives VIO
    devices IRQs 0x1100 + (reg & 0xff), so past 255 of them (the NVRAM has reg 0x71000000)
    it refuses the machine with `IRQ 4352 is not free`."""
    lines = [f'machine = "{MACHINES[machine]}"', f'name = "{machine}-{n}"', 'memory = "1G"', ""]
    for i in range(n):
        if i % 2 == 0:
            lines += ["[[disk]]", f'file = "d{i:04d}.raw"', ""]
        else:
            lines += ["[[nic]]", 'network = "user"']
            if machine == "pseries" and i % 8 == 1:
                lines.append('model = "spapr-vlan"')
            lines.append("")
    return "\n".join(lines)


class Runner:
    """Runs `python -m compiler …` as whole processes in a controlled environment."""

    def __init__(self, work: Path) -> None:
        self.work = work
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        env["XDG_CACHE_HOME"] = str(work / "cache")
        self.env = env

    def mschema(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "compiler", *args]

    def run(self, argv: Sequence[str], *, cache: Path | None = None,
            stdout: Path | None = None) -> float:
        """Wall seconds of one whole process; raises if it fails."""
        env = dict(self.env)
        if cache is not None:
            env["XDG_CACHE_HOME"] = str(cache)
        err_path = self.work / "stderr.txt"
        with open(err_path, "wb") as err, \
                open(stdout, "wb") if stdout else open(os.devnull, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, cwd=self.work, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err)
            proc.wait()
            elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed ({proc.returncode}):\n"
                             + err_path.read_text(errors="replace"))
        return elapsed

    def peak_rss(self, argv: Sequence[str]) -> int:
        """The peak RSS (KiB) of one run. Linux counts in a child's `ru_maxrss` the memory
        of the process it was forked from (up to its exec), here this big one: so a small
        launcher forks it and reports what `wait4` says."""
        out = self.work / "rss.txt"
        subprocess.run([sys.executable, "-S", "-c", RSS_LAUNCHER, str(out), *argv],
                       env=self.env, cwd=self.work, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return int(out.read_text())

    def best(self, argv: Sequence[str], repeat: int, *, fresh_cache: bool = False,
             stdout: Path | None = None) -> dict[str, Any]:
        """One warm-up run, then the best of `repeat` (each with an empty cache if
        `fresh_cache`)."""
        self.run(argv, stdout=stdout)
        times = []
        for _ in range(repeat):
            cache = Path(tempfile.mkdtemp(prefix="cache-", dir=self.work)) if fresh_cache \
                else None
            times.append(self.run(argv, cache=cache, stdout=stdout))
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)
        return {"best_s": min(times), "samples_s": times, "peak_rss_kib": self.peak_rss(argv)}


def best_of(fn: Callable[[], object], repeat: int) -> dict[str, Any]:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"best_s": min(times), "samples_s": times}


def qemu_case(spec: Path, argv_path: Path, blob: dict[str, Any], scratch: Path,
              repeat: int) -> dict[str, Any] | None:
    """QEMU building the compiled machine: start paused, QMP ready, quit."""
    import importlib

    from compiler.qemu import process

    vm_support = importlib.import_module("vm_support")  # tests/vm_support.py

    binary = shutil.which(BINARIES[blob["machine"]["arch"]])
    if binary is None:
        return None
    scratch.mkdir(parents=True, exist_ok=True)
    for name, fmt in vm_support.backing_files(blob):
        path = scratch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "qcow2":
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"],
                           check=True)
        else:
            with open(path, "wb") as f:
                f.truncate(1 << 20)
    argv = json.loads(argv_path.read_text(encoding="utf-8"))
    runnable = vm_support.runnable_argv([binary, *argv[1:]], str(scratch))
    try:
        result = best_of(lambda: process.query([*runnable, "-accel", "tcg"], hmp=(), qmp=(),
                                            timeout=300.0), repeat)
    except process.QemuError as exc:
        print(f"bench: QEMU refused {spec.name}: {exc}", file=sys.stderr)
        return {"best_s": None, "error": str(exc)}
    result["devices"] = sum(1 for a in argv if a == "-device")
    return result


def inprocess_case(spec: Path, repeat: int) -> dict[str, Any]:
    from compiler import driver
    from compiler.emit import argv as emit_argv

    def compile_once() -> str:
        return json.dumps(emit_argv.argv(driver.compile_input(spec)))

    return best_of(compile_once, repeat)


def fleet_specs(work: Path, n: int) -> Path:
    """`n` 16-device q35 specs (the bench's 16-device spec, each with its own name)."""
    directory = work / f"fleet-{n}"
    directory.mkdir()
    text = spec_text("q35", 16)
    for i in range(n):
        (directory / f"vm{i:05d}.toml").write_text(
            text.replace('name = "q35-16"', f'name = "vm{i:05d}"'), encoding="utf-8")
    return directory


def fleet_case(runner: Runner, specs: Path, jobs: int, rss: bool) -> dict[str, Any]:
    """One batch `compile DIR --emit argv -j N` as a whole process (its outputs in a new
    directory), and optionally its peak RSS: of the largest process, main or worker."""
    out = Path(tempfile.mkdtemp(prefix="out-", dir=runner.work))
    argv = runner.mschema("compile", str(specs), "--emit", "argv", "-o", str(out), "-j",
                          str(jobs), "--format", "json")
    seconds = runner.run(argv)
    n = sum(1 for _ in specs.iterdir())
    entry: dict[str, Any] = {"inputs": n, "jobs": jobs, "seconds": seconds,
                             "specs_per_s": n / seconds}
    if rss:
        entry["peak_rss_kib"] = runner.peak_rss(argv)
    shutil.rmtree(out, ignore_errors=True)
    return entry


def fleet_inprocess(specs: Path) -> dict[str, Any]:
    """Every spec of `specs` compiled once in this process (compile + argv, no files)."""
    from compiler import driver
    from compiler.emit import argv as emit_argv

    paths = sorted(specs.iterdir())
    emit_argv.argv(driver.compile_input(paths[0]))
    start = time.perf_counter()
    for path in paths:
        emit_argv.argv(driver.compile_input(path))
    seconds = time.perf_counter() - start
    return {"inputs": len(paths), "seconds": seconds, "specs_per_s": len(paths) / seconds}


def ms(seconds: float | None) -> str:
    return f"{'-':>8}" if seconds is None else f"{seconds * 1000:8.1f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def show_ratio(r: float | None) -> str:
    return "-" if r is None else f"1/{1 / r:.1f}" if r < 1 else f"{r:.2f}x"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json",
                    help="where to write the results (default: bench/results.json)")
    ap.add_argument("--repeat", type=int, default=5,
                    help="runs per measurement, the best is kept (default 5)")
    ap.add_argument("--qemu-repeat", type=int, default=3,
                    help="QEMU starts per machine (default 3)")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--machines", nargs="+", choices=list(MACHINES), default=list(MACHINES))
    ap.add_argument("--no-qemu", action="store_true", help="skip the QEMU measurements")
    ap.add_argument("--fleet", type=int, nargs="*", default=list(FLEET_SIZES),
                    help="batch sizes of 16-device specs (default 1000 10000; none: skip)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="mschema-bench-"))
    # the in-process compiles and this process's cache use the scratch directory too
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    runner = Runner(work)
    results: dict[str, Any] = {
        "environment": {
            "python": sys.version.split()[0], "executable": sys.executable,
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "qemu": _qemu_version(),
        },
        "repeat": args.repeat, "qemu_repeat": args.qemu_repeat,
        "compile": {}, "inprocess": {}, "qemu": {}, "lint": {}, "fleet": {},
    }
    try:
        print(f"bench: scratch {work}", file=sys.stderr)
        results["python_startup"] = runner.best([sys.executable, "-c", "pass"], args.repeat)
        results["lint"]["cold"] = runner.best(runner.mschema("lint"), args.repeat,
                                              fresh_cache=True)
        results["lint"]["warm"] = runner.best(runner.mschema("lint"), args.repeat)
        for machine in args.machines:
            for n in args.sizes:
                key = f"{machine}-{n}"
                print(f"bench: {key}", file=sys.stderr)
                spec = work / f"{key}.toml"
                spec.write_text(spec_text(machine, n), encoding="utf-8")
                argv_path, blob_path = work / f"{key}.argv.json", work / f"{key}.json"
                results["compile"][key] = runner.best(
                    runner.mschema("compile", str(spec), "--emit", "argv"), args.repeat,
                    stdout=argv_path)
                if n == min(args.sizes):
                    results["compile"][f"{key} (empty cache)"] = runner.best(
                        runner.mschema("compile", str(spec), "--emit", "argv"), args.repeat,
                        fresh_cache=True)
                results["inprocess"][key] = inprocess_case(spec, args.repeat)
                runner.run(runner.mschema("compile", str(spec), "--emit", "json"),
                           stdout=blob_path)
                blob = json.loads(blob_path.read_text(encoding="utf-8"))
                results["compile"][key]["devices"] = sum(
                    1 for a in json.loads(argv_path.read_text(encoding="utf-8"))
                    if a == "-device")
                if not args.no_qemu:
                    results["qemu"][key] = qemu_case(spec, argv_path, blob, work / key,
                                                     args.qemu_repeat)
        for n in args.fleet:
            print(f"bench: fleet of {n}", file=sys.stderr)
            specs = fleet_specs(work, n)
            results["fleet"][str(n)] = {
                "inprocess": fleet_inprocess(specs),
                "j1": fleet_case(runner, specs, 1, rss=False),
                "j2": fleet_case(runner, specs, 2, rss=n == min(args.fleet)),
            }
            shutil.rmtree(specs, ignore_errors=True)
        results["environment"]["loadavg_end"] = os.getloadavg()
        results["summary"] = summarize(results, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0


def _qemu_version() -> str | None:
    binary = shutil.which(BINARIES["x86_64"])
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else None


def summarize(results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    def best(section: str, key: str) -> float | None:
        entry = results[section].get(key)
        return None if entry is None or entry["best_s"] is None else float(entry["best_s"])

    rows: dict[str, Any] = {}
    for machine in args.machines:
        for n in args.sizes:
            key = f"{machine}-{n}"
            cold, inproc, q = best("compile", key), best("inprocess", key), best("qemu", key)
            rows[key] = {
                "compile_s": cold, "inprocess_s": inproc, "qemu_s": q,
                "compile_vs_qemu": ratio(cold, q), "inprocess_vs_qemu": ratio(inproc, q),
                "peak_rss_mb": results["compile"][key]["peak_rss_kib"] / 1024,
                "devices": results["compile"][key]["devices"],
            }
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, limit: float, aim: float | None = None) -> None:
        checks.append({"budget": name, "value": value, "limit": limit, "aim": aim,
                       "holds": None if value is None else value <= limit})

    for machine in args.machines:
        r256, r1024 = rows.get(f"{machine}-256"), rows.get(f"{machine}-1024")
        if r256:
            check(f"{machine}: cold compile 256 / QEMU", r256["compile_vs_qemu"],
                  BUDGET["compile_vs_qemu"], BUDGET["compile_vs_qemu_aim"])
            check(f"{machine}: in-process 256 / QEMU", r256["inprocess_vs_qemu"],
                  BUDGET["inprocess_vs_qemu"])
        if r256 and r1024:
            check(f"{machine}: cold compile 1024 / 256", ratio(r1024["compile_s"],
                                                               r256["compile_s"]),
                  BUDGET["scaling_1024_256"])
            check(f"{machine}: in-process 1024 / 256", ratio(r1024["inprocess_s"],
                                                             r256["inprocess_s"]),
                  BUDGET["scaling_1024_256"])
        if r1024:
            check(f"{machine}: peak RSS at 1024 (MB)", r1024["peak_rss_mb"],
                  BUDGET["peak_rss_mb_1024"])
    check("lint, empty cache (s)", results["lint"]["cold"]["best_s"], BUDGET["lint_cold_s"])
    check("lint, nothing changed (s)", results["lint"]["warm"]["best_s"],
          BUDGET["lint_warm_s"])
    fleet_checks: list[dict[str, Any]] = []

    def goal(name: str, value: float | None, limit: float, at_least: bool = False) -> None:
        holds = None if value is None else value >= limit if at_least else value <= limit
        fleet_checks.append({"budget": name, "value": value, "limit": limit,
                             "at_least": at_least, "holds": holds})

    q16 = rows.get("q35-16")
    goal("q35: cold compile 16 / QEMU", q16["compile_vs_qemu"] if q16 else None,
         FLEET_BUDGET["compile16_vs_qemu"])
    goal("lint, empty cache (s)", results["lint"]["cold"]["best_s"],
         FLEET_BUDGET["lint_cold_s"])
    goal("lint, nothing changed (s)", results["lint"]["warm"]["best_s"],
         FLEET_BUDGET["lint_warm_s"])
    fleet = results["fleet"]
    largest = max((int(k) for k in fleet), default=None)
    smallest = min((int(k) for k in fleet), default=None)
    goal("batch -j 2, specs/s", fleet[str(largest)]["j2"]["specs_per_s"] if largest else None,
         FLEET_BUDGET["specs_per_s_j2"], at_least=True)
    if largest and smallest and largest != smallest:
        for kind in ("inprocess", "j2"):
            growth = ratio(fleet[str(largest)][kind]["seconds"],
                           fleet[str(smallest)][kind]["seconds"])
            goal(f"batch {kind}: time {largest} / {smallest}",
                 None if growth is None else growth * smallest * 10 / largest,
                 FLEET_BUDGET["growth_10k_1k"])
    return {"rows": rows, "budget": checks, "fleet_budget": fleet_checks}


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    summary = results["summary"]
    print(f"\nbest of {args.repeat} whole processes (QEMU: best of {args.qemu_repeat}); "
          f"python -c pass: {ms(results['python_startup']['best_s']).strip()} ms")
    print(f"{'machine':14} {'-device':>7} {'compile':>8} {'in-proc':>8} {'QEMU':>8} "
          f"{'comp/QEMU':>9} {'inp/QEMU':>9} {'RSS MB':>7}")
    for key, row in summary["rows"].items():
        print(f"{key:14} {row['devices']:7d} {ms(row['compile_s'])} {ms(row['inprocess_s'])} "
              f"{ms(row['qemu_s'])} {show_ratio(row['compile_vs_qemu']):>9} "
              f"{show_ratio(row['inprocess_vs_qemu']):>9} {row['peak_rss_mb']:7.1f}")
    for key, entry in results["compile"].items():
        if key.endswith("(empty cache)"):
            print(f"compile {key}: {ms(entry['best_s']).strip()} ms")
    print(f"lint, empty cache: {ms(results['lint']['cold']['best_s']).strip()} ms; "
          f"nothing changed: {ms(results['lint']['warm']['best_s']).strip()} ms")
    print("\nbudget (issue 7):")
    print_budget(summary["budget"])
    if results["fleet"]:
        print("\nbatches of 16-device q35 specs (`compile DIR --emit argv -o OUT`):")
        print(f"{'inputs':>7} {'in-process/s':>13} {'-j 1 /s':>9} {'-j 2 /s':>9} "
              f"{'RSS MB':>7}")
        for n, row in results["fleet"].items():
            rss = row["j2"].get("peak_rss_kib")
            print(f"{int(n):7d} {row['inprocess']['specs_per_s']:13.0f} "
                  f"{row['j1']['specs_per_s']:9.0f} {row['j2']['specs_per_s']:9.0f} "
                  f"{'-' if rss is None else f'{rss / 1024:.1f}':>7}")
    print("\nbudget (issue 17; growth scaled to 10x the inputs):")
    print_budget(summary["fleet_budget"])


def print_budget(checks: list[dict[str, Any]]) -> None:
    """One line per budget: the value, its limit (an upper one unless `at_least`), the
    aim where one is set, and whether it holds."""
    for c in checks:
        value, limit = c["value"], c["limit"]
        shown = "-" if value is None else f"{value:.3f}"
        verdict = {True: "holds", False: "FAILS", None: "not measured"}[c["holds"]]
        aim = f" (aim {c['aim']:.3f})" if c.get("aim") else ""
        print(f"  {c['budget']:38} {shown:>8} {'>=' if c.get('at_least') else '<='} "
              f"{limit:.3f}{aim}: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
