"""Dead letters on RabbitMQ: list, replay and purge `<namespace>.<queue>.dead`.

Listing takes messages with basic.get and hands every one back (nack with requeue),
so looking loses nothing. Replaying publishes a copy to the main queue with the
attempt counter at 1, waits for the broker's confirm, and only then acks the dead
copy: a crash in between leaves a duplicate job, never a lost one (and the
handlers are idempotent). The in-process queue keeps its dead letters in the
server's memory, where no other process can reach them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue

from jobs.queue import ATTEMPT_HEADER

PREVIEW_BYTES = 120


class NoSuchQueue(Exception):
    """The queue was never declared: no worker consumed it yet, or the name is wrong."""


@dataclass(frozen=True)
class DeadLetter:
    job_id: str | None
    type: str | None
    attempts: int | None
    size: int
    preview: str


def describe(body: bytes, headers: dict[str, Any] | None) -> DeadLetter:
    """What a dead message is, even when its body is not a JSON job."""
    job: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        job = orjson.loads(body)
    job_id = job.get("id") if isinstance(job, dict) else None
    kind = job.get("type") if isinstance(job, dict) else None
    attempt = (headers or {}).get(ATTEMPT_HEADER)
    preview = body[:PREVIEW_BYTES].decode("utf-8", "replace")
    return DeadLetter(
        job_id=str(job_id) if job_id is not None else None,
        type=str(kind) if kind is not None else None,
        attempts=attempt if isinstance(attempt, int) else None,
        size=len(body),
        preview=preview + ("..." if len(body) > PREVIEW_BYTES else ""),
    )


class DeadLetters:
    """One job queue's dead letters; use as `async with DeadLetters(url, ns, queue) as dl`."""

    def __init__(self, url: str, namespace: str, queue: str) -> None:
        self.url = url
        self.main_name = f"{namespace}.{queue}"
        self.dead_name = f"{self.main_name}.dead"
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._dead: AbstractQueue | None = None

    async def __aenter__(self) -> DeadLetters:
        self._connection = await aio_pika.connect(self.url)
        # on_return_raises: a replay to a queue that does not exist fails loudly.
        self._channel = await self._connection.channel(publisher_confirms=True,
                                                       on_return_raises=True)
        for name in (self.dead_name, self.main_name):
            try:
                found = await self._channel.get_queue(name, ensure=True)
            except aio_pika.exceptions.ChannelClosed:
                await self._connection.close()
                raise NoSuchQueue(name) from None
            if name == self.dead_name:
                self._dead = found
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    @property
    def dead(self) -> AbstractQueue:
        assert self._dead is not None, "use DeadLetters as an async context manager"
        return self._dead

    async def count(self) -> int:
        declared = await self.dead.declare()
        return int(declared.message_count or 0)

    async def _take(self, limit: int) -> list[AbstractIncomingMessage]:
        taken: list[AbstractIncomingMessage] = []
        while len(taken) < limit:
            message = await self.dead.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        return taken

    async def peek(self, limit: int) -> list[DeadLetter]:
        """Up to `limit` dead jobs, oldest first; all of them stay in the queue."""
        taken = await self._take(limit)
        try:
            return [describe(m.body, dict(m.headers or {})) for m in taken]
        finally:
            for message in taken:
                await message.nack(requeue=True)

    async def replay(self, job_id: str | None) -> list[DeadLetter]:
        """Move the job with this id (None: every dead job) back to the main queue."""
        assert self._channel is not None
        # Only what is dead now: a replayed job that fails again must not loop here.
        taken = await self._take(await self.count())
        replayed: list[DeadLetter] = []
        try:
            for message in taken:
                letter = describe(message.body, dict(message.headers or {}))
                if job_id is not None and letter.job_id != job_id:
                    continue
                await self._channel.default_exchange.publish(
                    aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                     content_type="application/json",
                                     headers={ATTEMPT_HEADER: 1}),
                    routing_key=self.main_name, mandatory=True,
                )
                await message.ack()
                replayed.append(letter)
        finally:
            for message in taken:
                if not message.processed:
                    await message.nack(requeue=True)
        return replayed

    async def purge(self) -> int:
        """Drop every dead job; returns how many there were."""
        result = await self.dead.purge()
        return int(result.message_count or 0)
