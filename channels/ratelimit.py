"""Fixed-window counters for rate limits: in-process, or in Redis shared by every node."""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis

from handlers.errors import RateLimited


class RateLimiter(Protocol):
    async def incr(self, key: str, window_s: int) -> tuple[int, int]:
        """Count one event; returns (count in this window, seconds until it resets)."""
        ...

    async def peek(self, key: str) -> tuple[int, int]:
        """The current (count, seconds until reset) without counting."""
        ...

    async def reset(self, key: str) -> None: ...


async def enforce(limiter: RateLimiter, key: str, limit: int, window_s: int) -> None:
    """Count one event and refuse it with rate_limited once the window's limit is passed."""
    count, ttl = await limiter.incr(key, window_s)
    if count > limit:
        raise RateLimited(ttl)


async def refuse_if_over(limiter: RateLimiter, key: str, limit: int) -> None:
    """Refuse without counting when a failure counter has already reached its limit."""
    count, ttl = await limiter.peek(key)
    if count >= limit:
        raise RateLimited(ttl)


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}

    async def incr(self, key: str, window_s: int) -> tuple[int, int]:
        now = time.monotonic()
        count, reset_at = self._windows.get(key, (0, now + window_s))
        if reset_at <= now:
            count, reset_at = 0, now + window_s
        count += 1
        self._windows[key] = (count, reset_at)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        return count, max(1, int(reset_at - now + 0.999))

    async def peek(self, key: str) -> tuple[int, int]:
        now = time.monotonic()
        count, reset_at = self._windows.get(key, (0, now))
        if reset_at <= now:
            return 0, 0
        return count, max(1, int(reset_at - now + 0.999))

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)


class RedisRateLimiter:
    # INCR, and start the window's clock only on the first event of the window.
    _INCR = """
    local count = redis.call('INCR', KEYS[1])
    if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
    local ttl = redis.call('TTL', KEYS[1])
    if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
    return {count, ttl}
    """

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}:rl:"
        self._script = client.register_script(self._INCR)

    async def incr(self, key: str, window_s: int) -> tuple[int, int]:
        count, ttl = await self._script(keys=[self._prefix + key], args=[window_s])
        return int(count), max(1, int(ttl))

    async def peek(self, key: str) -> tuple[int, int]:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(self._prefix + key)
            pipe.ttl(self._prefix + key)
            raw, ttl = await pipe.execute()
        if raw is None:
            return 0, 0
        return int(raw), max(1, int(ttl))

    async def reset(self, key: str) -> None:
        await self._client.delete(self._prefix + key)
