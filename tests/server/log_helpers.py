"""The server's log as a test sees it: records and their JSON lines."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from server.logs import JsonFormatter


class Collect(logging.Handler):
    """Keeps records and their JSON rendering as the server writes them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.records: list[logging.LogRecord] = []
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        # Rendered now, inside the request, as the real handler does: the request id is in scope.
        self.lines.append(orjson.loads(self.format(record)))
