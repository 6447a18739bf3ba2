"""`fdt edit` blocks and `fdt name` statements: a machine's changes to the device tree it
inherits, applied to the parent's items (its root node, or a device type's items on that
machine) into new tuples. Ends at items: their names are `FdtNames`' to check, their values
`emit/fdt.py`'s to evaluate. Nothing is changed in place; an edit that names what the
parent does not have is an error here (E0185–E0189), so `lint` reports it.

`fdt name TYPE, … = VALUE` is the same kind of change: it replaces a type's `name` (every
variant) on that machine, or puts one first where the type has none, so its devices get a
node of that name (over the name a bus template gives, which a type's own wins over).

Items are found by kind and name: `prop "NAME"` (every `when` variant of that property),
`node "NAME"` (by its name as the parent writes it, `{…}` included), `let NAME` (a node
variable: `let`, or `NAME = value`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from compiler.base.diagnostics import Label, quote_list
from compiler.base.source import Span
from compiler.lang import ast, model
from compiler.lang.parse import unquote
from compiler.lang.resolve.fdt import FdtNames
from compiler.lang.resolve.scope import Part, Scope

Key = tuple[str, str]


def written_name(node: ast.FdtNode) -> str:
    """A static node's name as its file writes it, `{…}` parts included."""
    span = node.name.span
    text = span.source.text[span.start:span.end]
    return unquote(text) if text.startswith('"') else "".join(
        p for p in node.name.parts if isinstance(p, str))


def key(item: ast.FdtItem) -> Key | None:
    """What an edit names an item by, or None for items without a name (`each`, `own`,
    `children`, which an edit can only add)."""
    if isinstance(item, ast.FdtSet):
        return ("prop", item.name)
    if isinstance(item, ast.FdtNode):
        return ("node", written_name(item))
    if isinstance(item, (ast.FdtLet, ast.FdtProp)):
        return ("let", item.name.text)
    if isinstance(item, ast.FdtPass):
        return ("pass", item.name.text)
    return None


def _show(k: Key) -> str:
    return f"{k[0]} `{k[1]}`"


def _inside(where: str, head: str) -> str:
    """The name of node `head` of the node called `where` in messages."""
    if where == "the root node":
        return f"node `/{head}`"
    if where.startswith("node `/"):
        return f"{where[:-1]}/{head}`"
    return f"node `{head}` of {where}"


@attrs.frozen
class _Entry:
    item: ast.FdtItem
    new: bool  # added by this edit block (a second `replace` of a name goes after it)


class FdtEdits(Part):
    def apply(self, items: Sequence[ast.FdtItem], changes: Sequence[ast.FdtChange],
              where: str) -> tuple[ast.FdtItem, ...]:
        """`items` with `changes` applied in order; `where` names the node in messages."""
        entries = [_Entry(i, False) for i in items]
        for change in changes:
            if isinstance(change, ast.FdtIn):
                self.enter(entries, change, where)
            elif isinstance(change, ast.FdtReplace):
                self.replace(entries, change, where)
            elif isinstance(change, ast.FdtAdd):
                self.add(entries, change, where)
            else:
                found = self.find(entries, (change.ref.kind, change.ref.name),
                                  change.ref.span, where)
                for i in reversed(found):
                    del entries[i]
        return tuple(e.item for e in entries)

    def find(self, entries: list[_Entry], k: Key, span: Span, where: str) -> list[int]:
        """The places of the items named `k`; none is E0185, listing what `where` has."""
        found = [i for i, e in enumerate(entries) if key(e.item) == k]
        if not found:
            names = sorted({_show(x) for e in entries
                            if (x := key(e.item)) is not None and x[0] == k[0]})
            self.diags.error(
                "E0185", f"{where} has no {_show(k)} to change", span,
                notes=[f"it has {quote_list(names)}" if names else f"it has no {k[0]}"],
                help="`add` a new one; an edit names what the parent declares, as written")
        return found

    def enter(self, entries: list[_Entry], change: ast.FdtIn, where: str) -> None:
        head, _, rest = change.path.strip("/").partition("/")
        found = self.find(entries, ("node", head), change.span, where)
        inner = ast.FdtIn(rest, change.changes, change.span)
        for i in found:
            node = entries[i].item
            assert isinstance(node, ast.FdtNode)
            here = _inside(where, head)
            items = (self.enter_items(node.items, inner, here) if rest else
                     self.apply(node.items, change.changes, here))
            entries[i] = _Entry(attrs.evolve(node, items=items), entries[i].new)

    def enter_items(self, items: Sequence[ast.FdtItem], change: ast.FdtIn,
                    where: str) -> tuple[ast.FdtItem, ...]:
        entries = [_Entry(i, False) for i in items]
        self.enter(entries, change, where)
        return tuple(e.item for e in entries)

    def replace(self, entries: list[_Entry], change: ast.FdtReplace, where: str) -> None:
        k = key(change.item)
        if k is None:
            self.diags.error("E0187", "`replace` needs an item with a name", change.span,
                             help="replace a `prop`, `node`, `let` or `pass`; `add` the "
                             "others")
            return
        mine = [i for i, e in enumerate(entries) if e.new and key(e.item) == k]
        if mine:  # a further variant of what this block already replaced
            entries.insert(mine[-1] + 1, _Entry(change.item, True))
            return
        found = self.find(entries, k, change.span, where)
        if found:
            for i in reversed(found[1:]):
                del entries[i]
            entries[found[0]] = _Entry(change.item, True)

    def add(self, entries: list[_Entry], change: ast.FdtAdd, where: str) -> None:
        k = key(change.item)
        if k is not None and any(key(e.item) == k and not e.new for e in entries):
            self.diags.error("E0186", f"{where} already has {_show(k)}", change.span,
                             help="`replace` it, or `delete` it first")
            return
        at = len(entries)
        if change.ref is not None:
            found = self.find(entries, (change.ref.kind, change.ref.name), change.ref.span,
                              where)
            if not found:
                return
            at = found[0] if change.where == "before" else found[-1] + 1
        entries.insert(at, _Entry(change.item, True))


