"""The suite's own rules: no test module imports another, and fixtures live in conftest.py.

A test module imported by another runs its imports (and registers any fixture it
defines) in a second place, so what one module shares belongs in a conftest.py
(fixtures) or a helpers module (plain functions), never in a test_*.py.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).parent


def python_files() -> Iterator[Path]:
    for folder, subfolders, files in os.walk(TESTS):
        subfolders[:] = [d for d in subfolders if d not in ("node_modules", "__pycache__")]
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(folder) / name


def imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module a file imports, and for `from X import Y` also X.Y (Y may be a module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Attribute) and target.attr == "fixture") or (
        isinstance(target, ast.Name) and target.id == "fixture")


def test_no_test_module_imports_another() -> None:
    found = []
    for path in python_files():
        for line, name in imported_names(ast.parse(path.read_text(), str(path))):
            parts = name.split(".")
            if parts[0] == "tests" and parts[-1].startswith("test_"):
                found.append(f"{path.relative_to(TESTS)}:{line} imports {name}")
    assert not found, "move what is shared to a conftest.py or a helpers module:\n" + "\n".join(found)


def test_fixtures_are_defined_in_conftest_or_the_test_module_using_them() -> None:
    found = []
    for path in python_files():
        if path.name == "conftest.py" or path.name.startswith("test_"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                    is_fixture(d) for d in node.decorator_list):
                found.append(f"{path.relative_to(TESTS)}:{node.lineno} {node.name}")
    assert not found, "fixtures in helper modules (move them to a conftest.py):\n" + "\n".join(found)
