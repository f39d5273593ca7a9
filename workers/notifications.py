"""The notifications worker: source events become grouped notifications, live events and pushes.

Jobs on the durable `notifications` queue (jobs/notifications.py):

- messages.stored: after each batch the persistence worker stored. Every member but the
  sender who has neither muted the conversation nor blocked the sender gets a mention
  (when @named), else a reply (when it answers their message), else a message
  notification; `message` only while they have no connected device, the other two in
  any case.
- reaction.added: for the message's sender.
- notify: any other feature, via handlers.notifications.notify.
- push: one push to one device, retried on its own (workers/notification_push.py).

A source key per event makes a redelivered job notify nobody twice. Recipients with a
connected device get `notification.new` live; the others get a push, unless push is off
for the kind or their quiet hours hold (workers/notification_policy.py). Outside quiet
hours, an absent recipient who turned email or SMS on for the kind also gets an outreach
job, once per new notification group (workers/notification_mail.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from channels.presence import PresenceStore
from channels.realtime import Realtime
from config import Settings
from jobs.notifications import NOTIFY_JOB, PUSH_JOB, QUEUE, REACTION_JOB, STORED_JOB, preview
from jobs.queue import JobQueue
from storage import messages as message_store
from storage import notifications as store
from storage.db import Database
from storage.mentions import mentioned_usernames
from storage.notifications import Channel, Kind, Notification, NotificationDraft
from storage.views.notifications import wire
from workers.notification_mail import MailLinks, queue_mail
from workers.notification_policy import awake, enabled
from workers.notification_push import NotificationPusher, mobile_push_transport
from workers.push import PushTransport, web_push_sender

log = logging.getLogger(__name__)
# Idempotency keys are kept far longer than any job could be redelivered.
SOURCE_RETENTION = timedelta(days=30)
READ_RETENTION = timedelta(days=90)


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
        self.clock = clock
        self.pusher = NotificationPusher(db, queue, presence, ttl_s=push_ttl_s, web_push=web_push,
                                         mobile_push=mobile_push, clock=clock, session=session)
        self.mail = mail  # None: no email or SMS notifications from this worker
        self._purger: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._purger = asyncio.create_task(self._purge_forever(), name="notification-purge")

    async def stop(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
        await self.pusher.close()

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
            await self.pusher.send(job)
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
        users = [u for u in users if enabled(prefs[u], draft.kind, Channel.IN_APP)]
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
        now_awake = await awake(self.db, self.clock(), [
            n for n in made if n.user_id not in online
            and any(enabled(prefs[n.user_id], n.kind, c) for c in channels)])
        await self.pusher.queue_pushes(
            [n for n in now_awake if enabled(prefs[n.user_id], n.kind, Channel.PUSH)], unread)
        if self.mail is not None:
            # Mail and SMS once per group until it is read: a busy chat is one message, not fifty.
            await queue_mail(self.db, self.queue, self.mail, [n for n in now_awake if n.count == 1],
                             prefs, draft.source_key)
        return made


async def start_notifications_worker(
    settings: Settings, queue: JobQueue, db: Database, realtime: Realtime,
    presence: PresenceStore, clock: Callable[[], datetime],
) -> NotificationWorker:
    """Build the push transports from settings, start the worker and consume its queue."""
    session = aiohttp.ClientSession()
    mail = MailLinks(settings.public_base_url, settings.resolved_unsubscribe_secret())
    worker = NotificationWorker(db, queue, realtime, presence, push_ttl_s=settings.push_ttl_s,
                                web_push=web_push_sender(settings),
                                mobile_push=mobile_push_transport(settings, session), clock=clock,
                                session=session, mail=mail)
    await worker.start()
    await queue.consume(QUEUE, worker.handle, prefetch=20)
    return worker