# a node name as the devicetree specification allows it (2.2.1): 1 to 31 of these, a
# letter first, then `@` and a unit address where the name gives one itself (a PHB's)
NODE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9,._+-]{0,30}(@[A-Za-z0-9,._+-]+)?")


class FdtNaming(Part):
    """The `fdt name` statements of one machine, each applied to the types' items."""

    def __init__(self, scope: Scope, names: FdtNames, has_tree: bool,
                 inherited: tuple[model.FdtRename, ...]) -> None:
        super().__init__(scope)
        self.names = names
        self.has_tree = has_tree
        self.renamed = inherited
        self.here: dict[str, Span] = {}

    def rename(self, stmt: ast.FdtName, types: dict[str, tuple[ast.FdtItem, ...]]) -> None:
        if not self.has_tree:
            self.diags.error("E0189", "`fdt name` has no device tree to name nodes in",
                             stmt.span, help="a machine names its devices' nodes in the tree "
                             "its `fdt { … }` writes or it `extends`")
            return
        self.names.fx(stmt.value)
        if isinstance(stmt.value, ast.FxStr) and all(isinstance(p, str)
                                                     for p in stmt.value.parts):
            text = "".join(str(p) for p in stmt.value.parts)
            if not NODE_NAME.fullmatch(text):
                self.diags.error("E0190", f"`{text}` is not a device tree node name",
                                 stmt.value.span,
                                 notes=["a node name is 1 to 31 letters, digits and `,._+-`, "
                                        "a letter first; the bus adds the unit address "
                                        "(`@…`)"])
                return
        for t in stmt.types:
            if t.text not in self.scope.devices:
                if t.text not in self.scope.device_decls:
                    self.unknown("E0202", "device type", t, self.scope.device_decls)
                continue
            first = self.here.get(t.text)
            if first is not None:
                self.diags.error("E0191", f"the node of `{t.text}` is named twice", t.span,
                                 labels=[Label(first, "first named here")],
                                 help="name each device type's node once per machine")
                continue
            self.here[t.text] = t.span
            items = types.get(t.text, self.scope.devices[t.text].fdt_items)
            given = ast.FdtLet(ast.Name("name", stmt.span), stmt.value, None, stmt.span)
            kept = [i for i in items if key(i) != ("let", "name")]
            at = next((n for n, i in enumerate(items) if key(i) == ("let", "name")), 0)
            types[t.text] = (*kept[:at], given, *kept[at:])
            self.renamed = (*(r for r in self.renamed if r.type != t.text),
                            model.FdtRename(t.text, t.span))
