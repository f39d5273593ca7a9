"""The outreach worker: renders and sends email and SMS jobs, each at most once per job id.

Every send is bracketed by the outreach_sends ledger: a 'sending' row is committed
before the provider is called and marked 'sent' after, while the job's advisory lock
is held (two copies of a job in flight at once never both send). A redelivered job
finding 'sent' (the worker died after the send, before the ack) does nothing. One window
remains: a worker dying after the provider took the message but before the 'sent'
commit. Its redelivery finds 'sending' and sends again (transactional mail must
arrive); the email's Message-ID is derived from the job id alone, so the copy is
recognisable downstream. SMS has no such identifier, so that rare repeat can reach
the phone. The window is one database round trip long.

An email job carrying `unsubscribe_url` is non-transactional (a notification mail): it
gets the recipient's unsubscribe footer and the RFC 8058 List-Unsubscribe headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from channels.bus import Bus
from config import Settings
from config.clock import utc_now
from jobs.campaigns import QUEUE as CAMPAIGN_QUEUE
from jobs.outreach import QUEUE
from jobs.queue import JobQueue
from jobs.templates import render_email, render_sms, with_unsubscribe
from storage import outreach as ledger
from storage.db import Database
from workers.campaign_push import PushSenders, build_push_senders, push_to_user
from workers.campaigns import CampaignConfig, CampaignSender
from workers.delivery import Mailer, PermanentSendError, SmsProvider, build_email
from workers.sms import TwilioSms

log = logging.getLogger(__name__)
TEST_SUBJECT_PREFIX = "[Test] "
# Ledger rows outlive any redelivery by far (retries end within minutes).
LEDGER_RETENTION = timedelta(days=30)
PRUNE_EVERY_S = 3600.0


class SendInProgress(Exception):
    """Another worker holds this job's send lock; the queue retries the job later."""


class OutreachWorker:
    def __init__(
        self, mailer: Mailer, sms: SmsProvider, mail_from: str, db: Database,
        push: PushSenders | None = None,
    ) -> None:
        self.mailer = mailer
        self.sms = sms
        self.mail_from = mail_from
        self.db = db
        self.push = push

    async def handle(self, job: dict[str, Any]) -> None:
        kind = job.get("type")
        if kind == "email":
            await self._once(job, "email", self._email)
        elif kind == "sms":
            await self._once(job, "sms", self._sms)
        elif kind == "push":
            await self._once(job, "push", self._push)
        else:
            raise ValueError(f"unknown outreach job type {kind!r}")

    async def _once(
        self, job: dict[str, Any], channel: str, send: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> None:
        job_id = str(job["id"])
        if await ledger.begin_send(self.db, job_id, channel, str(job["to"])) != "sending":
            log.info("outreach job already done; redelivery ignored", extra={"job_id": job_id})
            return
        async with ledger.exclusive(self.db, f"send:{job_id}") as mine:
            if not mine:
                # A copy of this job is being sent right now; retry once it has settled.
                raise SendInProgress(f"job {job_id} is being sent by another worker")
            # Re-read under the lock: that other copy may have finished just before.
            if await ledger.send_status(self.db, job_id) != "sending":
                return
            try:
                await send(job)
            except PermanentSendError as exc:
                # Retrying cannot help; the job is settled as failed and acknowledged.
                await ledger.finish_send(self.db, job_id, "failed", str(exc)[:500])
                log.warning("outreach send refused", extra={"job_id": job_id, "error": str(exc)})
                return
            # Transient and unknown errors leave 'sending': the queue retries the job.
            await ledger.finish_send(self.db, job_id, "sent")
        log.info(f"{channel} sent", extra={"job_id": job_id, "template": job.get("template")})

    async def _email(self, job: dict[str, Any]) -> None:
        subject, text, html = render_email(job["template"], job.get("params", {}))
        if job.get("test"):
            subject = TEST_SUBJECT_PREFIX + subject
        headers = None
        if link := job.get("unsubscribe_url"):
            # Non-transactional mail (notifications) carries the recipient's opt-out link.
            text, html = with_unsubscribe(text, html, link)
            headers = {"List-Unsubscribe": f"<{link}>",
                       "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        await self.mailer.send(build_email(self.mail_from, job["to"], subject, text, html,
                                           seed=str(job["id"]), headers=headers))

    async def _sms(self, job: dict[str, Any]) -> None:
        text = render_sms(job["template"], job.get("params", {}))
        await self.sms.send(job["to"], ("[Test] " if job.get("test") else "") + text)

    async def _push(self, job: dict[str, Any]) -> None:
        """A push to every device of the user in `to` (test sends); the body is an SMS template."""
        if self.push is None:
            raise PermanentSendError("push is not configured on this worker")
        title = TEST_SUBJECT_PREFIX + "HotSpot" if job.get("test") else "HotSpot"
        body = render_sms(job["template"], job.get("params", {}))
        outcome, error = await push_to_user(self.db, self.push, uuid.UUID(job["to"]),
                                            uuid.UUID(job["id"]), {"kind": "test", "title": title,
                                                                   "body": body})
        if outcome != "sent":
            raise PermanentSendError(error or "not delivered")


@dataclass
class RunningOutreach:
    """What start_outreach opened, closed at shutdown after the consumers stopped."""

    sms: SmsProvider
    push: PushSenders
    pruner: asyncio.Task[None]

    async def close(self) -> None:
        self.pruner.cancel()
        await asyncio.gather(self.pruner, return_exceptions=True)
        if isinstance(self.sms, TwilioSms):
            await self.sms.close()
        await self.push.close()


async def start_outreach(
    settings: Settings, queue: JobQueue, db: Database, bus: Bus, mailer: Mailer, sms: SmsProvider
) -> RunningOutreach:
    """Consume the outreach queue (transactional mail) and the campaigns queue."""
    push = build_push_senders(settings)
    worker = OutreachWorker(mailer, sms, settings.mail_from, db, push)
    await queue.consume(QUEUE, worker.handle, prefetch=10)
    sender = CampaignSender(db, mailer, sms, bus, CampaignConfig(
        mail_from=settings.mail_from, public_base_url=settings.public_base_url,
        unsubscribe_secret=settings.resolved_unsubscribe_secret(),
        batches_per_s=settings.limits.campaign_batches_per_s), push)
    # Few at a time: a batch waits for its throttle slot while it holds the message.
    await queue.consume(CAMPAIGN_QUEUE, sender.handle, prefetch=2)
    return RunningOutreach(sms, push, asyncio.create_task(_prune_forever(db)))


async def _prune_forever(db: Database) -> None:
    """Forget old ledger rows now and then; every worker may do it, deletes are idempotent."""
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            pruned = await ledger.prune_sends(db, utc_now() - LEDGER_RETENTION)
            if pruned:
                log.info("outreach ledger pruned", extra={"rows": pruned})
        await asyncio.sleep(PRUNE_EVERY_S)
