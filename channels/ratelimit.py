"""Fixed-window counters for rate limits: in-process, or in Redis shared by every node."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import redis.asyncio as aioredis

from channels.errors import RateLimited


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
        # Counts asked for in this event loop turn, sent together at its end.
        self._turn: list[tuple[str, int, asyncio.Future[tuple[int, int]]]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._counting = False

    async def incr(self, key: str, window_s: int) -> tuple[int, int]:
        # Every count is still one atomic script run in Redis (the limit stays exact across
        # nodes); the counts of one loop turn, or asked for while the previous round trip
        # was out, just share a round trip.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, int]] = loop.create_future()
        if not self._turn and not self._counting:
            loop.call_soon(self._send_turn)
        self._turn.append((self._prefix + key, window_s, future))
        return await future

    def _send_turn(self) -> None:
        turn, self._turn = self._turn, []
        if not turn:
            return
        self._counting = True
        task = asyncio.create_task(self._count(turn))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _count(self, turn: list[tuple[str, int, asyncio.Future[tuple[int, int]]]]) -> None:
        try:
            await self._count_now(turn)
        finally:
            self._counting = False
            self._send_turn()

    async def _count_now(self, turn: list[tuple[str, int, asyncio.Future[tuple[int, int]]]]
                         ) -> None:
        try:
            if len(turn) == 1:
                results = [await self._script(keys=[turn[0][0]], args=[turn[0][1]])]
            else:
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for key, window_s, _ in turn:
                            pipe.evalsha(self._script.sha, 1, key, window_s)
                        results = await pipe.execute()
                except aioredis.ResponseError as exc:
                    if "NOSCRIPT" not in str(exc):
                        raise
                    # The script is not loaded yet (or Redis restarted): one by one loads it.
                    results = [await self._script(keys=[key], args=[window_s])
                               for key, window_s, _ in turn]
        except Exception as exc:
            for _, _, future in turn:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), (count, ttl) in zip(turn, results, strict=True):
            if not future.done():
                future.set_result((int(count), max(1, int(ttl))))

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
