"""Messages and reactions: batch inserts with per-conversation seqs, history, edits, tombstones."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from storage.blocks import either_way_sql
from storage.db import Database

MESSAGE_COLUMNS = """id, conversation_id, seq, sender_id, client_id, body, media, reply_to,
    created_at, edited_at, deleted_at, deleted_by, story_id"""


@dataclass(frozen=True)
class Message:
    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    client_id: str
    body: str | None
    media: list[Any]
    reply_to: uuid.UUID | None
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    deleted_by: uuid.UUID | None
    reactions: dict[str, int] = field(default_factory=dict)
    # The story this message answers (story.reply), if any.
    story_id: uuid.UUID | None = None

    def to_wire(self) -> dict[str, Any]:
        deleted = self.deleted_at is not None
        return {
            "id": str(self.id), "conversation_id": str(self.conversation_id), "seq": self.seq,
            "sender_id": str(self.sender_id), "client_id": self.client_id,
            "body": None if deleted else self.body, "media": [] if deleted else self.media,
            "reply_to": None if self.reply_to is None else str(self.reply_to),
            "created_at": self.created_at.isoformat(),
            "edited_at": None if self.edited_at is None else self.edited_at.isoformat(),
            "deleted": deleted, "reactions": self.reactions,
            "story_id": None if self.story_id is None else str(self.story_id),
        }


@dataclass(frozen=True)
class MessageDraft:
    id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    client_id: str
    body: str | None
    media: list[Any]
    reply_to: uuid.UUID | None
    story_id: uuid.UUID | None = None


def _message(row: asyncpg.Record, reactions: dict[str, int] | None = None) -> Message:
    return Message(**{k: row[k] for k in (
        "id", "conversation_id", "seq", "sender_id", "client_id", "body", "media", "reply_to",
        "created_at", "edited_at", "deleted_at", "deleted_by", "story_id")},
        reactions=reactions or {})


@dataclass(frozen=True)
class SendLookup:
    """What the storing transaction must know about a batch of sends before writing it."""

    # Messages already stored under these (sender, client_id) keys: retries of a send.
    stored: dict[tuple[uuid.UUID, str], Message]
    # Active (conversation, user) memberships among the senders; True where a DM block stands.
    senders: dict[tuple[uuid.UUID, uuid.UUID], bool]


async def lookup_sends(
    conn: asyncpg.Connection, keys: list[tuple[uuid.UUID, str]],
    pairs: list[tuple[uuid.UUID, uuid.UUID]],
) -> SendLookup:
    """Earlier copies and sender rights for a batch, in one round trip.

    The rights follow storage.conversations.send_check's rule: the worker is the
    authority, an API node's own check only refuses early.
    """
    rows = await conn.fetch(
        f"""SELECT true AS is_stored, NULL::bool AS blocked, {MESSAGE_COLUMNS} FROM messages
            WHERE (sender_id, client_id) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
            UNION ALL
            SELECT false, c.kind = 'direct' AND EXISTS (
                       SELECT 1 FROM conversation_members o
                       WHERE o.conversation_id = m.conversation_id AND o.user_id <> m.user_id
                         AND {either_way_sql('o.user_id', 'm.user_id')}),
                   NULL, m.conversation_id, NULL, m.user_id,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
            WHERE m.active AND (m.conversation_id, m.user_id) IN (
                SELECT * FROM unnest($3::uuid[], $4::uuid[]))""",
        [k[0] for k in keys], [k[1] for k in keys], [p[0] for p in pairs], [p[1] for p in pairs],
    )
    lookup = SendLookup({}, {})
    for r in rows:
        if r["is_stored"]:
            lookup.stored[(r["sender_id"], r["client_id"])] = _message(r)
        else:
            lookup.senders[(r["conversation_id"], r["sender_id"])] = bool(r["blocked"])
    return lookup


async def reserve_seq_blocks(
    conn: asyncpg.Connection, counts: dict[uuid.UUID, int]
) -> dict[uuid.UUID, int]:
    """Take consecutive seqs for several conversations at once; returns each one's first."""
    ids = sorted(counts, key=str)
    # The CTE locks every row in one fixed order before the UPDATE touches any (the
    # uncorrelated count is an InitPlan, run whole first), so concurrent writers never
    # deadlock on these rows; one round trip.
    rows = await conn.fetch(
        """WITH locked AS MATERIALIZED (
               SELECT id FROM conversations WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE)
           UPDATE conversations c SET last_seq = c.last_seq + r.n, last_message_at = now(),
               updated_at = now()
           FROM unnest($1::uuid[], $2::int[]) AS r(id, n)
           WHERE c.id = r.id AND (SELECT count(*) FROM locked) >= 0
           RETURNING c.id, c.last_seq - r.n + 1 AS first""",
        ids, [counts[i] for i in ids],
    )
    return {r["id"]: int(r["first"]) for r in rows}


