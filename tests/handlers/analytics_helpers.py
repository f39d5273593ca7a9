"""Read what the app published on its `analytics` queue, straight from RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson

from jobs.analytics import EVENTS_JOB, QUEUE
from tests.conftest import AMQP_URL


class AnalyticsTap:
    """Consumes the namespace's analytics queue (no worker runs in these tests)."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, name: str) -> None:
        self.channel = channel
        self.name = name
        self.events: list[dict[str, Any]] = []

    async def drain(self) -> None:
        queue = await self.channel.declare_queue(self.name, durable=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            body = orjson.loads(message.body)
            for job in body if isinstance(body, list) else [body]:
                assert job["type"] == EVENTS_JOB
                self.events.extend(job["events"])

    async def wait_for(self, name: str, count: int = 1, timeout: float = 10.0,
                       **match: Any) -> list[dict[str, Any]]:
        """The events named `name` (and matching `match`), once `count` of them arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.drain()
            found = [e for e in self.events if e["name"] == name
                     and all(e.get(k) == v for k, v in match.items())]
            if len(found) >= count or loop.time() > deadline:
                return found
            await asyncio.sleep(0.1)

    async def quiet(self, seconds: float = 1.5) -> list[dict[str, Any]]:
        """Everything published within `seconds` (the publisher flushes every 0.5 s)."""
        await asyncio.sleep(seconds)
        await self.drain()
        return self.events


@contextlib.asynccontextmanager
async def tap(namespace: str) -> AsyncIterator[AnalyticsTap]:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        name = f"{namespace}.{QUEUE}"
        yield AnalyticsTap(channel, name)
        for suffix in ["", ".dead", *(f".retry.{n}" for n in range(1, 12))]:
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.queue_delete(name + suffix)
