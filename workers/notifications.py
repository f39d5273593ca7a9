"""The notifications worker: source events become grouped notifications, live events and pushes.

Jobs on the durable `notifications` queue:

- messages.stored {messages: [{id, conversation_id, sender_id, body, reply_to}]}, published
  by the persistence worker after each stored batch. Every member but the sender who has
  neither muted the conversation nor blocked the sender gets a mention (when @named), else
  a reply (when it answers their message), else a message notification; `message` only
  while they have no connected device, the other two in any case.
- reaction.added {message_id, conversation_id, actor_id, emoji}: for the message's sender.
- notify {kind, user_ids, actor_id, ...}: any other feature, via handlers.notifications.notify.
- push {subscription_id, ...}: one push to one device, retried on its own.

A source key per event makes a redelivered job notify nobody twice. Recipients with a
connected device get `notification.new` live; the others get a push, unless push is off
for the kind or their quiet hours hold. A push past its TTL is dropped, not sent late.
Outside quiet hours, an absent recipient who turned email or SMS on for the kind also
gets an outreach job (verified address only, not after an outreach opt-out), once per
new notification group; its id is derived from the source key, so the outreach ledger
sends it at most once whatever happens upstream.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import aiohttp
import orjson

from channels.presence import PresenceStore
from channels.realtime import Realtime
from config import Settings
from jobs.notifications import NOTIFY_JOB, PUSH_JOB, QUEUE, REACTION_JOB, STORED_JOB, preview, stored_job
from jobs.outreach import QUEUE as OUTREACH_QUEUE
from jobs.outreach import outreach_job
from jobs.queue import JobQueue, new_job
from jobs.unsubscribe import link as unsubscribe_link
from storage import messages as message_store
from storage import notifications as store
from storage import push_subscriptions as push_store
from storage.db import Database
from storage.mentions import mentioned_usernames
from storage.notifications import Channel, Contact, Kind, Notification, NotificationDraft
from storage.views.notifications import render, wire
from workers.push import (
    HttpMobilePush,
    OutboxMobilePush,
    PushMessage,
    PushTransport,
    topic_for,
    web_push_sender,
)

log = logging.getLogger(__name__)
# Web Push allows about 4 KB after encryption; a payload over this leaves its data out.
PUSH_PAYLOAD_BYTES = 3000
# Idempotency keys are kept far longer than any job could be redelivered.
SOURCE_RETENTION = timedelta(days=30)
READ_RETENTION = timedelta(days=90)
URGENT_KINDS = {Kind.MESSAGE, Kind.MENTION, Kind.REPLY}
# Outreach job ids are uuid5(this, channel:user:source key): a redelivery re-derives the same id.
OUTREACH_JOB_NAMESPACE = uuid.UUID("6f2b7d4e-3c1a-5e8f-9b0d-2a4c6e8f1b3d")
SMS_SUMMARY_CHARS = 120


@dataclass(frozen=True)
class MailLinks:
    """What notification email and SMS need: the app's public address and the unsubscribe key."""

    public_base_url: str
    unsubscribe_secret: bytes


class PushDeferred(Exception):
    """A push must wait (rate limited, or the service failing); the queue retries the job later."""


async def announce_stored(queue: JobQueue, messages: list[dict[str, Any]]) -> None:
    """Queue the notifications of a stored batch: the persistence worker's hook."""
    await queue.publish(QUEUE, stored_job(messages))


def outreach_job_id(channel: str, user_id: uuid.UUID, source_key: str) -> str:
    """The outreach job id of one notification mail or SMS: the same for every redelivery."""
    return str(uuid.uuid5(OUTREACH_JOB_NAMESPACE, f"{channel}:{user_id}:{source_key}"))


def _one_line(text: str) -> str:
    # Titles become mail subjects: a line break there would make the message unbuildable.
    return " ".join(text.split())


def _enabled(prefs: dict[tuple[str, str], bool], kind: str, channel: str) -> bool:
    return prefs.get((kind, channel), store.default_enabled(kind, channel))


