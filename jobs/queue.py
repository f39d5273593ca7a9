"""Work queues: RabbitMQ with publisher confirms, or an in-process queue with the same format.

A job is a JSON object. A handler that raises has the job retried with
exponential backoff: it waits in `<queue>.retry.<attempt>`, a queue whose TTL is
that attempt's delay and which dead-letters back to the main queue (one queue per
delay, because RabbitMQ expires only the head of a queue). After max_attempts the
job lands in `<queue>.dead`.

`publish(..., batch=True)` lets RabbitMQ carry the jobs published in the same event
loop turn as one confirmed message (a JSON array, `x-batch` header): each publisher
still returns only once the broker confirmed the message holding its job. The consumer
handles a batch's jobs side by side and acks the message once all of them finished;
a job that failed goes on to the retry queues alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection

log = logging.getLogger(__name__)

JobHandler = Callable[[dict[str, Any]], Awaitable[None]]
ATTEMPT_HEADER = "x-attempt"
BATCH_HEADER = "x-batch"
# Jobs per batched message: bounds the message size and a redelivery's work.
BATCH_MAX_JOBS = 200


class QueueUnavailable(Exception):
    """The broker did not take the job (down, unreachable, or no confirm in time)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_delay_s: float = 1.0
    max_delay_s: float = 300.0

    def delay_after(self, attempt: int) -> float:
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1)))


