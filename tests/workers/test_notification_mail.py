"""Notifications by email and SMS: preferences, verified addresses, quiet hours, opt-outs, once only.

The notifications worker under test publishes to a RabbitMQ namespace of its own that nothing
consumes, so the outreach jobs a fan-out queued are read back exactly and handed to an outreach
worker that sends through the real aiosmtpd sink (and an SMS outbox).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest

from config import Settings
from config.clock import utc_now
from handlers.context import Services
from jobs.notifications import stored_job
from jobs.outreach import QUEUE as OUTREACH_QUEUE
from jobs.queue import AmqpQueue
from jobs.unsubscribe import PATH as UNSUBSCRIBE_PATH
from server.resources import SERVICES
from storage.db import Database
from tests.conftest import AMQP_URL, Account, MailSink, mail_text, signup
from tests.handlers.conversation_helpers import create_group, ok, rest
from tests.workers.notification_helpers import message, quiet_now
from tests.workers.outreach_helpers import header_link, sql
from workers.delivery import OutboxSms, SmtpMailer
from workers.notification_mail import MailLinks, outreach_job_id
from workers.notifications import NotificationWorker
from workers.outreach import OutreachWorker
from workers.push import OutboxMobilePush


@dataclass
class MailRig:
    worker: NotificationWorker
    outreach: OutreachWorker
    namespace: str
    db: Database
    sms_dir: Path


@pytest.fixture
async def rig(client: Any, settings: Settings, namespaces: list[str],
              tmp_path: Path) -> AsyncIterator[MailRig]:
    namespace = f"t{secrets.token_hex(5)}"
    namespaces.append(namespace)
    queue = AmqpQueue(AMQP_URL, namespace)
    await queue.connect()
    db = await Database.connect(settings.database_url or "", 1, 3)
    services: Services = client.app[SERVICES]
    worker = NotificationWorker(
        db, queue, services.realtime, services.presence.store, push_ttl_s=600, web_push=None,
        mobile_push=OutboxMobilePush(tmp_path / "push"), clock=utc_now,
        mail=MailLinks(settings.public_base_url, settings.resolved_unsubscribe_secret()))
    sms_dir = tmp_path / "sms"
    outreach = OutreachWorker(SmtpMailer(settings.smtp_url or ""), OutboxSms(sms_dir),
                              settings.mail_from, db)
    yield MailRig(worker, outreach, namespace, db, sms_dir)
    await worker.stop()
    await queue.close()
    await db.close()


async def outreach_jobs(namespace: str) -> list[dict[str, Any]]:
    """Take every job waiting in the rig's outreach queue."""
    jobs: list[dict[str, Any]] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{namespace}.{OUTREACH_QUEUE}", durable=True)
        while (msg := await queue.get(no_ack=True, fail=False)) is not None:
            jobs.append(orjson.loads(msg.body))
    return jobs


async def verify_email(settings: Settings, account: Account) -> None:
    await sql(settings, "UPDATE users SET email_verified_at = now() WHERE id = $1::uuid", account.id)


async def verify_phone(settings: Settings, account: Account) -> str:
    phone = "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))
    await sql(settings, """UPDATE users SET phone = $2, phone_verified_at = now()
                           WHERE id = $1::uuid""", account.id, phone)
    return phone


def notification_mails(mail: MailSink, account: Account) -> list[Any]:
    """Mails to the account that carry an unsubscribe link: not the signup confirmation."""
    return [m for m in mail.to(account.email) if m["List-Unsubscribe"] is not None]


async def enable(client: Any, account: Account, channel: str, kind: str = "message") -> None:
    await ok(await rest(client, account, "notification.set_preferences", {"changes": [
        {"kind": kind, "channel": channel, "enabled": True}]}))


