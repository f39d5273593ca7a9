"""Outreach sends on real RabbitMQ, a real SMTP server and a Twilio stand-in: each job once."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller

from config import Rates, Settings
from config.clock import utc_now
from jobs.outreach import QUEUE
from jobs.queue import AmqpQueue, RetryPolicy, new_job
from server.resources import QUEUE as APP_QUEUE
from storage.db import Database
from storage.migrate import migrate
from storage.outreach import prune_sends
from tests.conftest import AMQP_URL, Account, AppFactory, MailSink, free_port, signup, token_from_mail
from tests.workers.outreach_helpers import (
    TWILIO_FROM,
    TwilioStandIn,
    call,
    eventually,
    make_admin,
    sql,
    twilio_standin,
)
from workers.delivery import Mailer, OutboxSms, PermanentSendError, SmtpMailer, TransientSendError
from workers.outreach import LEDGER_RETENTION, OutreachWorker
from workers.sms import TwilioSms

FAST_RETRY = RetryPolicy(max_attempts=3, first_delay_s=0.05, max_delay_s=0.2)
PHONE = "+447911123456"


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    await migrate(settings.database_url)
    database = await Database.connect(settings.database_url, 1, 3)
    yield database
    await database.close()


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[AmqpQueue]:
    """A worker's own connection to the test's namespace, with fast retries."""
    amqp = AmqpQueue(AMQP_URL, settings.namespace, FAST_RETRY)
    await amqp.connect()
    yield amqp
    await amqp.close()


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioStandIn]:
    async with twilio_standin() as standin:
        yield standin


def smtp(settings: Settings) -> SmtpMailer:
    assert settings.smtp_url is not None
    return SmtpMailer(settings.smtp_url, timeout_s=5)


async def ledger(settings: Settings, job_id: str) -> tuple[str, int] | None:
    rows = await sql(settings, "SELECT status, attempts FROM outreach_sends WHERE job_id = $1", job_id)
    return (rows[0]["status"], rows[0]["attempts"]) if rows else None


def email_job(to: str, **extra: Any) -> dict[str, Any]:
    return new_job("email", to=to, template="password_reset", params={
        "display_name": "Ann", "link": "https://x.test/r", "token": "tok", "valid_minutes": 60,
    }, **extra)


# --- email: redelivery and crashes --------------------------------------------------------------


async def test_the_same_email_job_delivered_twice_sends_one_mail(
    client: TestClient[Any, Any], settings: Settings, mail: MailSink
) -> None:
    job = email_job("twice@example.com")
    await client.app[APP_QUEUE].publish(QUEUE, job)
    await client.app[APP_QUEUE].publish(QUEUE, job)
    await eventually(lambda: _attempts_reached(settings, job["id"], 2))
    assert await ledger(settings, job["id"]) == ("sent", 2)
    assert len(mail.to("twice@example.com")) == 1


async def test_concurrent_sends_do_not_starve_a_small_pool(
    make_client: AppFactory, mail: MailSink
) -> None:
    """The per-send lock holds no pool connection: more mails at once than pool slots all go."""
    client = await make_client(database_pool_min=1, database_pool_max=3)
    jobs = [email_job(f"pool{i}@example.com") for i in range(12)]
    await asyncio.gather(*(client.app[APP_QUEUE].publish(QUEUE, job) for job in jobs))
    for i in range(12):
        await mail.wait_for(f"pool{i}@example.com", timeout=20)
    # And the pool still answers: the server is not wedged.
    assert (await client.get("/ready")).status == 200


async def _attempts_reached(settings: Settings, job_id: str, attempts: int) -> bool:
    row = await ledger(settings, job_id)
    return row is not None and row[1] >= attempts and row[0] != "sending"


async def test_worker_dying_after_the_send_is_recorded_does_not_send_again(
    settings: Settings, db: Database, queue: AmqpQueue, mail: MailSink
) -> None:
    worker = OutreachWorker(smtp(settings), OutboxSms(settings.outbox_dir), settings.mail_from, db)
    runs: list[str] = []

    async def dies_before_ack(job: dict[str, Any]) -> None:
        runs.append(job["id"])
        await worker.handle(job)
        if len(runs) == 1:
            raise RuntimeError("worker died before the ack")

    await queue.consume(QUEUE, dies_before_ack)
    job = email_job("crash-after-mark@example.com")
    await queue.publish(QUEUE, job)
    await eventually(lambda: _attempts_reached(settings, job["id"], 2))
    assert runs == [job["id"], job["id"]]
    assert len(mail.to("crash-after-mark@example.com")) == 1


class DiesAfterSending:
    """A mailer whose first send reaches the server, then the 'worker' dies before recording it."""

    def __init__(self, inner: Mailer) -> None:
        self.inner = inner
        self.calls = 0

    async def send(self, message: EmailMessage) -> None:
        self.calls += 1
        await self.inner.send(message)
        if self.calls == 1:
            raise RuntimeError("died between the send and the 'sent' commit")


async def test_worker_dying_between_send_and_record_resends_with_the_same_message_id(
    settings: Settings, db: Database, queue: AmqpQueue, mail: MailSink
) -> None:
    """The documented at-least-once window: the copy is recognisable by its Message-ID."""
    mailer = DiesAfterSending(smtp(settings))
    worker = OutreachWorker(mailer, OutboxSms(settings.outbox_dir), settings.mail_from, db)
    await queue.consume(QUEUE, worker.handle)
    job = email_job("window@example.com")
    await queue.publish(QUEUE, job)
    await eventually(lambda: _attempts_reached(settings, job["id"], 2))
    copies = mail.to("window@example.com")
    assert len(copies) == 2
    assert copies[0]["Message-ID"] == copies[1]["Message-ID"] == f"<{job['id']}@hotspot.local>"


class RefusingSink:
    """An SMTP server that refuses every recipient for good, counting the tries."""

    def __init__(self) -> None:
        self.rcpt_tries = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        with self.lock:
            self.rcpt_tries += 1
        return "550 5.1.1 no such user"


@pytest.fixture
def refusing_smtp() -> Any:
    sink = RefusingSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


async def test_a_refused_recipient_is_failed_and_not_retried(
    settings: Settings, db: Database, queue: AmqpQueue, refusing_smtp: tuple[RefusingSink, int]
) -> None:
    sink, port = refusing_smtp
    worker = OutreachWorker(SmtpMailer(f"smtp://127.0.0.1:{port}"), OutboxSms(settings.outbox_dir),
                            settings.mail_from, db)
    await queue.consume(QUEUE, worker.handle)
    job = email_job("nobody@example.com")
    await queue.publish(QUEUE, job)

    async def failed() -> bool:
        return (await ledger(settings, job["id"]) or ("", 0))[0] == "failed"

    await eventually(failed)
    await asyncio.sleep(0.5)  # ten times the retry delay: a retry would have come by now
    assert sink.rcpt_tries == 1
    assert await ledger(settings, job["id"]) == ("failed", 1)


async def test_smtp_errors_are_classified(refusing_smtp: tuple[RefusingSink, int]) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@hotspot.local", "b@example.com", "x"
    message.set_content("x")
    with pytest.raises(PermanentSendError, match="refused"):
        await SmtpMailer(f"smtp://127.0.0.1:{refusing_smtp[1]}").send(message)
    with pytest.raises(TransientSendError, match="unavailable"):
        await SmtpMailer(f"smtp://127.0.0.1:{free_port()}", timeout_s=2).send(message)


# --- SMS through the Twilio-compatible adapter ----------------------------------------------------


async def test_phone_code_is_texted_through_the_twilio_adapter(
    make_client: AppFactory, twilio: TwilioStandIn
) -> None:
    client = await make_client(**twilio.settings())
    account = await signup(client)
    await call(client, "POST", "/v1/users/me/phone", account, {"phone": PHONE}, 202)

    async def texted() -> bool:
        return bool(twilio.to(PHONE))

    await eventually(texted)
    [body] = twilio.to(PHONE)
    assert twilio.received[0]["From"] == TWILIO_FROM
    code = re.search(r"\b(\d{6})\b", body)
    assert code is not None, body
    me = await call(client, "POST", "/v1/users/me/phone/verify", account, {"code": code.group(1)})
    assert me["phone_verified"] is True


def twilio_sms(standin: TwilioStandIn, token: str | None = None) -> TwilioSms:
    overrides = standin.settings()
    return TwilioSms(overrides["twilio_base_url"], overrides["twilio_account_sid"],
                     token or overrides["twilio_auth_token"], TWILIO_FROM, timeout_s=5)


async def test_twilio_4xx_fails_the_job_without_retry(
    settings: Settings, db: Database, queue: AmqpQueue, twilio: TwilioStandIn, mail: MailSink
) -> None:
    twilio.script = [(400, {})]
    sms = twilio_sms(twilio)
    worker = OutreachWorker(smtp(settings), sms, settings.mail_from, db)
    await queue.consume(QUEUE, worker.handle)
    job = new_job("sms", to=PHONE, template="phone_code", params={"code": "1", "valid_minutes": 1})
    await queue.publish(QUEUE, job)

    async def failed() -> bool:
        return (await ledger(settings, job["id"]) or ("", 0))[0] == "failed"

    await eventually(failed)
    await asyncio.sleep(0.5)  # ten times the retry delay
    assert len(twilio.arrivals) == 1
    await sms.close()


async def test_twilio_5xx_is_retried_through_the_queue_and_sent_once(
    settings: Settings, db: Database, queue: AmqpQueue, twilio: TwilioStandIn
) -> None:
    twilio.script = [(503, {})]
    sms = twilio_sms(twilio)
    worker = OutreachWorker(smtp(settings), sms, settings.mail_from, db)
    await queue.consume(QUEUE, worker.handle)
    job = new_job("sms", to=PHONE, template="phone_code", params={"code": "42", "valid_minutes": 1})
    await queue.publish(QUEUE, job)
    await eventually(lambda: _attempts_reached(settings, job["id"], 2))
    assert await ledger(settings, job["id"]) == ("sent", 2)
    assert twilio.to(PHONE) == ["Your HotSpot code is 42. It expires in 1 minutes."]
    assert len(twilio.arrivals) == 2
    await sms.close()


async def test_twilio_429_honours_a_short_retry_after_and_defers_a_long_one(
    twilio: TwilioStandIn,
) -> None:
    sms = twilio_sms(twilio)
    twilio.script = [(429, {"Retry-After": "1"})]
    await sms.send(PHONE, "hello")
    assert twilio.to(PHONE) == ["hello"]
    assert twilio.arrivals[1] - twilio.arrivals[0] >= 0.9
    twilio.script = [(429, {"Retry-After": "120"})]
    with pytest.raises(TransientSendError, match="rate limited"):
        await sms.send(PHONE, "later")
    assert len(twilio.arrivals) == 3
    await sms.close()


async def test_twilio_bad_credentials_are_retried_not_failed(twilio: TwilioStandIn) -> None:
    sms = twilio_sms(twilio, token="wrong")
    with pytest.raises(TransientSendError, match="account"):
        await sms.send(PHONE, "x")
    await sms.close()


async def test_twilio_unreachable_is_transient() -> None:
    sms = TwilioSms(f"http://127.0.0.1:{free_port()}", "AC1", "t", TWILIO_FROM, timeout_s=2)
    with pytest.raises(TransientSendError, match="unreachable"):
        await sms.send(PHONE, "x")
    await sms.close()


# --- test sends -------------------------------------------------------------------------------------


async def test_test_send_needs_the_admin_role(
    client: TestClient[Any, Any], account: Account
) -> None:
    body = {"channel": "email", "to": "x@example.com", "template": "verify_email"}
    resp = await call(client, "POST", "/v1/outreach/test_send", account, body, 403)
    assert resp["error"]["code"] == "forbidden"


async def test_admin_test_send_fills_any_template_with_sample_values(
    client: TestClient[Any, Any], settings: Settings, account: Account, mail: MailSink
) -> None:
    await make_admin(settings, account)
    body = {"channel": "email", "to": "tester@example.com", "template": "verify_email"}
    queued = await call(client, "POST", "/v1/outreach/test_send", account, body, 202)
    msg = await mail.wait_for("tester@example.com", "[Test] Confirm your HotSpot email")
    assert "TEST-TOKEN" in str(msg)
    assert msg["Message-ID"] == f"<{queued['job_id']}@hotspot.local>"
    for bad, field in [({**body, "template": "nope"}, "template"), ({**body, "to": "not-mail"}, "to"),
                       ({**body, "channel": "sms", "to": "12"}, "to")]:
        error = (await call(client, "POST", "/v1/outreach/test_send", account, bad, 400))["error"]
        assert error["details"]["fields"][0]["field"] == field, error
    push = {"channel": "push", "to": "no_such_user_here", "template": "test_message"}
    error = (await call(client, "POST", "/v1/outreach/test_send", account, push, 400))["error"]
    assert error["details"]["fields"][0]["type"] == "unknown_user"
    error = (await call(client, "POST", "/v1/outreach/test_send", account,
                        {**push, "to": account.username}, 409))["error"]
    assert error["details"] == {"reason": "no_push_subscription"}


async def test_send_me_goes_to_your_verified_email_only_and_is_rate_limited(
    make_client: AppFactory, settings: Settings, mail: MailSink
) -> None:
    # Two a window: the refused first call counts too (rates are counted before the use case).
    client = await make_client(rates=Rates(test_send=(2, 3600)))
    account = await signup(client)
    resp = await call(client, "POST", "/v1/outreach/test_send/me", account, {"channel": "email"}, 409)
    assert resp["error"]["details"] == {"reason": "unverified"}
    token = token_from_mail(await mail.wait_for(account.email, "Confirm"))
    await call(client, "POST", "/v1/auth/email/verify", None, {"token": token})
    await call(client, "POST", "/v1/outreach/test_send/me", account, {"channel": "email"}, 202)
    await mail.wait_for(account.email, "[Test] HotSpot test message")
    resp = await call(client, "POST", "/v1/outreach/test_send/me", account, {"channel": "email"}, 429)
    assert resp["error"]["code"] == "rate_limited"


async def test_send_me_sms_goes_to_your_verified_phone(
    make_client: AppFactory, settings: Settings, twilio: TwilioStandIn
) -> None:
    client = await make_client(**twilio.settings())
    account = await signup(client)
    await call(client, "POST", "/v1/outreach/test_send/me", account, {"channel": "sms"}, 409)
    await sql(settings, "UPDATE users SET phone = $2, phone_verified_at = now() WHERE id = $1::uuid",
              account.id, PHONE)
    await call(client, "POST", "/v1/outreach/test_send/me", account, {"channel": "sms"}, 202)

    async def texted() -> bool:
        return bool(twilio.to(PHONE))

    await eventually(texted)
    assert twilio.to(PHONE) == ["[Test] HotSpot test message: SMS reaches you."]


async def test_old_ledger_rows_are_pruned_and_recent_ones_kept(
    settings: Settings, db: Database
) -> None:
    old, recent = new_job("email")["id"], new_job("email")["id"]
    await sql(settings, "INSERT INTO outreach_sends (job_id, channel, recipient, status, created_at) "
              "VALUES ($1, 'email', 'a@x.test', 'sent', now() - interval '40 days'), "
              "($2, 'email', 'a@x.test', 'sent', now() - interval '20 days')", old, recent)
    assert await prune_sends(db, utc_now() - LEDGER_RETENTION) >= 1
    assert await ledger(settings, old) is None
    assert await ledger(settings, recent) == ("sent", 1)
