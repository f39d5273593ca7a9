"""Campaigns end to end on real RabbitMQ and SMTP: audience, progress, opt-outs, crashes."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage, Message
from typing import Any

import aio_pika
import orjson
import pytest
import socketio
from aiohttp.test_utils import TestClient

from channels.bus import InProcessBus
from config import Settings
from jobs.campaigns import QUEUE as CAMPAIGN_QUEUE
from jobs.queue import AmqpQueue
from jobs.unsubscribe import sign, verify
from storage.db import Database
from tests.conftest import AMQP_URL, Account, AppFactory, MailSink, mail_text, signup
from tests.push_standin import BrowserKeys, PushStandIn, standin_overrides
from tests.workers.outreach_helpers import (
    TwilioStandIn,
    call,
    drop_queues,
    eventually,
    header_link,
    make_admin,
    set_role,
    sql,
    twilio_standin,
)
from workers.campaigns import CampaignConfig, CampaignSender
from workers.delivery import Mailer, OutboxSms, SmtpMailer

CAMPAIGNS = "/v1/outreach/campaigns"
SUBSCRIPTIONS = "/v1/outreach/subscriptions"


@pytest.fixture(autouse=True)
async def campaign_queues(settings: Settings) -> AsyncIterator[None]:
    """The shared fixtures drop only the queues they know; this one drops `campaigns`."""
    yield
    await drop_queues(settings.namespace, CAMPAIGN_QUEUE)


def fast(settings: Settings, batch_size: int = 2, **overrides: Any) -> dict[str, Any]:
    """App overrides: small batches, a throttle that does not slow the test down."""
    limits = settings.limits.model_copy(update={"campaign_batch_size": batch_size,
                                                "campaign_batches_per_s": 50.0})
    return {"limits": limits, **overrides}


async def moderators(settings: Settings, client: TestClient[Any, Any], n: int) -> list[Account]:
    """n fresh users who are the only moderators, so role=moderator targets exactly them."""
    await sql(settings, "UPDATE users SET role = 'user' WHERE role = 'moderator'")
    accounts = [await signup(client) for _ in range(n)]
    for account in accounts:
        await set_role(settings, account.id, "moderator")
    return accounts


def email_campaign(tag: str, **audience: Any) -> dict[str, Any]:
    return {"name": f"news {tag}", "channel": "email", "subject": f"News {tag} for $display_name",
            "text": "Hello $display_name,\n\nthere is news.", "audience": audience or {"role": "moderator"}}


async def run_to_done(client: TestClient[Any, Any], admin: Account, campaign_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def done() -> bool:
        found.update(await call(client, "GET", f"{CAMPAIGNS}/{campaign_id}", admin))
        return bool(found["status"] == "done")

    await eventually(done, timeout=30)
    return found


def campaign_mail(mail: MailSink, account: Account, tag: str) -> list[Message]:
    return [m for m in mail.to(account.email) if f"News {tag}" in (m["Subject"] or "")]


async def test_campaign_reaches_each_recipient_once_skips_opt_outs_and_reports_progress(
    make_client: AppFactory, settings: Settings, mail: MailSink
) -> None:
    client = await make_client(**fast(settings))
    admin = await make_admin(settings, await signup(client))
    people = await moderators(settings, client, 5)
    opted_out = people[0]
    await call(client, "PATCH", SUBSCRIPTIONS, opted_out, {"channel": "email", "subscribed": False})
    events: list[dict[str, Any]] = []
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("campaign.progress", events.append)
    await sio.connect(str(client.make_url("/")), auth={"token": admin.access_token},
                      transports=["websocket"], wait_timeout=5)
    tag = secrets.token_hex(4)
    try:
        draft = await call(client, "POST", CAMPAIGNS, admin, email_campaign(tag), 201)
        assert (draft["status"], draft["total"]) == ("draft", 0)
        started = await call(client, "POST", f"{CAMPAIGNS}/{draft['id']}/start", admin)
        assert started["total"] == 5 and started["started_by"] == admin.id
        final = await run_to_done(client, admin, draft["id"])

        async def told_done() -> bool:
            return any(e["status"] == "done" for e in events)

        await eventually(told_done)
    finally:
        await sio.disconnect()
    assert {k: final[k] for k in ("total", "pending", "sent", "failed", "skipped")} == \
        {"total": 5, "pending": 0, "sent": 4, "failed": 0, "skipped": 1}
    assert events[-1]["sent"] == 4 and events[-1]["id"] == draft["id"]
    assert len(events) >= 3  # on start, after each of the three batches
    assert campaign_mail(mail, opted_out, tag) == []
    for person in people[1:]:
        [msg] = campaign_mail(mail, person, tag)
        assert msg["Subject"] == f"News {tag} for {person.username}"
        assert msg["Message-ID"] == f"<campaign.{draft['id']}.{person.id}@hotspot.local>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert header_link(msg) in mail_text(msg)
    rows = await sql(settings, "SELECT status, error FROM campaign_recipients WHERE campaign_id = $1"
                     " AND user_id = $2::uuid", uuid.UUID(draft["id"]), opted_out.id)
    assert (rows[0]["status"], rows[0]["error"]) == ("skipped", "opted out")


async def test_unsubscribe_link_works_without_login_and_later_campaigns_skip_that_person(
    make_client: AppFactory, settings: Settings, mail: MailSink
) -> None:
    client = await make_client(**fast(settings))
    admin = await make_admin(settings, await signup(client))
    leaver, stayer = await moderators(settings, client, 2)
    tag = secrets.token_hex(4)
    first = await call(client, "POST", CAMPAIGNS, admin, email_campaign(tag), 201)
    await call(client, "POST", f"{CAMPAIGNS}/{first['id']}/start", admin)
    await run_to_done(client, admin, first["id"])
    [msg] = campaign_mail(mail, leaver, tag)
    link = header_link(msg)
    path = link.removeprefix(settings.public_base_url)

    page = await client.get(path, headers={"Accept": "text/html"})
    assert page.status == 200 and "<form method=\"post\"" in await page.text()
    # Looking at the page (as link scanners do) opts nobody out.
    assert (await call(client, "GET", SUBSCRIPTIONS, leaver))["email"] is True
    one_click = await client.post(path, data="List-Unsubscribe=One-Click",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status == 200, await one_click.text()
    assert await one_click.json() == {"channel": "email", "unsubscribed": True}
    assert await call(client, "GET", SUBSCRIPTIONS, leaver) == {"email": False, "sms": True,
                                                                "push": True}
    bad = await client.post(path[:-3] + "AAA")
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid_input"

    second_tag = secrets.token_hex(4)
    second = await call(client, "POST", CAMPAIGNS, admin, email_campaign(second_tag), 201)
    await call(client, "POST", f"{CAMPAIGNS}/{second['id']}/start", admin)
    final = await run_to_done(client, admin, second["id"])
    assert (final["sent"], final["skipped"]) == (1, 1)
    assert campaign_mail(mail, leaver, second_tag) == []
    assert len(campaign_mail(mail, stayer, second_tag)) == 1
    # Transactional mail ignores the opt-out (resets go to verified addresses only).
    await sql(settings, "UPDATE users SET email_verified_at = now() WHERE id = $1::uuid", leaver.id)
    await call(client, "POST", "/v1/auth/password_reset", None, {"email": leaver.email}, 202)
    await mail.wait_for(leaver.email, "Reset your HotSpot password")


class DiesOnThirdSend:
    """Sends for real; on the third message the provider takes it, then the worker freezes."""

    def __init__(self, inner: Mailer) -> None:
        self.inner = inner
        self.calls = 0
        self.frozen: asyncio.Task[Any] | None = None
        self.froze = asyncio.Event()

    async def send(self, message: EmailMessage) -> None:
        self.calls += 1
        await self.inner.send(message)
        if self.calls == 3:
            self.frozen = asyncio.current_task()
            self.froze.set()
            await asyncio.Event().wait()


def sender(settings: Settings, db: Database, mailer: Mailer) -> CampaignSender:
    return CampaignSender(db, mailer, OutboxSms(settings.outbox_dir), InProcessBus("test"),
                          CampaignConfig(settings.mail_from, settings.public_base_url,
                                         settings.resolved_unsubscribe_secret(), 50.0))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    database = await Database.connect(settings.database_url, 1, 4)
    yield database
    await database.close()


async def test_a_worker_crash_mid_batch_never_sends_twice(
    make_client: AppFactory, settings: Settings, mail: MailSink, db: Database
) -> None:
    # The API only; the workers are this test's, so one can be killed mid-batch.
    client = await make_client(**fast(settings, batch_size=100), inprocess_workers=False)
    admin = await make_admin(settings, await signup(client))
    people = await moderators(settings, client, 5)
    assert settings.smtp_url is not None
    frozen_mailer = DiesOnThirdSend(SmtpMailer(settings.smtp_url))
    doomed = AmqpQueue(AMQP_URL, settings.namespace)
    await doomed.connect()
    await doomed.consume(CAMPAIGN_QUEUE, sender(settings, db, frozen_mailer).handle, prefetch=1)
    tag = secrets.token_hex(4)
    campaign = await call(client, "POST", CAMPAIGNS, admin, email_campaign(tag), 201)
    await call(client, "POST", f"{CAMPAIGNS}/{campaign['id']}/start", admin)
    await asyncio.wait_for(frozen_mailer.froze.wait(), 15)
    # The crash: the worker's connection drops, its unacked batch goes back to the queue.
    assert doomed._connection is not None and frozen_mailer.frozen is not None
    await doomed._connection.close()
    frozen_mailer.frozen.cancel()
    await asyncio.gather(frozen_mailer.frozen, return_exceptions=True)
    assert sum(len(campaign_mail(mail, p, tag)) for p in people) == 3

    survivor = AmqpQueue(AMQP_URL, settings.namespace)
    await survivor.connect()
    try:
        await survivor.consume(CAMPAIGN_QUEUE, sender(settings, db, SmtpMailer(settings.smtp_url)).handle)
        final = await run_to_done(client, admin, campaign["id"])
    finally:
        await survivor.close()
    counts = [len(campaign_mail(mail, p, tag)) for p in people]
    assert counts == [1, 1, 1, 1, 1]
    # The send cut short by the crash may or may not have left: it is failed, not repeated.
    assert (final["sent"], final["failed"], final["skipped"]) == (4, 1, 0)
    rows = await sql(settings, "SELECT error FROM campaign_recipients WHERE campaign_id = $1 "
                     "AND status = 'failed'", uuid.UUID(campaign["id"]))
    assert rows[0]["error"].startswith("interrupted")


async def take_jobs(namespace: str, expected: int) -> list[dict[str, Any]]:
    """Take (and ack) the campaign jobs waiting in RabbitMQ."""
    jobs: list[dict[str, Any]] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{namespace}.{CAMPAIGN_QUEUE}", ensure=True)
        for _ in range(200):
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                if len(jobs) >= expected:
                    break
                await asyncio.sleep(0.05)
                continue
            jobs.append(orjson.loads(message.body))
    assert len(jobs) == expected, jobs
    return jobs


async def test_pause_holds_the_batches_and_resume_finishes_them_once(
    make_client: AppFactory, settings: Settings, mail: MailSink, db: Database
) -> None:
    client = await make_client(**fast(settings, batch_size=1), inprocess_workers=False)
    admin = await make_admin(settings, await signup(client))
    people = await moderators(settings, client, 3)
    assert settings.smtp_url is not None
    worker = sender(settings, db, SmtpMailer(settings.smtp_url))
    tag = secrets.token_hex(4)
    campaign = await call(client, "POST", CAMPAIGNS, admin, email_campaign(tag), 201)
    url = f"{CAMPAIGNS}/{campaign['id']}"
    await call(client, "POST", f"{url}/start", admin)
    paused = await call(client, "POST", f"{url}/pause", admin)
    assert (paused["status"], paused["pending"]) == ("paused", 3)
    first_jobs = await take_jobs(settings.namespace, 3)
    for job in first_jobs:
        await worker.handle(job)
    assert (await call(client, "GET", url, admin))["pending"] == 3
    assert sum(len(campaign_mail(mail, p, tag)) for p in people) == 0

    resumed = await call(client, "POST", f"{url}/resume", admin)
    assert resumed["status"] == "running"
    for job in await take_jobs(settings.namespace, 3):
        await worker.handle(job)
    # Redelivered copies of every job, old and new, change nothing.
    for job in first_jobs:
        await worker.handle(job)
    final = await call(client, "GET", url, admin)
    assert (final["status"], final["sent"], final["pending"]) == ("done", 3, 0)
    await eventually(lambda: _all_have_one(mail, people, tag))
    assert [len(campaign_mail(mail, p, tag)) for p in people] == [1, 1, 1]
    for action in ("pause", "resume", "start"):
        error = (await call(client, "POST", f"{url}/{action}", admin, None, 409))["error"]
        assert error["code"] == "conflict"


async def _all_have_one(mail: MailSink, people: list[Account], tag: str) -> bool:
    return all(campaign_mail(mail, p, tag) for p in people)


async def test_sms_campaign_goes_through_the_provider_with_an_opt_out_link(
    make_client: AppFactory, settings: Settings
) -> None:
    async with twilio_standin() as twilio:
        await _sms_campaign(make_client, settings, twilio)


async def _sms_campaign(make_client: AppFactory, settings: Settings, twilio: TwilioStandIn) -> None:
    client = await make_client(**fast(settings, **twilio.settings()))
    admin = await make_admin(settings, await signup(client))
    people = await moderators(settings, client, 4)
    phones = {p.id: f"+4479111234{i:02d}" for i, p in enumerate(people[:3])}
    for user_id, phone in phones.items():
        await sql(settings, "UPDATE users SET phone = $2, phone_verified_at = now() "
                  "WHERE id = $1::uuid", user_id, phone)
    await call(client, "PATCH", SUBSCRIPTIONS, people[0], {"channel": "sms", "subscribed": False})
    body = {"name": "sms", "channel": "sms", "template": "we_miss_you", "audience": {"role": "moderator"}}
    campaign = await call(client, "POST", CAMPAIGNS, admin, body, 201)
    started = await call(client, "POST", f"{CAMPAIGNS}/{campaign['id']}/start", admin)
    assert started["total"] == 3  # the moderator without a phone is not in the audience
    final = await run_to_done(client, admin, campaign["id"])
    assert (final["sent"], final["skipped"]) == (2, 1)
    assert twilio.to(phones[people[0].id]) == []
    for person in people[1:3]:
        [text] = twilio.to(phones[person.id])
        assert text.startswith(f"Hi {person.username}, it has been a while!")
        link = text.rsplit("Opt out: ", 1)[1]
        opt_out = verify(settings.resolved_unsubscribe_secret(), link.rsplit("token=", 1)[1])
        assert opt_out is not None and (str(opt_out.user_id), opt_out.channel) == (person.id, "sms")


async def test_audience_filters_inactive_and_verified(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(**fast(settings), inprocess_workers=False)
    admin = await make_admin(settings, await signup(client))
    away, recent, away_unverified = await moderators(settings, client, 3)
    await sql(settings, "UPDATE users SET last_seen_at = now() - interval '40 days', "
              "email_verified_at = now() WHERE id = $1::uuid", away.id)
    await sql(settings, "UPDATE users SET last_seen_at = now() - interval '40 days' "
              "WHERE id = $1::uuid", away_unverified.id)
    await sql(settings, "UPDATE users SET email_verified_at = now() WHERE id = $1::uuid", recent.id)
    audience = {"role": "moderator", "inactive_days": 30, "verified_email_only": True}
    campaign = await call(client, "POST", CAMPAIGNS, admin, {
        "name": "back", "channel": "email", "template": "we_miss_you", "audience": audience}, 201)
    assert campaign["audience"] == audience
    started = await call(client, "POST", f"{CAMPAIGNS}/{campaign['id']}/start", admin)
    assert started["total"] == 1
    rows = await sql(settings, "SELECT user_id FROM campaign_recipients WHERE campaign_id = $1",
                     uuid.UUID(campaign["id"]))
    assert [str(r["user_id"]) for r in rows] == [away.id]
    listed = await call(client, "GET", f"{CAMPAIGNS}?limit=1", admin)
    assert [c["id"] for c in listed["campaigns"]] == [campaign["id"]]
    assert listed["campaigns"][0]["total"] == 1 and listed["next_before"] is not None


async def test_campaign_commands_need_the_admin_role(
    client: TestClient[Any, Any], settings: Settings, account: Account
) -> None:
    await set_role(settings, account.id, "moderator")
    some_id = str(uuid.uuid4())
    for method, path, body in [("POST", CAMPAIGNS, email_campaign("x")), ("GET", CAMPAIGNS, None),
                               ("GET", f"{CAMPAIGNS}/{some_id}", None),
                               ("POST", f"{CAMPAIGNS}/{some_id}/start", None),
                               ("POST", f"{CAMPAIGNS}/{some_id}/pause", None)]:
        error = (await call(client, method, path, account, body, 403))["error"]
        assert error["details"] == {"required_role": "admin"}, (method, path)


@pytest.mark.parametrize(("body", "field", "kind"), [
    ({"template": "nope"}, "template", "unknown_template"),
    ({"template": "verify_email"}, "template", "template_parameter"),
    ({"subject": None, "text": "hi"}, "subject", "missing"),
    ({"text": "hi $code"}, "text", "template_parameter"),
    ({"channel": "sms", "text": "hi", "subject": "s"}, "subject", "text_only"),
    ({"channel": "push", "text": "hi", "html": "<p>hi</p>"}, "html", "text_only"),
    ({"channel": "push", "template": "we_miss_you", "subject": "t $code"}, "template",
     "template_parameter"),
])
async def test_campaign_content_is_checked_when_created(
    client: TestClient[Any, Any], settings: Settings, account: Account,
    body: dict[str, Any], field: str, kind: str,
) -> None:
    await make_admin(settings, account)
    request = {"name": "n", "channel": "email", "subject": "s", "audience": {"all": True}, **body}
    if "template" in body and "subject" not in body:
        request.pop("subject")
    request = {k: v for k, v in request.items() if v is not None}
    error = (await call(client, "POST", CAMPAIGNS, account, request, 400))["error"]
    assert error["details"]["fields"][0]["field"] == field, error
    assert error["details"]["fields"][0]["type"] == kind, error


async def test_an_audience_must_be_chosen_and_unknown_campaigns_are_not_found(
    client: TestClient[Any, Any], settings: Settings, account: Account
) -> None:
    await make_admin(settings, account)
    await call(client, "POST", CAMPAIGNS, account, {**email_campaign("x"), "audience": {}}, 400)
    await call(client, "GET", f"{CAMPAIGNS}/{uuid.uuid4()}", account, None, 404)
    await call(client, "POST", f"{CAMPAIGNS}/{uuid.uuid4()}/start", account, None, 404)


def test_unsubscribe_tokens_are_signed_per_user_and_channel() -> None:
    secret, user_id = b"k" * 32, uuid.uuid4()
    token = sign(secret, user_id, "sms")
    opt_out = verify(secret, token)
    assert opt_out is not None and (opt_out.user_id, opt_out.channel) == (user_id, "sms")
    assert verify(b"other" * 8, token) is None
    tampered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    assert verify(secret, tampered) is None
    assert verify(secret, "not a token!") is None
    assert sign(secret, user_id, "email") != token


async def test_push_campaign_reaches_every_device_and_drops_dead_ones(
    make_client: AppFactory, settings: Settings, aiohttp_server: Any
) -> None:
    standin = PushStandIn()
    base = str((await aiohttp_server(standin.app())).make_url("")).rstrip("/")
    client = await make_client(**fast(settings), **standin_overrides(settings))
    admin = await make_admin(settings, await signup(client))
    fan, gone, _no_device = await moderators(settings, client, 3)
    keys = {name: BrowserKeys() for name in ("fan1", "fan2", "gone1")}
    for owner, name in [(fan, "fan1"), (fan, "fan2"), (gone, "gone1")]:
        await call(client, "POST", "/v1/push/subscriptions", owner, {
            "kind": "webpush", "endpoint": f"{base}/wp/{name}", "keys": keys[name].keys()}, 201)
    standin.answer("/wp/gone1", (410, {}))
    body = {"name": "push", "channel": "push", "subject": "Hi $display_name", "text": "News!",
            "audience": {"role": "moderator"}}
    campaign = await call(client, "POST", CAMPAIGNS, admin, body, 201)
    started = await call(client, "POST", f"{CAMPAIGNS}/{campaign['id']}/start", admin)
    assert started["total"] == 2  # the moderator with no device is not in the audience
    final = await run_to_done(client, admin, campaign["id"])
    assert (final["sent"], final["failed"]) == (1, 1)
    for name in ("fan1", "fan2"):
        [received] = standin.to(f"/wp/{name}")
        payload = keys[name].decrypt(received.body)
        assert (payload["kind"], payload["title"], payload["body"]) == \
            ("campaign", f"Hi {fan.username}", "News!")
        opt_out = verify(settings.resolved_unsubscribe_secret(),
                         payload["unsubscribe_url"].rsplit("token=", 1)[1])
        assert opt_out is not None and opt_out.channel == "push"
    # The push service said the device is gone: its subscription is removed.
    assert (await call(client, "GET", "/v1/push/subscriptions", gone))["subscriptions"] == []

    await call(client, "POST", "/v1/outreach/test_send/me", fan, {"channel": "push"}, 202)
    received = await standin.wait_for("/wp/fan1", 2)
    assert keys["fan1"].decrypt(received[1].body)["title"] == "[Test] HotSpot"
