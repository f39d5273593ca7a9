"""Which workers exist and how to start their consumers."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from channels.bus import Bus
from channels.presence import PresenceStore
from channels.realtime import Realtime
from config import Settings
from config.clock import utc_now
from jobs.notifications import announce_stored
from jobs.persistence import QUEUE as PERSISTENCE_QUEUE
from jobs.queue import JobQueue
from storage.db import Database
from workers.analytics import RunningAnalytics, start_analytics_worker
from workers.delivery import Mailer, OutboxMailer, OutboxSms, SmsProvider, SmtpMailer
from workers.media import MediaWorker, start_media_worker
from workers.notifications import NotificationWorker, start_notifications_worker
from workers.outreach import RunningOutreach, start_outreach
from workers.persistence import PersistenceWorker
from workers.relay import EventRelay
from workers.retention import EventRetention
from workers.slides import SlideWorker, start_slides_worker
from workers.sms import TwilioSms
from workers.story_purge import StoryPurge

WORKER_NAMES = ("persistence", "outreach", "media", "notifications", "slides", "analytics")


def resolve_worker_names(names: list[str]) -> list[str]:
    """Expand 'all' and refuse unknown names with a clear message."""
    if not names or "all" in names:
        return list(WORKER_NAMES)
    unknown = sorted(set(names) - set(WORKER_NAMES))
    if unknown:
        raise ValueError(f"unknown worker(s) {unknown}; known: {list(WORKER_NAMES)} or all")
    return list(dict.fromkeys(names))


def build_mailer(settings: Settings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url)
    return OutboxMailer(settings.outbox_dir / "mail")


def build_sms_provider(settings: Settings) -> SmsProvider:
    if settings.sms_provider == "twilio":
        assert settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
        return TwilioSms(settings.twilio_base_url, settings.twilio_account_sid,
                         settings.twilio_auth_token, settings.twilio_from, settings.twilio_timeout_s)
    return OutboxSms(settings.outbox_dir / "sms")


@dataclass
class RunningWorkers:
    """What start_workers started beyond queue consumers, to stop at shutdown."""

    persistence: PersistenceWorker | None = None
    relay: EventRelay | None = None
    retention: EventRetention | None = None
    notifications: NotificationWorker | None = None
    media: MediaWorker | None = None
    outreach: RunningOutreach | None = None
    slides: SlideWorker | None = None
    story_purge: StoryPurge | None = None
    analytics: RunningAnalytics | None = None
    names: list[str] = field(default_factory=list)

    async def stop(self) -> None:
        if self.analytics is not None:
            await self.analytics.stop()
        if self.outreach is not None:
            await self.outreach.close()
        if self.notifications is not None:
            await self.notifications.stop()
        if self.story_purge is not None:
            await self.story_purge.stop()
        if self.media is not None:
            await self.media.stop()
        if self.slides is not None:
            await self.slides.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.persistence is not None:
            await self.persistence.stop()


async def start_workers(
    settings: Settings, queue: JobQueue, names: list[str], db: Database, dsn: str, bus: Bus, *,
    realtime: Realtime | None = None, presence: PresenceStore | None = None,
    redis: aioredis.Redis | None = None,
) -> RunningWorkers:
    """Start the named workers; the notifications worker needs this process's realtime
    delivery and presence store (it tells online users live and pushes to the others); the
    analytics worker keeps its live counters in Redis when there is one, else in memory."""
    running = RunningWorkers(names=resolve_worker_names(names))
    for name in running.names:
        if name == "outreach":
            running.outreach = await start_outreach(settings, queue, db, bus,
                                                    build_mailer(settings), build_sms_provider(settings))
        elif name == "media":
            running.media = await start_media_worker(settings, queue, db, bus)
            # Expired stories' media is purged beside the worker that made its renditions.
            running.story_purge = StoryPurge(db, running.media.blobs,
                                             settings.story_media_retention_s,
                                             settings.story_purge_interval_s, utc_now)
            await running.story_purge.start()
        elif name == "analytics":
            running.analytics = await start_analytics_worker(settings, queue, db, redis, utc_now)
        elif name == "slides":
            running.slides = await start_slides_worker(settings, queue, db, bus)
        elif name == "notifications":
            if realtime is None or presence is None:
                raise ValueError("the notifications worker needs realtime delivery and presence")
            running.notifications = await start_notifications_worker(
                settings, queue, db, realtime, presence, utc_now)
        elif name == "persistence":
            # Each stored batch is announced to the notifications queue, after its commit.
            running.persistence = PersistenceWorker(
                db, bus, on_stored=lambda messages: announce_stored(queue, messages))
            await running.persistence.start()
            await queue.consume(PERSISTENCE_QUEUE, running.persistence.handle, prefetch=500)
            # The relay runs beside the writer; only one in the cluster is active at a time.
            running.relay = EventRelay(db, dsn, bus)
            await running.relay.start()
            running.retention = EventRetention(db, settings.event_retention_s, utc_now)
            await running.retention.start()
    return running
