"""The data export: your profile, the items you wrote and the analytics events you did.

`account.export` is one bounded answer (items capped, events' first page) under a strict
daily rate, since it reads a lot at once; the remaining events are paged with
`account.analytics_event.list`, a plain read. Both need the `account` scope: what a
person did, tracked, is theirs to take, never an app's.
"""

from __future__ import annotations

import uuid

from handlers.account_export_schemas import (
    AnalyticsEventPage,
    AnalyticsEventsInput,
    ExportedEventOut,
    ExportedItemOut,
    ExportOut,
)
from handlers.account_schemas import OwnProfile
from handlers.commands import Empty, command
from handlers.context import Context
from handlers.errors import CommandError
from handlers.pagination import Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import account_export as export_store
from storage import analytics as analytics_store
from storage import users as user_store
from storage.analytics import EventRow

# Bounded answers: an export of a heavy account stays one response of a few MB at most.
ITEMS_MAX = 1000
EVENTS_PAGE = 1000


def _event(row: EventRow) -> ExportedEventOut:
    return ExportedEventOut(
        event_id=row.event_id, name=row.name, source=row.source, occurred_at=row.occurred_at,
        received_at=row.received_at, subject_type=row.subject_type, subject_id=row.subject_id,
        owner_id=row.owner_id, props=row.props, ip_hash=row.ip_hash, platform=row.platform)


async def _events_page(ctx: Context, user_id: uuid.UUID,
                       after: Position | None) -> tuple[list[ExportedEventOut], str | None]:
    rows = await analytics_store.events_of_user(
        ctx.services.db, user_id, after=None if after is None else (after.at, after.id),
        limit=EVENTS_PAGE + 1)
    page, cursor = page_of(rows, EVENTS_PAGE, lambda r: Position(r.occurred_at, r.event_id))
    return [_event(r) for r in page], cursor


@command("account.export", rest=("GET", "/users/me/export"), scope=Scope.ACCOUNT,
         output=ExportOut, rate=Rate("account_export"))
async def export(ctx: Context, data: Empty) -> ExportOut:
    """Your data: profile, items (newest 1000) and the first 1000 analytics events."""
    user_id = ctx.user.user_id
    user = await user_store.get_user(ctx.services.db, user_id)
    if user is None:
        raise CommandError("not_found", "account not found")
    items = await export_store.items_of_author(ctx.services.db, user_id, ITEMS_MAX + 1)
    events, cursor = await _events_page(ctx, user_id, None)
    return ExportOut(
        profile=OwnProfile.of(user, ctx.principal),
        items=[ExportedItemOut(**vars(i)) for i in items[:ITEMS_MAX]],
        items_truncated=len(items) > ITEMS_MAX, events=events, next_events_cursor=cursor)


@command("account.analytics_event.list", input=AnalyticsEventsInput,
         rest=("GET", "/users/me/analytics_events"), scope=Scope.ACCOUNT,
         output=AnalyticsEventPage, rate=Rate("reads"))
async def list_analytics_events(ctx: Context, data: AnalyticsEventsInput) -> AnalyticsEventPage:
    """Your raw analytics events, oldest first, 1000 a page (the export's continuation)."""
    after = decode_cursor(data.cursor, "account.analytics_event.list")
    events, cursor = await _events_page(ctx, ctx.user.user_id, after)
    return AnalyticsEventPage(events=events, next_cursor=cursor)
