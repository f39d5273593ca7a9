"""Plain helpers for the browser tests: Chromium's launch options and screenshots.

The fixtures built on them (`browser`, `new_page`, `page`, `screenshot`) live in
tests/conftest.py. The browser is Debian's chromium (`scripts/ensure-browser.sh`,
run by `make test`, installs it), driven by the `playwright` package; Playwright's
own browser download is never used. Which executable, and where screenshots go, are
read in tests/conftest.py (HOTSPOT_TEST_CHROMIUM, HOTSPOT_TEST_SCREENSHOTS).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from playwright.async_api import Page

# Long enough for a slow CI machine, short enough that a missing element fails the test soon.
TIMEOUT_MS = 10_000
VIEWPORT = {"width": 1280, "height": 800}

# Running as root in a container: Chromium's sandbox needs user namespaces it rarely
# has there, /dev/shm may be small, and there is no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]


def launch_options(executable: str) -> dict[str, Any]:
    """Keyword arguments for `playwright.chromium.launch`."""
    return {"executable_path": executable, "headless": True, "args": CHROMIUM_ARGS, "timeout": 30_000}


def chromium_problem(executable: str) -> str | None:
    """Why Chromium cannot be used here, or None when its executable is present."""
    if not os.access(executable, os.X_OK):
        return (f"Chromium is not installed at {executable}: the browser tests need it. "
                "Run `bash scripts/ensure-browser.sh` as root (`make test` does), or set "
                "HOTSPOT_TEST_CHROMIUM to a Chromium executable.")
    return None


def safe_name(text: str) -> str:
    """A file-name-friendly form of a test id or a screenshot name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "shot"


class Screenshots:
    """Numbered full-page screenshots of one test, in the order taken.

    They go to <folder>/NN-<name>.png; the folder is emptied when the test starts, so it
    always holds the last run's pictures.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []
        shutil.rmtree(folder, ignore_errors=True)

    async def __call__(self, page: Page, name: str) -> Path:
        """Save `page` as NN-<name>.png in this test's folder; returns the file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{len(self.taken) + 1:02d}-{safe_name(name)}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path
