"""The import rule of docs/architecture.md, checked over the source: layers import downward only.

A new upward import (say, infer/ reaching into train/ or the control plane) fails here, in `make test`. So does a
function-local import of tuneforge's own modules without a ``# lazy: <reason>`` comment: those exist only to keep
start-up light (torch, transformers), and each says so.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tuneforge"

# Top to bottom. A package may import its own modules and any package in a layer below its own; packages that share
# a layer are independent of each other.
LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli", "vertex_offline"},
    {"api"},
    {"worker"},
    {"control"},
    {"train", "serve"},
    {"infer"},
    {"data", "catalog"},
    {"wire", "storage", "devices"},
    {"settings", "errors", "quiet", "console"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        yield path, rel.parts[0].removesuffix(".py")


def _tuneforge_imports(tree: ast.AST, module_parts: tuple[str, ...]):
    """(node, imported top-level package, inside a function) for every import of a tuneforge module."""

    def visit(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolve against the importing module's package
                    base = list(module_parts[: len(module_parts) - child.level])
                    targets = [".".join(["tuneforge", *base, *(child.module or "").split(".")]).rstrip(".")]
                elif child.module:
                    targets = [child.module]
                    if child.module == "tuneforge":
                        targets = [f"tuneforge.{a.name}" for a in child.names]
            for name in targets:
                parts = name.split(".")
                if parts[0] == "tuneforge" and len(parts) > 1:
                    yield child, parts[1], in_function
            yield from visit(child, nested)

    yield from visit(tree, False)


def test_every_package_is_in_a_layer():
    missing = {top for _, top in _modules() if top not in RANK and top != "__init__"}
    assert not missing, f"add {sorted(missing)} to LAYERS (and to docs/architecture.md)"


def _violations():
    upward, unexplained = [], []
    for path, top in _modules():
        if top == "__init__":
            continue
        source = path.read_text()
        lines = source.splitlines()
        parts = path.relative_to(SRC).with_suffix("").parts
        for node, target, in_function in _tuneforge_imports(ast.parse(source), parts):
            where = f"{path.relative_to(SRC.parent)}:{node.lineno}"
            if target != top and target in RANK and RANK[target] <= RANK[top]:
                upward.append(f"{where}: {top} imports {target}")
            if in_function and "# lazy:" not in lines[node.lineno - 1]:
                unexplained.append(f"{where}: a function-local import of tuneforge.{target} without '# lazy: <why>'")
    return upward, unexplained


def test_layers_import_downward_only():
    upward, _ = _violations()
    assert not upward, "imports against the layer rule (docs/architecture.md):\n" + "\n".join(upward)


def test_function_local_imports_say_why():
    _, unexplained = _violations()
    assert not unexplained, "\n".join(unexplained)


@pytest.mark.parametrize(
    "source,expected",
    [
        ("from tuneforge.control import db\n", [("control", False)]),
        ("def f():\n    from tuneforge.train import run_sft\n", [("train", True)]),
        ("from tuneforge import storage, errors\n", [("storage", False), ("errors", False)]),
        ("from ..infer import engine\n", [("infer", False)]),
    ],
)
def test_the_checker_sees_every_kind_of_import(source, expected):
    """The rule cannot pass by not looking: module-level, function-local, ``from tuneforge import`` and relative."""
    found = [(t, f) for _, t, f in _tuneforge_imports(ast.parse(source), ("serve", "apis"))]
    assert found == expected


def test_the_command_line_starts_without_torch():
    """What the lazy imports are for: `tuneforge --help`, `jobs list` and the other remote commands start light."""
    code = "import sys, tuneforge.cli; print(sorted(m for m in ('torch', 'transformers', 'sqlalchemy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
