"""`mschema extract` against a hostile or dying QMP peer (`tests/qmp_peer.py`): every
scenario ends within `--timeout` in one exact diagnostic (E1712 for the transport, E1718
for a reply of the wrong shape), exit 1, nothing written, no traceback; an event flood
does not grow the client's memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpus_support import codes_of
from qmp_peer import Peer, peer

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 2.0
SLACK = 8.0  # start-up of the command (the library from its cache) on a busy machine

CASES = {
    "no-greeting": ("E1712", "QEMU did not answer within 2 s"),
    "silent": ("E1712", "QEMU did not answer within 2 s"),
    "truncated-hang": ("E1712", "QEMU did not answer within 2 s"),
    "flood": ("E1712", "QEMU did not answer within 2 s"),
    "garbage-greeting": ("E1712", "cannot open a QMP session on `{sock}`: QEMU sent a "
                         "message that is not QMP's JSON"),
    "garbage": ("E1712", "the QMP session broke off: QEMU sent a message that is not QMP's "
                "JSON"),
    "truncated": ("E1712", "the QMP session broke off: QEMU sent a message that is not "
                  "QMP's JSON"),
    "huge": ("E1712", "the QMP session broke off: QEMU sent a message longer than 10 MiB"),
    "die": ("E1712", "the QMP session broke off: QEMU closed the connection"),
    "qom-list-dict": ("E1718", "QEMU's reply to `qom-list /machine` is an object ({'name': "
                      "'type', 'type': 'string'}), where a list of objects is expected"),
    "qom-list-items": ("E1718", "QEMU's reply to `qom-list /machine` is a list ([{'type': "
                       "'string'}]), where a list of objects with a string `name` and "
                       "`type` is expected"),
    "cpus-string": ("E1718", "QEMU's reply to `query-cpus-fast` is a string ('cpu0'), where "
                    "a list of objects is expected"),
    "hmp-number": ("E1718", "QEMU's reply to `human-monitor-command info qtree` is a number "
                   "(42), where text is expected"),
    "memory-list": ("E1718", "QEMU's reply to `query-memory-size-summary` is a list "
                    "([134217728]), where an object is expected"),
    "qtree-garbage": ("E1718", "QEMU's reply to `human-monitor-command info qtree` is a "
                      "string ('hello, this is no device tree'), where QEMU's device tree "
                      "is expected"),
}


def run_with_usage(sock: Path, out: Path, timeout: float = TIMEOUT
                   ) -> tuple[int, str, str, float, int]:
    """exit status, stdout, stderr, seconds and peak memory (KiB) of `mschema extract`:
    the child is reaped with wait4, which gives its own peak."""
    start = time.monotonic()
    with open(out.with_suffix(".stdout"), "w+") as so, open(out.with_suffix(".stderr"),
                                                             "w+") as se:
        proc = subprocess.Popen(
            [sys.executable, "-m", "compiler", "extract", "--qmp", str(sock), "--timeout",
             f"{timeout:g}", "-o", str(out)],
            cwd=ROOT, stdout=so, stderr=se,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                 "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]})
        deadline = start + timeout + 60
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("extract hung")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        return (proc.returncode, so.read(), se.read(), time.monotonic() - start,
                usage.ru_maxrss)


def attempt(tmp_path: Path, scenario: str, timeout: float = TIMEOUT
            ) -> tuple[Peer, int, str, str, float, int]:
    """`extract` against a fake peer playing `scenario`."""
    tmp_path.mkdir(exist_ok=True)
    sock = tmp_path / "qmp.sock"
    with peer(sock, scenario) as running:
        result = run_with_usage(sock, tmp_path / "blob.json", timeout)
    return (running, *result)


@pytest.mark.parametrize("scenario", sorted(CASES))
def test_a_hostile_peer_is_one_diagnostic_in_time(tmp_path: Path, scenario: str) -> None:
    _peer, status, stdout, stderr, seconds, _peak = attempt(tmp_path, scenario)
    sock = tmp_path / "qmp.sock"
    code, message = CASES[scenario]
    assert (status, stdout) == (1, ""), stderr
    assert codes_of(stderr) == [code], stderr
    assert stderr.splitlines()[0] == f"{sock}:1:1: error[{code}]: " + \
        message.replace("{sock}", str(sock))
    assert "Traceback" not in stderr
    assert seconds < TIMEOUT + SLACK
    assert not (tmp_path / "blob.json").exists()


def test_an_event_flood_is_dropped_not_kept(tmp_path: Path) -> None:
    """The flood's events are dropped as they come: the peak memory of a flooded extract is
    that of one whose peer sends nothing (within a margin), though keeping the events would
    take several times that margin (each a decoded message, at least 1 KiB)."""
    calm = attempt(tmp_path / "calm", "silent", 4)
    flood = attempt(tmp_path / "flood", "flood", 4)
    assert codes_of(flood[3]) == ["E1712"], flood[3]
    margin = 16 << 10  # KiB
    assert flood[0].events > 3 * margin, "the flood was too small to tell"
    assert flood[5] < calm[5] + margin, (flood[5], calm[5], flood[0].events)
