"""`mschema graph`: every format checked by its consumer. dot by Graphviz's `dot` itself,
SVG as XML, mermaid against a golden byte for byte and rendered by mermaid itself (its
release from the npm registry, in headless Chromium), the HTML page in a real headless
Chromium (no console errors, every device id in the DOM, a device's provenance shown, a
screenshot written as a test artefact under build/test-artefacts/). Run as users run it:
`python -m compiler`."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from corpus_support import codes_of
from qemu_support import require_binary

ROOT = Path(__file__).resolve().parent.parent
GOLDENS = ROOT / "tests/graph"
ARTEFACTS = ROOT / "build/test-artefacts"
# mermaid's own renderer checks the mermaid text; fetched once with `npm pack` into the cache
MERMAID_VERSION = "11.17.2"
MERMAID_HOME = Path.home() / ".cache/mschema" / f"mermaid-{MERMAID_VERSION}"
# a spec, a blob, a machine name: the three inputs `graph` takes
TARGETS = ("examples/web01.toml", "tests/vm/pseries-full.json", "pc-q35")


def mschema(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": path or os.environ["PATH"],
           "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]}
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def device_ids(target: str) -> list[str]:
    """The ids of the precise machine, from the blob the tool itself prints."""
    if target.endswith((".toml", ".json")):
        blob = json.loads(mschema("compile", target, "--emit", "json").stdout)
    else:
        blob = json.loads(mschema("show", target, "--format", "json").stdout)
    ids: list[str] = []

    def walk(devices: list[dict[str, object]]) -> None:
        for d in devices:
            ids.append(str(d["id"]))
            for bus in d.get("buses", []):  # type: ignore[union-attr]
                walk(bus["devices"])  # type: ignore[index]
    walk(blob["devices"])
    return ids


@pytest.mark.parametrize("target", TARGETS)
def test_dot_is_read_by_graphviz(target: str) -> None:
    dot = require_binary("dot")
    result = mschema("graph", target, "--format", "dot")
    assert result.returncode == 0, result.stderr
    parsed = subprocess.run([dot, "-Tcanon"], input=result.stdout, capture_output=True,
                            text=True, timeout=120)
    assert (parsed.returncode, parsed.stderr) == (0, "")
    for ident in device_ids(target):
        assert f'id="dev-{ident}"' in result.stdout


@pytest.mark.parametrize("target", TARGETS)
def test_svg_is_well_formed_with_every_device(target: str) -> None:
    require_binary("dot")
    result = mschema("graph", target, "--format", "svg")
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(result.stdout.encode("utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {f"dev-{i}" for i in device_ids(target)} <= ids


@pytest.mark.parametrize("target", TARGETS)
def test_mermaid_golden(target: str, update_goldens: bool) -> None:
    result = mschema("graph", target, "--format", "mermaid")
    assert result.returncode == 0, result.stderr
    golden = GOLDENS / (Path(target).stem + ".mmd")
    if update_goldens:
        golden.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == golden.read_text(encoding="utf-8")


def mermaid_js() -> Path:
    """mermaid's browser bundle, unpacked from its npm package (fetched once)."""
    bundle = MERMAID_HOME / "package/dist/mermaid.min.js"
    if not bundle.is_file():
        npm = require_binary("npm")
        MERMAID_HOME.mkdir(parents=True, exist_ok=True)
        packed = subprocess.run([npm, "pack", f"mermaid@{MERMAID_VERSION}", "--silent"],
                                cwd=MERMAID_HOME, capture_output=True, text=True, timeout=600)
        assert packed.returncode == 0, packed.stderr
        tarball = MERMAID_HOME / packed.stdout.strip().splitlines()[-1]
        subprocess.run(["tar", "xzf", str(tarball), "package/dist/mermaid.min.js"],
                       cwd=MERMAID_HOME, check=True, timeout=120)
        tarball.unlink()
    return bundle


def rendered_by_mermaid(text: str, tmp_path: Path) -> tuple[str, list[str]]:
    """mermaid's verdict on `text` ("yes" rendered, "no" refused) and the console lines."""
    page = tmp_path / "mermaid.html"
    page.write_text(f"""<!DOCTYPE html><html><body data-ok="pending">
<pre id="src">{html.escape(text)}</pre><div id="out"></div>
<script src="{mermaid_js().as_uri()}"></script>
<script>
mermaid.initialize({{startOnLoad: false}});
const text = document.getElementById("src").textContent;
mermaid.parse(text).then(() => mermaid.render("g", text)).then((r) => {{
  document.getElementById("out").innerHTML = r.svg; document.body.dataset.ok = "yes"; }})
  .catch((e) => {{ console.error("mermaid: " + e); document.body.dataset.ok = "no"; }});
</script></body></html>""", encoding="utf-8")
    done = _chromium("--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000",
                     "--dump-dom", page.as_uri(), user_data=tmp_path / "profile")
    verdict = re.search(r'<body data-ok="(\w+)"', done.stdout)
    return (verdict.group(1) if verdict else "?",
            [line for line in done.stderr.splitlines() if ":CONSOLE" in line])


@pytest.mark.parametrize("target", TARGETS)
def test_mermaid_renders_in_mermaid(target: str, tmp_path: Path) -> None:
    text = (GOLDENS / (Path(target).stem + ".mmd")).read_text(encoding="utf-8")
    assert rendered_by_mermaid(text, tmp_path) == ("yes", [])


def test_mermaid_check_can_fail(tmp_path: Path) -> None:
    text = (GOLDENS / "pc-q35.mmd").read_text(encoding="utf-8")
    verdict, console = rendered_by_mermaid(text.replace('root[["', 'root[["x"'), tmp_path)
    assert verdict == "no" and console


