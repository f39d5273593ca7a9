"""The Redis bus: a node receives only the topics it subscribed to; revocations spread."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from channels.bus import InProcessBus, RedisBus
from channels.errors import RateLimited
from channels.ratelimit import MemoryRateLimiter, RedisRateLimiter, enforce, refuse_if_over
from channels.revocation import RevocationList
from tests.conftest import REDIS_URL


@pytest.fixture
async def redis_client(namespaces: list[str]) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    namespace = f"t{secrets.token_hex(5)}"
    namespaces.append(namespace)
    client = aioredis.from_url(REDIS_URL)
    yield client, namespace
    await client.aclose()


async def receive(messages: list[dict[str, Any]], count: int, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while len(messages) < count:
            await asyncio.sleep(0.01)


async def test_redis_bus_delivers_only_subscribed_topics(
    redis_client: tuple[aioredis.Redis, str],
) -> None:
    client, namespace = redis_client
    node_a = RedisBus(client, namespace, "a")
    node_b = RedisBus(client, namespace, "b")
    await node_a.start()
    await node_b.start()
    got_a: list[dict[str, Any]] = []
    got_b: list[dict[str, Any]] = []

    async def on_a(message: dict[str, Any]) -> None:
        got_a.append(message)

    async def on_b(message: dict[str, Any]) -> None:
        got_b.append(message)

    await node_a.subscribe("user:1", on_a)
    await node_b.subscribe("user:2", on_b)
    await node_b.publish("user:1", {"n": 1})
    await node_a.publish("user:2", {"n": 2})
    await receive(got_a, 1)
    await receive(got_b, 1)
    assert got_a == [{"n": 1, "node": "b"}]
    assert got_b == [{"n": 2, "node": "a"}]

    await node_a.unsubscribe("user:1", on_a)
    await node_b.publish("user:1", {"n": 3})
    await node_b.publish("user:2", {"n": 4})
    await receive(got_b, 2)
    assert got_a == [{"n": 1, "node": "b"}]
    await node_a.close()
    await node_b.close()


async def test_revocation_reaches_running_nodes_and_late_starters(
    redis_client: tuple[aioredis.Redis, str],
) -> None:
    client, namespace = redis_client
    bus_a, bus_b = RedisBus(client, namespace, "a"), RedisBus(client, namespace, "b")
    await bus_a.start()
    await bus_b.start()
    list_a = RevocationList(bus_a, 60, client, namespace)
    list_b = RevocationList(bus_b, 60, client, namespace)
    await list_a.start()
    await list_b.start()
    session = uuid.uuid4()
    assert not list_b.is_revoked(session)
    await list_a.revoke([session])
    assert list_a.is_revoked(session)
    async with asyncio.timeout(5):
        while not list_b.is_revoked(session):
            await asyncio.sleep(0.01)
    late = RevocationList(InProcessBus("c"), 60, client, namespace)
    await late.start()
    assert late.is_revoked(session)
    assert not late.is_revoked(uuid.uuid4())
    for item in (list_a, list_b, late):
        await item.stop()
    await bus_a.close()
    await bus_b.close()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_rate_limiter_windows(kind: str, redis_client: tuple[aioredis.Redis, str]) -> None:
    client, namespace = redis_client
    limiter = MemoryRateLimiter() if kind == "memory" else RedisRateLimiter(client, namespace)
    for _ in range(3):
        await enforce(limiter, "k", limit=3, window_s=60)
    with pytest.raises(RateLimited) as exc:
        await enforce(limiter, "k", limit=3, window_s=60)
    assert 1 <= exc.value.retry_after <= 60
    assert exc.value.details == {"retry_after": exc.value.retry_after}
    await refuse_if_over(limiter, "other", limit=1)
    await limiter.incr("other", 60)
    with pytest.raises(RateLimited):
        await refuse_if_over(limiter, "other", limit=1)
    await limiter.reset("other")
    await refuse_if_over(limiter, "other", limit=1)
    assert await limiter.peek("never") == (0, 0)
