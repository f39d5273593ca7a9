"""Notifications: kinds and channels, grouped idempotent inserts, lists, reads, preferences, quiet hours."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from storage.blocks import has_blocked_sql
from storage.db import Database

# A grouped row names this many of its most recent actors; actor_count counts them all.
ACTORS_KEPT = 10


class Kind(StrEnum):
    """What a notification is about (docs/notifications.md describes each)."""

    MESSAGE = "message"
    """A DM or group message, while the recipient has no connected device."""
    MENTION = "mention"
    """@username in a message (later also in posts and comments); online recipients too."""
    REPLY = "reply"
    """A reply to your message; online recipients too."""
    REACTION = "reaction"
    """A reaction to your message, grouped per message: "A and 3 others reacted"."""
    FOLLOW = "follow"
    """Someone followed you (produced once follows exist)."""
    FRIEND_REQUEST = "friend_request"
    """Someone asked to be your friend (produced once friendships exist)."""
    SHARE = "share"
    """Someone shared (reposted) your post, notice or slide, grouped per item."""
    QUOTE = "quote"
    """Someone quoted your post or notice."""
    CLIQUE_INVITE = "clique_invite"
    """You were invited to a clique (produced once cliques exist)."""
    STORY_REPLY = "story_reply"
    """A reply to your story (produced once stories exist)."""
    SYSTEM = "system"
    """A notice from the service itself (security, policy, announcements)."""


KIND_DESCRIPTIONS: dict[str, str] = {
    "message": "a DM or group message while you have no connected device",
    "mention": "@username in a message, post or comment",
    "reply": "a reply to your message",
    "reaction": "a reaction to your message",
    "follow": "someone followed you",
    "friend_request": "someone asked to be your friend",
    "share": "someone shared your post, notice or slide",
    "quote": "someone quoted your post or notice",
    "clique_invite": "you were invited to a clique",
    "story_reply": "a reply to your story",
    "system": "a notice from the service",
}


class Channel(StrEnum):
    """Where a notification reaches the user; in_app is the stored notification itself."""

    IN_APP = "in_app"
    PUSH = "push"
    EMAIL = "email"
    SMS = "sms"


def default_enabled(kind: str, channel: str) -> bool:
    """In-app and push are on for every kind; email and SMS are opt-in."""
    return channel in (Channel.IN_APP, Channel.PUSH)


@dataclass(frozen=True)
class NotificationDraft:
    """One source event for its recipients: how it groups, and the key that makes it idempotent."""

    kind: str
    group_key: str
    source_key: str
    actor_id: uuid.UUID | None
    subject_type: str | None
    subject_id: uuid.UUID | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    group_key: str
    actor_ids: list[uuid.UUID]
    actor_count: int
    count: int
    subject_type: str | None
    subject_id: uuid.UUID | None
    data: dict[str, Any]
    seq: int
    created_at: datetime
    updated_at: datetime
    read_at: datetime | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "kind": self.kind, "group_key": self.group_key,
            "actor_ids": [str(a) for a in self.actor_ids], "actor_count": self.actor_count,
            "count": self.count,
            "subject": None if self.subject_id is None else {
                "type": self.subject_type, "id": str(self.subject_id)},
            "data": self.data, "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "read_at": None if self.read_at is None else self.read_at.isoformat(),
            "cursor": str(self.seq),
        }


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    timezone: str

    def covers(self, now: datetime) -> bool:
        """Whether `now` (aware) falls in the quiet window, in the user's local time."""
        local = now.astimezone(ZoneInfo(self.timezone)).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


NOTIFICATION_COLUMNS = """n.id, n.user_id, n.kind, n.group_key, n.actor_ids, n.actor_count, n.count,
    n.subject_type, n.subject_id, n.data, n.seq, n.created_at, n.updated_at, n.read_at"""


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(
        id=row["id"], user_id=row["user_id"], kind=row["kind"], group_key=row["group_key"],
        actor_ids=list(row["actor_ids"]), actor_count=row["actor_count"], count=row["count"],
        subject_type=row["subject_type"], subject_id=row["subject_id"], data=row["data"],
        seq=row["seq"], created_at=row["created_at"], updated_at=row["updated_at"],
        read_at=row["read_at"],
    )


