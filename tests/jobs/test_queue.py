"""Work queues on real RabbitMQ and in-process: delivery, retries with backoff, dead letters."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from jobs.queue import AmqpQueue, InProcessQueue, QueueUnavailable, RetryPolicy, new_job
from tests.conftest import AMQP_URL

FAST_RETRY = RetryPolicy(max_attempts=3, first_delay_s=0.05, max_delay_s=0.2)


@pytest.fixture
async def amqp_queue(namespaces: list[str]) -> AsyncIterator[AmqpQueue]:
    namespace = f"t{secrets.token_hex(5)}"
    namespaces.append(namespace)
    queue = AmqpQueue(AMQP_URL, namespace, FAST_RETRY)
    await queue.connect()
    yield queue
    await queue.close()
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for suffix in ("", ".dead", *(f".retry.{n}" for n in range(1, FAST_RETRY.max_attempts))):
            await channel.queue_delete(f"{namespace}.jobs{suffix}")


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_amqp_delivers_each_job_once(amqp_queue: AmqpQueue) -> None:
    seen: list[str] = []

    async def handler(job: dict[str, Any]) -> None:
        seen.append(job["id"])

    await amqp_queue.consume("jobs", handler, prefetch=5)
    jobs = [new_job("test", n=i) for i in range(20)]
    for job in jobs:
        await amqp_queue.publish("jobs", job)
    await wait_until(lambda: len(seen) >= 20)
    await asyncio.sleep(0.1)
    assert sorted(seen) == sorted(j["id"] for j in jobs)


async def test_amqp_failing_job_is_retried_then_dead_lettered(amqp_queue: AmqpQueue) -> None:
    attempts: list[int] = []

    async def handler(job: dict[str, Any]) -> None:
        attempts.append(1)
        raise RuntimeError("poison")

    await amqp_queue.consume("jobs", handler)
    job = new_job("poison")
    await amqp_queue.publish("jobs", job)
    await wait_until(lambda: len(attempts) >= FAST_RETRY.max_attempts)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        dead = await channel.declare_queue(f"{amqp_queue.namespace}.jobs.dead", durable=True)
        message = None
        for _ in range(100):
            message = await dead.get(fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.05)
        assert message is not None, "the job never reached the dead-letter queue"
        assert b'"poison"' in message.body
        await message.ack()
    await asyncio.sleep(0.3)
    assert len(attempts) == FAST_RETRY.max_attempts


async def test_amqp_job_that_fails_once_succeeds_on_retry(amqp_queue: AmqpQueue) -> None:
    calls: list[str] = []

    async def handler(job: dict[str, Any]) -> None:
        calls.append(job["id"])
        if len(calls) == 1:
            raise RuntimeError("transient")

    await amqp_queue.consume("jobs", handler)
    await amqp_queue.publish("jobs", new_job("flaky"))
    await wait_until(lambda: len(calls) >= 2)
    assert calls[0] == calls[1]


async def test_amqp_batched_publishes_share_a_message_and_a_failed_job_retries_alone(
    amqp_queue: AmqpQueue,
) -> None:
    calls: list[int] = []

    async def handler(job: dict[str, Any]) -> None:
        calls.append(job["n"])
        if job["n"] == 3 and calls.count(3) == 1:
            raise RuntimeError("transient")

    # The first publish declares the queue; the next five, published in one loop turn,
    # travel as one RabbitMQ message (two in the queue in all).
    jobs = [new_job("t", n=i) for i in range(6)]
    await amqp_queue.publish("jobs", jobs[0], batch=True)
    await asyncio.gather(*(amqp_queue.publish("jobs", job, batch=True) for job in jobs[1:]))
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        main = await channel.declare_queue(f"{amqp_queue.namespace}.jobs", durable=True)
        assert main.declaration_result.message_count == 2
    await amqp_queue.consume("jobs", handler)
    await wait_until(lambda: len(calls) >= 7)
    await asyncio.sleep(0.3)
    # Each job ran once, except the failed one, which alone came back from the retry queue.
    assert sorted(calls) == [0, 1, 2, 3, 3, 4, 5]


async def test_unreachable_broker_fails_fast() -> None:
    with socket_closed_port() as port:
        queue = AmqpQueue(f"amqp://guest:guest@127.0.0.1:{port}/", "tdown", publish_timeout_s=2)
        with pytest.raises(QueueUnavailable, match="did not answer"):
            await queue.connect()
        with pytest.raises(QueueUnavailable):
            await queue.publish("jobs", new_job("x"))


async def test_in_process_queue_retries_and_dead_letters() -> None:
    queue = InProcessQueue(FAST_RETRY)
    calls: list[int] = []

    async def handler(job: dict[str, Any]) -> None:
        calls.append(job["n"])
        if job["n"] == 0:
            raise RuntimeError("poison")

    await queue.consume("jobs", handler, prefetch=2)
    await queue.publish("jobs", new_job("t", n=0))
    await queue.publish("jobs", new_job("t", n=1))
    await wait_until(lambda: len(queue.dead.get("jobs", [])) == 1)
    assert calls.count(0) == FAST_RETRY.max_attempts
    assert calls.count(1) == 1
    await queue.close()


class socket_closed_port:
    """A local port with nothing listening on it."""

    def __enter__(self) -> int:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        sock.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        return None
