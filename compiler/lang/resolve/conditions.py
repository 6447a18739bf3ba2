"""Conditions (`when`, `check`, an instance's `if`): names looked up among the machine's
options and the spec's facts, types checked (a condition is a bool; comparisons of like
with like; `<` on numbers only) → `expr.Expr`. Ends at typed expressions: evaluating them
is `expr`'s job, and whether a rule can ever fire is `schema_checks`'.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from compiler.lang import ast, expr, model
from compiler.lang.resolve.scope import Part
from compiler.lang.resolve.values import NAMED_TYPES


@attrs.frozen
class Options:
    """What a condition may name: the options `declared` (with their types) where it stands,
    and the ones declared with a problem already reported (`broken`), which a condition
    names without a second report. Device types' conditions have none of either."""

    declared: Mapping[str, model.OptionSpec] = attrs.field(factory=dict)
    broken: frozenset[str] = frozenset()


NO_OPTIONS = Options()


class Conditions(Part):
    def condition(self, e: ast.Expr, options: Options) -> expr.Expr:
        result, rtype = self.typed_expr(e, options)
        if rtype is not None and rtype.kind != "bool":
            self.diags.error("E0302", f"this condition is {_a(rtype)}, not a bool", e.span,
                             notes=[f"it takes {rtype.describe()}"] if rtype.kind == "enum"
                             else [], help=_compare_help(e, rtype))
        return result

    def typed_expr(self, e: ast.Expr, options: Options
             ) -> tuple[expr.Expr, model.ValueType | None]:
        BOOL = NAMED_TYPES["bool"]
        if isinstance(e, ast.Literal_):
            t = {"int": NAMED_TYPES["int"], "str": NAMED_TYPES["str"], "bool": BOOL}[e.value.kind]
            return expr.Const(e.value.value, e.span), t
        if isinstance(e, ast.Ref):
            name = e.name.text
            if name in options.declared:
                return expr.Option(name, e.span), options.declared[name].type
            if name in expr.SPEC_FACTS:
                return expr.Fact(name, e.span), NAMED_TYPES[
                    "str" if name in expr.STRING_FACTS else "int"]
            if name in options.broken:
                return expr.Const(False, e.span), None
            self.unknown("E0203", "option", e.name,
                         list(options.declared) + list(expr.SPEC_FACTS))
            return expr.Const(False, e.span), None
        if isinstance(e, ast.Call):
            if e.func.text != "count":
                self.unknown("E0201", "function", e.func, ["count"])
            elif e.arg.text not in expr.SPEC_KINDS:
                self.unknown("E0201", "loose kind", e.arg, expr.SPEC_KINDS)
            return expr.Count(e.arg.text, e.span), NAMED_TYPES["int"]
        if isinstance(e, ast.Not):
            return expr.Not(self.condition(e.operand, options), e.span), BOOL
        if isinstance(e, ast.BoolOp):
            ops = tuple(self.condition(o, options) for o in e.operands)
            return (expr.And(ops, e.span) if e.op == "and" else expr.Or(ops, e.span)), BOOL
        return self.compare(e, options), BOOL

    def compare(self, e: ast.Compare, options: Options) -> expr.Expr:
        sides: list[tuple[expr.Expr, model.ValueType | None]] = []
        for side, other in ((e.left, e.right), (e.right, e.left)):
            enum_member = (isinstance(side, ast.Ref)
                           and side.name.text not in options.declared
                           and isinstance(other, ast.Ref) and (
                               other.name.text in options.broken or
                               (other.name.text in options.declared
                               and options.declared[other.name.text].type.kind == "enum")))
            if enum_member:
                assert isinstance(side, ast.Ref)
                sides.append((expr.Const(side.name.text, side.span), None))
            else:
                sides.append(self.typed_expr(side, options))
        (left, lt), (right, rt) = sides
        known = lt or rt
        option = next((f"`{n.name.text}`" for n in (e.left, e.right)
                       if isinstance(n, ast.Ref) and n.name.text in options.declared),
                      "this option")
        for (value, vt), node in ((sides[0], e.left), (sides[1], e.right)):
            if (vt is None and isinstance(value, expr.Const) and known
                    and known.kind == "enum" and value.value not in known.members):
                self.diags.error("E0302", f"`{value.value}` is not a value of {option}",
                                 node.span, notes=[f"it takes {known.describe()}"])
        if lt and rt and not _comparable(lt, rt):
            self.diags.error("E0302", f"cannot compare {_a(lt)} with {_a(rt)}", e.span,
                             help=_bool_help(e, options))
        elif lt and rt and {lt.kind, rt.kind} == {"enum", "str"}:
            enum_type = lt if lt.kind == "enum" else rt
            literal = right if rt.kind == "str" else left
            if isinstance(literal, expr.Const) and literal.value not in enum_type.members:
                self.diags.error("E0302", f"`{literal.value}` is not a value of {option}",
                                 literal.span, notes=[f"it takes {enum_type.describe()}"])
        if e.op not in ("==", "!=") and known and known.kind not in ("int", "size"):
            self.diags.error("E0302", f"`{e.op}` compares numbers, not {_a(known, plural=True)}",
                             e.span, help=_bool_help(e, options))
        return expr.Cmp(left, e.op, right, e.span)



def _a(t: model.ValueType, plural: bool = False) -> str:
    """The kind of a type in a message: `a bool`, or `bools`."""
    word = {"bool": "bool", "int": "number", "size": "size", "str": "string",
            "mac": "MAC address", "enum": "enum", "backend": "backend id"}[t.kind]
    if plural:
        return f"{word}s"
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _bool_help(e: ast.Compare, options: Options) -> str | None:
    for side in (e.left, e.right):
        if isinstance(side, ast.Ref) and side.name.text in options.declared and (
                options.declared[side.name.text].type.kind == "bool"):
            name = side.name.text
            return f"a bool option is a condition by itself: write `{name}` or `not {name}`"
    return None



def _comparable(a: model.ValueType, b: model.ValueType) -> bool:
    if a.kind == "enum" or b.kind == "enum":
        return {a.kind, b.kind} <= {"enum", "str"}
    numeric, textual = {"int", "size"}, {"str", "backend"}  # a backend option holds an id
    return a.kind == b.kind or (a.kind in numeric and b.kind in numeric) or (
        a.kind in textual and b.kind in textual)


def _compare_help(e: ast.Expr, t: model.ValueType) -> str | None:
    if not isinstance(e, (ast.Ref, ast.Call)):
        return None
    text = e.span.source.text[e.span.start:e.span.end]
    if t.kind == "enum":
        value = "off" if "off" in t.members else t.members[0]
        return f"compare it, e.g. `{text} != {value}`"
    if t.kind in ("int", "size"):
        return f"compare it, e.g. `{text} > 0`"
    return f'compare it, e.g. `{text} != ""`'

