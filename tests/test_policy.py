"""`--policy FILE`: a platform's limits on what a spec, blob or hot-plug fragment may ask for
(issue 13, items 6 and 7), through the real CLI.

The corpus: `tests/policy/bad/<case>/` holds `policy.toml` and the input (`input.toml`, or
`input` naming a file of the repository), and `expected.err`, what `mschema compile INPUT
--emit argv --policy policy.toml` prints (exit 1, nothing on stdout). `tests/policy/good/`
cases must compile. Refresh with `pytest tests/test_policy.py --update-goldens` and read the
diff. Then the places a corpus cannot show: symbolic links (made here), hot-plug,
migrate-check, verify and extract.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted(p for p in (ROOT / "tests/policy/bad").iterdir() if p.is_dir())
GOOD = sorted(p for p in (ROOT / "tests/policy/good").iterdir() if p.is_dir())
POLICY_CODE = re.compile(r"\"(E20[0-4]\d)\"")


def mschema(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _input(case: Path) -> str:
    named = case / "input"
    if named.exists():
        return named.read_text().strip()
    return (case / "input.toml").relative_to(ROOT).as_posix()


@pytest.mark.parametrize("case", BAD, ids=lambda p: p.name)
def test_bad_case(case: Path, update_goldens: bool) -> None:
    policy = (case / "policy.toml").relative_to(ROOT).as_posix()
    done = mschema("compile", _input(case), "--emit", "argv", "--policy", policy)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert "Traceback" not in done.stderr
    golden = case / "expected.err"
    if update_goldens:
        golden.write_text(done.stderr)
    assert done.stderr == golden.read_text()


@pytest.mark.parametrize("case", GOOD, ids=lambda p: p.name)
def test_good_case(case: Path) -> None:
    policy = (case / "policy.toml").relative_to(ROOT).as_posix()
    done = mschema("compile", _input(case), "--emit", "argv", "--policy", policy)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0].startswith("qemu-system-")


def test_every_policy_code_has_a_case_and_a_row() -> None:
    """Each code the policy modules can emit is in some expected.err (or a test below), and
    documented."""
    codes = set()
    for module in ("compiler/spec/policy.py", "compiler/build/confine.py"):
        codes |= set(POLICY_CODE.findall((ROOT / module).read_text()))
    shown = "".join((c / "expected.err").read_text() for c in BAD if (c / "expected.err")
                    .exists())
    shown += (ROOT / "tests/blob/bad/tap-with-script.err").read_text()
    docs = (ROOT / "docs/diagnostics.md").read_text()
    assert codes >= {"E2001", "E2010", "E2021"}, codes
    for code in sorted(codes):
        assert f"error[{code}]" in shown, f"{code} has no case"
        assert f"| `{code}` |" in docs, f"{code} has no row in docs/diagnostics.md"


POLICY = "[backends]\nroots = [\"{root}\"]\n"
SPEC = 'machine = "pc-q35"\nmemory = "512M"\n[[disk]]\nfile = "{file}"\n'


def test_a_symbolic_link_out_of_a_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "vms"
    (root / "ok").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")  # a link in the root that leads out of it
    (root / "inside").symlink_to(root / "ok")  # and one that stays in
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.format(root=root))
    spec = tmp_path / "vm.toml"
    spec.write_text(SPEC.format(file=root / "escape" / "passwd"))
    done = mschema("compile", str(spec), "--emit", "argv", "--policy", str(policy))
    assert done.returncode == 1
    assert done.stderr.startswith(f"{spec}:4:8: error[E2016]: backend `disk0` file "), \
        done.stderr
    spec.write_text(SPEC.format(file=root / "inside" / "disk.qcow2"))
    done = mschema("compile", str(spec), "--emit", "argv", "--policy", str(policy))
    assert done.returncode == 0, done.stderr
    # a root that is itself a link is compared by its real path, so the same holds
    (tmp_path / "link-to-vms").symlink_to(root)
    policy.write_text(POLICY.format(root=tmp_path / "link-to-vms"))
    done = mschema("compile", str(spec), "--emit", "argv", "--policy", str(policy))
    assert done.returncode == 0, done.stderr


def test_a_relative_path_is_resolved_from_the_working_directory(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.format(root=tmp_path / "vms"))
    spec = tmp_path / "vm.toml"
    spec.write_text(SPEC.format(file="vms/disk.qcow2"))
    (tmp_path / "vms").mkdir()
    assert mschema("compile", "vm.toml", "--emit", "argv", "--policy", "policy.toml",
                   cwd=tmp_path).returncode == 0
    elsewhere = mschema("compile", str(spec), "--emit", "argv", "--policy", str(policy))
    assert elsewhere.returncode == 1 and "error[E2016]" in elsewhere.stderr


def test_hotplug_holds_the_fragment_to_the_policy(tmp_path: Path) -> None:
    blob = tmp_path / "vm.json"
    blob.write_text((ROOT / "tests/vm/q35-minimal.json").read_text())
    fragment = tmp_path / "add.toml"
    fragment.write_text('[[device]]\ntype = "virtio-balloon-pci"\n')
    policy = tmp_path / "policy.toml"
    policy.write_text('[devices]\ntypes = ["virtio-rng-pci"]\n')
    done = mschema("hotplug", str(blob), "--add", str(fragment), "--policy", str(policy))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"{fragment}:1:1: error[E2015]: device type "
                                  "`virtio-balloon-pci`"), done.stderr
    fragment.write_text('[[device]]\ntype = "virtio-rng-pci"\n')
    assert mschema("hotplug", str(blob), "--add", str(fragment), "--policy",
                   str(policy)).returncode == 0
    # without a policy: the built-in default refuses a tap that would run QEMU's script
    fragment.write_text('[[nic]]\nnetwork = "user"\n')
    tapped = json.loads((ROOT / "tests/blob/good/q35-fixed-point.json").read_text())
    tapped["backends"]["net0"] = {"kind": "netdev", "type": "tap", "ifname": "tap0"}
    (tmp_path / "tap.json").write_text(json.dumps(tapped, indent=2))
    done = mschema("hotplug", str(tmp_path / "tap.json"), "--add", str(fragment))
    assert done.returncode == 1 and "error[E2019]" in done.stderr, done.stderr


def test_migrate_check_classes_host_access_as_security(tmp_path: Path) -> None:
    """A backend change that makes QEMU run a program, listen or log on the host is a
    `host-security` difference, in text and JSON; the exit code stays the guest's."""
    src = json.loads((ROOT / "tests/vm/q35-serials.json").read_text())
    chardevs = [k for k, v in src["backends"].items() if v.get("kind") == "chardev"]
    assert chardevs, "the fixture needs a chardev"
    (tmp_path / "src.json").write_text(json.dumps(src, indent=2))
    dst = json.loads(json.dumps(src))
    dst["backends"][chardevs[0]] = {"kind": "chardev", "backend": "null",
                                    "logfile": "/var/log/guest.log"}
    (tmp_path / "dst.json").write_text(json.dumps(dst, indent=2))
    (tmp_path / "allow.toml").write_text("[host]\nlogfile = true\nlisten = true\n")
    args = ("migrate-check", "src.json", "dst.json", "--policy", "allow.toml")
    done = mschema(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("host-security: ") and "logfile" in line
               and "QEMU writes a log file on the host" in line for line in lines), lines
    assert lines[-1].startswith("0 guest-visible difference(s), 1 host-security difference(s)")
    as_json = json.loads(mschema(*args, "--format", "json", cwd=tmp_path).stdout)
    assert as_json["counts"]["host-security"] == 1
    assert {d["kind"] for d in as_json["differences"]} <= {"host-security", "backend"}
    # without a policy that allows it, the destination is refused outright
    refused = mschema("migrate-check", "src.json", "dst.json", cwd=tmp_path)
    assert refused.returncode == 1 and "error[E2021]" in refused.stderr


