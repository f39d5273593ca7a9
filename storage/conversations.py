"""Conversations and their members."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from storage.blocks import either_way_sql
from storage.db import Database

# A mute with no end is stored as 'infinity', which asyncpg reads back as a naive
# datetime.max; this aware twin is what callers store and compare against.
MUTED_FOREVER = datetime.max.replace(tzinfo=UTC)

CONVERSATION_COLUMNS = """c.id, c.kind, c.title, c.avatar_url, c.created_by, c.created_at,
    c.updated_at, c.last_seq, c.last_message_at, c.member_count"""


@dataclass(frozen=True)
class Conversation:
    id: uuid.UUID
    kind: str
    title: str | None
    avatar_url: str | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    last_seq: int
    last_message_at: datetime | None
    member_count: int


@dataclass(frozen=True)
class Membership:
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    active: bool
    muted_until: datetime | None
    last_read_seq: int
    last_delivered_seq: int
    joined_at: datetime


@dataclass(frozen=True)
class ConversationView:
    """A conversation as one member sees it in a list."""

    conversation: Conversation
    membership: Membership
    unread: int
    last_message: dict[str, Any] | None
    direct_peer_id: uuid.UUID | None


def _conversation(row: asyncpg.Record) -> Conversation:
    return Conversation(
        id=row["id"], kind=row["kind"], title=row["title"], avatar_url=row["avatar_url"],
        created_by=row["created_by"], created_at=row["created_at"], updated_at=row["updated_at"],
        last_seq=row["last_seq"], last_message_at=row["last_message_at"],
        member_count=row["member_count"],
    )


def _membership(row: asyncpg.Record) -> Membership:
    muted_until = row["muted_until"]
    if muted_until is not None and muted_until.tzinfo is None:
        muted_until = MUTED_FOREVER
    return Membership(
        conversation_id=row["conversation_id"], user_id=row["user_id"], role=row["role"],
        active=row["active"], muted_until=muted_until, last_read_seq=row["last_read_seq"],
        last_delivered_seq=row["last_delivered_seq"], joined_at=row["joined_at"],
    )


def direct_key(a: uuid.UUID, b: uuid.UUID) -> str:
    low, high = sorted((str(a), str(b)))
    return f"{low}:{high}"


async def find_direct(db: Database, a: uuid.UUID, b: uuid.UUID) -> Conversation | None:
    row = await db.pool.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.direct_key = $1",
        direct_key(a, b),
    )
    return None if row is None else _conversation(row)


async def insert_conversation(
    conn: asyncpg.Connection, *, kind: str, title: str | None, avatar_url: str | None,
    created_by: uuid.UUID, key: str | None,
) -> Conversation | None:
    """A new conversation; None when a DM for this pair was created concurrently."""
    row = await conn.fetchrow(
        f"""INSERT INTO conversations AS c (kind, title, avatar_url, created_by, direct_key)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (direct_key) DO NOTHING
            RETURNING {CONVERSATION_COLUMNS}""",
        kind, title, avatar_url, created_by, key,
    )
    return None if row is None else _conversation(row)


async def upsert_members(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, members: list[tuple[uuid.UUID, str]],
    joined_event_id: int,
) -> list[uuid.UUID]:
    """Add or re-activate members; returns the ids that were not active members before.

    A (re)joining member has read everything sent before they joined, so their unread
    count starts at zero; a re-activated membership starts fresh (no old mute).
    """
    rows = await conn.fetch(
        """INSERT INTO conversation_members AS m (conversation_id, user_id, role, joined_event_id,
                                                  last_read_seq, last_delivered_seq)
           SELECT $1, u.user_id, u.role, $4, c.last_seq, c.last_seq
           FROM unnest($2::uuid[], $3::text[]) AS u(user_id, role)
           JOIN conversations c ON c.id = $1
           ON CONFLICT (conversation_id, user_id) DO UPDATE
               SET active = true, role = EXCLUDED.role, joined_at = now(),
                   joined_event_id = EXCLUDED.joined_event_id, left_event_id = NULL,
                   last_read_seq = EXCLUDED.last_read_seq,
                   last_delivered_seq = EXCLUDED.last_delivered_seq, muted_until = NULL
               WHERE NOT m.active
           RETURNING user_id""",
        conversation_id, [m[0] for m in members], [m[1] for m in members], joined_event_id,
    )
    added = [r["user_id"] for r in rows]
    await _recount(conn, conversation_id)
    return added


async def deactivate_member(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, user_id: uuid.UUID, left_event_id: int
) -> bool:
    result = await conn.execute(
        """UPDATE conversation_members SET active = false, left_event_id = $3
           WHERE conversation_id = $1 AND user_id = $2 AND active""",
        conversation_id, user_id, left_event_id,
    )
    await _recount(conn, conversation_id)
    return str(result).endswith(" 1")


async def _recount(conn: asyncpg.Connection, conversation_id: uuid.UUID) -> None:
    await conn.execute(
        """UPDATE conversations SET member_count = (
               SELECT count(*) FROM conversation_members WHERE conversation_id = $1 AND active),
               updated_at = now()
           WHERE id = $1""",
        conversation_id,
    )


async def get_for_member(
    db: Database | asyncpg.Connection, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Conversation, Membership] | None:
    """The conversation and the caller's membership, if they are an active member."""
    executor = db.pool if isinstance(db, Database) else db
    row = await executor.fetchrow(
        f"""SELECT {CONVERSATION_COLUMNS}, m.conversation_id, m.user_id, m.role, m.active,
                   m.muted_until, m.last_read_seq, m.last_delivered_seq, m.joined_at
            FROM conversations c
            JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = $2
            WHERE c.id = $1 AND m.active""",
        conversation_id, user_id,
    )
    return None if row is None else (_conversation(row), _membership(row))


