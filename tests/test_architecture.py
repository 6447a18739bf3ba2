"""The shape ARCHITECTURE.md promises, checked on the source: stages in packages whose imports
flow forward only, and classes that fit in a head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "compiler"
# The stages in pipeline order (ARCHITECTURE.md's picture); a module may import its own stage
# and earlier ones, never a later one. driver, present, fleet and cli sit on top of everything.
STAGES = ("base", "lang", "spec", "build", "emit", "qemu", "ops", "driver", "present", "fleet",
          "cli", "__main__")
# Classes allowed past the size limit, with the reason.
LARGE_CLASSES = {
    ("lang/parse.py", "_Builder"): "the grammar's action table: one short method per rule",
}
MAX_CLASS_LINES = 300
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def _stage(module: str) -> str:
    return module.split(".")[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """The compiler modules `path` imports, as dotted names below `compiler.`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "compiler":
                out += [(node.lineno, alias.name) for alias in node.names]
            elif node.module.startswith("compiler."):
                out.append((node.lineno, node.module.removeprefix("compiler.")))
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}:{node.lineno}: relative import; write `from compiler.… import`")
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_flow_forward(path: Path) -> None:
    mine = path.relative_to(PACKAGE).with_suffix("").parts[0]
    if mine == "__init__":
        return
    assert mine in STAGES, f"{mine}/ is not a stage of ARCHITECTURE.md"
    backward = [f"line {line}: {module}" for line, module in _imports(path)
                if _stage(module) in STAGES and STAGES.index(_stage(module)) > STAGES.index(mine)]
    assert not backward, f"{path.name} ({mine}) imports a later stage: {backward}"


def test_stage_folders_are_the_architecture() -> None:
    folders = sorted(p.name for p in PACKAGE.iterdir()
                     if p.is_dir() and (p / "__init__.py").exists())
    assert folders == sorted(s for s in STAGES if (PACKAGE / s).is_dir())
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [f for f in folders if f"{f}/" not in text]
    assert not missing, f"ARCHITECTURE.md does not name {missing}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_classes_fit_in_a_head(path: Path) -> None:
    rel = path.relative_to(PACKAGE).as_posix()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef) and (rel, node.name) not in LARGE_CLASSES:
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{rel}: class {node.name} has {size} lines"
