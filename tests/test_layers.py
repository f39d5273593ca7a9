"""Layers import downward only (docs/README.md, "Layout"): a static check of every module.

server -> handlers -> storage, channels, jobs; workers -> storage, channels, jobs. Every
import statement counts, wherever it is: module level, inside a function, under
`if TYPE_CHECKING:`; relative imports are resolved against their package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# For each layer checked here, the top-level packages it must never import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "handlers": frozenset({"server", "workers"}),
    "storage": frozenset({"server", "handlers", "workers", "channels", "jobs"}),
    "jobs": frozenset({"server", "handlers", "workers"}),
    "channels": frozenset({"server", "handlers", "workers"}),
    "workers": frozenset({"server", "handlers"}),
}


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module's source."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                # `from . import x` in a/b.py is a; in a/__init__.py it is a itself.
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if node.module is None:
                found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, base))
    return sorted(found)


def violations(layer: str) -> list[str]:
    forbidden = FORBIDDEN[layer]
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        rel = path.relative_to(ROOT)
        module = ".".join(rel.with_suffix("").parts)
        is_package = path.name == "__init__.py"
        if is_package:
            module = module.removesuffix(".__init__")
        for line, name in imported_modules(path.read_text(), module, is_package):
            if name.split(".")[0] in forbidden:
                bad.append(f"{rel}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    assert (ROOT / layer).is_dir()
    assert violations(layer) == [], f"{layer}/ must not import {sorted(FORBIDDEN[layer])}"


def test_the_check_sees_every_kind_of_import() -> None:
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
import handlers.errors
if TYPE_CHECKING:
    from server.app import create_app

def late() -> None:
    from workers import media
    import channels.bus as bus

class Lazy:
    def method(self) -> None:
        from .. import handlers
        from ..server import rest
        from .sibling import thing
"""
    names = [name for _, name in imported_modules(source, "storage.views.items")]
    assert names == ["__future__", "typing", "handlers.errors", "server.app", "workers",
                     "channels.bus", "storage.handlers", "storage.server", "storage.views.sibling"]
    assert imported_modules("from . import x\nfrom .y import z\n", "jobs", is_package=True) == [
        (1, "jobs.x"), (2, "jobs.y")]
