"""Who is online: the presence stores (in memory, or in Redis across nodes) behind one Protocol.

A user is online while any of their sockets is connected on any node. A store counts
sockets per user, enforces the per-user socket limit, and announces each transition
(first socket: online, last socket: offline) on the bus topic `presence:{user_id}`,
in the order the counts changed. Without Redis the counts live in this process
(MemoryPresenceStore); with Redis see channels/presence_redis.py. Who receives the
announcements is channels/presence.py's concern.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import redis.asyncio as aioredis

from channels.bus import Bus

log = logging.getLogger(__name__)

PersistLastSeen = Callable[[list[uuid.UUID], datetime], Awaitable[None]]
LoadLastSeen = Callable[[list[uuid.UUID]], Awaitable[dict[uuid.UUID, datetime]]]
BACKEND_ERRORS = (aioredis.RedisError, OSError)


def topic(user_id: uuid.UUID | str) -> str:
    """The bus topic carrying a user's presence transitions (also the sio room of watchers)."""
    return f"presence:{user_id}"


def now_ms() -> int:
    """The wall clock in epoch milliseconds, the unit of last-seen times."""
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    """An epoch-milliseconds time as ISO 8601, as presence events carry it."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def wire(user_id: uuid.UUID | str, online: bool, last_seen_ms: int | None) -> dict[str, Any]:
    """The `presence` event payload and the status shape in command answers."""
    return {"user_id": str(user_id), "status": "online" if online else "offline",
            "last_seen": None if last_seen_ms is None else iso(last_seen_ms)}


class TooManySockets(Exception):
    """The user already has the maximum number of connected sockets."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} connected sockets per user")
        self.limit = limit


@dataclass(frozen=True)
class Count:
    """What the store knows of one user: sockets connected anywhere, last seen (epoch ms)."""

    sockets: int
    last_seen_ms: int | None


class PresenceStore(Protocol):
    """Socket counts per user and their transitions; MemoryPresenceStore or RedisPresenceStore."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def connect(self, user_id: uuid.UUID, limit: int | None) -> None:
        """Count one socket; raises TooManySockets when limit sockets are already counted."""
        ...

    async def disconnect(self, user_id: uuid.UUID) -> None: ...
    async def counts(self, user_ids: list[uuid.UUID]) -> list[Count]: ...


class Persisting:
    """Writes last-seen times to the database in the background: connects never wait on it."""

    def __init__(self, persist: PersistLastSeen | None) -> None:
        self._persist = persist
        self._tasks: set[asyncio.Task[None]] = set()

    def _persist_soon(self, user_ids: list[uuid.UUID], at_ms: int) -> None:
        if self._persist is None or not user_ids:
            return
        task = asyncio.create_task(self._write(user_ids, at_ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, user_ids: list[uuid.UUID], at_ms: int) -> None:
        assert self._persist is not None
        try:
            await self._persist(user_ids, datetime.fromtimestamp(at_ms / 1000, UTC))
        except Exception:
            log.warning("last_seen could not be stored", exc_info=True)

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class MemoryPresenceStore(Persisting):
    """Counts for a single process; transitions go out on the in-process bus."""

    def __init__(self, bus: Bus, persist: PersistLastSeen | None = None) -> None:
        super().__init__(persist)
        self._bus = bus
        self._sockets: dict[uuid.UUID, int] = {}
        self._last_seen: dict[uuid.UUID, int] = {}
        # Held across the announcement too, so events leave in the order counts changed.
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._drain()

    async def connect(self, user_id: uuid.UUID, limit: int | None) -> None:
        async with self._lock:
            count = self._sockets.get(user_id, 0)
            if limit is not None and count >= limit:
                raise TooManySockets(limit)
            self._sockets[user_id] = count + 1
            if count == 0:
                await self._announce(user_id, True)

    async def disconnect(self, user_id: uuid.UUID) -> None:
        async with self._lock:
            count = self._sockets.get(user_id, 0) - 1
            if count > 0:
                self._sockets[user_id] = count
                return
            if self._sockets.pop(user_id, None) is not None:
                await self._announce(user_id, False)

    async def _announce(self, user_id: uuid.UUID, online: bool) -> None:
        at = now_ms()
        self._last_seen[user_id] = at
        self._persist_soon([user_id], at)
        await self._bus.publish(topic(user_id), {"kind": "presence", **wire(user_id, online, at)})

    async def counts(self, user_ids: list[uuid.UUID]) -> list[Count]:
        return [Count(self._sockets.get(u, 0), self._last_seen.get(u)) for u in user_ids]


