"""The campaign sender: one job per batch of recipients, throttled, never twice to anyone.

A batch is sent holding its advisory lock, and each recipient row is claimed
('sending') in its own commit before the send and settled (sent / failed /
skipped) after. A redelivered batch job skips settled rows. A row it finds still
'sending' (under the lock, so nobody is sending it now) was interrupted mid-send by
a crash: whether that message left is unknown, so the row is failed rather than
sent again; campaigns choose "never twice" over "surely once".
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from channels.bus import Bus
from channels.topics import user_topic
from jobs.campaigns import BATCH_JOB, email_content, push_content, sms_content
from jobs.templates import (
    campaign_params,
    render_email_template,
    render_sms_text,
    with_unsubscribe,
)
from jobs.unsubscribe import link as unsubscribe_link
from storage import campaigns as store
from storage import outreach as ledger
from storage.campaigns import Campaign, Recipient
from storage.db import Database
from storage.views.campaigns import progress_event
from workers.campaign_push import PushSenders, push_to_user
from workers.delivery import (
    Mailer,
    PermanentSendError,
    SmsProvider,
    TransientSendError,
    build_email,
)

log = logging.getLogger(__name__)
# A recipient the provider keeps deferring is failed after this many tries.
MAX_RECIPIENT_ATTEMPTS = 5
Outcome = Literal["pending", "sent", "failed", "skipped"]


@dataclass(frozen=True)
class CampaignConfig:
    mail_from: str
    public_base_url: str
    unsubscribe_secret: bytes
    batches_per_s: float


class CampaignSender:
    def __init__(
        self, db: Database, mailer: Mailer, sms: SmsProvider, bus: Bus, config: CampaignConfig,
        push: PushSenders | None = None,
    ) -> None:
        self.push = push
        self.db = db
        self.mailer = mailer
        self.sms = sms
        self.bus = bus
        self.config = config

    async def handle(self, job: dict[str, Any]) -> None:
        if job.get("type") != BATCH_JOB:
            raise ValueError(f"unknown campaign job type {job.get('type')!r}")
        campaign_id, batch = uuid.UUID(job["campaign_id"]), int(job["batch"])
        campaign = await self._running(campaign_id)
        if campaign is None:
            return
        wait = await ledger.claim_slot(self.db, f"campaign:{campaign.channel}",
                                       1.0 / self.config.batches_per_s)
        await asyncio.sleep(wait)
        # Paused while this batch waited for its slot?
        if await self._running(campaign_id) is None:
            return
        async with ledger.exclusive(self.db, f"campaign:{campaign_id}:{batch}") as mine:
            if not mine:
                # Another job (a resume's copy) is sending this batch; its message stays
                # unacked until it is done, so a crash there brings the batch back anyway.
                log.info("campaign batch already being sent", extra={"campaign_id": str(campaign_id)})
                return
            interrupted = await store.settle_interrupted(self.db, campaign_id, batch)
            if interrupted:
                log.warning("campaign sends interrupted by a crash were failed",
                            extra={"campaign_id": str(campaign_id), "count": interrupted})
            deferred = await self._send_batch(campaign, batch)
        await self._report(campaign_id)
        if deferred is not None:
            raise deferred

    async def _running(self, campaign_id: uuid.UUID) -> Campaign | None:
        campaign = await store.get_campaign(self.db, campaign_id)
        if campaign is None or campaign.status != "running":
            # Paused: the rows stay pending and resume queues their batches again.
            log.info("campaign batch not sent", extra={"campaign_id": str(campaign_id),
                                                       "status": campaign and campaign.status})
            return None
        return campaign

    async def _send_batch(self, campaign: Campaign, batch: int) -> TransientSendError | None:
        """Send to the batch's pending rows; the first transient error, to retry the job later."""
        deferred: TransientSendError | None = None
        for user_id in await store.pending_in_batch(self.db, campaign.id, batch):
            recipient = await store.claim(self.db, campaign.id, user_id)
            if recipient is None:
                continue  # no longer pending
            try:
                outcome, error = await self._send_one(campaign, recipient)
            except TransientSendError as exc:
                deferred = deferred or exc
                if exc.provider_wide:
                    # Not this recipient's fault, and the rest would fail alike: retry later.
                    await store.settle(self.db, campaign.id, user_id, "pending", str(exc)[:500])
                    break
                outcome, error = "pending", str(exc)
                if recipient.attempts >= MAX_RECIPIENT_ATTEMPTS:
                    outcome = "failed"
            await store.settle(self.db, campaign.id, user_id, outcome, error and error[:500])
        return deferred

    async def _send_one(self, campaign: Campaign, recipient: Recipient) -> tuple[Outcome, str | None]:
        if recipient.deleted:
            return "skipped", "account deleted"
        if recipient.opted_out:
            return "skipped", "opted out"
        if campaign.audience.get("verified_email_only") and not recipient.email_verified:
            return "skipped", "email not verified"
        link = unsubscribe_link(self.config.public_base_url, self.config.unsubscribe_secret,
                                recipient.user_id, campaign.channel)
        params = campaign_params(recipient.display_name, recipient.username,
                                 self.config.public_base_url)
        try:
            if campaign.channel == "email" and recipient.email is not None:
                await self._email(campaign, recipient, recipient.email, params, link)
            elif campaign.channel == "sms" and recipient.phone is not None:
                text = render_sms_text(sms_content(campaign.template, campaign.body_text), params)
                await self.sms.send(recipient.phone, f"{text}\nOpt out: {link}")
            elif campaign.channel == "push" and self.push is not None:
                title, body = push_content(campaign.template, campaign.subject,
                                           campaign.body_text, params)
                return await push_to_user(self.db, self.push, recipient.user_id, campaign.id, {
                    "kind": "campaign", "campaign_id": str(campaign.id), "title": title,
                    "body": body, "unsubscribe_url": link})
            elif campaign.channel == "push":
                return "failed", "push is not configured on this worker"
            else:
                return "skipped", f"no {campaign.channel} address"
        except PermanentSendError as exc:
            return "failed", str(exc)
        except TransientSendError:
            raise
        except Exception as exc:
            # The provider may or may not have taken it; never risk a second copy.
            log.exception("campaign send failed", extra={"campaign_id": str(campaign.id)})
            return "failed", f"delivery unknown: {exc!r}"
        return "sent", None

    async def _email(
        self, campaign: Campaign, recipient: Recipient, to: str, params: dict[str, str], link: str
    ) -> None:
        content = email_content(campaign.template, campaign.subject, campaign.body_text,
                                campaign.body_html)
        subject, text, html = render_email_template(content, params)
        text, html = with_unsubscribe(text, html, link)
        headers = {
            "List-Unsubscribe": f"<{link}>",
            # RFC 8058: a POST to the link unsubscribes at once, no page to visit.
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        await self.mailer.send(build_email(self.config.mail_from, to, subject, text, html,
                                           seed=f"campaign.{campaign.id}.{recipient.user_id}",
                                           headers=headers))

    async def _report(self, campaign_id: uuid.UUID) -> None:
        """Finish the campaign when nothing is left, and tell the admin who started it."""
        await store.finish_if_complete(self.db, campaign_id)
        campaign = await store.get_campaign(self.db, campaign_id)
        if campaign is None or campaign.started_by is None:
            return
        progress = (await store.progress(self.db, [campaign_id]))[campaign_id]
        await self.bus.publish(user_topic(campaign.started_by), {
            "kind": "emit", "user_id": str(campaign.started_by), "event": "campaign.progress",
            "data": progress_event(campaign, progress),
        })
