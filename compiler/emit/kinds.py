"""The output kinds of `compile`: each a pure function of the precise machine, and the file
suffix it is written under (`NAME.json`, `NAME.argv.json`, …)."""

from __future__ import annotations

import json

from compiler.build import tree

# kind → the suffix of its file in an output directory, in the order they are written
SUFFIXES = {"json": ".json", "argv": ".argv.json", "shell": ".sh", "dtb": ".dtb",
            "dts": ".dts", "libvirt": ".xml"}
# what `compile` writes without `--emit`: the domain XML only when asked for
DEFAULT = tuple(k for k in SUFFIXES if k != "libvirt")
# kinds written as executable files
EXECUTABLE = frozenset({"shell"})


def render(machine: tree.Machine, kind: str) -> str | bytes:
    """The text (bytes for `dtb`) of one output kind."""
    if kind == "json":
        from compiler.emit import blob

        return blob.blob(machine)
    if kind in ("argv", "shell"):
        from compiler.emit import argv

        command = argv.argv(machine)
        return (json.dumps(command) if kind == "argv" else argv.shell(command)) + "\n"
    if kind == "libvirt":
        from compiler.emit import libvirt  # jinja2 only when asked for

        return libvirt.domain_xml(machine)
    from compiler.emit import fdt  # only when a tree is asked for: start-up cost

    return fdt.dtb(machine) if kind == "dtb" else fdt.dts(machine)