def test_verify_refuses_before_qemu_starts(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\nmax-memory = \"64M\"\n")
    done = mschema("verify", "tests/vm/q35-minimal.toml", "--policy", str(policy),
                   "--qemu", "/nonexistent/qemu")
    assert done.returncode == 1
    assert "error[E2013]" in done.stderr and "nonexistent" not in done.stderr


def test_an_allowed_logfile_reaches_qemu_verbatim_and_extract_is_held_too(
        tmp_path: Path) -> None:
    """With `host.logfile`, a chardev's logfile reaches QEMU as written (QEMU creates that
    very file); `extract --policy` holds the running machine to a policy as well."""
    from qemu_support import require_binary
    from vm_support import running

    blob = json.loads((ROOT / "tests/vm/q35-serials.json").read_text())
    log = tmp_path / "guest,logfile=x=y $(id).log"
    ident = next(k for k, v in blob["backends"].items() if v.get("backend") == "null")
    blob["backends"][ident]["logfile"] = str(log)
    for body in blob["backends"].values():  # the other chardevs' files, under tmp_path
        if body.get("path"):
            body["path"] = str(tmp_path / Path(body["path"]).name)
    (tmp_path / "vm.json").write_text(json.dumps(blob, indent=2))
    (tmp_path / "allow.toml").write_text("[host]\nlogfile = true\nlisten = true\n")
    refused = mschema("compile", "vm.json", "--emit", "argv", cwd=tmp_path)
    assert refused.returncode == 1 and "error[E2021]" in refused.stderr
    done = mschema("compile", "vm.json", "--emit", "argv", "--policy", "allow.toml",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    argv = json.loads(done.stdout)
    with running([require_binary(argv[0]), *argv[1:]]) as sock:
        assert log.exists() and [p.name for p in tmp_path.glob("guest*")] == [log.name]
        (tmp_path / "small.toml").write_text('[limits]\nmax-memory = "64M"\n')
        # (--partial: QEMU does not reveal a file chardev's path)
        extracted = mschema("extract", "--qmp", sock, "--partial", "--policy", "small.toml",
                            cwd=tmp_path)
        assert extracted.returncode == 1 and extracted.stdout == ""
        assert extracted.stderr.startswith(f"<qmp {sock}>:1:1: error[E2013]: "), \
            extracted.stderr
        assert mschema("extract", "--qmp", sock, "--partial", cwd=tmp_path).returncode == 0
