"""CPU features reach QEMU as the spec lists them (issue 13, item 6): `cpus.features =
["-hypervisor", "+pdpe1gb", "+sse4.2"]` on `qemu64` becomes `-cpu
qemu64,hypervisor=off,pdpe1gb=on,sse4.2=on`, and QEMU 7.2's CPU object says so over QMP
(`qom-get` of each feature property), against the same model without them. A model or a
feature that is option text is refused (tests/spec/bad/cpu-*.toml)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from qemu_support import require_binary
from vm_support import qmp, running

ROOT = Path(__file__).resolve().parent.parent
FEATURES = {"hypervisor": False, "pdpe1gb": True, "sse4.2": True}


def cpu_props(spec: str, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "vm.toml"
    path.write_text(spec)
    done = subprocess.run([sys.executable, "-m", "compiler", "compile", str(path), "--emit",
                           "argv"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    argv = json.loads(done.stdout)
    with running([require_binary(argv[0]), *argv[1:]]) as sock:
        (cpus,) = qmp(sock, ("query-cpus-fast", {}))
        assert isinstance(cpus, list) and len(cpus) == 1
        path_ = cpus[0]["qom-path"]
        answers = qmp(sock, *(("qom-get", {"path": path_, "property": name})
                              for name in FEATURES))
    return dict(zip(FEATURES, answers, strict=True))


def test_cpu_features_reach_qemu(tmp_path: Path) -> None:
    listed = ", ".join(f'"{"+" if on else "-"}{name}"' for name, on in FEATURES.items())
    base = 'machine = "pc-q35"\n[cpus]\ncount = 1\nmodel = "qemu64"\n'
    plain = cpu_props(base, tmp_path)
    assert plain == {name: not on for name, on in FEATURES.items()}, \
        "qemu64 itself must have each feature the other way, or the test proves nothing"
    assert cpu_props(base + f"features = [{listed}]\n", tmp_path) == FEATURES