async def test_email_preference_on_sends_one_mail_with_unsubscribe_link_off_sends_none(
    client: Any, rig: MailRig, settings: Settings, mail: MailSink
) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    group = await create_group(client, alice, bob, carol, title="Supper club")
    for who in (bob, carol):
        await verify_email(settings, who)
    await enable(client, bob, "email")  # carol keeps the default: email off
    m = message(group["id"], alice, "dinner at eight?")
    await rig.worker.handle(stored_job([m]))

    [job] = await outreach_jobs(rig.namespace)
    assert (job["type"], job["to"], job["template"]) == ("email", bob.email, "notification")
    assert job["id"] == outreach_job_id("email", uuid.UUID(bob.id), f"message:{m['id']}")
    await rig.outreach.handle(job)
    sent = await mail.wait_for(bob.email, "Supper club")
    text = mail_text(sent)
    assert "dinner at eight?" in text and f"{UNSUBSCRIBE_PATH}?token=" in text
    assert header_link(sent).startswith(settings.public_base_url + UNSUBSCRIBE_PATH)
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert {p.get_content_type() for p in sent.walk()} >= {"text/plain", "text/html"}
    assert notification_mails(mail, carol) == []


async def test_redelivered_notification_job_sends_one_mail(
    client: Any, rig: MailRig, settings: Settings, mail: MailSink
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob, title="Supper club")
    await verify_email(settings, bob)
    await enable(client, bob, "email")
    m = message(group["id"], alice, "only once please")
    await rig.worker.handle(stored_job([m]))
    # The same job again, as after a crash before its ack: no second outreach job.
    await rig.worker.handle(stored_job([m]))
    [job] = await outreach_jobs(rig.namespace)
    # And an outreach job delivered twice sends once: its id is the ledger key.
    await rig.outreach.handle(job)
    await rig.outreach.handle(dict(job))
    await mail.wait_for(bob.email, "Supper club")
    # A later message folds into the same unread group: it mails nobody again.
    await rig.worker.handle(stored_job([message(group["id"], alice, "and another thing")]))
    assert await outreach_jobs(rig.namespace) == []
    assert len(notification_mails(mail, bob)) == 1


async def test_quiet_hours_unverified_address_and_opt_out_send_nothing(
    client: Any, rig: MailRig, settings: Settings, mail: MailSink
) -> None:
    alice, bob, carol, dave, erin = [await signup(client) for _ in range(5)]
    group = await create_group(client, alice, bob, carol, dave, erin)
    for who in (bob, carol, dave, erin):
        await enable(client, who, "email")
    for who in (bob, dave, erin):
        await verify_email(settings, who)  # carol's address stays unverified
    await ok(await rest(client, bob, "notification.set_quiet_hours", quiet_now()))
    await ok(await rest(client, dave, "outreach.set_subscriptions",
                        {"channel": "email", "subscribed": False}))
    await rig.worker.handle(stored_job([message(group["id"], alice, "anyone awake?")]))
    # Only erin, the control, is mailed.
    assert [j["to"] for j in await outreach_jobs(rig.namespace)] == [erin.email]
    for who in (bob, carol, dave):
        assert notification_mails(mail, who) == []


async def test_sms_preference_sends_a_short_text_to_the_verified_phone(
    client: Any, rig: MailRig, settings: Settings
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob)
    phone = await verify_phone(settings, bob)
    await enable(client, bob, "sms", "mention")
    m = message(group["id"], alice, f"@{bob.username} " + "long story " * 30)
    await rig.worker.handle(stored_job([m]))
    [job] = await outreach_jobs(rig.namespace)
    assert job["id"] == outreach_job_id("sms", uuid.UUID(bob.id), f"message:{m['id']}")
    await rig.outreach.handle(job)
    await rig.outreach.handle(job)
    [sent] = [orjson.loads(p.read_bytes()) for p in rig.sms_dir.glob("*.json")]
    assert sent["to"] == phone
    assert sent["text"].startswith(f"HotSpot: {alice.username} mentioned you: @{bob.username}")
    assert len(sent["text"]) <= 140


async def test_a_dm_to_an_absent_user_with_email_on_arrives_by_mail_end_to_end(
    client: Any, settings: Settings, mail: MailSink
) -> None:
    alice, bob = await signup(client), await signup(client)
    await verify_email(settings, bob)
    await enable(client, bob, "email")
    dm = await ok(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}))
    await ok(await rest(client, alice, "message.send", {
        "conversation_id": dm["id"], "body": "see you tomorrow", "client_id": uuid.uuid4().hex}), 201)
    sent = await mail.wait_for(bob.email, alice.username, timeout=20)
    assert "see you tomorrow" in mail_text(sent)
    assert len(notification_mails(mail, bob)) == 1
