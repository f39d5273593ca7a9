"""The JavaScript side of the tests: where tests/js lives and the node that runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def node_binary() -> str:
    """The node executable; a missing one fails the test, it is part of the suite's set-up."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the JavaScript client test needs Node.js 18+ on PATH")
    if not (JS_DIR / "node_modules" / "socket.io-client" / "package.json").exists():
        pytest.fail(f"socket.io-client is not installed: run `npm ci` in {JS_DIR} (make test does)")
    return node
