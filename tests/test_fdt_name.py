"""`fdt name TYPE, … = VALUE`: a machine names the nodes of device types itself (arm
virt's `virtio_mmio@…` where the stdlib says `virtio-mmio`), over the type's own name and
over its bus template's; a type without device tree items then gets a node (with the
template's items); the versions that extend the machine keep the names, or name again
(tests/lang/good/fdt-name-ok.machine; bad cases E0189–E0192)."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler import driver
from compiler.emit import fdt, fdt_out
from compiler.spec import loose

CASE = Path(__file__).resolve().parent / "lang" / "good" / "fdt-name-ok.machine"
SPEC = '[[device]]\ntype = "t-net"\n[[device]]\ntype = "t-blk"\n'


def tree_of(machine: str, tmp_path: Path) -> fdt_out.Node:
    library = driver.lint([CASE])
    path = tmp_path / "vm.toml"
    path.write_text(f'machine = "{machine}"\n{SPEC}', encoding="utf-8")
    return fdt.build(driver.compile_loose(loose.load(path), library), library)


def names(node: fdt_out.Node) -> dict[str, list[str]]:
    return {c.name: [g.name for g in c.children] for c in node.children}


@pytest.mark.parametrize("machine, mmio", [("t-fdt-name", "virtio_mmio"),
                                           ("t-fdt-name-older", "mmio")])
def test_the_machine_names_its_nodes(machine: str, mmio: str, tmp_path: Path) -> None:
    root = tree_of(machine, tmp_path)
    # t-net's own `ethernet` and the template's `function` (t-blk has no name) give way
    assert names(root) == {"pci": ["dev@0", "dev@1"], mmio: []}
    pci = next(c for c in root.children if c.name == "pci")
    # the rest of each node is the type's and the template's, as before
    assert [[p.name for p in n.props] for n in pci.children] == [["model", "reg"], ["reg"]]


def test_without_a_name_the_stdlib_and_template_names_stand(tmp_path: Path) -> None:
    """The same types on a machine that names nothing: the type's own name, else the
    template's."""
    text = CASE.read_text(encoding="utf-8")
    plain = tmp_path / "plain.machine"
    plain.write_text(text.split("    # the board names")[0] + "}\n", encoding="utf-8")
    library = driver.lint([plain])
    path = tmp_path / "vm.toml"
    path.write_text(f'machine = "t-fdt-name"\n{SPEC}', encoding="utf-8")
    root = fdt.build(driver.compile_loose(loose.load(path), library), library)
    assert names(root) == {"pci": ["ethernet@0", "function@1"], "virtio-mmio": []}


def test_a_node_the_machine_leaves_out(tmp_path: Path) -> None:
    """`fdt edit TYPE { delete let name }` on a bus without an `each` template: no node
    for that type's devices (arm virt has none for its PCI functions)."""
    text = CASE.read_text(encoding="utf-8").split("# the versions that extend")[0]
    left = tmp_path / "left.machine"
    left.write_text(text.replace('fdt name t-mmio = "virtio_mmio"',
                                 "fdt edit t-mmio { delete let name }"), encoding="utf-8")
    library = driver.lint([left])
    path = tmp_path / "vm.toml"
    path.write_text(f'machine = "t-fdt-name"\n{SPEC}', encoding="utf-8")
    root = fdt.build(driver.compile_loose(loose.load(path), library), library)
    assert names(root) == {"pci": ["dev@0", "dev@1"]}
