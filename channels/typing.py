"""Typing indicators: relayed to a conversation's members, ended by the server when they lapse.

One indicator per (conversation, user), shared by the user's devices. Its state is
kept in the store (Redis when configured, so a refresh or stop on any node sees it)
as "<deadline ms>:<token>"; the node that took the last refresh holds a timer and,
when it fires, ends the indicator only if its token is still the current one. The
stored entry outlives the deadline by a grace period so that check always finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis

from channels.errors import CommandError

if TYPE_CHECKING:
    from channels.realtime import Connection, Realtime

log = logging.getLogger(__name__)

EVENT = "typing"
GRACE_S = 10.0
BACKEND_ERRORS = (aioredis.RedisError, OSError)
Key = tuple[uuid.UUID, uuid.UUID]


class TypingStore(Protocol):
    async def begin(self, key: str, value: str, hold_ms: int) -> str | None:
        """Store the value for hold_ms; returns the value it replaced, if any."""
        ...

    async def end_if(self, key: str, value: str) -> bool:
        """Remove the entry if it still holds value; True if it did."""
        ...

    async def end(self, key: str) -> bool:
        """Remove the entry; True if there was one."""
        ...


class MemoryTypingStore:
    """Typing state for a single process."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, float]] = {}

    def _get(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._values[key]
            return None
        return entry[0]

    async def begin(self, key: str, value: str, hold_ms: int) -> str | None:
        previous = self._get(key)
        now = time.monotonic()
        self._values[key] = (value, now + hold_ms / 1000)
        if len(self._values) > 100_000:
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
        return previous

    async def end_if(self, key: str, value: str) -> bool:
        if self._get(key) != value:
            return False
        del self._values[key]
        return True

    async def end(self, key: str) -> bool:
        found = self._get(key) is not None
        self._values.pop(key, None)
        return found


class RedisTypingStore:
    """Typing state in Redis, shared by every node."""

    _END_IF = """
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}:typing:"
        self._end_if = client.register_script(self._END_IF)

    async def begin(self, key: str, value: str, hold_ms: int) -> str | None:
        previous = await self._client.set(self._prefix + key, value, px=hold_ms, get=True)
        if isinstance(previous, bytes):
            return previous.decode()
        return None if previous is None else str(previous)

    async def end_if(self, key: str, value: str) -> bool:
        return bool(await self._end_if(keys=[self._prefix + key], args=[value]))

    async def end(self, key: str) -> bool:
        return bool(await self._client.delete(self._prefix + key))


@dataclass
class _Timer:
    value: str
    handle: asyncio.TimerHandle
    session_id: uuid.UUID | None


@dataclass
class _Gate:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _deadline_ms(value: str) -> int:
    head, _, _ = value.partition(":")
    return int(head) if head.isdigit() else 0


class TypingRelay:
    """Starts, refreshes, stops and expires typing indicators, and relays each change once."""

    def __init__(self, realtime: Realtime, store: TypingStore, ttl_s: float) -> None:
        self._realtime = realtime
        self._store = store
        self.ttl_s = ttl_s
        self._timers: dict[Key, _Timer] = {}
        self._by_session: dict[uuid.UUID, set[Key]] = {}
        # One change at a time per indicator, so its events leave in order.
        self._gates: dict[Key, _Gate] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        realtime.on_unbind.append(self.connection_closed)

    @staticmethod
    def _store_key(key: Key) -> str:
        return f"{key[0]}:{key[1]}"

    @contextlib.asynccontextmanager
    async def _serial(self, key: Key) -> AsyncIterator[None]:
        gate = self._gates.setdefault(key, _Gate())
        gate.users += 1
        try:
            async with gate.lock:
                yield
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[key]

    async def start(self, conversation_id: uuid.UUID, user_id: uuid.UUID,
                    session_id: uuid.UUID | None) -> None:
        """Show the user typing, or keep showing it for ttl_s more; relays active=true once."""
        key = (conversation_id, user_id)
        async with self._serial(key):
            now = time.time()
            value = f"{int((now + self.ttl_s) * 1000)}:{uuid.uuid4().hex}"
            try:
                previous = await self._store.begin(self._store_key(key), value,
                                                   int((self.ttl_s + GRACE_S) * 1000))
            except BACKEND_ERRORS as exc:
                raise CommandError("unavailable", "typing is unavailable right now") from exc
            self._arm(key, value, session_id)
            # An entry past its deadline was left by a node that died before ending it.
            if previous is None or _deadline_ms(previous) < now * 1000:
                await self._emit(key, True)

    async def stop(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """End the indicator now; True (and active=false relayed) if it was showing."""
        key = (conversation_id, user_id)
        async with self._serial(key):
            self._disarm(key)
            try:
                ended = await self._store.end(self._store_key(key))
            except BACKEND_ERRORS as exc:
                raise CommandError("unavailable", "typing is unavailable right now") from exc
            if ended:
                await self._emit(key, False)
            return ended

    async def connection_closed(self, conn: Connection) -> None:
        """A closing socket's indicators end (those its session started on this node)."""
        if conn.session_id is None:
            return
        for key in list(self._by_session.get(conn.session_id, ())):
            timer = self._timers.get(key)
            if timer is not None:
                await self._end_own(key, timer.value)

    def _arm(self, key: Key, value: str, session_id: uuid.UUID | None) -> None:
        self._disarm(key)
        loop = asyncio.get_running_loop()
        handle = loop.call_later(self.ttl_s, self._spawn_expiry, key, value)
        self._timers[key] = _Timer(value, handle, session_id)
        if session_id is not None:
            self._by_session.setdefault(session_id, set()).add(key)

    def _disarm(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is None:
            return
        timer.handle.cancel()
        if timer.session_id is not None:
            keys = self._by_session.get(timer.session_id, set())
            keys.discard(key)
            if not keys:
                self._by_session.pop(timer.session_id, None)

    def _spawn_expiry(self, key: Key, value: str) -> None:
        task = asyncio.create_task(self._end_own(key, value))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_own(self, key: Key, value: str) -> None:
        """End the indicator if this node's refresh is still the latest one."""
        async with self._serial(key):
            timer = self._timers.get(key)
            if timer is not None and timer.value == value:
                self._disarm(key)
            try:
                ended = await self._store.end_if(self._store_key(key), value)
            except BACKEND_ERRORS:
                log.warning("typing indicator could not be ended", exc_info=True)
                return
            if ended:
                await self._emit(key, False)

    async def _emit(self, key: Key, active: bool) -> None:
        conversation_id, user_id = key
        try:
            await self._realtime.send_to_conversation(
                conversation_id, EVENT,
                {"conversation_id": str(conversation_id), "user_id": str(user_id), "active": active},
            )
        except BACKEND_ERRORS:
            # Typing is ephemeral: a dropped signal is corrected by the next one or by expiry.
            log.warning("typing signal dropped", exc_info=True)

    async def close(self) -> None:
        """Cancel timers and pending expiries (at shutdown)."""
        for timer in self._timers.values():
            timer.handle.cancel()
        self._timers.clear()
        self._by_session.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
