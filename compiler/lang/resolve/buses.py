"""Bus kinds and what names them: a `bus` declaration → `model.BusKind` (its address
notation and ranges), a device type's narrowing of those ranges, a `plugs KIND(TAG)`, a bus
name's placeholders. Ends at bus kinds: the buses a device type provides are `devices`'.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from compiler.base import notations
from compiler.base.source import Span
from compiler.lang import ast, model
from compiler.lang.resolve.scope import Part


class BusKinds(Part):
    def bus_kind(self, d: ast.BusDecl) -> model.BusKind:
        doc = self.single(d.body, ast.Doc, "doc")
        qtree = self.single(d.body, ast.Qtree, "qtree")
        decl = self.single(d.body, ast.AddressDecl, "address")
        if qtree is None:
            self.diags.error("E0901", f"bus kind `{d.name.text}` has no `qtree` name",
                             d.name.span, help='add `qtree "TYPE"`: the bus type '
                             "that QEMU's `info qtree` prints")
        space = notations.AddressSpace("none")
        if isinstance(decl, ast.AddressDecl):
            notation = decl.notation.text
            if notation not in notations.NOTATIONS:
                self.unknown("E0208", "address notation", decl.notation, notations.NOTATIONS)
            else:
                space = notations.AddressSpace(notation, tuple(
                    (f, self.field_ranges(notation, decl.fields, f)) for f in
                    notations.NOTATIONS[notation]))
                self.check_fields(notation, decl.fields, d.name.text)
        hotplug = self.plain_hotplug(d.body, "a bus kind")
        return model.BusKind(name=d.name.text, qtree=qtree.name if qtree is not None else "",
                             address=space,
                             hotplug=hotplug.value if hotplug is not None else True,
                             doc=doc.text if doc is not None else "", span=d.name.span)

    def check_fields(self, notation: str, fields: Iterable[ast.FieldRange],
                     bus_kind: str) -> None:
        for f in fields:
            if not notations.NOTATIONS[notation]:
                self.diags.error("E0209", f"unknown field `{f.field.text}`: devices on "
                                 f"`{bus_kind}` buses have no address", f.field.span,
                                 help="remove the address range")
            elif f.field.text not in notations.NOTATIONS[notation]:
                self.unknown("E0209", "field", f.field, notations.NOTATIONS[notation],
                             of=f"of `{notation}` addresses")
            if f.range.lo > f.range.hi:
                self.diags.error("E0303", "empty range: the low end is above the high end",
                                 f.range.span)

    @staticmethod
    def field_ranges(notation: str, fields: Iterable[ast.FieldRange],
                     name: str) -> tuple[notations.FieldRange, ...]:
        return tuple(notations.FieldRange(f.range.lo, f.range.hi,
                                          f.tag.text if f.tag else None)
                     for f in fields if f.field.text == name)

    def narrowed(self, space: notations.AddressSpace, items: Iterable[object],
                 bus_kind: str) -> notations.AddressSpace:
        fields = [i for i in items if isinstance(i, ast.FieldRange)]
        if not fields:
            return space
        if space.notation in notations.NOTATIONS:
            self.check_fields(space.notation, fields, bus_kind)
        overrides = {name: self.field_ranges(space.notation, fields, name)
                     for name in {f.field.text for f in fields}}
        return space.narrowed(overrides)


    def plug(self, p: ast.Plug) -> model.Plug:
        decl = self.scope.bus_decls.get(p.bus.text)
        if decl is None:
            self.unknown("E0201", "bus kind", p.bus, self.scope.bus_decls)
        elif p.tag is not None:
            tags = self.address_tags(p.bus.text)
            if p.tag.text not in tags:
                self.unknown("E0210", "address tag", p.tag, tags,
                             of=f"on `{p.bus.text}` buses",
                             empty=f"no `{p.bus.text}` bus has tagged address ranges")
        return model.Plug(p.bus.text, p.tag.text if p.tag else None)

    def bus_name(self, name: str, span: Span) -> str | None:
        """A bus name whose only placeholders are `{id}` and `{n}`, or None (reported)."""
        try:
            parts = list(string.Formatter().parse(name))
        except ValueError:
            self.diags.error("E0201", f"unmatched brace in bus name `{name}`", span,
                             help="placeholders are written `{id}` and `{n}`")
            return None
        for _, field, spec, conv in parts:
            if field is None or (field in ("id", "n") and not spec and not conv):
                continue
            shown = "{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            self.diags.error("E0201", f"unknown placeholder `{shown}` in bus name", span,
                             notes=["expected one of `{id}`, `{n}`"])
            return None
        return name

    def address_tags(self, bus_kind: str) -> set[str]:
        """Tags of the kind's own ranges and of the ranges device types narrow it to
        (`bus usb "{id}.0" { port 1..4 as usb2 }`)."""
        decl = self.scope.bus_decls[bus_kind]
        fields = [f for s in decl.body if isinstance(s, ast.AddressDecl) for f in s.fields]

        def walk(items: Iterable[object]) -> None:
            for item in items:
                if isinstance(item, ast.BusBlock):
                    if item.kind.text == bus_kind:
                        fields.extend(i for i in item.items if isinstance(i, ast.FieldRange))
                    walk(item.items)
                elif isinstance(item, ast.Instance):
                    walk(item.body)

        for d in self.scope.device_decls.values():
            walk(d.body)
        return {f.tag.text for f in fields if f.tag}
