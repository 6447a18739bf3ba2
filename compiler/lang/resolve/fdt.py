"""Device tree blocks: the names an `fdt` block uses (functions with their numbers of
arguments, device types, bus kinds) looked up. Variables are scoped by the tree being
built, so an unknown one is `emit/fdt.py`'s to report, as is evaluating the block.
"""

from __future__ import annotations

from collections.abc import Iterable

from compiler.lang import ast
from compiler.lang.resolve.scope import Part

# The functions of fdt expressions, with their numbers of arguments (`emit/fdt.py` has
# them); those taking a device type name instead of a value are listed again below.
FDT_FUNCTIONS: dict[str, tuple[int, int]] = {
    "u64": (1, 1), "min": (2, 2), "max": (2, 2), "log2ceil": (1, 1), "pow2floor": (1, 1),
    "pow2-blocks": (2, 2),
    "reversed": (1, 1), "mac-bytes": (1, 1), "pci-reg": (3, 3), "has": (1, 1),
    "first-path": (1, 1), "boot-list": (0, 0), "defined": (1, 1), "count": (1, 1),
}
FDT_TYPE_FUNCTIONS = ("has", "first-path", "count")


class FdtNames(Part):
    def fdt_items(self, items: Iterable[ast.FdtItem]) -> None:
        for item in items:
            if isinstance(item, ast.FdtSet):
                for v in item.values:
                    self.fdt_value(v)
                self.fx(item.when)
            elif isinstance(item, ast.FdtNode):
                self.fx_str(item.name)
                self.fdt_for(item.loop)
                self.fx(item.when)
                self.fdt_items(item.items)
            elif isinstance(item, ast.FdtLet):
                if isinstance(item.value, ast.FdtCells):
                    self.fdt_value(item.value)
                else:
                    self.fx(item.value)
                self.fx(item.when)
            elif isinstance(item, ast.FdtPass):
                self.fx(item.value)
            elif isinstance(item, ast.FdtEach):
                for kind in item.kinds:
                    if kind.text not in self.scope.bus_decls:
                        self.unknown("E0201", "bus kind", kind, self.scope.bus_decls)
                self.fdt_items(item.items)
            elif isinstance(item, ast.FdtChildren):
                for t in item.types:
                    if t.text not in self.scope.device_decls:
                        self.unknown("E0202", "device type", t, self.scope.device_decls)

    def fdt_value(self, v: ast.FdtValue | ast.Cell) -> None:
        if isinstance(v, ast.FdtCells):
            for c in v.cells:
                self.fdt_value(c)
        elif isinstance(v, ast.CellFor):
            self.fdt_for(v.loop)
            for c in v.cells:
                self.fdt_value(c)
        elif isinstance(v, ast.FdtString):
            self.fx_str(v.text)
            self.fdt_for(v.loop)
        elif not isinstance(v, ast.FdtBytes):
            self.fx(v)

    def fdt_for(self, loop: ast.FdtFor | None) -> None:
        if loop is not None:
            self.fx(loop.lo)
            self.fx(loop.hi)

    def fx_str(self, s: ast.FxStr) -> None:
        for part in s.parts:
            if isinstance(part, ast.FxInterp):
                self.fx(part.expr)

    def fx(self, e: ast.Fx | None) -> None:
        if isinstance(e, ast.FxCall):
            arity = FDT_FUNCTIONS.get(e.func.text)
            if arity is None:
                self.unknown("E0201", "function", e.func, FDT_FUNCTIONS)
            elif not arity[0] <= len(e.args) <= arity[1]:
                want = str(arity[0]) if arity[0] == arity[1] else f"{arity[0]} to {arity[1]}"
                self.diags.error("E0302", f"`{e.func.text}` takes {want} argument(s), not "
                                 f"{len(e.args)}", e.span)
            if e.func.text in FDT_TYPE_FUNCTIONS:
                for a in e.args:
                    if isinstance(a, ast.FxName) and a.name not in self.scope.device_decls:
                        self.unknown("E0202", "device type", ast.Name(a.name, a.span),
                                     self.scope.device_decls)
                return
            for a in e.args:
                self.fx(a)
        elif isinstance(e, ast.FxBin):
            self.fx(e.left)
            self.fx(e.right)
        elif isinstance(e, ast.FxNot):
            self.fx(e.operand)
        elif isinstance(e, ast.FxStr):
            self.fx_str(e)
