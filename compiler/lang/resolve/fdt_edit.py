"""`fdt edit` blocks: a machine's changes to the device tree it inherits, applied to the
parent's items (its root node, or a device type's items on that machine) into new tuples.
Ends at items: their names are `FdtNames`' to check, their values `emit/fdt.py`'s to
evaluate. Nothing is changed in place; an edit that names what the parent does not have
is an error here (E0185–E0189), so `lint` reports it.

Items are found by kind and name: `prop "NAME"` (every `when` variant of that property),
`node "NAME"` (by its name as the parent writes it, `{…}` included), `let NAME` (a node
variable: `let`, or `NAME = value`).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from compiler.base.diagnostics import quote_list
from compiler.base.source import Span
from compiler.lang import ast
from compiler.lang.parse import unquote
from compiler.lang.resolve.scope import Part

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
