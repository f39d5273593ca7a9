"""The conversation event stream: appended in one total order, read by sync and by the relay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from storage.db import Database

# Held for the rest of the appending transaction: ids are committed in the order assigned.
EVENT_LOCK_KEY = 0x48535F4556454E54
NOTIFY_CHANNEL = "hotspot_events"


@dataclass(frozen=True)
class EventDraft:
    conversation_id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    audience: list[uuid.UUID] | None = None


@dataclass(frozen=True)
class StoredEvent:
    id: int
    conversation_id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    audience: list[uuid.UUID] | None
    created_at: datetime

    def to_wire(self) -> dict[str, Any]:
        """The event as clients see it: the payload plus the cursor it advances to."""
        return {**self.payload, "cursor": str(self.id)}


@dataclass(frozen=True)
class SyncPage:
    events: list[StoredEvent] = field(default_factory=list)
    next_cursor: int = 0
    has_more: bool = False
    gap: bool = False


def _event(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        id=row["id"], conversation_id=row["conversation_id"], kind=row["kind"],
        payload=row["payload"], audience=list(row["audience"]) if row["audience"] else None,
        created_at=row["created_at"],
    )


async def append_events(conn: asyncpg.Connection, drafts: list[EventDraft]) -> list[StoredEvent]:
    """Append events inside the caller's transaction; they become visible in id order."""
    if not drafts:
        return []
    # Inside a transaction NOTIFY is only delivered at commit, so it can share the lock's
    # round trip (a parameterless multi-statement query).
    notify_now = conn.is_in_transaction()
    await conn.execute(f"SELECT pg_advisory_xact_lock({EVENT_LOCK_KEY})"
                       + (f"; NOTIFY {NOTIFY_CHANNEL}" if notify_now else ""))
    rows = await conn.fetch(
        """INSERT INTO conversation_events (id, conversation_id, kind, payload, audience)
           SELECT nextval('conversation_event_ids'), d.conversation_id, d.kind, d.payload::jsonb,
                  a.audience
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                AS d(conversation_id, kind, payload, audience_text, ord)
           CROSS JOIN LATERAL (SELECT CASE WHEN d.audience_text IS NULL THEN NULL
                                      ELSE d.audience_text::uuid[] END AS audience) a
           ORDER BY d.ord
           RETURNING id, conversation_id, kind, payload, audience, created_at""",
        [d.conversation_id for d in drafts],
        [d.kind for d in drafts],
        [orjson.dumps(d.payload, default=str).decode() for d in drafts],
        [None if d.audience is None else "{" + ",".join(map(str, d.audience)) + "}" for d in drafts],
    )
    if not notify_now:
        await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return sorted((_event(r) for r in rows), key=lambda e: e.id)


# The newest event id; after a purge emptied the table, the horizon stands in for it.
LATEST_EVENT_ID = """SELECT greatest((SELECT coalesce(max(id), 0) FROM conversation_events),
                                    (SELECT purged_to FROM event_horizon))"""


async def latest_event_id(db: Database) -> int:
    return int(await db.pool.fetchval(LATEST_EVENT_ID))


async def sync_page(db: Database, user_id: uuid.UUID, cursor: int, limit: int) -> SyncPage:
    """The caller's events after the cursor: those of conversations while they were a member."""
    async with db.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                           readonly=True):
        horizon = int(await conn.fetchval("SELECT purged_to FROM event_horizon"))
        # Ids become visible as a prefix (see append_events), so everything up to `upto`
        # is final in this snapshot and the next cursor can safely move to it.
        upto = int(await conn.fetchval(LATEST_EVENT_ID))
        if cursor < horizon:
            return SyncPage(gap=True, next_cursor=upto)
        rows = await conn.fetch(
            """SELECT e.id, e.conversation_id, e.kind, e.payload, e.audience, e.created_at
               FROM conversation_members m
               JOIN conversation_events e ON e.conversation_id = m.conversation_id
               WHERE m.user_id = $1 AND e.id > $2 AND e.id <= $3 AND e.id >= m.joined_event_id
                 AND (m.left_event_id IS NULL OR e.id <= m.left_event_id)
                 AND (e.audience IS NULL OR $1 = ANY (e.audience))
               ORDER BY e.id
               LIMIT $4""",
            user_id, cursor, upto, limit + 1,
        )
    events = [_event(r) for r in rows[:limit]]
    has_more = len(rows) > limit
    next_cursor = events[-1].id if has_more else max(cursor, upto)
    return SyncPage(events=events, next_cursor=next_cursor, has_more=has_more)


async def events_after(conn: asyncpg.Connection, after_id: int, limit: int) -> list[StoredEvent]:
    """The relay's read: committed events in id order."""
    rows = await conn.fetch(
        """SELECT id, conversation_id, kind, payload, audience, created_at
           FROM conversation_events WHERE id > $1 ORDER BY id LIMIT $2""",
        after_id, limit,
    )
    return [_event(r) for r in rows]


async def relay_position(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT published_to FROM event_relay"))


async def save_relay_position(conn: asyncpg.Connection, event_id: int) -> None:
    await conn.execute(
        "UPDATE event_relay SET published_to = greatest(published_to, $1)", event_id
    )


async def purge_events_before(db: Database, before: datetime) -> int:
    """Drop events older than the retention window and move the sync horizon past them."""
    async with db.transaction() as conn:
        purged_to = await conn.fetchval(
            "SELECT max(id) FROM conversation_events WHERE created_at < $1", before
        )
        if purged_to is None:
            return 0
        result = await conn.execute("DELETE FROM conversation_events WHERE id <= $1", purged_to)
        await conn.execute(
            "UPDATE event_horizon SET purged_to = greatest(purged_to, $1)", purged_to
        )
    return int(str(result).split()[-1])
