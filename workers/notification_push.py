"""Notification pushes: one job per device on the notifications queue, each retried on its own.

A push goes out unless it expired (its TTL), the push service asked to wait past that,
or the user came back online meanwhile (the notification is in the app then). The
transports themselves (Web Push, the mobile relay) are workers/push.py.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

from channels.presence import PresenceStore
from config import Settings
from jobs.notifications import PUSH_JOB, QUEUE
from jobs.queue import JobQueue, new_job
from storage import push_subscriptions as push_store
from storage.db import Database
from storage.notifications import Kind, Notification
from storage.views.notifications import render
from workers.push import HttpMobilePush, OutboxMobilePush, PushMessage, PushTransport, topic_for

log = logging.getLogger(__name__)
# Web Push allows about 4 KB after encryption; a payload over this leaves its data out.
PUSH_PAYLOAD_BYTES = 3000
URGENT_KINDS = {Kind.MESSAGE, Kind.MENTION, Kind.REPLY}


class PushDeferred(Exception):
    """A push must wait (rate limited, or the service failing); the queue retries the job later."""


def push_payload(n: Notification, unread_count: int) -> dict[str, Any]:
    """What the device shows: the rendered title and body, counts, and data if it fits."""
    title, body = render(n)
    payload: dict[str, Any] = {"notification_id": str(n.id), "kind": n.kind, "title": title,
                               "body": body, "count": n.count, "unread_count": unread_count,
                               "data": n.data}
    if len(orjson.dumps(payload)) > PUSH_PAYLOAD_BYTES:
        payload.pop("data")
    return payload


class NotificationPusher:
    """Queues a push job per device of each notified user, and sends those jobs."""

    def __init__(
        self, db: Database, queue: JobQueue, presence: PresenceStore, *, ttl_s: int,
        web_push: PushTransport | None, mobile_push: PushTransport,
        clock: Callable[[], datetime], session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.presence = presence
        self.ttl_s = ttl_s
        self.web_push = web_push  # None: no VAPID key, Web Push is off
        self.mobile_push = mobile_push
        self.clock = clock
        self._session = session

    async def close(self) -> None:
        if self.web_push is not None:
            await self.web_push.close()
        if self._session is not None:
            await self._session.close()

    async def queue_pushes(self, awake: list[Notification], unread: dict[uuid.UUID, int]) -> None:
        """One push job per live subscription of each notification's recipient."""
        if not awake:
            return
        subscriptions = await push_store.live_for_users(self.db, [n.user_id for n in awake])
        expires_at = (self.clock() + timedelta(seconds=self.ttl_s)).timestamp()
        jobs = []
        for n in awake:
            payload = push_payload(n, unread[n.user_id])
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

    async def send(self, job: dict[str, Any]) -> None:
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


def mobile_push_transport(settings: Settings, session: aiohttp.ClientSession) -> PushTransport:
    """The configured mobile push relay, or an outbox folder when there is none."""
    if settings.mobile_push_url:
        return HttpMobilePush(session, settings.mobile_push_url, settings.mobile_push_api_key)
    return OutboxMobilePush(settings.outbox_dir / "push")