class JobQueue(Protocol):
    async def publish(self, queue: str, job: dict[str, Any], *, batch: bool = False) -> None: ...
    async def consume(self, queue: str, handler: JobHandler, prefetch: int = 10) -> None: ...
    async def stop_consuming(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...


def new_job(kind: str, **fields: Any) -> dict[str, Any]:
    """A job with a unique id, so handlers can recognise a redelivery."""
    return {"id": str(uuid.uuid4()), "type": kind, **fields}


@dataclass
class _Flight:
    """Jobs being handled now, so a stop can wait for them to finish."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def wait(self, limit_s: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=limit_s)


class InProcessQueue:
    """Queues inside this process: the embedded default; same jobs, retries and dead letters."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self._queues: dict[str, asyncio.Queue[tuple[bytes, int]]] = {}
        self._consumers: list[asyncio.Task[None]] = []
        self._flight = _Flight()
        self.dead: dict[str, list[dict[str, Any]]] = {}

    def _queue(self, name: str) -> asyncio.Queue[tuple[bytes, int]]:
        return self._queues.setdefault(name, asyncio.Queue())

    async def publish(self, queue: str, job: dict[str, Any], *, batch: bool = False) -> None:
        self._queue(queue).put_nowait((orjson.dumps(job), 1))

    async def consume(self, queue: str, handler: JobHandler, prefetch: int = 10) -> None:
        for _ in range(prefetch):
            self._consumers.append(asyncio.create_task(self._consume(queue, handler)))

    async def _consume(self, name: str, handler: JobHandler) -> None:
        queue = self._queue(name)
        while True:
            body, attempt = await queue.get()
            task = asyncio.create_task(self._handle(name, handler, body, attempt))
            self._flight.tasks.add(task)
            task.add_done_callback(self._flight.tasks.discard)
            # Shield: a stop lets the job in hand finish instead of cancelling it mid-way.
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def _handle(self, name: str, handler: JobHandler, body: bytes, attempt: int) -> None:
        job = orjson.loads(body)
        try:
            await handler(job)
        except Exception:
            log.exception("job failed", extra={"queue": name, "job_id": job.get("id"),
                                               "attempt": attempt})
            if attempt >= self.policy.max_attempts:
                self.dead.setdefault(name, []).append(job)
                return
            delay = self.policy.delay_after(attempt)
            asyncio.get_running_loop().call_later(
                delay, self._queue(name).put_nowait, (body, attempt + 1)
            )

    async def stop_consuming(self) -> None:
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers.clear()
        await self._flight.wait(limit_s=10)

    async def close(self) -> None:
        await self.stop_consuming()

    async def ping(self) -> bool:
        return True


class AmqpQueue:
    """Durable RabbitMQ queues: persistent messages, publisher confirms, manual acks."""

    def __init__(
        self, url: str, namespace: str, policy: RetryPolicy | None = None,
        publish_timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.policy = policy or RetryPolicy()
        self.publish_timeout_s = publish_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._declared: set[str] = set()
        self._consumers: list[tuple[aio_pika.abc.AbstractQueue, str]] = []
        self._consumer_channels: list[aio_pika.abc.AbstractChannel] = []
        self._flight = _Flight()
        # Consumers asked for while RabbitMQ was unreachable, attached once it answers.
        self._wanted: list[tuple[str, JobHandler, int]] = []
        self._reconnector: asyncio.Task[None] | None = None
        # Batched publishes waiting for the end of this loop turn, per queue.
        self._outgoing: dict[str, list[tuple[bytes, asyncio.Future[None]]]] = {}
        self._publishing: set[asyncio.Task[None]] = set()
        # Queues with a batch waiting for its confirm: the next batch goes when it returns.
        self._in_flight: set[str] = set()

    def queue_name(self, queue: str) -> str:
        return f"{self.namespace}.{queue}"

    async def connect(self) -> None:
        """Connect now or raise QueueUnavailable."""
        try:
            connection = await asyncio.wait_for(
                aio_pika.connect_robust(self.url), timeout=self.publish_timeout_s
            )
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            raise QueueUnavailable(f"RabbitMQ at {_safe(self.url)} did not answer: {exc}") from exc
        self._channel = await connection.channel(publisher_confirms=True)
        self._connection = connection
        for queue, handler, prefetch in self._wanted:
            await self._attach(queue, handler, prefetch)
        self._wanted.clear()

    async def connect_in_background(self) -> None:
        """Connect, or keep trying in the background: meanwhile publish fails fast."""
        try:
            await self.connect()
        except QueueUnavailable as exc:
            log.warning("RabbitMQ unreachable; retrying in the background", extra={"error": str(exc)})
            self._reconnector = asyncio.create_task(self._reconnect_forever())

    async def _reconnect_forever(self) -> None:
        delay = 0.5
        while self._connection is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            try:
                await self.connect()
                log.info("RabbitMQ connected")
            except QueueUnavailable:
                continue

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def _declare(self, channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
        name = self.queue_name(queue)
        await channel.declare_queue(name, durable=True)
        for attempt in range(1, self.policy.max_attempts):
            await channel.declare_queue(
                f"{name}.retry.{attempt}",
                durable=True,
                arguments={
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": name,
                    "x-message-ttl": int(self.policy.delay_after(attempt) * 1000),
                },
            )
        await channel.declare_queue(f"{name}.dead", durable=True)

    async def _publish_raw(
        self, routing_key: str, body: bytes, attempt: int, batch: int = 0
    ) -> None:
        if not self.connected or self._channel is None or self._channel.is_closed:
            raise QueueUnavailable("RabbitMQ is not connected")
        headers: dict[str, Any] = {ATTEMPT_HEADER: attempt}
        if batch:
            headers[BATCH_HEADER] = batch
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
            headers=headers,
        )
        try:
            await asyncio.wait_for(
                self._channel.default_exchange.publish(message, routing_key=routing_key),
                timeout=self.publish_timeout_s,
            )
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError, RuntimeError) as exc:
            raise QueueUnavailable(f"RabbitMQ did not confirm the job: {exc!r}") from exc

    async def publish(self, queue: str, job: dict[str, Any], *, batch: bool = False) -> None:
        """Return once RabbitMQ confirmed the job (alone, or batched with this turn's others)."""
        if queue not in self._declared:
            if self._channel is None or not self.connected:
                raise QueueUnavailable("RabbitMQ is not connected")
            try:
                await self._declare(self._channel, queue)
            except (OSError, aio_pika.exceptions.AMQPError, RuntimeError) as exc:
                raise QueueUnavailable(f"RabbitMQ refused the queue: {exc!r}") from exc
            self._declared.add(queue)
        if not batch:
            await self._publish_raw(self.queue_name(queue), orjson.dumps(job), 1)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._outgoing.setdefault(queue, [])
        if not waiting and queue not in self._in_flight:
            # Publish at the end of this loop turn (no timer, so no added latency); while a
            # batch awaits its confirm, jobs gather and go when it returns, so batches grow
            # with the load.
            asyncio.get_running_loop().call_soon(self._flush_outgoing, queue)
        waiting.append((orjson.dumps(job), future))
        await future

    def _flush_outgoing(self, queue: str) -> None:
        waiting = self._outgoing.pop(queue, [])
        if not waiting:
            return
        self._in_flight.add(queue)
        task = asyncio.create_task(self._publish_batches(queue, waiting))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_batches(self, queue: str,
                               waiting: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        try:
            await asyncio.gather(*(self._publish_batch(queue, waiting[start : start + BATCH_MAX_JOBS])
                                   for start in range(0, len(waiting), BATCH_MAX_JOBS)))
        finally:
            self._in_flight.discard(queue)
            self._flush_outgoing(queue)

    async def _publish_batch(self, queue: str,
                             waiting: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        outcome: Exception | None = QueueUnavailable("publishing was cancelled")
        try:
            if len(waiting) == 1:
                await self._publish_raw(self.queue_name(queue), waiting[0][0], 1)
            else:
                body = b"[" + b",".join(body for body, _ in waiting) + b"]"
                await self._publish_raw(self.queue_name(queue), body, 1, batch=len(waiting))
            outcome = None
        except Exception as exc:
            outcome = exc
        finally:
            for _, future in waiting:
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)

    async def consume(self, queue: str, handler: JobHandler, prefetch: int = 10) -> None:
        if self._connection is None:
            self._wanted.append((queue, handler, prefetch))
            return
        await self._attach(queue, handler, prefetch)

    async def _attach(self, queue: str, handler: JobHandler, prefetch: int) -> None:
        assert self._connection is not None
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        await self._declare(channel, queue)
        amqp_queue = await channel.get_queue(self.queue_name(queue))

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._flight.tasks.add(task)
            try:
                await self._handle(queue, handler, message)
            finally:
                if task is not None:
                    self._flight.tasks.discard(task)

        tag = await amqp_queue.consume(on_message, no_ack=False)
        self._consumers.append((amqp_queue, tag))
        self._consumer_channels.append(channel)

    async def _handle(
        self, queue: str, handler: JobHandler, message: AbstractIncomingMessage
    ) -> None:
        headers = message.headers or {}
        raw_attempt = headers.get(ATTEMPT_HEADER, 1)
        attempt = raw_attempt if isinstance(raw_attempt, int) else 1
        batched = bool(headers.get(BATCH_HEADER))
        try:
            decoded = orjson.loads(message.body)
        except orjson.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, list if batched else dict) or \
                (batched and not all(isinstance(job, dict) for job in decoded)):
            log.error("job is not JSON; dead-lettered", extra={"queue": queue})
            await self._publish_raw(f"{self.queue_name(queue)}.dead", message.body, attempt)
            await message.ack()
            return
        jobs = cast(list[dict[str, Any]], decoded if batched else [decoded])
        if len(jobs) == 1:
            failed = [] if await self._run_job(queue, handler, jobs[0], attempt) else jobs
        else:
            done = await asyncio.gather(*(self._run_job(queue, handler, job, attempt)
                                          for job in jobs))
            failed = [job for job, ok in zip(jobs, done, strict=True) if not ok]
        try:
            for job in failed:
                body = orjson.dumps(job) if batched else message.body
                if attempt >= self.policy.max_attempts:
                    await self._publish_raw(f"{self.queue_name(queue)}.dead", body, attempt)
                else:
                    await self._publish_raw(
                        f"{self.queue_name(queue)}.retry.{attempt}", body, attempt + 1
                    )
        except QueueUnavailable:
            # The whole message comes back: its jobs that did finish must be safe to repeat.
            await message.nack(requeue=True)
            return
        await message.ack()

    @staticmethod
    async def _run_job(queue: str, handler: JobHandler, job: dict[str, Any], attempt: int) -> bool:
        """Handle one job; False when it failed and must be retried."""
        try:
            await handler(job)
        except Exception:
            log.exception("job failed", extra={"queue": queue, "job_id": job.get("id"),
                                               "attempt": attempt})
            return False
        return True

    async def stop_consuming(self) -> None:
        """Stop taking jobs, let the ones in hand finish; unacked ones go back to the queue."""
        for amqp_queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await amqp_queue.cancel(tag)
        self._consumers.clear()
        await self._flight.wait(limit_s=10)
        for channel in self._consumer_channels:
            with contextlib.suppress(Exception):
                await channel.close()
        self._consumer_channels.clear()

    async def close(self) -> None:
        if self._publishing:
            await asyncio.wait(self._publishing, timeout=self.publish_timeout_s)
        if self._reconnector is not None:
            self._reconnector.cancel()
            await asyncio.gather(self._reconnector, return_exceptions=True)
        await self.stop_consuming()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def ping(self) -> bool:
        return self.connected


def _safe(url: str) -> str:
    """A URL with its password hidden, for messages and logs."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
