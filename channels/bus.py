"""The cross-node event bus: topics a node subscribes to only while it needs them.

Messages are plain dicts tagged with the publishing node's id. The in-process bus
serves the single-process default; the Redis bus uses one pub/sub connection per
node and subscribes to a topic only while a local listener wants it, so a node
receives only the events for what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], Awaitable[None]]


class Bus(Protocol):
    node_id: str

    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...
    async def publish_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None: ...
    async def subscribe(self, topic: str, listener: Listener) -> None: ...
    async def unsubscribe(self, topic: str, listener: Listener) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...


class _Listeners:
    """Local listeners per topic, shared by both bus kinds."""

    def __init__(self) -> None:
        self.by_topic: dict[str, list[Listener]] = {}

    def add(self, topic: str, listener: Listener) -> bool:
        """Add one; True when it is the topic's first listener."""
        listeners = self.by_topic.setdefault(topic, [])
        listeners.append(listener)
        return len(listeners) == 1

    def remove(self, topic: str, listener: Listener) -> bool:
        """Remove one; True when the topic has no listener left."""
        listeners = self.by_topic.get(topic)
        if not listeners:
            return False
        with contextlib.suppress(ValueError):
            listeners.remove(listener)
        if listeners:
            return False
        del self.by_topic[topic]
        return True

    async def dispatch(self, topic: str, message: dict[str, Any]) -> None:
        for listener in list(self.by_topic.get(topic, ())):
            try:
                await listener(message)
            except Exception:
                log.exception("bus listener failed", extra={"topic": topic})


class InProcessBus:
    """A bus for one process: publish calls the local listeners directly."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._listeners = _Listeners()

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        await self._listeners.dispatch(topic, {**message, "node": self.node_id})

    async def publish_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        for topic, message in messages:
            await self.publish(topic, message)

    async def subscribe(self, topic: str, listener: Listener) -> None:
        self._listeners.add(topic, listener)

    async def unsubscribe(self, topic: str, listener: Listener) -> None:
        self._listeners.remove(topic, listener)

    async def close(self) -> None:
        self._listeners.by_topic.clear()

    async def ping(self) -> bool:
        return True


class RedisBus:
    """A bus over Redis pub/sub, one channel per topic, with reconnecting reads."""

    def __init__(self, client: aioredis.Redis, namespace: str, node_id: str) -> None:
        self.node_id = node_id
        self._client = client
        self._prefix = f"{namespace}:bus:"
        self._listeners = _Listeners()
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []

    async def start(self) -> None:
        # A placeholder channel keeps the pub/sub connection open before any real topic.
        await self._pubsub.subscribe(self._prefix + "_node:" + self.node_id)
        self._reader = asyncio.create_task(self._read_forever(), name="redis-bus-reader")

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        payload = orjson.dumps({**message, "node": self.node_id})
        for attempt in range(3):
            try:
                await self._client.publish(self._prefix + topic, payload)
                return
            except (aioredis.ConnectionError, aioredis.TimeoutError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def publish_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish in order, in one round trip (a pipeline keeps the order)."""
        for attempt in range(3):
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for topic, message in messages:
                        pipe.publish(self._prefix + topic,
                                     orjson.dumps({**message, "node": self.node_id}))
                    await pipe.execute()
                return
            except (aioredis.ConnectionError, aioredis.TimeoutError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def subscribe(self, topic: str, listener: Listener) -> None:
        async with self._lock:
            if self._listeners.add(topic, listener):
                await self._pubsub.subscribe(self._prefix + topic)

    async def unsubscribe(self, topic: str, listener: Listener) -> None:
        async with self._lock:
            if self._listeners.remove(topic, listener):
                await self._pubsub.unsubscribe(self._prefix + topic)

    async def _read_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(timeout=5.0)
                delay = 0.1
                if message is None or message.get("type") != "message":
                    continue
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                await self._listeners.dispatch(
                    channel[len(self._prefix) :], orjson.loads(message["data"])
                )
            except asyncio.CancelledError:
                raise
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                log.warning("redis bus connection lost; resubscribing", extra={"delay": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                await self._resubscribe()
            except Exception:
                log.exception("redis bus message could not be handled")

    async def _resubscribe(self) -> None:
        try:
            async with self._lock:
                channels = [self._prefix + t for t in self._listeners.by_topic]
                channels.append(self._prefix + "_node:" + self.node_id)
                await self._pubsub.subscribe(*channels)
            for hook in self.on_reconnect:
                await hook()
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
            pass

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        return bool(await self._client.ping())
