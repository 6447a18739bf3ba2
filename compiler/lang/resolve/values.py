"""Types and values: a type as written (`u8`, `enum(a, b)`, `int(0..7)`) → `model.ValueType`,
and a literal checked against its type (the check itself is `ValueType.check`). Ends at
typed values: conditions are `conditions`' job.
"""

from __future__ import annotations

from compiler.base.diagnostics import Label
from compiler.lang import ast, expr, model
from compiler.lang.resolve.scope import Part

NAMED_TYPES: dict[str, model.ValueType] = {
    "bool": model.ValueType("bool"),
    "int": model.ValueType("int"),
    "u8": model.ValueType("int", 0, 0xFF),
    "u16": model.ValueType("int", 0, 0xFFFF),
    "u32": model.ValueType("int", 0, 0xFFFFFFFF),
    "u64": model.ValueType("int", 0, 0xFFFFFFFFFFFFFFFF),
    "str": model.ValueType("str"),
    "mac": model.ValueType("mac"),
    "size": model.ValueType("size", 0, 2**64 - 1),
    "onoffauto": model.ValueType("enum", members=("on", "off", "auto")),
    # a machine option naming a backend (`-machine pflash0=NODE`): its id, or "" for none
    "blockdev": model.ValueType("backend", members=("blockdev",)),
}


class Values(Part):
    def value_type(self, t: ast.TypeExpr) -> model.ValueType | None:
        if isinstance(t, ast.EnumType):
            members = [m.text for m in t.members]
            for i, m in enumerate(t.members):
                if m.text == "" or m.text != m.text.strip() or "," in m.text or "=" in m.text:
                    # QEMU's `-machine NAME,OPT=V` could not carry it back
                    self.diags.error("E0172", f"enum member `{m.text}` cannot be an option "
                                     "value", m.span,
                                     notes=["a member is written as QEMU takes it in "
                                            "`-machine …,OPT=VALUE`: not empty, no spaces "
                                            "around it, no `,` or `=`"],
                                     help="quote it only when it is not a name: `enum(\"2\", "
                                     "\"3\", max)`")
                elif m.text in members[:i]:
                    first = t.members[members.index(m.text)]
                    self.diags.error("E0401", f"enum member `{m.text}` is listed twice",
                                     m.span, labels=[Label(first.span, "first listed here")])
            return model.ValueType("enum", members=tuple(dict.fromkeys(members)))
        if isinstance(t, ast.RangedType):
            if t.name.text != "int":
                self.diags.error("E0303", f"`{t.name.text}` takes no range", t.name.span,
                                 help="only `int(LO..HI)` has a range")
                return None
            if t.range.lo > t.range.hi:
                self.diags.error("E0303", "empty range: the low end is above the high end",
                                 t.range.span)
                return None
            return model.ValueType("int", t.range.lo, t.range.hi)
        if t.name.text not in NAMED_TYPES:
            self.unknown("E0303", "type", t.name, [*NAMED_TYPES, "enum(…)", "int(LO..HI)"])
            return None
        return NAMED_TYPES[t.name.text]

    def typed_value(self, v: ast.Value, t: model.ValueType, what: str) -> expr.Scalar | None:
        # a bare name is only ever an enum member; a string is any other type's text
        ok = v.value if (v.kind != "name" or t.kind == "enum") and t.check(v.value) else None
        if ok is None:
            self.diags.error("E0301", f"{what} must be {t.describe()}, not `{v.show()}`",
                             v.span)
        return ok

