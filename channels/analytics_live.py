"""Live analytics counters: events and unique visitors per subject per UTC day.

The analytics worker adds each newly stored event about an item, story, slide or profile
here, after its batch committed, so insights can read today's figures within a second or
two instead of waiting for a roll-up query. The roll-up tables stay the truth: a worker
that dies between its commit and this update leaves the live figure a few events short,
never over (a redelivered event is not new, so it is not counted again).

Redis keys (all of them are named here and nowhere else), `{ns}` being HOTSPOT_NAMESPACE:

- `{ns}:an:c:{YYYYMMDD}:{name}:{subject_id}`: a counter (INCRBY), events that day;
- `{ns}:an:u:{YYYYMMDD}:{name}:{subject_id}`: a HyperLogLog (PFADD) of who did them
  (the user id, else `ip:` + the daily-salted IP hash); about 0.8 % standard error.

Both expire LIVE_TTL_S after their day began: older days are read from the roll-ups.
Without Redis (the embedded default, one process) the same interface counts in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

import redis.asyncio as aioredis

# Subjects whose views and reach insights show live.
LIVE_SUBJECT_TYPES = frozenset({"item", "story", "slide", "user"})
# Today and yesterday stay readable whatever the reader's time zone.
LIVE_TTL_S = 3 * 24 * 3600


@dataclass(frozen=True)
class LiveHit:
    """One stored event, as the live counters see it."""

    name: str
    subject_id: uuid.UUID
    day: date
    # Who did it, for unique counts; None counts the event but no visitor.
    visitor: str | None


def visitor_of(user_id: uuid.UUID | None, ip_hash: str | None) -> str | None:
    if user_id is not None:
        return str(user_id)
    return None if ip_hash is None else f"ip:{ip_hash}"


def count_key(namespace: str, name: str, subject_id: uuid.UUID, day: date) -> str:
    return f"{namespace}:an:c:{day:%Y%m%d}:{name}:{subject_id}"


def uniques_key(namespace: str, name: str, subject_id: uuid.UUID, day: date) -> str:
    return f"{namespace}:an:u:{day:%Y%m%d}:{name}:{subject_id}"


def _expires_at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(seconds=LIVE_TTL_S)


class LiveCounters(Protocol):
    async def add(self, hits: Sequence[LiveHit]) -> None:
        """Count these events (one round trip to Redis for the whole batch)."""
        ...

    async def count(self, name: str, subject_id: uuid.UUID, day: date) -> int: ...

    async def uniques(self, name: str, subject_id: uuid.UUID, day: date) -> int: ...


def _grouped(hits: Sequence[LiveHit]) -> dict[tuple[str, uuid.UUID, date], tuple[int, set[str]]]:
    grouped: dict[tuple[str, uuid.UUID, date], tuple[int, set[str]]] = {}
    for hit in hits:
        count, visitors = grouped.get((hit.name, hit.subject_id, hit.day), (0, set()))
        if hit.visitor is not None:
            visitors.add(hit.visitor)
        grouped[(hit.name, hit.subject_id, hit.day)] = (count + 1, visitors)
    return grouped


class RedisLiveCounters:
    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._client = client
        self._namespace = namespace

    async def add(self, hits: Sequence[LiveHit]) -> None:
        if not hits:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for (name, subject_id, day), (count, visitors) in _grouped(hits).items():
                expires = int(_expires_at(day).timestamp())
                key = count_key(self._namespace, name, subject_id, day)
                pipe.incrby(key, count)
                pipe.expireat(key, expires)
                if visitors:
                    hll = uniques_key(self._namespace, name, subject_id, day)
                    pipe.pfadd(hll, *sorted(visitors))
                    pipe.expireat(hll, expires)
            await pipe.execute()

    async def count(self, name: str, subject_id: uuid.UUID, day: date) -> int:
        value = await self._client.get(count_key(self._namespace, name, subject_id, day))
        return int(value or 0)

    async def uniques(self, name: str, subject_id: uuid.UUID, day: date) -> int:
        return int(await self._client.pfcount(uniques_key(self._namespace, name, subject_id, day)))


class MemoryLiveCounters:
    """The embedded default: exact counts in this process, forgotten on restart."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, uuid.UUID, date], int] = {}
        self._visitors: dict[tuple[str, uuid.UUID, date], set[str]] = {}

    async def add(self, hits: Sequence[LiveHit]) -> None:
        for key, (count, visitors) in _grouped(hits).items():
            self._counts[key] = self._counts.get(key, 0) + count
            self._visitors.setdefault(key, set()).update(visitors)
        # Expire like the Redis keys do, so a long-running process does not grow forever.
        now = datetime.now(UTC)
        for key in [k for k in self._counts if _expires_at(k[2]) <= now]:
            self._counts.pop(key, None)
            self._visitors.pop(key, None)

    async def count(self, name: str, subject_id: uuid.UUID, day: date) -> int:
        return self._counts.get((name, subject_id, day), 0)

    async def uniques(self, name: str, subject_id: uuid.UUID, day: date) -> int:
        return len(self._visitors.get((name, subject_id, day), set()))
