"""Waiting for a worker's answer to a job this node queued, over the bus."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

from channels.bus import Bus


class ReplyWaiter:
    """Futures by request id, resolved by messages on this node's reply topic."""

    def __init__(self, bus: Bus, topic: str) -> None:
        self.bus = bus
        self.topic = topic
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Request ids: unique per process start (the prefix) and within it (the counter),
        # without a random draw per send.
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    async def start(self) -> None:
        await self.bus.subscribe(self.topic, self._on_reply)

    async def stop(self) -> None:
        await self.bus.unsubscribe(self.topic, self._on_reply)
        for future in self._waiting.values():
            future.cancel()

    def expect(self) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        """Register before queueing the job, so a fast reply is never missed."""
        request_id = f"{self._prefix}{next(self._counter):x}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return request_id, future

    def forget(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)

    async def _on_reply(self, message: dict[str, Any]) -> None:
        # A worker answers a whole batch in one message; a lone reply is its own answer.
        for reply in message.get("replies") or (message,):
            future = self._waiting.pop(str(reply.get("request_id")), None)
            if future is not None and not future.done():
                future.set_result(reply)
