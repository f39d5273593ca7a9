"""PostgreSQL from the pgserver wheel, for the zero-set-up default."""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server in a data folder, shared by every local process that uses it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    async def start(self) -> str:
        """Start (or attach to) the server and return its connection URL."""
        from pgserver.postgres_server import get_server  # only the embedded default needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver narrates every step at INFO and platformdirs warns about XDG_RUNTIME_DIR.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        log.info("starting embedded postgres", extra={"data_dir": str(self.data_dir)})
        self._server = await asyncio.to_thread(
            get_server, str(self.data_dir.resolve()), cleanup_mode="stop"
        )
        return str(self._server.get_uri())

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
