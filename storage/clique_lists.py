"""Cliques' paged lists: a member's cliques, search, members, requests, invites, bans.

Each list is keyset-paginated newest first over a (timestamp, id) position; callers
ask for one row more than a page to learn whether another page follows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from storage.cliques import (
    BAN_SQL,
    CARD_COLUMNS,
    USER_BRIEF_COLUMNS,
    VIEWER_COLUMNS,
    Ban,
    CliqueView,
    Member,
    Request,
    after,
    ban_from_row,
    user_from_row,
    view_from_row,
)
from storage.db import Database
from storage.users import UserBrief

# Where the previous page ended: (sort timestamp, id) of its last row.
Before: TypeAlias = tuple[datetime, uuid.UUID] | None


async def list_for_member(
    db: Database, user_id: uuid.UUID, limit: int, before: Before,
) -> list[CliqueView]:
    """The user's cliques, most recently joined first; at is when they joined."""
    at, after_id = after(before)
    rows = await db.pool.fetch(
        f"""SELECT {CARD_COLUMNS}, {VIEWER_COLUMNS}, j.joined_at AS at
            FROM clique_members j JOIN cliques c ON c.id = j.clique_id
            WHERE j.user_id = $1 AND c.deleted_at IS NULL
              AND ($3::timestamptz IS NULL OR (j.joined_at, j.clique_id) < ($3, $4::uuid))
            ORDER BY j.joined_at DESC, j.clique_id DESC LIMIT $2""",
        user_id, limit, at, after_id,
    )
    return [view_from_row(r) for r in rows]


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(
    db: Database, viewer: uuid.UUID, text: str, limit: int,
    before: Before,
) -> list[CliqueView]:
    """Live cliques whose name contains text (any case), newest first."""
    at, after_id = after(before)
    rows = await db.pool.fetch(
        f"""SELECT {CARD_COLUMNS}, {VIEWER_COLUMNS}, c.created_at AS at FROM cliques c
            WHERE c.deleted_at IS NULL AND c.name ILIKE $3
              AND ($4::timestamptz IS NULL OR (c.created_at, c.id) < ($4, $5::uuid))
            ORDER BY c.created_at DESC, c.id DESC LIMIT $2""",
        viewer, limit, _like_pattern(text), at, after_id,
    )
    return [view_from_row(r) for r in rows]


async def members(
    db: Database, clique_id: uuid.UUID, viewer: uuid.UUID, role: str | None, limit: int,
    before: Before,
) -> list[Member]:
    """Members (of one role, if given), most recently joined first; users blocked with the
    viewer either way left out, as from every user list."""
    at, after_id = after(before)
    rows = await db.pool.fetch(
        f"""SELECT {USER_BRIEF_COLUMNS}, m.role, m.joined_at
            FROM clique_members m JOIN users u ON u.id = m.user_id
            WHERE m.clique_id = $1 AND ($3::text IS NULL OR m.role = $3)
              AND ($4::timestamptz IS NULL OR (m.joined_at, m.user_id) < ($4, $5::uuid))
              AND (m.user_id = $6 OR NOT hs_blocked($6, m.user_id))
            ORDER BY m.joined_at DESC, m.user_id DESC LIMIT $2""",
        clique_id, limit, role, at, after_id, viewer,
    )
    return [Member(user_from_row(r), r["role"], r["joined_at"]) for r in rows]


async def requests(
    db: Database, clique_id: uuid.UUID, limit: int, before: Before,
) -> list[Request]:
    """Pending join requests, newest first."""
    at, after_id = after(before)
    rows = await db.pool.fetch(
        f"""SELECT {USER_BRIEF_COLUMNS}, r.created_at
            FROM clique_join_requests r JOIN users u ON u.id = r.user_id
            WHERE r.clique_id = $1
              AND ($3::timestamptz IS NULL OR (r.created_at, r.user_id) < ($3, $4::uuid))
            ORDER BY r.created_at DESC, r.user_id DESC LIMIT $2""",
        clique_id, limit, at, after_id,
    )
    return [Request(user_from_row(r), r["created_at"]) for r in rows]


@dataclass(frozen=True)
class InviteView:
    """An invite the user holds: the clique's card, who invited them and when."""

    clique: CliqueView
    invited_by: UserBrief | None


async def invites_for(
    db: Database, user_id: uuid.UUID, limit: int, before: Before,
) -> list[InviteView]:
    """The user's pending invites to live cliques, newest first; at is when they were invited."""
    at, after_id = after(before)
    rows = await db.pool.fetch(
        f"""SELECT {CARD_COLUMNS}, {VIEWER_COLUMNS}, i.created_at AS at, {USER_BRIEF_COLUMNS}
            FROM clique_invites i JOIN cliques c ON c.id = i.clique_id
            LEFT JOIN users u ON u.id = i.invited_by
            WHERE i.user_id = $1 AND c.deleted_at IS NULL
              AND ($3::timestamptz IS NULL OR (i.created_at, i.clique_id) < ($3, $4::uuid))
            ORDER BY i.created_at DESC, i.clique_id DESC LIMIT $2""",
        user_id, limit, at, after_id,
    )
    return [InviteView(view_from_row(r), None if r["u_id"] is None else user_from_row(r))
            for r in rows]


async def bans(
    db: Database, clique_id: uuid.UUID, limit: int, before: Before,
) -> list[Ban]:
    """The clique's bans, newest first."""
    at, after_id = after(before)
    rows = await db.pool.fetch(
        f"""{BAN_SQL} AND ($3::timestamptz IS NULL OR (b.created_at, b.user_id) < ($3, $4::uuid))
            ORDER BY b.created_at DESC, b.user_id DESC LIMIT $2""",
        clique_id, limit, at, after_id,
    )
    return [ban_from_row(r) for r in rows]
