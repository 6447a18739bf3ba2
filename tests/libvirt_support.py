"""A private libvirt daemon for the tests, and `virsh` through it.

`Daemon.start()` runs the system's `libvirtd` (Debian 12's libvirt 9.0) as a real service for
the test session, without touching a libvirt of the host: it runs as root in its own mount
and network namespaces (`unshare --mount --net`), where libvirt's state, config, cache and
log directories (`/etc/libvirt`, `/var/lib/libvirt`, `/var/cache/libvirt`,
`/var/log/libvirt`) and `/run` are bind mounts of, or a tmpfs over, a scratch directory; its
socket is in that directory (`qemu:///system?socket=…`). Tap devices libvirt opens for
`domxml-to-native` are made in the private network namespace. QEMU runs as root there
(`user = "root"` in its private `qemu.conf`), so that libvirt's capability cache stays
valid between calls. `stop()` ends the daemon (by its pid) and removes the directory.

Without root, `unshare` or `libvirtd` the tests skip; under `CI=true` they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# libvirt's host directories the daemon gets private copies of (bind mounts)
PRIVATE_DIRS = ("/etc/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt")
INSTALL_HINT = "install libvirt, e.g. `apt-get install libvirt-daemon-system libvirt-clients`"


def unavailable(message: str) -> None:
    """Skip the test, or fail it under CI=true (a CI image without libvirt is broken)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class VirshError(RuntimeError):
    pass


class Daemon:
    """A running private libvirtd; `virsh(...)` talks to it."""

    def __init__(self, root: Path, proc: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.proc = proc
        self.uri = f"qemu:///system?socket={root / 'sock' / 'libvirt-sock'}"

    @classmethod
    def start(cls, timeout: float = 30.0) -> Daemon:
        for tool in ("libvirtd", "virsh", "unshare"):
            if shutil.which(tool) is None:
                unavailable(f"{tool} not found on PATH; {INSTALL_HINT}")
        if os.geteuid() != 0:
            unavailable("the private libvirtd needs root (its own mount and network namespace)")
        root = Path(tempfile.mkdtemp(prefix="mschema-libvirtd-"))
        mounts = []
        for host in PRIVATE_DIRS:
            mine = root / host.strip("/").replace("/", "-")
            if host == "/etc/libvirt" and os.path.isdir(host):
                shutil.copytree(host, mine, symlinks=True)
            else:
                mine.mkdir(parents=True)
            if os.path.isdir(host):
                mounts.append(f"mount --bind {mine} {host}")
        etc = root / "etc-libvirt"
        (root / "sock").mkdir()
        (etc / "libvirtd.conf").write_text(
            f'unix_sock_dir = "{root / "sock"}"\n'
            'unix_sock_rw_perms = "0700"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            'log_outputs = "3:stderr"\n', encoding="utf-8")
        with (etc / "qemu.conf").open("a", encoding="utf-8") as f:
            f.write('\nuser = "root"\ngroup = "root"\n')
        script = "\n".join(["set -e", "mount --make-rprivate /", *mounts,
                            "mount -t tmpfs tmpfs /run",
                            f"exec libvirtd -f /etc/libvirt/libvirtd.conf -p {root}/pid"])
        with (root / "libvirtd.log").open("wb") as log:
            proc = subprocess.Popen(["unshare", "--mount", "--net", "sh", "-c", script],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=root, start_new_session=True)
        daemon = cls(root, proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(VirshError):
                daemon.virsh("version")
                return daemon
            time.sleep(0.2)
        log_text = (root / "libvirtd.log").read_text(errors="replace")
        daemon.stop()
        unavailable(f"the private libvirtd did not start:\n{log_text}")
        raise AssertionError("unreachable")

    def virsh(self, *args: str, timeout: float = 120.0) -> str:
        """`virsh -c URI ARGS…`'s stdout; VirshError with its stderr when it fails."""
        done = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True,
                              text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise VirshError(f"virsh {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def define(self, xml: str) -> str:
        """Define a domain from `xml` (libvirt assigns what it lacks); its name."""
        with tempfile.NamedTemporaryFile("w", suffix=".xml", dir=self.root,
                                         delete=False) as f:
            f.write(xml)
        try:
            out = self.virsh("define", f.name)
        finally:
            os.unlink(f.name)
        return out.split("'")[1]

    def dumpxml(self, name: str) -> str:
        return self.virsh("dumpxml", name)

    def undefine(self, name: str) -> None:
        self.virsh("undefine", "--keep-nvram", name)

    def native_argv(self, xml: str) -> str:
        """`virsh domxml-to-native qemu-argv`: libvirt's QEMU command line (shell text)."""
        with tempfile.NamedTemporaryFile("w", suffix=".xml", dir=self.root,
                                         delete=False) as f:
            f.write(xml)
        try:
            return self.virsh("domxml-to-native", "qemu-argv", f.name)
        finally:
            os.unlink(f.name)

    @contextlib.contextmanager
    def defined(self, xml: str) -> Iterator[str]:
        """A domain defined for the block (its dumpxml), undefined afterwards."""
        name = self.define(xml)
        try:
            yield self.dumpxml(name)
        finally:
            self.undefine(name)

    def stop(self) -> None:
        """End the daemon (its process group: unshare's shell became libvirtd) and remove
        its directory."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# libvirt's QEMU command line, made startable here


# devices libvirt gives no id; the harness names them as `import-libvirt` does (an id is the
# command line's name, not the guest's hardware)
UNNAMED = {"pvpanic": "panic0"}


def native_argv(shell_text: str) -> list[str]:
    """`domxml-to-native qemu-argv`'s command line as an argv QEMU starts here, paused by
    the harness: libvirt's environment, `-S`, its monitor, its master-key secret and
    `-sandbox` dropped; tap netdevs (libvirt hands QEMU an fd) and socket chardevs (an fd
    too, or a path under libvirt's state directory) become user netdevs and null chardevs
    with the same ids: the same guest hardware."""
    import json
    import re
    import shlex

    words = shlex.split(shell_text)
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        words.pop(0)
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        v = words[i + 1] if i + 1 < len(words) else ""
        if w == "-S":
            i += 1
            continue
        if w in ("-mon", "-sandbox") or (w == "-object" and '"secret"' in v) or (
                w == "-chardev" and "id=charmonitor" in v):
            i += 2
            continue
        if w == "-device" and v.startswith("{"):
            dev = json.loads(v)
            if "id" not in dev and dev["driver"] in UNNAMED:
                v = json.dumps({**dev, "id": UNNAMED[dev["driver"]]})
        if w == "-netdev" and v.startswith("{"):
            net = json.loads(v)
            if net.get("type") == "tap":
                v = json.dumps({"type": "user", "id": net["id"]})
        if w == "-chardev" and v.startswith("socket,"):
            ident = re.search(r"id=([^,]+)", v)
            v = f"null,id={ident.group(1) if ident else 'chr'}"
        out += [w, v] if w.startswith("-") and i + 1 < len(words) and \
            not words[i + 1].startswith("-") else [w]
        i += 2 if len(out) >= 2 and out[-1] == v and out[-2] == w else 1
    return out
