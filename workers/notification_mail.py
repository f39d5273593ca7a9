"""Notification email and SMS: an outreach job for each absent recipient who turned the
channel on for the kind, to a verified address only and never after an outreach opt-out.

A job's id is derived from the notification's source key, so the outreach ledger sends
it at most once whatever happens upstream (workers/outreach.py sends it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from jobs.outreach import QUEUE as OUTREACH_QUEUE
from jobs.outreach import outreach_job
from jobs.queue import JobQueue
from jobs.unsubscribe import link as unsubscribe_link
from storage import notifications as store
from storage.db import Database
from storage.notifications import Channel, Contact, Notification
from storage.views.notifications import render
from workers.notification_policy import Preferences, enabled

log = logging.getLogger(__name__)
# Outreach job ids are uuid5(this, channel:user:source key): a redelivery re-derives the same id.
OUTREACH_JOB_NAMESPACE = uuid.UUID("6f2b7d4e-3c1a-5e8f-9b0d-2a4c6e8f1b3d")
SMS_SUMMARY_CHARS = 120


@dataclass(frozen=True)
class MailLinks:
    """What notification email and SMS need: the app's public address and the unsubscribe key."""

    public_base_url: str
    unsubscribe_secret: bytes


def outreach_job_id(channel: str, user_id: uuid.UUID, source_key: str) -> str:
    """The outreach job id of one notification mail or SMS: the same for every redelivery."""
    return str(uuid.uuid5(OUTREACH_JOB_NAMESPACE, f"{channel}:{user_id}:{source_key}"))


def _one_line(text: str) -> str:
    # Titles become mail subjects: a line break there would make the message unbuildable.
    return " ".join(text.split())


def mail_job(
    mail: MailLinks, n: Notification, channel: Channel, contact: Contact, source_key: str
) -> dict[str, Any] | None:
    """The outreach job mailing or texting one notification; None without a verified address."""
    title, body = (_one_line(t) for t in render(n))
    app_link = mail.public_base_url
    job_id = outreach_job_id(channel, n.user_id, source_key)
    if channel == Channel.EMAIL and contact.email is not None:
        link = unsubscribe_link(app_link, mail.unsubscribe_secret, n.user_id, "email")
        return outreach_job("email", contact.email, "notification",
                            {"display_name": contact.display_name, "title": title,
                             "body": body, "app_link": app_link},
                            job_id=job_id, unsubscribe_url=link, notification_id=str(n.id))
    if channel == Channel.SMS and contact.phone is not None:
        summary = f"{title}: {body}" if body else title
        if len(summary) > SMS_SUMMARY_CHARS:
            summary = summary[: SMS_SUMMARY_CHARS - 1] + "…"
        return outreach_job("sms", contact.phone, "notification", {"summary": summary},
                            job_id=job_id, notification_id=str(n.id))
    return None


async def queue_mail(
    db: Database, queue: JobQueue, mail: MailLinks, made: list[Notification],
    prefs: Preferences, source_key: str,
) -> None:
    """Queue an email or SMS for each recipient who turned the channel on for the kind."""
    wanted = [(n, channel) for n in made for channel in (Channel.EMAIL, Channel.SMS)
              if enabled(prefs[n.user_id], n.kind, channel)]
    if not wanted:
        return
    found = await store.contacts(db, sorted({n.user_id for n, _ in wanted}, key=str))
    jobs = []
    for n, channel in wanted:
        contact = found.get(n.user_id)
        # The unsubscribe link in these mails records an outreach opt-out: honour it here too.
        if contact is None or channel in contact.opted_out:
            continue
        job = mail_job(mail, n, channel, contact, source_key)
        if job is not None:
            jobs.append(job)
    results = await asyncio.gather(*(queue.publish(OUTREACH_QUEUE, j) for j in jobs),
                                   return_exceptions=True)
    lost = sum(isinstance(r, Exception) for r in results)
    if lost:
        # Like pushes: the notifications are stored and a redelivery would not recreate them.
        log.warning("notification outreach jobs not queued",
                    extra={"lost": lost, "queued": len(jobs) - lost})