class NotificationWorker:
    def __init__(
        self, db: Database, queue: JobQueue, realtime: Realtime, presence: PresenceStore, *,
        push_ttl_s: int, web_push: PushTransport | None, mobile_push: PushTransport,
        clock: Callable[[], datetime], session: aiohttp.ClientSession | None = None,
        mail: MailLinks | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.realtime = realtime
        self.presence = presence
        self.push_ttl_s = push_ttl_s
        self.web_push = web_push
        self.mobile_push = mobile_push
        self.clock = clock
        self._session = session
        self.mail = mail  # None: no email or SMS notifications from this worker
        self._purger: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._purger = asyncio.create_task(self._purge_forever(), name="notification-purge")

    async def stop(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
        if self.web_push is not None:
            await self.web_push.close()
        if self._session is not None:
            await self._session.close()

    async def _purge_forever(self) -> None:
        while True:
            try:
                now = self.clock()
                await store.purge_sources_before(self.db, now - SOURCE_RETENTION)
                await store.purge_read_before(self.db, now - READ_RETENTION)
            except Exception:
                log.exception("notification source purge failed; trying again later")
            await asyncio.sleep(3600)

    async def handle(self, job: dict[str, Any]) -> None:
        kind = job.get("type")
        if kind == STORED_JOB:
            for message in job["messages"]:
                await self.on_message(message)
        elif kind == REACTION_JOB:
            await self.on_reaction(job)
        elif kind == NOTIFY_JOB:
            await self.on_notify(job)
        elif kind == PUSH_JOB:
            await self.push(job)
        else:
            raise ValueError(f"unknown notifications job type {kind!r}")

    async def on_message(self, m: dict[str, Any]) -> None:
        """Mention, reply or message notifications for one stored message."""
        message_id, sender = uuid.UUID(m["id"]), uuid.UUID(m["sender_id"])
        conversation_id = uuid.UUID(m["conversation_id"])
        audience = await store.conversation_audience(self.db, conversation_id, sender)
        if audience is None or not audience.user_ids:
            return
        reachable = set(audience.user_ids)
        names = mentioned_usernames(m.get("body"))
        mentioned = (await store.members_named(self.db, conversation_id, names) & reachable
                     if names else set())
        replied: set[uuid.UUID] = set()
        if m.get("reply_to"):
            parent = await message_store.get_message(self.db, uuid.UUID(m["reply_to"]))
            if parent is not None and parent.sender_id in reachable - mentioned:
                replied = {parent.sender_id}
        data = {"conversation_id": str(conversation_id), "conversation_kind": audience.conversation_kind,
                "conversation_title": audience.title, "message_id": str(message_id),
                "actor_name": audience.actor_name, "preview": preview(m.get("body"))}

        def draft(kind: Kind, group_key: str) -> NotificationDraft:
            return NotificationDraft(kind, group_key, f"message:{message_id}", sender, "message",
                                     message_id, data)

        await self.deliver(draft(Kind.MENTION, f"mention:{message_id}"), list(mentioned))
        await self.deliver(draft(Kind.REPLY, f"reply:{m.get('reply_to')}"), list(replied))
        if m.get("story_id"):
            # story.reply: the story's author hears of it as a reply to the story, once.
            story_id = uuid.UUID(m["story_id"])
            await self.deliver(NotificationDraft(
                Kind.STORY_REPLY, f"story_reply:{story_id}", f"message:{message_id}", sender,
                "item", story_id, {**data, "story_id": str(story_id)}),
                list(reachable - mentioned - replied))
            return
        await self.deliver(draft(Kind.MESSAGE, f"message:{conversation_id}"),
                           list(reachable - mentioned - replied))

    async def on_reaction(self, job: dict[str, Any]) -> None:
        """A reaction notifies the message's sender, grouped per message."""
        message = await message_store.get_message(self.db, uuid.UUID(job["message_id"]))
        actor = uuid.UUID(job["actor_id"])
        if message is None or message.deleted_at is not None or message.sender_id == actor:
            return
        audience = await store.conversation_audience(self.db, message.conversation_id, actor)
        if audience is None or message.sender_id not in audience.user_ids:
            return
        data = {"conversation_id": str(message.conversation_id),
                "conversation_kind": audience.conversation_kind,
                "conversation_title": audience.title, "message_id": str(message.id),
                "actor_name": audience.actor_name, "emoji": job["emoji"],
                "preview": preview(message.body)}
        await self.deliver(NotificationDraft(
            Kind.REACTION, f"reaction:{message.id}", f"reaction:{message.id}:{actor}:{job['emoji']}",
            actor, "message", message.id, data), [message.sender_id])

    async def on_notify(self, job: dict[str, Any]) -> None:
        """A notification another feature asked for; nobody who blocked the actor gets it."""
        actor = uuid.UUID(job["actor_id"]) if job.get("actor_id") else None
        user_ids = [uuid.UUID(u) for u in job["user_ids"] if u != job.get("actor_id")]
        if actor is not None:
            user_ids = await store.not_blocking(self.db, actor, user_ids)
            names = await store.display_names(self.db, [actor])
        else:
            user_ids = await store.live_users(self.db, user_ids)
            names = {}
        subject_id = uuid.UUID(job["subject_id"]) if job.get("subject_id") else None
        data = {**job.get("data", {}), "actor_name": names.get(actor) if actor else None}
        await self.deliver(NotificationDraft(
            Kind(job["kind"]), job["group_key"], job["source_key"], actor,
            job.get("subject_type") if subject_id else None, subject_id, data), user_ids)

    async def deliver(self, draft: NotificationDraft, user_ids: list[uuid.UUID]) -> list[Notification]:
        """Store the draft for whoever wants it, then tell them live or queue their pushes."""
        users = sorted(set(user_ids), key=str)
        if not users:
            return []
        prefs = await store.preferences(self.db, users)
        users = [u for u in users if _enabled(prefs[u], draft.kind, Channel.IN_APP)]
        if not users:
            return []
        counts = await self.presence.counts(users)
        online = {u for u, c in zip(users, counts, strict=True) if c.sockets > 0}
        if draft.kind == Kind.MESSAGE:
            # A message reaches connected devices by itself; only absent users need telling.
            users = [u for u in users if u not in online]
        if not users:
            return []
        async with self.db.transaction() as conn:
            made = await store.record(conn, draft, users)
        if not made:
            return []  # a redelivery: every recipient had it already
        unread = await store.unread_counts(self.db, [n.user_id for n in made])
        live = [n for n in made if n.user_id in online]
        sent = await asyncio.gather(*(
            self.realtime.send_to_user(n.user_id, "notification.new",
                                       {"notification": wire(n), "unread_count": unread[n.user_id]})
            for n in live), return_exceptions=True)
        if any(isinstance(s, Exception) for s in sent):
            # Stored all the same: clients fetch notification.list when they reconnect.
            log.warning("some notification.new events were not published")
        channels = (Channel.PUSH, Channel.EMAIL, Channel.SMS) if self.mail else (Channel.PUSH,)
        # Quiet hours are read only for those some channel beyond the app would reach.
        awake = await self._awake([n for n in made if n.user_id not in online and any(
            _enabled(prefs[n.user_id], n.kind, c) for c in channels)])
        await self._queue_pushes(
            [n for n in awake if _enabled(prefs[n.user_id], n.kind, Channel.PUSH)], unread)
        # Mail and SMS once per group until it is read: a busy chat is one message, not fifty.
        await self._queue_outreach([n for n in awake if n.count == 1], prefs, draft.source_key)
        return made

    async def _awake(self, made: list[Notification]) -> list[Notification]:
        """Those of the notifications whose recipient is not in quiet hours now."""
        if not made:
            return []
        now = self.clock()
        quiet = await store.quiet_hours(self.db, [n.user_id for n in made])
        awake = []
        for n in made:
            hours = quiet.get(n.user_id)
            try:
                hushed = hours is not None and hours.covers(now)
            except (ZoneInfoNotFoundError, ValueError):
                hushed = False
            if not hushed:
                awake.append(n)
        return awake

    async def _queue_pushes(self, awake: list[Notification], unread: dict[uuid.UUID, int]) -> None:
        if not awake:
            return
        now = self.clock()
        subscriptions = await push_store.live_for_users(self.db, [n.user_id for n in awake])
        expires_at = (now + timedelta(seconds=self.push_ttl_s)).timestamp()
        jobs = []
        for n in awake:
            payload = self.push_payload(n, unread[n.user_id])
            for sub in subscriptions:
                if sub.user_id == n.user_id:
                    jobs.append(new_job(
                        PUSH_JOB, subscription_id=str(sub.id), user_id=str(n.user_id),
                        notification_id=str(n.id), payload=payload,
                        topic=topic_for(n.group_key), expires_at=expires_at,
                        urgency="high" if n.kind in URGENT_KINDS else "normal"))
        results = await asyncio.gather(*(self.queue.publish(QUEUE, j) for j in jobs),
                                       return_exceptions=True)
        lost = sum(isinstance(r, Exception) for r in results)
        if lost:
            # The notifications are stored; these pushes are lost, which a retry cannot fix
            # (a redelivered job finds the notifications already made).
            log.warning("push jobs not queued", extra={"lost": lost, "queued": len(jobs) - lost})

    async def _queue_outreach(
        self, made: list[Notification], prefs: dict[uuid.UUID, dict[tuple[str, str], bool]],
        source_key: str,
    ) -> None:
        """Queue an email or SMS for each recipient who turned the channel on for the kind."""
        if self.mail is None:
            return
        wanted = [(n, channel) for n in made for channel in (Channel.EMAIL, Channel.SMS)
                  if _enabled(prefs[n.user_id], n.kind, channel)]
        if not wanted:
            return
        found = await store.contacts(self.db, sorted({n.user_id for n, _ in wanted}, key=str))
        jobs = []
        for n, channel in wanted:
            contact = found.get(n.user_id)
            # The unsubscribe link in these mails records an outreach opt-out: honour it here too.
            if contact is None or channel in contact.opted_out:
                continue
            job = self.outreach_job(n, channel, contact, source_key)
            if job is not None:
                jobs.append(job)
        results = await asyncio.gather(*(self.queue.publish(OUTREACH_QUEUE, j) for j in jobs),
                                       return_exceptions=True)
        lost = sum(isinstance(r, Exception) for r in results)
        if lost:
            # Like pushes: the notifications are stored and a redelivery would not recreate them.
            log.warning("notification outreach jobs not queued",
                        extra={"lost": lost, "queued": len(jobs) - lost})

    def outreach_job(
        self, n: Notification, channel: Channel, contact: Contact, source_key: str
    ) -> dict[str, Any] | None:
        """The outreach job mailing or texting one notification; None without a verified address."""
        assert self.mail is not None
        title, body = (_one_line(t) for t in render(n))
        app_link = self.mail.public_base_url
        job_id = outreach_job_id(channel, n.user_id, source_key)
        if channel == Channel.EMAIL and contact.email is not None:
            link = unsubscribe_link(app_link, self.mail.unsubscribe_secret, n.user_id, "email")
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

    @staticmethod
    def push_payload(n: Notification, unread_count: int) -> dict[str, Any]:
        title, body = render(n)
        payload: dict[str, Any] = {"notification_id": str(n.id), "kind": n.kind, "title": title,
                                   "body": body, "count": n.count, "unread_count": unread_count,
                                   "data": n.data}
        if len(orjson.dumps(payload)) > PUSH_PAYLOAD_BYTES:
            payload.pop("data")
        return payload

    async def push(self, job: dict[str, Any]) -> None:
        """Send one push to one device, unless it expired or the user came back online."""
        now = self.clock()
        expires_at = datetime.fromtimestamp(float(job["expires_at"]), UTC)
        if now >= expires_at:
            log.info("push expired; dropped", extra={"job_id": job.get("id")})
            return
        sub = await push_store.get(self.db, uuid.UUID(job["subscription_id"]))
        if sub is None:
            return  # unsubscribed, removed as gone, or its session ended
        if sub.backoff_until is not None and sub.backoff_until > now:
            if sub.backoff_until >= expires_at:
                log.info("push would expire during backoff; dropped", extra={"job_id": job.get("id")})
                return
            raise PushDeferred(f"the push service asked to wait until {sub.backoff_until.isoformat()}")
        [count] = await self.presence.counts([sub.user_id])
        if count.sockets > 0:
            return  # back online: the notification is in the app
        transport = self.web_push if sub.kind == "webpush" else self.mobile_push
        if transport is None:
            log.warning("web push is not configured; push dropped")
            return
        ttl_s = int((expires_at - now).total_seconds())
        result = await transport.send(sub, PushMessage(job["payload"], ttl_s, job.get("topic"),
                                                       job.get("urgency", "normal")))
        if result.outcome == "sent":
            await push_store.record_success(self.db, sub.id)
        elif result.outcome == "gone":
            log.info("push subscription gone; removed", extra={"status": result.status})
            await push_store.delete(self.db, sub.id)
        elif result.outcome == "retry":
            until = None if result.retry_after_s is None else \
                now + timedelta(seconds=result.retry_after_s)
            await push_store.record_error(self.db, sub.id, result.detail, until)
            raise PushDeferred(result.detail)
        else:
            log.warning("push refused", extra={"status": result.status, "detail": result.detail})
            await push_store.record_error(self.db, sub.id, result.detail)


async def start_notifications_worker(
    settings: Settings, queue: JobQueue, db: Database, realtime: Realtime,
    presence: PresenceStore, clock: Callable[[], datetime],
) -> NotificationWorker:
    """Build the push transports from settings, start the worker and consume its queue."""
    session = aiohttp.ClientSession()
    web_push = web_push_sender(settings)
    mobile_push: PushTransport = (
        HttpMobilePush(session, settings.mobile_push_url, settings.mobile_push_api_key)
        if settings.mobile_push_url else OutboxMobilePush(settings.outbox_dir / "push"))
    mail = MailLinks(settings.public_base_url, settings.resolved_unsubscribe_secret())
    worker = NotificationWorker(db, queue, realtime, presence, push_ttl_s=settings.push_ttl_s,
                                web_push=web_push, mobile_push=mobile_push, clock=clock,
                                session=session, mail=mail)
    await worker.start()
    await queue.consume(QUEUE, worker.handle, prefetch=20)
    return worker