async def insert_messages(
    conn: asyncpg.Connection, drafts: list[tuple[MessageDraft, int]]
) -> list[Message]:
    """Insert drafts with their assigned seqs, in one statement."""
    rows = await conn.fetch(
        f"""INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, body, media,
                                  reply_to, story_id)
            SELECT id, conversation_id, seq, sender_id, client_id, body, media::jsonb, reply_to,
                   story_id
            FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[],
                        $7::text[], $8::uuid[], $9::uuid[])
                 AS t(id, conversation_id, seq, sender_id, client_id, body, media, reply_to,
                      story_id)
            RETURNING {MESSAGE_COLUMNS}""",
        [d.id for d, _ in drafts], [d.conversation_id for d, _ in drafts],
        [seq for _, seq in drafts], [d.sender_id for d, _ in drafts],
        [d.client_id for d, _ in drafts], [d.body for d, _ in drafts],
        # JSON as text: asyncpg would read a list of lists as a two-dimensional array.
        [orjson.dumps(d.media).decode() for d, _ in drafts], [d.reply_to for d, _ in drafts],
        [d.story_id for d, _ in drafts],
    )
    return sorted((_message(r) for r in rows), key=lambda m: (str(m.conversation_id), m.seq))


async def get_message(db: Database | asyncpg.Connection, message_id: uuid.UUID) -> Message | None:
    executor = db.pool if isinstance(db, Database) else db
    row = await executor.fetchrow(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1",
                                  message_id)
    if row is None:
        return None
    counts = await reaction_counts(executor, [message_id])
    return _message(row, counts.get(message_id))


async def reaction_counts(
    executor: Any, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    rows = await executor.fetch(
        """SELECT message_id, emoji, count(*) AS n FROM message_reactions
           WHERE message_id = ANY($1::uuid[]) GROUP BY message_id, emoji ORDER BY emoji""",
        message_ids,
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["message_id"], {})[r["emoji"]] = int(r["n"])
    return counts


async def history(
    db: Database, conversation_id: uuid.UUID, *, before_seq: int | None, after_seq: int | None,
    limit: int,
) -> list[Message]:
    """A page of messages in seq order: the newest before `before_seq`, or the oldest after."""
    if after_seq is not None:
        rows = await db.pool.fetch(
            f"""SELECT {MESSAGE_COLUMNS} FROM messages
                WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
            conversation_id, after_seq, limit,
        )
    else:
        rows = await db.pool.fetch(
            f"""SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM messages
                WHERE conversation_id = $1 AND ($2::bigint IS NULL OR seq < $2)
                ORDER BY seq DESC LIMIT $3) page ORDER BY seq""",
            conversation_id, before_seq, limit,
        )
    counts = await reaction_counts(db.pool, [r["id"] for r in rows])
    return [_message(r, counts.get(r["id"])) for r in rows]


async def edit_body(
    conn: asyncpg.Connection, message_id: uuid.UUID, body: str
) -> Message | None:
    row = await conn.fetchrow(
        f"""UPDATE messages SET body = $2, edited_at = now()
            WHERE id = $1 AND deleted_at IS NULL RETURNING {MESSAGE_COLUMNS}""",
        message_id, body,
    )
    return None if row is None else _message(row)


async def tombstone(
    conn: asyncpg.Connection, message_id: uuid.UUID, deleted_by: uuid.UUID
) -> Message | None:
    """Blank the message but keep its seq, so history has no hole."""
    row = await conn.fetchrow(
        f"""UPDATE messages SET body = NULL, media = '[]', deleted_at = now(), deleted_by = $2
            WHERE id = $1 AND deleted_at IS NULL RETURNING {MESSAGE_COLUMNS}""",
        message_id, deleted_by,
    )
    if row is not None:
        await conn.execute("DELETE FROM message_reactions WHERE message_id = $1", message_id)
    return None if row is None else _message(row)


async def set_reaction(
    conn: asyncpg.Connection, message_id: uuid.UUID, user_id: uuid.UUID, emoji: str, on: bool
) -> dict[str, int] | None:
    """Add or remove one reaction; returns the new counts, or None if nothing changed."""
    if on:
        result = await conn.execute(
            """INSERT INTO message_reactions (message_id, user_id, emoji) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING""",
            message_id, user_id, emoji,
        )
    else:
        result = await conn.execute(
            "DELETE FROM message_reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3",
            message_id, user_id, emoji,
        )
    if str(result).endswith(" 0"):
        return None
    return (await reaction_counts(conn, [message_id])).get(message_id, {})
