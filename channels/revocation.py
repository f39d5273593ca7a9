"""Revoked sessions, checked in memory on every command; shared across nodes.

A revocation is written to Redis (so a node that starts later loads it) and
announced on the bus (so running nodes learn it at once). Entries live as long
as an access token could, after which the token is expired anyway.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from channels.bus import Bus

log = logging.getLogger(__name__)
TOPIC = "revocations"


class RevocationList:
    def __init__(
        self, bus: Bus, ttl_s: int, redis: aioredis.Redis | None = None, namespace: str = "hotspot"
    ) -> None:
        self._bus = bus
        self._ttl_s = ttl_s
        self._redis = redis
        self._prefix = f"{namespace}:revoked:"
        self._until: dict[str, float] = {}

    async def start(self, known: list[uuid.UUID] | None = None) -> None:
        """Listen for revocations; `known` seeds the ones recorded before this process started."""
        await self._bus.subscribe(TOPIC, self._on_message)
        until = time.time() + self._ttl_s
        for sid in known or ():
            self._until[str(sid)] = until
        await self.reload()

    async def stop(self) -> None:
        await self._bus.unsubscribe(TOPIC, self._on_message)

    async def reload(self) -> None:
        """Load every revocation still in force from Redis (at start and after reconnects)."""
        if self._redis is None:
            return
        async for key in self._redis.scan_iter(match=self._prefix + "*", count=1000):
            name = key.decode() if isinstance(key, bytes) else key
            ttl = await self._redis.ttl(name)
            if ttl > 0:
                self._until[name[len(self._prefix) :]] = time.time() + ttl

    def is_revoked(self, session_id: uuid.UUID | str) -> bool:
        until = self._until.get(str(session_id))
        if until is None:
            return False
        if until < time.time():
            del self._until[str(session_id)]
            return False
        return True

    async def revoke(self, session_ids: list[uuid.UUID]) -> None:
        if not session_ids:
            return
        ids = [str(s) for s in session_ids]
        until = time.time() + self._ttl_s
        for sid in ids:
            self._until[sid] = until
        if self._redis is not None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid in ids:
                    pipe.set(self._prefix + sid, "1", ex=self._ttl_s)
                await pipe.execute()
        await self._bus.publish(TOPIC, {"sessions": ids, "ttl": self._ttl_s})

    async def _on_message(self, message: dict[str, Any]) -> None:
        until = time.time() + float(message.get("ttl", self._ttl_s))
        for sid in message.get("sessions", []):
            self._until[str(sid)] = until
        self._prune()

    def _prune(self) -> None:
        if len(self._until) < 10_000:
            return
        now = time.time()
        for sid in [s for s, until in self._until.items() if until < now]:
            del self._until[sid]