async def record(
    conn: asyncpg.Connection, draft: NotificationDraft, user_ids: list[uuid.UUID]
) -> list[Notification]:
    """Fold one source event into each recipient's open group, or start one; in a transaction.

    Recipients who already have this source_key are skipped (a redelivered job), so the
    result lists only notifications this call created or changed. Recipients are taken in
    a fixed order, so concurrent calls lock rows in the same order and cannot deadlock.
    """
    ordered = sorted(set(user_ids), key=str)
    fresh = [r["user_id"] for r in await conn.fetch(
        """INSERT INTO notification_sources (user_id, source_key, actor_id)
           SELECT u, $2, $3 FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, o) ORDER BY o
           ON CONFLICT DO NOTHING
           RETURNING user_id""",
        ordered, draft.source_key, draft.actor_id,
    )]
    if not fresh:
        return []
    fresh.sort(key=str)
    # An actor already folded into the row is not counted twice. actor_ids is read from the
    # locked latest row version, so concurrent folds agree on it; past the ACTORS_KEPT kept
    # there, earlier sources tell (the new rows have no notification_id yet).
    rows = await conn.fetch(
        f"""INSERT INTO notifications AS n (user_id, kind, group_key, actor_ids, actor_count,
                                            subject_type, subject_id, data)
            SELECT u, $2, $3, CASE WHEN $4::uuid IS NULL THEN '{{}}'::uuid[] ELSE ARRAY[$4::uuid] END,
                   CASE WHEN $4::uuid IS NULL THEN 0 ELSE 1 END, $5, $6, $7::jsonb
            FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, o) ORDER BY o
            ON CONFLICT (user_id, group_key) WHERE read_at IS NULL DO UPDATE SET
                actor_ids = CASE WHEN $4::uuid IS NULL THEN n.actor_ids
                    ELSE (ARRAY[$4::uuid] || array_remove(n.actor_ids, $4::uuid))[1:{ACTORS_KEPT}]
                    END,
                actor_count = n.actor_count + CASE
                    WHEN $4::uuid IS NULL OR $4::uuid = ANY(n.actor_ids) OR EXISTS (
                        SELECT 1 FROM notification_sources s
                        WHERE s.notification_id = n.id AND s.actor_id = $4::uuid) THEN 0
                    ELSE 1 END,
                count = n.count + 1, kind = EXCLUDED.kind, subject_type = EXCLUDED.subject_type,
                subject_id = EXCLUDED.subject_id, data = EXCLUDED.data,
                seq = nextval('notification_seq'), updated_at = now()
            RETURNING {NOTIFICATION_COLUMNS}""",
        fresh, draft.kind, draft.group_key, draft.actor_id, draft.subject_type, draft.subject_id,
        draft.data,
    )
    made = [_notification(r) for r in rows]
    await conn.execute(
        """UPDATE notification_sources s SET notification_id = t.id
           FROM unnest($1::uuid[], $2::uuid[]) AS t(u, id)
           WHERE s.user_id = t.u AND s.source_key = $3""",
        [n.user_id for n in made], [n.id for n in made], draft.source_key,
    )
    return made


async def list_page(
    db: Database, user_id: uuid.UUID, before_seq: int | None, limit: int
) -> list[Notification]:
    """The user's notifications, most recent activity first, keyset-paginated by seq."""
    rows = await db.pool.fetch(
        f"""SELECT {NOTIFICATION_COLUMNS} FROM notifications n
            WHERE n.user_id = $1 AND ($2::bigint IS NULL OR n.seq < $2)
            ORDER BY n.seq DESC LIMIT $3""",
        user_id, before_seq, limit,
    )
    return [_notification(r) for r in rows]


