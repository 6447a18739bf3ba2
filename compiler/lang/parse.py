"""Text → `ast.Module`. Ends at syntax: names are not looked up here.

Lark runs as LALR with the contextual lexer and a grammar cache; its exceptions are
translated into our diagnostics (E01xx) so users never see lark's own wording.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from compiler.base import limits
from compiler.base.diagnostics import CompileError, error
from compiler.base.source import SourceFile, Span
from compiler.lang import ast

if TYPE_CHECKING:
    from lark import Lark, Token, Tree

GRAMMAR = Path(__file__).with_name("grammar") / "mschema.lark"
# a run of digits past the limit, in the tokens that hold numbers
_DECIMAL = re.compile(f"[0-9]{{{limits.MAX_DIGITS + 1},}}")
_DIGITS = {"INT": re.compile(f"[0-9a-fA-F]{{{limits.MAX_DIGITS + 1},}}"),
           "ADDRESS": _DECIMAL, "NAME": _DECIMAL}  # names: machine versions are numbers

# What users see for each terminal in "expected ..." notes.
TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "a number",
    "STRING": "a string",
    "ADDRESS": "an address",
    "BOOL": "`true`, `false`",
    "CMP": "a comparison",
    "CELLS_OPEN": "`<`",
    "CELLS_CLOSE": "`>`",
    "SORTED": "`sorted`",
    "SHIFT": "`<<`, `>>`",
    "BOR": "`|`",
    "BAND": "`&`",
    "ADDOP": "`+`, `-`",
    "MULOP": "`*`, `/`, `%`",
    "$END": "end of file",
}


@functools.cache
def _parser() -> Lark:
    from lark import Lark

    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=True,
        start=["start", "fx_start"],
    )


def parse_int(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text, 10)


def unquote(text: str) -> str:
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _describe_expected(expected: set[str]) -> str:
    from lark.lexer import PatternStr

    words = set()
    for term in expected:
        if term in TERMINAL_NAMES:
            words.update(TERMINAL_NAMES[term].split(", "))
            continue
        try:
            pattern = _parser().get_terminal(term).pattern
        except KeyError:
            continue
        if isinstance(pattern, PatternStr):
            words.add(f"`{pattern.value}`")
    if not words:
        return "something else"
    *rest, last = sorted(words)  # the keywords and symbols first, then the descriptions
    return f"{', '.join(rest)} or {last}" if rest else last


def _syntax_error(source: SourceFile, exc: Exception) -> CompileError:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if isinstance(exc, UnexpectedToken):
        token = exc.token
        expected = _describe_expected(set(exc.accepts or exc.expected))
        if token.type == "$END":
            end = len(source.text)
            span = source.span(end, end)
            return CompileError([error("E0103", "unexpected end of file", span,
                                       notes=[f"expected {expected}"])])
        start = token.start_pos or 0
        span = source.span(start, start + len(str(token)))
        return CompileError([error("E0101", f"unexpected `{token}`", span,
                                   notes=[f"expected {expected}"])])
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        span = source.span(pos, pos + 1)
        ch = source.text[pos]
        if ch == '"':
            return CompileError([error("E0102", "unterminated string", span,
                                       help='close the string with `"` on the same line')])
        if ch == "\ufeff":
            return CompileError([error("E0102", "unexpected character U+FEFF (a byte order "
                                       "mark)", span, help="save the file as utf-8 without "
                                       "a byte order mark")])
        shown = f"`{ch}`" if ch.isprintable() else f"U+{ord(ch):04X}"
        return CompileError([error("E0102", f"unexpected character {shown}", span)])
    if isinstance(exc, UnexpectedEOF):
        end = len(source.text)
        return CompileError([error("E0103", "unexpected end of file", source.span(end, end))])
    raise exc


def parse_module(source: SourceFile) -> ast.Module:
    """Parse one file; raises `CompileError` (E01xx) on a syntax error."""
    from lark.exceptions import UnexpectedInput

    try:
        tree = _parser().parse(source.text, start="start")
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    _check_limits(source, tree)
    builder = _Builder(source)
    decls = tuple(builder.build(child) for child in tree.children)
    return ast.Module(source.path, decls, source.span(0, len(source.text)))


def _check_limits(source: SourceFile, tree: Tree[Any], fixed: Span | None = None) -> None:
    """E0104 where the parse tree nests deeper than MAX_DEPTH (`not not …`, `a + a + …`,
    blocks in blocks) or a number has more than MAX_DIGITS digits: past them the builder and
    the stages after it would recurse too deeply or `int()` refuse. Iterative, so any depth
    is measured without recursing; `fixed` is the span of a string holding an expression."""
    from lark import Token

    stack: list[tuple[Any, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Token):
            digits = _DIGITS.get(node.type)
            found = digits.search(str(node)) if digits else None
            if found:
                start = (node.start_pos or 0) + found.start()
                span = fixed or source.span(start, start + len(found.group()))
                raise CompileError([error(
                    "E0104", f"number too long: more than {limits.MAX_DIGITS} digits", span,
                    help=f"mschema reads numbers of up to {limits.MAX_DIGITS} digits")])
            continue
        if depth > limits.MAX_DEPTH:
            meta = node.meta
            span = fixed or (source.span(meta.start_pos, meta.start_pos + 1)
                             if not getattr(meta, "empty", True) else source.span(0, 0))
            raise CompileError([error(
                "E0104", f"nested too deeply: more than {limits.MAX_DEPTH} levels of blocks "
                "and expressions inside each other", span,
                help="write it flatter: the shipped schemas need at most 20 levels")])
        stack.extend((c, depth + 1) for c in node.children if c is not None)


def parse_file(path: str | Path) -> ast.Module:
    return parse_module(SourceFile.read(path))


class _Builder:
    """Walks lark's tree into `ast` nodes. A plain walker, not a lark Transformer, so
    errors in here stay ours (lark wraps transformer exceptions in VisitError)."""

    def __init__(self, source: SourceFile, fixed: Span | None = None) -> None:
        self.source = source
        self.fixed = fixed  # inside a string: every span is the string's

    def span(self, node: Any) -> Span:
        if self.fixed is not None:
            return self.fixed
        if hasattr(node, "start_pos") and not hasattr(node, "meta"):
            return self.source.span(node.start_pos, node.end_pos)
        meta = node.meta
        if getattr(meta, "empty", True):
            return self.source.span(0, 0)
        return self.source.span(meta.start_pos, meta.end_pos)

    def name(self, token: Token) -> ast.Name:
        return ast.Name(str(token), self.span(token))

    def opt_name(self, token: Token | None) -> ast.Name | None:
        return None if token is None else self.name(token)

    def string(self, token: Token) -> str:
        return unquote(str(token))

    def build(self, node: Any) -> Any:
        handler = getattr(self, f"_{node.data}")
        return handler(node, node.children)

    def build_all(self, children: list[Any]) -> tuple[Any, ...]:
        return tuple(self.build(c) for c in children if c is not None)

    # -- declarations
    def _use_decl(self, n: Any, c: list[Any]) -> ast.UseDecl:
        return ast.UseDecl(self.string(c[0]), self.span(n))

    def _bus_decl(self, n: Any, c: list[Any]) -> ast.BusDecl:
        return ast.BusDecl(self.name(c[0]), self.build_all(c[1:]), self.span(n))

    def _device_decl(self, n: Any, c: list[Any]) -> ast.DeviceDecl:
        return ast.DeviceDecl(self.name(c[0]), self.build_all(c[1:]), self.span(n))

    def _machine_decl(self, n: Any, c: list[Any]) -> ast.MachineDecl:
        return ast.MachineDecl(self.name(c[0]), self.opt_name(c[1]), self.build_all(c[2:]),
                               self.span(n))

    # -- shared statements
    def _doc(self, n: Any, c: list[Any]) -> ast.Doc:
        return ast.Doc(self.string(c[0]), self.span(n))

    def _qtree(self, n: Any, c: list[Any]) -> ast.Qtree:
        return ast.Qtree(self.string(c[0]), self.span(n))

    def _range(self, n: Any, c: list[Any]) -> ast.Range:
        lo = parse_int(c[0])
        hi = lo if c[1] is None else parse_int(c[1])
        return ast.Range(lo, hi, self.span(n))

    def _field_range(self, n: Any, c: list[Any]) -> ast.FieldRange:
        return ast.FieldRange(self.name(c[0]), self.build(c[1]), self.opt_name(c[2]),
                              self.span(n))

    def _address_decl(self, n: Any, c: list[Any]) -> ast.AddressDecl:
        return ast.AddressDecl(self.name(c[0]), self.build_all(c[1:]), self.span(n))

    # -- device statements
    def _plug(self, n: Any, c: list[Any]) -> ast.Plug:
        return ast.Plug(self.name(c[0]), self.opt_name(c[1]), self.span(n))

    def _plugs(self, n: Any, c: list[Any]) -> ast.Plugs:
        return ast.Plugs(self.build_all(c), self.span(n))

    def _hotplug(self, n: Any, c: list[Any]) -> ast.Hotplug:
        condition = None if len(c) < 2 or c[1] is None else self.build(c[1])
        return ast.Hotplug(str(c[0]) == "true", self.span(n), condition)

    def _internal(self, n: Any, c: list[Any]) -> ast.Internal:
        return ast.Internal(self.span(n))

    def _multifunction(self, n: Any, c: list[Any]) -> ast.Multifunction:
        return ast.Multifunction(self.span(n))

    def _machine_only(self, n: Any, c: list[Any]) -> ast.MachineOnly:
        return ast.MachineOnly(self.span(n))

    def _qtree_parent(self, n: Any, c: list[Any]) -> ast.QtreeParent:
        return ast.QtreeParent(self.name(c[0]), self.span(n))

    def _prop_decl(self, n: Any, c: list[Any]) -> ast.PropDecl:
        default = None if c[2] is None else self.build(c[2])
        unique = None
        if c[3] is not None:
            group = c[3].children[0]
            unique = self.name(group) if group is not None else ast.Name("", self.span(c[3]))
        return ast.PropDecl(self.name(c[0]), self.build(c[1]), default, unique, self.span(n),
                            derived=c[4] is not None,
                            numa_node=None if c[5] is None else self.span(c[5]),
                            per_bus=c[3] is not None and c[3].children[1] is not None,
                            since=None if c[6] is None else self.build(c[6]),
                            removed=None if c[7] is None else self.build(c[7]),
                            changes=tuple(self.build(x) for x in c[8:]))

    def _removed(self, n: Any, c: list[Any]) -> ast.Removed:
        return ast.Removed(self.string(c[0]), self.span(n))

    def _prop_change(self, n: Any, c: list[Any]) -> ast.PropChange:
        return ast.PropChange(self.string(c[0]), self.build(c[1]), self.span(n))

    def _link_decl(self, n: Any, c: list[Any]) -> ast.LinkDecl:
        flags = {str(t) for t in c[2:]}
        return ast.LinkDecl(self.name(c[0]), self.name(c[1]), "optional" in flags,
                            "writable" in flags, self.span(n))

    def _requires(self, n: Any, c: list[Any]) -> ast.Requires:
        return ast.Requires(tuple(self.name(t) for t in c), self.span(n))

    def _provides(self, n: Any, c: list[Any]) -> ast.Provides:
        return ast.Provides(tuple(self.name(t) for t in c), self.span(n))

    def _fdt_prop(self, n: Any, c: list[Any]) -> ast.FdtProp:
        return ast.FdtProp(self.name(c[0]), self.build(c[1]), self.span(n))

    def _fdt_block(self, n: Any, c: list[Any]) -> ast.FdtBlock:
        return ast.FdtBlock(self.build_all(c), self.span(n))

    # -- the device tree sublanguage
    def _fdt_set(self, n: Any, c: list[Any]) -> ast.FdtSet:
        *values, when = c[1:]
        return ast.FdtSet(self.string(c[0]), self.build_all(values),
                          None if when is None else self.build(when), self.span(n))

    def _fdt_node(self, n: Any, c: list[Any]) -> ast.FdtNode:
        return ast.FdtNode(self.template(c[0]), None if c[1] is None else self.build(c[1]),
                           None if c[2] is None else self.build(c[2]), self.build_all(c[3:]),
                           self.span(n))

    def _fdt_let(self, n: Any, c: list[Any]) -> ast.FdtLet:
        return ast.FdtLet(self.name(c[0]), self.build(c[1]),
                          None if c[2] is None else self.build(c[2]), self.span(n))

    def _fdt_pass(self, n: Any, c: list[Any]) -> ast.FdtPass:
        return ast.FdtPass(self.name(c[0]), self.build(c[1]), self.span(n))

    def _fdt_each(self, n: Any, c: list[Any]) -> ast.FdtEach:
        kinds = tuple(self.name(t) for t in c if getattr(t, "type", None) == "NAME")
        sort = any(getattr(t, "type", None) == "SORTED" for t in c)
        items = [t for t in c if hasattr(t, "data")]
        return ast.FdtEach(kinds, sort, self.build_all(items), self.span(n))

    def _fdt_own(self, n: Any, c: list[Any]) -> ast.FdtOwn:
        return ast.FdtOwn(self.span(n))

    def _fdt_children(self, n: Any, c: list[Any]) -> ast.FdtChildren:
        return ast.FdtChildren(tuple(self.name(t) for t in c if t is not None), self.span(n))

    # -- changes to an inherited device tree
    def _fdt_edit(self, n: Any, c: list[Any]) -> ast.FdtEdit:
        return ast.FdtEdit(self.opt_name(c[0]), self.build_all(c[1:]), self.span(n))

    def _fdt_name(self, n: Any, c: list[Any]) -> ast.FdtName:
        return ast.FdtName(tuple(self.name(t) for t in c[:-1]), self.build(c[-1]),
                           self.span(n))

    def _fdt_in(self, n: Any, c: list[Any]) -> ast.FdtIn:
        return ast.FdtIn(self.string(c[0]), self.build_all(c[1:]), self.span(n))

    def _fdt_replace(self, n: Any, c: list[Any]) -> ast.FdtReplace:
        return ast.FdtReplace(self.build(c[0]), self.span(n))

    def _fdt_add(self, n: Any, c: list[Any]) -> ast.FdtAdd:
        where: Literal["before", "after", "end"] = (
            "end" if c[0] is None else "before" if str(c[0]) == "before" else "after")
        ref = None if c[1] is None else self.build(c[1])
        return ast.FdtAdd(where, ref, self.build(c[2]), self.span(n))

    def _fdt_delete(self, n: Any, c: list[Any]) -> ast.FdtDelete:
        return ast.FdtDelete(self.build(c[0]), self.span(n))

    def _fdt_ref_prop(self, n: Any, c: list[Any]) -> ast.FdtRef:
        return ast.FdtRef("prop", self.string(c[0]), self.span(n))

    def _fdt_ref_node(self, n: Any, c: list[Any]) -> ast.FdtRef:
        return ast.FdtRef("node", self.string(c[0]), self.span(n))

    def _fdt_ref_let(self, n: Any, c: list[Any]) -> ast.FdtRef:
        return ast.FdtRef("let", str(c[0]), self.span(n))

    def _fdt_when(self, n: Any, c: list[Any]) -> ast.Fx:
        result: ast.Fx = self.build(c[0])
        return result

    def _fdt_for(self, n: Any, c: list[Any]) -> ast.FdtFor:
        names = tuple(self.name(t) for t in c[:2] if t is not None)
        return ast.FdtFor(names, self.build(c[2]), None if c[3] is None else self.build(c[3]),
                          self.span(n))

    def _fdt_string(self, n: Any, c: list[Any]) -> ast.FdtString:
        return ast.FdtString(self.template(c[0]), None if c[1] is None else self.build(c[1]),
                             self.span(n))

    def _fdt_cells(self, n: Any, c: list[Any]) -> ast.FdtCells:
        return ast.FdtCells(tuple(self.build(x) for x in c[1:-1]), self.span(n))

    def _fdt_cell_for(self, n: Any, c: list[Any]) -> ast.CellFor:
        return ast.CellFor(self.build(c[0]), self.build_all(c[1:]), self.span(n))

    def _fdt_bytes(self, n: Any, c: list[Any]) -> ast.FdtBytes:
        values = tuple(parse_int(t) for t in c)
        for t, v in zip(c, values, strict=True):
            if v > 0xFF:
                raise CompileError([error("E0101", f"`{t}` is not a byte", self.span(t),
                                          help="bytes in `[…]` are 0..0xff")])
        return ast.FdtBytes(values, self.span(n))

    def _fdt_call(self, n: Any, c: list[Any]) -> ast.FxCall:
        return self._fx_call(n, c)

    def _fx_start(self, n: Any, c: list[Any]) -> ast.Fx:
        result: ast.Fx = self.build(c[0])
        return result

    def _fx_or(self, n: Any, c: list[Any]) -> ast.Fx:
        return self.chain(n, c, "or")

    def _fx_and(self, n: Any, c: list[Any]) -> ast.Fx:
        return self.chain(n, c, "and")

    def chain(self, n: Any, c: list[Any], op: str) -> ast.Fx:
        result: ast.Fx = self.build(c[0])
        for operand in c[1:]:
            result = ast.FxBin(op, result, self.build(operand), self.span(n))
        return result

    def _fx_not(self, n: Any, c: list[Any]) -> ast.FxNot:
        return ast.FxNot(self.build(c[0]), self.span(n))

    def _fx_cmp(self, n: Any, c: list[Any]) -> ast.Fx:
        if len(c) == 1:
            result: ast.Fx = self.build(c[0])
            return result
        return ast.FxBin(str(c[1]), self.build(c[0]), self.build(c[2]), self.span(n))

    def _fx_bin(self, n: Any, c: list[Any]) -> ast.FxBin:
        return ast.FxBin(str(c[1]), self.build(c[0]), self.build(c[2]), self.span(n))

    def _fx_int(self, n: Any, c: list[Any]) -> ast.FxInt:
        return ast.FxInt(parse_int(c[0]), self.span(n))

    def _fx_bool(self, n: Any, c: list[Any]) -> ast.FxBool:
        return ast.FxBool(str(c[0]) == "true", self.span(n))

    def _fx_str(self, n: Any, c: list[Any]) -> ast.FxStr:
        return self.template(c[0])

    def _fx_name(self, n: Any, c: list[Any]) -> ast.FxName:
        return ast.FxName(str(c[0]), self.span(n))

    def _fx_call(self, n: Any, c: list[Any]) -> ast.FxCall:
        return ast.FxCall(self.name(c[0]), self.build_all(c[1:]), self.span(n))

    def template(self, token: Token) -> ast.FxStr:
        """A string with `{EXPR}` / `{EXPR:FORMAT}` parts (`{{` and `}}` are braces)."""
        from lark.exceptions import UnexpectedInput

        text = self.string(token)
        span = self.span(token)
        parts: list[str | ast.FxInterp] = []
        literal: list[str] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch in "{}" and text[i + 1:i + 2] == ch:
                literal.append(ch)
                i += 2
                continue
            if ch == "}":
                raise CompileError([error("E0101", "unmatched `}` in a string", span,
                                          help="write `}}` for a brace")])
            if ch != "{":
                literal.append(ch)
                i += 1
                continue
            end = text.find("}", i)
            if end < 0:
                raise CompileError([error("E0101", "unmatched `{` in a string", span,
                                          help="write `{{` for a brace")])
            inner, _, fmt = text[i + 1:end].partition(":")
            try:
                tree = _parser().parse(inner, start="fx_start")
            except UnexpectedInput:
                raise CompileError([error("E0101", f"`{{{inner}}}` is not an expression",
                                          span)]) from None
            if literal:
                parts.append("".join(literal))
                literal = []
            _check_limits(self.source, tree, span)
            parts.append(ast.FxInterp(_Builder(self.source, span).build(tree), fmt,
                                      span))
            i = end + 1
        if literal:
            parts.append("".join(literal))
        return ast.FxStr(tuple(parts), span)

    def _bus_block(self, n: Any, c: list[Any]) -> ast.BusBlock:
        name = None if c[1] is None else self.string(c[1])
        name_span = None if c[1] is None else self.span(c[1])
        count = None if c[2] is None else parse_int(c[2])
        return ast.BusBlock(self.name(c[0]), name, name_span, count, self.build_all(c[3:]),
                            self.span(n))

    def _instance(self, n: Any, c: list[Any]) -> ast.Instance:
        loop = None if c[3] is None else self.build(c[3])
        condition = None if c[4] is None else self.build(c[4])
        return ast.Instance(self.opt_name(c[0]), self.name(c[1]), self.opt_name(c[2]),
                            condition, self.build_all(c[5:]), self.span(n), loop)

    def _inst_for(self, n: Any, c: list[Any]) -> ast.InstFor:
        return ast.InstFor(self.name(c[0]), parse_int(c[1]), parse_int(c[2]), self.span(n))

    def _prop_set(self, n: Any, c: list[Any]) -> ast.PropSet:
        return ast.PropSet(self.name(c[0]), self.build(c[1]), self.span(n))

    # -- machine statements
    def _family(self, n: Any, c: list[Any]) -> ast.Family:
        return ast.Family(self.name(c[0]), self.span(n))

    def _alias(self, n: Any, c: list[Any]) -> ast.Alias:
        return ast.Alias(tuple(self.name(t) for t in c), self.span(n))

    def _arch(self, n: Any, c: list[Any]) -> ast.Arch:
        return ast.Arch(self.name(c[0]), self.span(n))

    def _binary(self, n: Any, c: list[Any]) -> ast.Binary:
        return ast.Binary(self.string(c[0]), self.span(n))

    def _qemu_machine(self, n: Any, c: list[Any]) -> ast.QemuMachine:
        return ast.QemuMachine(self.string(c[0]), self.span(n))

    def _since(self, n: Any, c: list[Any]) -> ast.Since:
        return ast.Since(self.string(c[0]), self.span(n))

    def _default_memory(self, n: Any, c: list[Any]) -> ast.DefaultMemory:
        return ast.DefaultMemory(self.string(c[0]), self.span(n))

    def _option_decl(self, n: Any, c: list[Any]) -> ast.OptionDecl:
        default = None if c[2] is None else self.build(c[2])
        return ast.OptionDecl(self.name(c[0]), self.build(c[1]), default, self.span(n))

    def _devices(self, n: Any, c: list[Any]) -> ast.Devices:
        return ast.Devices(self.build_all(c), self.span(n))

    def _impl_case(self, n: Any, c: list[Any]) -> ast.ImplCase:
        return ast.ImplCase(self.name(c[0]), self.name(c[1]), self.span(n))

    def _implement(self, n: Any, c: list[Any]) -> ast.Implement:
        return ast.Implement(self.name(c[0]), self.name(c[1]), self.name(c[2]),
                             self.build_all(c[3:]), self.span(n))

    def _provide(self, n: Any, c: list[Any]) -> ast.Provide:
        return ast.Provide(self.name(c[0]), self.name(c[1]), self.span(n))

    def _check(self, n: Any, c: list[Any]) -> ast.Check:
        return ast.Check(self.name(c[0]), self.build(c[1]), self.string(c[2]), self.span(n))

    def _compat(self, n: Any, c: list[Any]) -> ast.Compat:
        return ast.Compat(self.name(c[0]), self.name(c[1]), self.build(c[2]), self.span(n))

    def _quirk(self, n: Any, c: list[Any]) -> ast.Quirk:
        return ast.Quirk(self.name(c[0]), self.build(c[1]), self.span(n))

    def _placement(self, n: Any, c: list[Any]) -> ast.Placement:
        name = None if c[0] is None else self.name(c[0])
        condition = None if c[1] is None else self.build(c[1])
        return ast.Placement(self.build_all(c[2:]), self.span(n), name, condition)

    def _chassis_from(self, n: Any, c: list[Any]) -> ast.ChassisFrom:
        return ast.ChassisFrom(parse_int(c[0]), self.span(n))

    def _port_number(self, n: Any, c: list[Any]) -> ast.PortNumber:
        return ast.PortNumber(self.name(c[0]), self.span(n))

    def _bridge(self, n: Any, c: list[Any]) -> ast.BridgeFor:
        return ast.BridgeFor(self.name(c[0]), self.build(c[1]),
                             tuple(self.name(t) for t in c[2:]), self.span(n))

    def _function_for(self, n: Any, c: list[Any]) -> ast.FunctionFor:
        return ast.FunctionFor(parse_int(c[0]), tuple(self.name(t) for t in c[1:]),
                               self.span(n))

    def _put_first(self, n: Any, c: list[Any]) -> ast.PutFirst:
        return ast.PutFirst(tuple(self.name(t) for t in c[:-2]), str(c[-2]),
                            self.string(c[-1]), self.span(n))

    def _order(self, n: Any, c: list[Any]) -> ast.Order:
        return ast.Order(tuple(self.name(t) for t in c), self.span(n))

    def _ports(self, n: Any, c: list[Any]) -> ast.Ports:
        return ast.Ports(self.name(c[0]), self.string(c[1]), self.build(c[2]), self.span(n))

    def _overflow(self, n: Any, c: list[Any]) -> ast.Overflow:
        inner = None if c[3] is None else self.build(c[3])
        return ast.Overflow(self.name(c[0]), self.string(c[1]), self.build(c[2]), self.span(n),
                            inner)

    def _spare_ports(self, n: Any, c: list[Any]) -> ast.SparePorts:
        return ast.SparePorts(parse_int(c[0]), self.span(n))

    def _vio_base(self, n: Any, c: list[Any]) -> ast.VioBase:
        return ast.VioBase(parse_int(c[0]), self.span(n))

    def _pci_root(self, n: Any, c: list[Any]) -> ast.PciRoot:
        return ast.PciRoot(self.string(c[0]), self.build(c[1]), self.span(n))

    # -- types and values
    def _named_type(self, n: Any, c: list[Any]) -> ast.NamedType:
        return ast.NamedType(self.name(c[0]), self.span(n))

    def _enum_type(self, n: Any, c: list[Any]) -> ast.EnumType:
        return ast.EnumType(tuple(self.member(t) for t in c), self.span(n))

    def member(self, t: Any) -> ast.Name:
        """An enum member as written: a NAME, or a STRING (its text, unquoted)."""
        if t.type == "STRING":
            return ast.Name(self.string(t), self.span(t))
        return self.name(t)

    def _ranged_type(self, n: Any, c: list[Any]) -> ast.RangedType:
        return ast.RangedType(self.name(c[0]), self.build(c[1]), self.span(n))

    def _int_value(self, n: Any, c: list[Any]) -> ast.Value:
        return ast.Value("int", parse_int(c[0]), self.span(n))

    def _str_value(self, n: Any, c: list[Any]) -> ast.Value:
        return ast.Value("str", self.string(c[0]), self.span(n))

    def _bool_value(self, n: Any, c: list[Any]) -> ast.Value:
        return ast.Value("bool", str(c[0]) == "true", self.span(n))

    def _name_value(self, n: Any, c: list[Any]) -> ast.Value:
        return ast.Value("name", str(c[0]), self.span(n))

    # -- expressions
    def _ref(self, n: Any, c: list[Any]) -> ast.Ref:
        return ast.Ref(self.name(c[0]), self.span(n))

    def _int_lit(self, n: Any, c: list[Any]) -> ast.Literal_:
        span = self.span(n)
        return ast.Literal_(ast.Value("int", parse_int(c[0]), span), span)

    def _str_lit(self, n: Any, c: list[Any]) -> ast.Literal_:
        span = self.span(n)
        return ast.Literal_(ast.Value("str", self.string(c[0]), span), span)

    def _bool_lit(self, n: Any, c: list[Any]) -> ast.Literal_:
        span = self.span(n)
        return ast.Literal_(ast.Value("bool", str(c[0]) == "true", span), span)

    def _call(self, n: Any, c: list[Any]) -> ast.Call:
        return ast.Call(self.name(c[0]), self.name(c[1]), self.span(n))

    def _not_expr(self, n: Any, c: list[Any]) -> ast.Not:
        return ast.Not(self.build(c[0]), self.span(n))

    def _and_expr(self, n: Any, c: list[Any]) -> ast.BoolOp:
        return ast.BoolOp("and", self.build_all(c), self.span(n))

    def _or_expr(self, n: Any, c: list[Any]) -> ast.BoolOp:
        return ast.BoolOp("or", self.build_all(c), self.span(n))

    def _compare(self, n: Any, c: list[Any]) -> ast.Compare:
        return ast.Compare(self.build(c[0]), str(c[1]), self.build(c[2]), self.span(n))