def test_origins_free_places_and_backends_are_drawn() -> None:
    text = mschema("graph", "examples/web01.toml", "--format", "dot").stdout
    assert 'fillcolor="#d9ead3", tooltip="`disk0` (virtio-blk-pci), origin spec' in text
    assert "255 free hot-plug places" in text       # the virtio-scsi bus
    assert 'label="disk0\\nblockdev", shape=cylinder' in text
    assert '[headlabel="1f.2"' in text            # the AHCI's address, on its edge


def test_a_missing_dot_is_a_diagnostic(tmp_path: Path) -> None:
    for fmt in ("svg", "html"):
        result = mschema("graph", "pc-q35", "--format", fmt, path=str(tmp_path))
        assert (result.returncode, codes_of(result.stderr)) == (1, ["E2201"]), result.stderr
        assert "Traceback" not in result.stderr
    out = tmp_path / "g.png"
    result = mschema("graph", "pc-q35", "--format", "png", "-o", str(out), path=str(tmp_path))
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E2201"])
    assert not out.exists()


def test_option_with_a_file_is_refused() -> None:
    result = mschema("graph", "examples/web01.toml", "--option", "sata=off")
    assert (result.returncode, codes_of(result.stderr)) == (1, ["E2202"]), result.stderr
    ok = mschema("graph", "pc-q35", "--option", "sata=off", "--format", "mermaid")
    assert ok.returncode == 0 and '"sata<br/>' not in ok.stdout
    assert '"sata<br/>' in mschema("graph", "pc-q35", "--format", "mermaid").stdout


def _chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess[str]:
    chromium = require_binary("chromium")
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", f"--user-data-dir={user_data}", *args],
                          capture_output=True, text=True, timeout=180)


def test_html_page_in_headless_chromium(tmp_path: Path) -> None:
    require_binary("dot")
    page = tmp_path / "web01.html"
    result = mschema("graph", "examples/web01.toml", "--format", "html", "-o", str(page))
    assert result.returncode == 0, result.stderr
    # --enable-logging=stderr prints every console message as `…:CONSOLE…` (errors,
    # uncaught exceptions, failed loads); the page must print none
    dom = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri(),
                    user_data=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert "<svg" in dom.stdout
    for ident in device_ids("examples/web01.toml"):
        assert f'data-dev="{ident}"' in dom.stdout, ident
        assert f'id="dev-{ident}"' in dom.stdout, ident
    # the script ran: it made every device of the picture clickable
    assert dom.stdout.count('class="node" style="cursor: pointer;"') == len(
        device_ids("examples/web01.toml"))
    # a device's --why, shown by the page itself (the hash selects it as a click does)
    chosen = _chromium("--dump-dom", page.as_uri() + "#disk0", user_data=tmp_path / "profile")
    panel = chosen.stdout[chosen.stdout.index('<pre id="why"'):]
    panel = panel[:panel.index("</pre>")]
    assert "hidden" not in panel.split(">")[0]
    assert "`disk0` (virtio-blk-pci), origin spec, on `rp0` at 00.0" in panel
    assert "asked for by: examples/web01.toml:8:1" in panel
    assert 'class="dev spec selected"' in chosen.stdout
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "graph-web01.png"
    shot.unlink(missing_ok=True)
    done = _chromium("--window-size=1400,1000", f"--screenshot={shot}", page.as_uri(),
                     user_data=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_page_escapes_what_it_shows(tmp_path: Path) -> None:
    """A spec's strings reach the page as text, never as markup."""
    require_binary("dot")
    spec = tmp_path / "evil.toml"
    spec.write_text('machine = "pc-q35"\nname = "a<u>&\'c\\""\n[[disk]]\nfile = "x</script>.raw"\n'
                    'serial = "<img src=x onerror=alert(1)>"\n')
    result = mschema("graph", str(spec), "--format", "html")
    assert result.returncode == 0, result.stderr
    assert "<u>" not in result.stdout and "<img" not in result.stdout
    assert "</script>.raw" not in result.stdout
    assert "a&lt;u&gt;&amp;" in result.stdout


def test_hotplugged_devices_are_orange(tmp_path: Path) -> None:
    """A blob after `hotplug --add`: the new device is drawn with the hotplug colour, in the
    port the hot-plug took (one free place fewer)."""
    blob = tmp_path / "web01.json"
    assert mschema("compile", "examples/web01.toml", "--emit", "json", "-o",
                   str(blob)).returncode == 0
    fragment = tmp_path / "more.toml"
    fragment.write_text('[[nic]]\nnetwork = "user"\nid = "hot0"\n')
    after = tmp_path / "after.json"
    done = mschema("hotplug", str(blob), "--add", str(fragment), "-o", str(after))
    assert done.returncode == 0, done.stderr
    before_dot = mschema("graph", str(blob), "--format", "dot").stdout
    dot = mschema("graph", str(after), "--format", "dot").stdout
    assert re.search(r'id="dev-hot0", label="hot0\\nvirtio-net-pci", fillcolor="#fce5cd"', dot)
    assert "1 free hot-plug place\"" in before_dot and "1 free hot-plug place\"" not in dot


def test_a_bad_spec_draws_nothing(tmp_path: Path) -> None:
    out = tmp_path / "g.dot"
    result = mschema("graph", "tests/spec/bad/disk-interface-unknown.toml", "-o", str(out))
    assert (result.returncode, codes_of(result.stderr), result.stdout) == (1, ["E1101"], "")
    assert not out.exists()
