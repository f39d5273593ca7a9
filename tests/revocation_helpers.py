"""Watching a socket's session end: the session.revoked event, then the disconnect."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio


class Revoked:
    """Records the session.revoked event and the disconnect of one socket."""

    def __init__(self, sio: socketio.AsyncClient) -> None:
        self.reasons: list[str] = []
        self.event = asyncio.Event()
        self.gone = asyncio.Event()
        sio.on("session.revoked", self._on_revoked)
        sio.on("disconnect", self._on_disconnect)

    async def _on_revoked(self, data: dict[str, Any]) -> None:
        self.reasons.append(data["reason"])
        self.event.set()

    async def _on_disconnect(self, *args: Any) -> None:
        self.gone.set()

    async def wait(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.event.wait(), timeout)
        await asyncio.wait_for(self.gone.wait(), timeout)