async def lock_conversation(conn: asyncpg.Connection, conversation_id: uuid.UUID) -> None:
    await conn.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conversation_id)


async def members(
    db: Database, conversation_id: uuid.UUID, limit: int = 1000
) -> list[Membership]:
    rows = await db.pool.fetch(
        """SELECT conversation_id, user_id, role, active, muted_until, last_read_seq,
                  last_delivered_seq, joined_at
           FROM conversation_members WHERE conversation_id = $1 AND active
           ORDER BY joined_at, user_id LIMIT $2""",
        conversation_id, limit,
    )
    return [_membership(r) for r in rows]


async def conversation_ids_for_user(db: Database, user_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await db.pool.fetch(
        "SELECT conversation_id FROM conversation_members WHERE user_id = $1 AND active", user_id
    )
    return [r["conversation_id"] for r in rows]


_VIEW_SQL = f"""SELECT {CONVERSATION_COLUMNS}, m.conversation_id, m.user_id, m.role, m.active,
           m.muted_until, m.last_read_seq, m.last_delivered_seq, m.joined_at,
           coalesce(c.last_message_at, c.created_at) AS activity,
           (SELECT count(*) FROM messages x
             WHERE x.conversation_id = c.id AND x.seq > m.last_read_seq
               AND x.sender_id <> $1 AND x.deleted_at IS NULL) AS unread,
           (SELECT jsonb_build_object('id', x.id, 'seq', x.seq, 'sender_id', x.sender_id,
                                      'body', x.body, 'created_at', x.created_at,
                                      'deleted', x.deleted_at IS NOT NULL)
              FROM messages x WHERE x.conversation_id = c.id
              ORDER BY x.seq DESC LIMIT 1) AS last_message,
           (SELECT o.user_id FROM conversation_members o
             WHERE c.kind = 'direct' AND o.conversation_id = c.id AND o.user_id <> $1
             LIMIT 1) AS peer
    FROM conversation_members m
    JOIN conversations c ON c.id = m.conversation_id
    WHERE m.user_id = $1 AND m.active"""


def _view(r: asyncpg.Record) -> ConversationView:
    return ConversationView(conversation=_conversation(r), membership=_membership(r),
                            unread=int(r["unread"]), last_message=r["last_message"],
                            direct_peer_id=r["peer"])


async def list_for_user(
    db: Database, user_id: uuid.UUID, limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[ConversationView]:
    """The member's conversations, most recent activity first, keyset-paginated."""
    rows = await db.pool.fetch(
        f"""{_VIEW_SQL}
              AND ($3::timestamptz IS NULL
                   OR (coalesce(c.last_message_at, c.created_at), c.id) < ($3, $4::uuid))
            ORDER BY activity DESC, c.id DESC
            LIMIT $2""",
        user_id, limit, before[0] if before else None, before[1] if before else None,
    )
    return [_view(r) for r in rows]


async def view_for_member(
    db: Database, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> ConversationView | None:
    """One conversation as list_for_user shows it, if the user is an active member."""
    row = await db.pool.fetchrow(f"{_VIEW_SQL} AND c.id = $2", user_id, conversation_id)
    return None if row is None else _view(row)


async def total_unread(db: Database, user_id: uuid.UUID) -> int:
    """Unread messages over the user's conversations, leaving out muted ones (the badge count)."""
    return int(await db.pool.fetchval(
        """SELECT count(*) FROM conversation_members m
           JOIN messages x ON x.conversation_id = m.conversation_id AND x.seq > m.last_read_seq
           WHERE m.user_id = $1 AND m.active AND x.sender_id <> $1 AND x.deleted_at IS NULL
             AND (m.muted_until IS NULL OR m.muted_until <= now())""",
        user_id,
    ))


async def update_details(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, changes: dict[str, Any]
) -> Conversation:
    allowed = {"title", "avatar_url"}
    if not changes.keys() <= allowed:
        raise ValueError(f"not conversation columns: {sorted(changes.keys() - allowed)}")
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
    row = await conn.fetchrow(
        f"""UPDATE conversations AS c SET {sets}, updated_at = now() WHERE id = $1
            RETURNING {CONVERSATION_COLUMNS}""",
        conversation_id, *changes.values(),
    )
    return _conversation(row)


async def set_mute(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, user_id: uuid.UUID,
    until: datetime | None,
) -> bool:
    """Mute until a time (MUTED_FOREVER: no end) or unmute (None); False if not a member."""
    result = await conn.execute(
        """UPDATE conversation_members SET muted_until = $3
           WHERE conversation_id = $1 AND user_id = $2 AND active""",
        conversation_id, user_id, until,
    )
    return str(result).endswith(" 1")


async def set_role(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> bool:
    result = await conn.execute(
        """UPDATE conversation_members SET role = $3
           WHERE conversation_id = $1 AND user_id = $2 AND active""",
        conversation_id, user_id, role,
    )
    return str(result).endswith(" 1")


async def successor(conn: asyncpg.Connection, conversation_id: uuid.UUID) -> uuid.UUID | None:
    """Who inherits a group: the longest-standing admin, else the longest-standing member."""
    value = await conn.fetchval(
        """SELECT user_id FROM conversation_members
           WHERE conversation_id = $1 AND active AND role <> 'owner'
           ORDER BY role = 'admin' DESC, joined_event_id, joined_at, user_id
           LIMIT 1""",
        conversation_id,
    )
    return None if value is None else uuid.UUID(str(value))


async def active_among(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The roles of those of user_ids who are active members."""
    rows = await conn.fetch(
        """SELECT user_id, role FROM conversation_members
           WHERE conversation_id = $1 AND active AND user_id = ANY($2::uuid[])""",
        conversation_id, user_ids,
    )
    return {r["user_id"]: r["role"] for r in rows}


async def existing_users(
    db: Database | asyncpg.Connection, user_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of user_ids are live (not deleted) accounts."""
    executor = db.pool if isinstance(db, Database) else db
    rows = await executor.fetch(
        "SELECT id FROM users WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL", user_ids
    )
    return {r["id"] for r in rows}


async def advance_receipt(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, user_id: uuid.UUID, kind: str, seq: int
) -> tuple[int, int] | None:
    """Move the member's read or delivered mark forward (never back); None if unchanged.

    Reading up to a seq also means delivered up to it. Returns (read, delivered).
    """
    if kind == "read":
        sql = """UPDATE conversation_members
                 SET last_read_seq = $3, last_delivered_seq = greatest(last_delivered_seq, $3)
                 WHERE conversation_id = $1 AND user_id = $2 AND active AND last_read_seq < $3
                 RETURNING last_read_seq, last_delivered_seq"""
    else:
        sql = """UPDATE conversation_members SET last_delivered_seq = $3
                 WHERE conversation_id = $1 AND user_id = $2 AND active AND last_delivered_seq < $3
                 RETURNING last_read_seq, last_delivered_seq"""
    row = await conn.fetchrow(sql, conversation_id, user_id, seq)
    return None if row is None else (row["last_read_seq"], row["last_delivered_seq"])


async def unread_in(
    db: Database, conversation_id: uuid.UUID, user_id: uuid.UUID, read_seq: int
) -> int:
    """Messages after read_seq that others sent and that are not deleted."""
    return int(await db.pool.fetchval(
        """SELECT count(*) FROM messages WHERE conversation_id = $1 AND seq > $3
           AND sender_id <> $2 AND deleted_at IS NULL""",
        conversation_id, user_id, read_seq,
    ))


@dataclass(frozen=True)
class SendCheck:
    """What message.send needs to know before queueing: the caller may write here."""

    id: uuid.UUID
    kind: str
    blocked: bool


async def send_check(
    db: Database, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> SendCheck | None:
    """The conversation if the caller is an active member, with the DM block state; one query."""
    row = await db.pool.fetchrow(
        f"""SELECT c.id, c.kind,
                  c.kind = 'direct' AND EXISTS (
                      SELECT 1 FROM conversation_members o
                      WHERE o.conversation_id = c.id AND o.user_id <> $2
                        AND {either_way_sql('o.user_id', '$2')}) AS blocked
           FROM conversations c
           JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = $2 AND m.active
           WHERE c.id = $1""",
        conversation_id, user_id,
    )
    return None if row is None else SendCheck(row["id"], row["kind"], row["blocked"])