async def unread_counts(
    db: Database | asyncpg.Connection, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Unread notifications per user (a grouped row counts once); 0 for those with none."""
    executor = db.pool if isinstance(db, Database) else db
    rows = await executor.fetch(
        """SELECT user_id, count(*) AS n FROM notifications
           WHERE user_id = ANY($1::uuid[]) AND read_at IS NULL GROUP BY user_id""",
        user_ids,
    )
    counts = dict.fromkeys(user_ids, 0)
    counts.update({r["user_id"]: int(r["n"]) for r in rows})
    return counts


async def mark_read(db: Database, user_id: uuid.UUID, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Mark these of the user's notifications read; returns those that were unread."""
    rows = await db.pool.fetch(
        """UPDATE notifications SET read_at = now()
           WHERE user_id = $1 AND id = ANY($2::uuid[]) AND read_at IS NULL RETURNING id""",
        user_id, ids,
    )
    return [r["id"] for r in rows]


async def mark_read_up_to(
    db: Database, user_id: uuid.UUID, notification_id: uuid.UUID
) -> list[uuid.UUID] | None:
    """Mark read this notification and every one listed after it; None if it is not the user's."""
    async with db.transaction() as conn:
        seq = await conn.fetchval(
            "SELECT seq FROM notifications WHERE id = $1 AND user_id = $2",
            notification_id, user_id,
        )
        if seq is None:
            return None
        rows = await conn.fetch(
            """UPDATE notifications SET read_at = now()
               WHERE user_id = $1 AND seq <= $2 AND read_at IS NULL RETURNING id""",
            user_id, seq,
        )
    return [r["id"] for r in rows]


async def preferences(
    db: Database | asyncpg.Connection, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[tuple[str, str], bool]]:
    """Each user's stored choices by (kind, channel); absent pairs follow the defaults."""
    executor = db.pool if isinstance(db, Database) else db
    rows = await executor.fetch(
        """SELECT user_id, kind, channel, enabled FROM notification_preferences
           WHERE user_id = ANY($1::uuid[])""",
        user_ids,
    )
    found: dict[uuid.UUID, dict[tuple[str, str], bool]] = {u: {} for u in user_ids}
    for r in rows:
        found[r["user_id"]][(r["kind"], r["channel"])] = r["enabled"]
    return found


async def set_preferences(
    db: Database, user_id: uuid.UUID, changes: list[tuple[str, str, bool]]
) -> None:
    """Store (kind, channel, enabled) choices; the last of repeated pairs wins."""
    latest = {(k, c): e for k, c, e in changes}
    await db.pool.execute(
        """INSERT INTO notification_preferences (user_id, kind, channel, enabled)
           SELECT $1, k, c, e FROM unnest($2::text[], $3::text[], $4::boolean[]) AS t(k, c, e)
           ON CONFLICT (user_id, kind, channel)
           DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now()""",
        user_id, [k for k, _ in latest], [c for _, c in latest], list(latest.values()),
    )


async def quiet_hours(
    db: Database | asyncpg.Connection, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, QuietHours]:
    executor = db.pool if isinstance(db, Database) else db
    rows = await executor.fetch(
        """SELECT user_id, start_local, end_local, timezone FROM notification_quiet_hours
           WHERE user_id = ANY($1::uuid[])""",
        user_ids,
    )
    return {r["user_id"]: QuietHours(r["start_local"], r["end_local"], r["timezone"]) for r in rows}


async def set_quiet_hours(db: Database, user_id: uuid.UUID, hours: QuietHours | None) -> None:
    """Set the user's quiet hours, or remove them (None)."""
    if hours is None:
        await db.pool.execute("DELETE FROM notification_quiet_hours WHERE user_id = $1", user_id)
        return
    await db.pool.execute(
        """INSERT INTO notification_quiet_hours (user_id, start_local, end_local, timezone)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (user_id) DO UPDATE SET start_local = EXCLUDED.start_local,
               end_local = EXCLUDED.end_local, timezone = EXCLUDED.timezone, updated_at = now()""",
        user_id, hours.start, hours.end, hours.timezone,
    )


async def purge_sources_before(db: Database, before: datetime) -> int:
    """Forget idempotency keys older than any redelivery could be; returns how many."""
    result = await db.pool.execute(
        "DELETE FROM notification_sources WHERE created_at < $1", before
    )
    return int(str(result).rsplit(" ", 1)[-1])


async def purge_read_before(db: Database, before: datetime) -> int:
    """Delete notifications read before this time; returns how many."""
    result = await db.pool.execute("DELETE FROM notifications WHERE read_at < $1", before)
    return int(str(result).rsplit(" ", 1)[-1])


@dataclass(frozen=True)
class Audience:
    """Who a conversation event may notify: active members, not muting it, not blocking the actor."""

    conversation_kind: str
    title: str | None
    actor_name: str | None
    user_ids: list[uuid.UUID]


async def conversation_audience(
    db: Database, conversation_id: uuid.UUID, actor_id: uuid.UUID
) -> Audience | None:
    """The conversation's reachable members for an event by actor_id (never the actor)."""
    head = await db.pool.fetchrow(
        """SELECT c.kind, c.title, (SELECT display_name FROM users WHERE id = $2) AS actor_name
           FROM conversations c WHERE c.id = $1""",
        conversation_id, actor_id,
    )
    if head is None:
        return None
    rows = await db.pool.fetch(
        f"""SELECT m.user_id FROM conversation_members m
           JOIN users u ON u.id = m.user_id AND u.deleted_at IS NULL
           WHERE m.conversation_id = $1 AND m.active AND m.user_id <> $2
             AND (m.muted_until IS NULL OR m.muted_until <= now())
             AND NOT {has_blocked_sql('m.user_id', '$2')}""",
        conversation_id, actor_id,
    )
    return Audience(head["kind"], head["title"], head["actor_name"], [r["user_id"] for r in rows])


async def members_named(
    db: Database, conversation_id: uuid.UUID, usernames: list[str]
) -> set[uuid.UUID]:
    """Active members of the conversation whose username is one of these (any letter case)."""
    rows = await db.pool.fetch(
        """SELECT u.id FROM users u
           JOIN conversation_members m ON m.user_id = u.id AND m.conversation_id = $1 AND m.active
           WHERE lower(u.username) = ANY($2::text[]) AND u.deleted_at IS NULL""",
        conversation_id, [n.lower() for n in usernames],
    )
    return {r["id"] for r in rows}


async def not_blocking(
    db: Database, actor_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """Those of user_ids who are live accounts and have not blocked the actor."""
    rows = await db.pool.fetch(
        f"""SELECT u.id FROM users u
           WHERE u.id = ANY($2::uuid[]) AND u.deleted_at IS NULL
             AND NOT {has_blocked_sql('u.id', '$1')}""",
        actor_id, user_ids,
    )
    return [r["id"] for r in rows]


async def live_users(db: Database, user_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    rows = await db.pool.fetch(
        "SELECT id FROM users WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL", user_ids
    )
    return [r["id"] for r in rows]


async def display_names(db: Database, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await db.pool.fetch(
        "SELECT id, display_name FROM users WHERE id = ANY($1::uuid[])", user_ids
    )
    return {r["id"]: r["display_name"] for r in rows}


@dataclass(frozen=True)
class Contact:
    """Where a notification may reach a user besides the app: verified addresses only."""

    display_name: str
    email: str | None
    phone: str | None
    opted_out: frozenset[str]


async def contacts(db: Database, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, Contact]:
    """Verified email and phone, and outreach opt-outs, of live users among user_ids."""
    rows = await db.pool.fetch(
        """SELECT u.id, u.display_name,
                  CASE WHEN u.email_verified_at IS NOT NULL THEN u.email END AS email,
                  CASE WHEN u.phone_verified_at IS NOT NULL THEN u.phone END AS phone,
                  coalesce((SELECT array_agg(o.channel) FROM outreach_optouts o
                            WHERE o.user_id = u.id), '{}') AS opted_out
           FROM users u WHERE u.id = ANY($1::uuid[]) AND u.deleted_at IS NULL""",
        user_ids,
    )
    return {r["id"]: Contact(r["display_name"], r["email"], r["phone"], frozenset(r["opted_out"]))
            for r in rows}
