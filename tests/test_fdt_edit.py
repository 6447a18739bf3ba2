"""`fdt edit` (compiler/lang/resolve/fdt_edit.py): what a machine's changes make of the
device tree it inherits, on the near-miss corpus case `tests/lang/good/fdt-edit-ok.machine`.
Each change is checked where it lands: the order of the items (QEMU's device tree is
compared property by property, in order), the `when` variants a `replace` stands for, an
edit of an edit, a device type's items on one machine and not on others. The pseries
versions' device trees against QEMU's dumpdtb are `tests/test_fdt_qemu.py`'s."""

from __future__ import annotations

from pathlib import Path

from compiler.lang import ast, model
from compiler.lang.resolve import load_library
from compiler.lang.resolve.fdt_edit import key

CASE = Path(__file__).resolve().parent / "lang" / "good" / "fdt-edit-ok.machine"
LIBRARY = load_library([CASE])


def names(items: tuple[ast.FdtItem, ...]) -> list[str]:
    return [f"{k[0]} {k[1]}" for i in items if (k := key(i)) is not None]


def node(items: tuple[ast.FdtItem, ...], name: str) -> ast.FdtNode:
    found = [i for i in items if isinstance(i, ast.FdtNode) and key(i) == ("node", name)]
    assert len(found) == 1, name
    return found[0]


def prop_values(items: tuple[ast.FdtItem, ...], name: str) -> list[str]:
    """Each variant of property `name`: its first value's text, or its cells."""
    out = []
    for i in items:
        if isinstance(i, ast.FdtSet) and i.name == name:
            v = i.values[0] if i.values else None
            out.append("".join(p for p in v.text.parts if isinstance(p, str))
                       if isinstance(v, ast.FdtString) else repr(v))
    return out


def test_the_parent_is_unchanged() -> None:
    base = LIBRARY.machines["t-base"]
    assert names(base.fdt) == ["let ncpus", "prop model", "prop compatible", "prop compatible",
                               "node rtas", "node cpu@{i:x}"]
    assert base.device_fdt == ()


def test_each_change_lands_in_place() -> None:
    old = LIBRARY.machines["t-old"]
    # `replace` keeps the place of the first variant; `add before`/`after` a named item
    assert names(old.fdt) == ["let ncpus", "prop first", "prop model", "prop compatible",
                              "prop compatible", "node rtas", "node extra", "node cpu@{i:x}"]
    assert prop_values(old.fdt, "compatible") == ["t,c", "t,d"]
    rtas = node(old.fdt, "rtas")
    assert names(rtas.items) == ["prop a", "node events", "prop e"]
    events = node(rtas.items, "events")
    assert names(events.items) == ["prop c", "prop f"]
    assert names(node(old.fdt, "cpu@{i:x}").items) == ["prop reg", "prop status"]
    let = old.fdt[0]
    assert isinstance(let, ast.FdtLet) and isinstance(let.value, ast.FxInt)
    assert let.value.value == 1


def test_a_device_type_on_one_machine() -> None:
    dev = LIBRARY.devices["t-dev"]
    old, older = LIBRARY.machines["t-old"], LIBRARY.machines["t-older"]

    def irq(m: model.MachineSchema) -> int:
        lets = [i for i in m.fdt_items_of(dev) if isinstance(i, ast.FdtLet)
                and i.name.text == "irq"]
        assert len(lets) == 1 and isinstance(lets[0].value, ast.FxInt)
        return lets[0].value.value

    assert irq(LIBRARY.machines["t-base"]) == 0x1100  # the type's own
    assert irq(old) == 0x1002
    assert irq(older) == 0x1001  # an edit of the parent's edit
    assert dev.fdt_items == LIBRARY.devices["t-dev"].fdt_items  # the type itself unchanged


def test_an_edit_of_an_edit() -> None:
    older = LIBRARY.machines["t-older"]
    assert "node extra" not in names(older.fdt)
    events = node(node(older.fdt, "rtas").items, "events")
    assert names(events.items) == ["prop c"]
