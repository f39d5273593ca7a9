"""Notifications: list, read marks, unread count, preferences and quiet hours; notify() for features.

The kinds (storage.notifications.Kind, described in docs/notifications.md) are made by
the notifications worker from queued source events. Messages, mentions and replies come
from the persistence worker's stored batches, reactions from message.react; every other
feature calls notify() below. Live events, to all of the user's devices:

- notification.new {notification, unread_count}: a notification was made or a group grew
- notification.read {ids, unread_count}: notifications were marked read on some device
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from handlers.commands import Empty, command
from handlers.context import Context, Services
from handlers.errors import CommandError
from handlers.notification_schemas import (
    KindPreferences,
    ListInput,
    MarkReadInput,
    MarkReadOut,
    NotificationOut,
    NotificationPage,
    PreferencesInput,
    PreferencesOut,
    QuietHoursInput,
    QuietHoursOut,
    UnreadOut,
)
from handlers.rates import Rate
from handlers.scopes import Scope
from jobs.notifications import QUEUE, notify_job, reaction_job
from jobs.queue import QueueUnavailable
from storage import notifications as store
from storage.notifications import Channel, Kind, QuietHours
from storage.views.notifications import wire

log = logging.getLogger(__name__)


async def _unread(ctx: Context) -> int:
    counts = await store.unread_counts(ctx.services.db, [ctx.user.user_id])
    return counts[ctx.user.user_id]


@command("notification.list", input=ListInput, rest=("GET", "/notifications"),
         scope=Scope.READ_NOTIFICATIONS, output=NotificationPage,
         rate=Rate("reads"))
async def list_notifications(ctx: Context, data: ListInput) -> NotificationPage:
    """Your notifications, most recent activity first; a grouped one moves up when it grows."""
    before = None if data.cursor is None else int(data.cursor)
    rows = await store.list_page(ctx.services.db, ctx.user.user_id, before, data.limit + 1)
    more = len(rows) > data.limit
    rows = rows[: data.limit]
    return NotificationPage(
        notifications=[NotificationOut.model_validate(wire(n)) for n in rows],
        next_cursor=str(rows[-1].seq) if more else None, unread_count=await _unread(ctx))


@command("notification.mark_read", input=MarkReadInput, rest=("POST", "/notifications/read"),
         scope=Scope.WRITE_NOTIFICATIONS, output=MarkReadOut,
         rate=Rate("notification_write"))
async def mark_read(ctx: Context, data: MarkReadInput) -> MarkReadOut:
    """Mark notifications read: these ids, or up_to one and every one listed after it."""
    services, me = ctx.services, ctx.user.user_id
    if data.ids is not None:
        marked = await store.mark_read(services.db, me, data.ids)
    else:
        assert data.up_to is not None
        found = await store.mark_read_up_to(services.db, me, data.up_to)
        if found is None:
            raise CommandError("not_found", "no such notification")
        marked = found
    unread = await _unread(ctx)
    if marked:
        # Other devices clear their badges too.
        await services.realtime.send_to_user(me, "notification.read", {
            "ids": [str(i) for i in marked], "unread_count": unread})
    return MarkReadOut(marked=marked, unread_count=unread)


@command("notification.count_unread", rest=("GET", "/notifications/unread_count"),
         scope=Scope.READ_NOTIFICATIONS, output=UnreadOut,
         rate=Rate("reads"))
async def unread_count(ctx: Context, data: Empty) -> UnreadOut:
    """How many of your notifications are unread (a grouped one counts once)."""
    return UnreadOut(unread_count=await _unread(ctx))


async def _preferences(ctx: Context) -> PreferencesOut:
    me = ctx.user.user_id
    stored = (await store.preferences(ctx.services.db, [me]))[me]
    hours = (await store.quiet_hours(ctx.services.db, [me])).get(me)

    def on(kind: Kind, channel: Channel) -> bool:
        return stored.get((kind, channel), store.default_enabled(kind, channel))

    return PreferencesOut(
        preferences=[KindPreferences(kind=k, **{c.value: on(k, c) for c in Channel}) for k in Kind],
        quiet_hours=None if hours is None else QuietHoursOut(start=hours.start, end=hours.end,
                                                             timezone=hours.timezone))


@command("notification.get_preferences", rest=("GET", "/notifications/preferences"),
         scope=Scope.READ_NOTIFICATIONS, output=PreferencesOut,
         rate=Rate("reads"))
async def get_preferences(ctx: Context, data: Empty) -> PreferencesOut:
    """Which kinds reach you on which channel (in_app, push, email, sms), and your quiet hours."""
    return await _preferences(ctx)


@command("notification.set_preferences", input=PreferencesInput,
         rest=("PATCH", "/notifications/preferences"), scope=Scope.WRITE_NOTIFICATIONS,
         output=PreferencesOut,
         rate=Rate("notification_write"))
async def set_preferences(ctx: Context, data: PreferencesInput) -> PreferencesOut:
    """Turn kinds on or off per channel; kinds and channels you leave out stay as they are."""
    await store.set_preferences(ctx.services.db, ctx.user.user_id,
                                [(c.kind.value, c.channel.value, c.enabled) for c in data.changes])
    return await _preferences(ctx)


@command("notification.set_quiet_hours", input=QuietHoursInput,
         rest=("PUT", "/notifications/quiet_hours"), scope=Scope.WRITE_NOTIFICATIONS,
         output=PreferencesOut,
         rate=Rate("notification_write"))
async def set_quiet_hours(ctx: Context, data: QuietHoursInput) -> PreferencesOut:
    """Hold pushes, email and SMS daily from start to end, local time (start > end spans midnight)."""
    await store.set_quiet_hours(ctx.services.db, ctx.user.user_id,
                                QuietHours(data.start, data.end, data.timezone))
    return await _preferences(ctx)


@command("notification.clear_quiet_hours", rest=("DELETE", "/notifications/quiet_hours"),
         scope=Scope.WRITE_NOTIFICATIONS, output=PreferencesOut,
         rate=Rate("notification_write"))
async def clear_quiet_hours(ctx: Context, data: Empty) -> PreferencesOut:
    """Remove your quiet hours."""
    await store.set_quiet_hours(ctx.services.db, ctx.user.user_id, None)
    return await _preferences(ctx)


async def notify(
    services: Services, kind: Kind, user_ids: list[uuid.UUID], *, source_key: str,
    actor_id: uuid.UUID | None = None, subject: tuple[str, uuid.UUID] | None = None,
    data: dict[str, Any] | None = None, group_key: str | None = None,
) -> bool:
    """Queue a notification of `kind` for these users; False (logged) if the queue refused it.

    The worker leaves out the actor and whoever blocked them, applies preferences,
    grouping and quiet hours, and delivers live or by push. source_key names the event
    (e.g. "follow:<follower>:<followed>"): the same key never notifies a user twice.
    group_key folds events into one unread notification ("A and 3 others followed
    you": "follow:<followed>"); by default each event stands alone. subject is
    (message|conversation|item|user, id).
    """
    return await _publish(services, notify_job(
        kind.value, user_ids, source_key=source_key, actor_id=actor_id, subject=subject,
        data=data, group_key=group_key))


async def reaction_added(
    services: Services, message_id: uuid.UUID, actor_id: uuid.UUID, emoji: str
) -> bool:
    """Queue the reaction notification for the message's sender (the reaction is already stored)."""
    return await _publish(services, reaction_job(message_id, actor_id, emoji))


async def _publish(services: Services, job: dict[str, Any]) -> bool:
    try:
        await services.queue.publish(QUEUE, job)
    except QueueUnavailable:
        # The action itself succeeded; losing its notification must not undo or fail it.
        log.warning("notification not queued", extra={"type": job["type"]})
        return False
    return True
