"""Dead letters on real RabbitMQ through the real `hotspot dlq` command: list, replay, purge."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from config import Settings
from jobs.outreach import QUEUE
from jobs.queue import AmqpQueue, RetryPolicy, new_job
from storage.db import Database
from storage.migrate import migrate
from tests.conftest import AMQP_URL, MailSink, process_env
from tests.workers.outreach_helpers import eventually
from workers.delivery import OutboxSms, SmtpMailer
from workers.outreach import OutreachWorker

HOTSPOT = str(Path(sys.executable).parent / "hotspot")
FAST_RETRY = RetryPolicy(max_attempts=3, first_delay_s=0.05, max_delay_s=0.2)


async def hotspot(settings: Settings, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        HOTSPOT, *args, env=process_env(settings, **env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Deployment:
    """An outreach worker with a bug that can be fixed, counting every run of each job."""

    def __init__(self, worker: OutreachWorker) -> None:
        self.worker = worker
        self.buggy = True
        self.runs: Counter[str] = Counter()

    async def handle(self, job: dict[str, Any]) -> None:
        self.runs[job["id"]] += 1
        if self.buggy:
            raise RuntimeError("bug in the handler")
        await self.worker.handle(job)


@pytest.fixture
async def deployment(settings: Settings) -> AsyncIterator[tuple[Deployment, AmqpQueue]]:
    assert settings.database_url is not None and settings.smtp_url is not None
    await migrate(settings.database_url)
    db = await Database.connect(settings.database_url, 1, 3)
    queue = AmqpQueue(AMQP_URL, settings.namespace, FAST_RETRY)
    await queue.connect()
    deployed = Deployment(OutreachWorker(SmtpMailer(settings.smtp_url), OutboxSms(settings.outbox_dir),
                                         settings.mail_from, db))
    await queue.consume(QUEUE, deployed.handle)
    yield deployed, queue
    await queue.close()
    await db.close()


async def dead_count(settings: Settings) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{settings.namespace}.{QUEUE}.dead", ensure=True)
        declared = await queue.declare()
        return int(declared.message_count or 0)


async def wait_dead(settings: Settings, count: int) -> None:
    async def reached() -> bool:
        return await dead_count(settings) == count

    await eventually(reached)


def mail_job(to: str) -> dict[str, Any]:
    return new_job("email", to=to, template="password_reset", params={
        "display_name": "Ann", "link": "https://x.test/r", "token": "tok", "valid_minutes": 60})


async def test_poison_job_is_listed_then_replayed_once_the_bug_is_fixed(
    settings: Settings, deployment: tuple[Deployment, AmqpQueue], mail: MailSink
) -> None:
    deployed, queue = deployment
    job = mail_job("poison@example.com")
    await queue.publish(QUEUE, job)
    await wait_dead(settings, 1)
    assert deployed.runs[job["id"]] == FAST_RETRY.max_attempts

    for _ in range(2):  # listing twice shows the same job: looking loses nothing
        code, out, err = await hotspot(settings, "dlq", "list", QUEUE)
        assert code == 0, err
        assert f"{job['id']}  type=email  attempts={FAST_RETRY.max_attempts}" in out
        assert "poison@example.com" in out
        assert f"1 dead job(s) in {settings.namespace}.{QUEUE}.dead" in out

    code, _, err = await hotspot(settings, "dlq", "replay", QUEUE, "--id", "no-such-job")
    assert code == 1 and "no dead job 'no-such-job'" in err
    assert await dead_count(settings) == 1

    deployed.buggy = False
    code, out, err = await hotspot(settings, "dlq", "replay", QUEUE, "--id", job["id"])
    assert code == 0, err
    assert f"replayed {job['id']}" in out
    await mail.wait_for("poison@example.com", "Reset your HotSpot password")
    assert deployed.runs[job["id"]] == FAST_RETRY.max_attempts + 1
    code, out, _ = await hotspot(settings, "dlq", "list", QUEUE)
    assert "0 dead job(s)" in out
    assert len(mail.to("poison@example.com")) == 1


async def test_replay_all_resets_the_attempts_and_purge_empties(
    settings: Settings, deployment: tuple[Deployment, AmqpQueue]
) -> None:
    deployed, queue = deployment
    jobs = [mail_job(f"p{i}@example.com") for i in range(2)]
    for job in jobs:
        await queue.publish(QUEUE, job)
    await wait_dead(settings, 2)
    code, out, err = await hotspot(settings, "dlq", "replay", QUEUE, "--all")
    assert code == 0, err
    assert "2 job(s) moved back" in out
    # Still buggy: each job gets a full new round of attempts, then is dead again.
    await wait_dead(settings, 2)

    async def second_round_done() -> bool:
        return all(deployed.runs[j["id"]] == 2 * FAST_RETRY.max_attempts for j in jobs)

    await eventually(second_round_done)
    code, out, err = await hotspot(settings, "dlq", "purge", QUEUE)
    assert code == 0, err
    assert "purged 2 dead job(s)" in out
    assert await dead_count(settings) == 0


async def test_a_message_that_is_not_json_is_listed_by_its_first_bytes(
    settings: Settings, deployment: tuple[Deployment, AmqpQueue]
) -> None:
    del deployment  # only its consumer matters: it dead-letters what is not JSON
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"\x00garbage" + b"x" * 300),
                                               routing_key=f"{settings.namespace}.{QUEUE}")
    await wait_dead(settings, 1)
    code, out, err = await hotspot(settings, "dlq", "list", QUEUE, "--limit", "5")
    assert code == 0, err
    line = out.splitlines()[0]
    assert line.startswith("(no id)  type=?  attempts=1  bytes=308")
    assert line.endswith("x...")


async def test_dlq_errors_are_clear(settings: Settings) -> None:
    code, _, err = await hotspot(settings, "dlq", "list", "no_such_queue")
    assert code == 1 and "no queue" in err and "Traceback" not in err
    code, _, err = await hotspot(settings, "dlq", "list", QUEUE, HOTSPOT_AMQP_URL="")
    assert code == 2 and "HOTSPOT_AMQP_URL" in err
    code, _, err = await hotspot(settings, "dlq", "replay", QUEUE)
    assert code == 2 and "--id" in err
