"""Cliques: cards, members and roles, join requests, invites, followers, bans.

Functions that change membership, following or roles take a connection inside a
transaction that has locked the clique row (lock()), and keep member_count and
follower_count in step with the rows they count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from storage.db import Database
from storage.users import UserBrief

Executor: TypeAlias = Database | asyncpg.Connection

# Ranks of the roles: a moderator acts only on someone ranked strictly lower.
RANKS = {"owner": 4, "admin": 3, "moderator": 2, "member": 1}

CARD_COLUMNS = """c.id, c.name, c.description, c.is_private, c.avatar_url, c.member_count,
    c.follower_count, c.created_at, c.updated_at,
    (SELECT o.user_id FROM clique_members o WHERE o.clique_id = c.id AND o.role = 'owner') AS owner_id"""

# The viewer's relation to the clique, for a viewer id in parameter $1.
VIEWER_COLUMNS = """
    (SELECT m.role FROM clique_members m WHERE m.clique_id = c.id AND m.user_id = $1) AS my_role,
    EXISTS (SELECT 1 FROM clique_followers f WHERE f.clique_id = c.id AND f.user_id = $1) AS following,
    EXISTS (SELECT 1 FROM clique_join_requests r WHERE r.clique_id = c.id AND r.user_id = $1)
        AS requested,
    EXISTS (SELECT 1 FROM clique_invites i WHERE i.clique_id = c.id AND i.user_id = $1) AS invited,
    EXISTS (SELECT 1 FROM clique_bans b WHERE b.clique_id = c.id AND b.user_id = $1) AS banned"""

USER_BRIEF_COLUMNS = """u.id AS u_id, u.username AS u_username, u.display_name AS u_display_name,
    u.avatar_url AS u_avatar"""


@dataclass(frozen=True)
class Clique:
    id: uuid.UUID
    name: str
    description: str | None
    is_private: bool
    avatar_url: str | None
    owner_id: uuid.UUID | None
    member_count: int
    follower_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Relation:
    """Where one user stands with one clique."""

    role: str | None
    following: bool
    requested: bool
    invited: bool
    banned: bool

    @property
    def rank(self) -> int:
        return RANKS.get(self.role or "", 0)


@dataclass(frozen=True)
class CliqueView:
    """A clique card and the viewer's relation to it; at is the list's sort time."""

    clique: Clique
    viewer: Relation
    at: datetime


@dataclass(frozen=True)
class Member:
    user: UserBrief
    role: str
    joined_at: datetime


@dataclass(frozen=True)
class Request:
    user: UserBrief
    requested_at: datetime


@dataclass(frozen=True)
class Invite:
    clique_id: uuid.UUID
    user_id: uuid.UUID
    invited_by: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True)
class Ban:
    user: UserBrief
    banned_by: uuid.UUID | None
    reason: str | None
    banned_at: datetime


@dataclass(frozen=True)
class CliqueItem:
    """An item of a clique thread: a post, or a comment or reply under one."""

    id: uuid.UUID
    author_id: uuid.UUID
    clique_id: uuid.UUID
    deleted: bool


def _ex(db: Executor) -> Any:
    return db.pool if isinstance(db, Database) else db


def _clique(row: asyncpg.Record) -> Clique:
    return Clique(
        id=row["id"], name=row["name"], description=row["description"],
        is_private=row["is_private"], avatar_url=row["avatar_url"], owner_id=row["owner_id"],
        member_count=row["member_count"], follower_count=row["follower_count"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _relation(row: asyncpg.Record) -> Relation:
    return Relation(role=row["my_role"], following=row["following"], requested=row["requested"],
                    invited=row["invited"], banned=row["banned"])


def view_from_row(row: asyncpg.Record) -> CliqueView:
    return CliqueView(_clique(row), _relation(row), row["at"])


def user_from_row(row: asyncpg.Record) -> UserBrief:
    return UserBrief(row["u_id"], row["u_username"], row["u_display_name"], row["u_avatar"])


def after(before: tuple[datetime, uuid.UUID] | None) -> tuple[datetime | None, uuid.UUID | None]:
    return (None, None) if before is None else before


# ---- cards ----------------------------------------------------------------------------

async def lock_owner_quota(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Serialise the transactions that may add to one user's owned cliques (until commit)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('clique_owner:' || $1::uuid::text, 0))", user_id)


async def owned_count(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Live cliques the user owns."""
    return int(await conn.fetchval(
        """SELECT count(*) FROM clique_members m JOIN cliques c ON c.id = m.clique_id
           WHERE m.user_id = $1 AND m.role = 'owner' AND c.deleted_at IS NULL""",
        user_id,
    ))


async def create(
    conn: asyncpg.Connection, *, name: str, description: str | None, is_private: bool,
    avatar_url: str | None, owner: uuid.UUID, idempotency_key: str | None = None,
) -> uuid.UUID | None:
    """A new clique with its owner as the one member; None if the owner's key is taken."""
    clique_id: uuid.UUID | None = await conn.fetchval(
        """INSERT INTO cliques (name, description, is_private, avatar_url, created_by, member_count,
                                idempotency_key)
           VALUES ($1, $2, $3, $4, $5, 1, $6)
           ON CONFLICT (created_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING id""",
        name, description, is_private, avatar_url, owner, idempotency_key,
    )
    if clique_id is None:
        return None
    await conn.execute(
        "INSERT INTO clique_members (clique_id, user_id, role) VALUES ($1, $2, 'owner')",
        clique_id, owner,
    )
    return clique_id


async def created_with_key(db: Executor, owner: uuid.UUID, key: str) -> tuple[uuid.UUID, str] | None:
    """The (id, name) of the clique `owner` created under an idempotency key, deleted or not."""
    row = await _ex(db).fetchrow(
        "SELECT id, name FROM cliques WHERE created_by = $1 AND idempotency_key = $2", owner, key)
    return None if row is None else (row["id"], row["name"])


async def view(db: Executor, clique_id: uuid.UUID, viewer: uuid.UUID) -> CliqueView | None:
    """A live clique's card and the viewer's relation to it."""
    row = await _ex(db).fetchrow(
        f"""SELECT {CARD_COLUMNS}, {VIEWER_COLUMNS}, c.created_at AS at
            FROM cliques c WHERE c.id = $2 AND c.deleted_at IS NULL""",
        viewer, clique_id,
    )
    return None if row is None else view_from_row(row)


async def lock(conn: asyncpg.Connection, clique_id: uuid.UUID) -> Clique | None:
    """Lock a live clique's row for this transaction; None if there is no such clique."""
    row = await conn.fetchrow(
        f"SELECT {CARD_COLUMNS} FROM cliques c WHERE c.id = $1 AND c.deleted_at IS NULL FOR UPDATE OF c",
        clique_id,
    )
    return None if row is None else _clique(row)


async def relation(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> Relation:
    row = await conn.fetchrow(f"SELECT {VIEWER_COLUMNS} FROM cliques c WHERE c.id = $2", user_id, clique_id)
    return _relation(row)


async def update(conn: asyncpg.Connection, clique_id: uuid.UUID, changes: dict[str, Any]) -> None:
    allowed = {"name", "description", "is_private", "avatar_url"}
    if not changes.keys() <= allowed:
        raise ValueError(f"not clique columns: {sorted(changes.keys() - allowed)}")
    sets = "".join(f"{k} = ${i}, " for i, k in enumerate(changes, start=2))
    await conn.execute(f"UPDATE cliques SET {sets}updated_at = now() WHERE id = $1",
                       clique_id, *changes.values())


async def accept_all_requests(conn: asyncpg.Connection, clique_id: uuid.UUID) -> int:
    """Make every pending requester a member (a private clique went public); how many."""
    added = int(await conn.fetchval(
        """WITH r AS (DELETE FROM clique_join_requests WHERE clique_id = $1 RETURNING user_id),
                i AS (INSERT INTO clique_members (clique_id, user_id)
                      SELECT $1, user_id FROM r ON CONFLICT DO NOTHING RETURNING 1)
           SELECT count(*) FROM i""",
        clique_id,
    ))
    await _count(conn, clique_id, "member_count", added)
    await conn.execute("DELETE FROM clique_invites i USING clique_members m WHERE i.clique_id = $1 "
                       "AND m.clique_id = $1 AND m.user_id = i.user_id", clique_id)
    return added


async def drop_followers(conn: asyncpg.Connection, clique_id: uuid.UUID) -> None:
    """Remove every follower (a public clique went private: following is for public ones)."""
    await conn.execute("DELETE FROM clique_followers WHERE clique_id = $1", clique_id)
    await conn.execute("UPDATE cliques SET follower_count = 0 WHERE id = $1", clique_id)


async def drop_invites_below(conn: asyncpg.Connection, clique_id: uuid.UUID, role: str) -> None:
    """Remove the invites whose inviter is not (any more) a member ranked role or above."""
    await conn.execute(
        """DELETE FROM clique_invites i WHERE i.clique_id = $1 AND NOT EXISTS (
               SELECT 1 FROM clique_members m WHERE m.clique_id = $1 AND m.user_id = i.invited_by
                   AND m.role = ANY($2::text[]))""",
        clique_id, [r for r, rank in RANKS.items() if rank >= RANKS[role]])


async def soft_delete(conn: asyncpg.Connection, clique_id: uuid.UUID) -> None:
    await conn.execute("UPDATE cliques SET deleted_at = now(), updated_at = now() WHERE id = $1",
                       clique_id)


async def _count(conn: asyncpg.Connection, clique_id: uuid.UUID, column: str, delta: int) -> None:
    if delta:
        await conn.execute(f"UPDATE cliques SET {column} = {column} + $2 WHERE id = $1",
                           clique_id, delta)


def _changed(status: str) -> int:
    """Rows an INSERT/DELETE status string ("DELETE 1", "INSERT 0 1") reports."""
    return int(status.rsplit(" ", 1)[1])


# ---- members and roles ----------------------------------------------------------------

async def add_member(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Make the user a member (settling their request and invite); False if already one."""
    status = await conn.execute(
        "INSERT INTO clique_members (clique_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        clique_id, user_id,
    )
    await conn.execute("DELETE FROM clique_join_requests WHERE clique_id = $1 AND user_id = $2",
                       clique_id, user_id)
    await conn.execute("DELETE FROM clique_invites WHERE clique_id = $1 AND user_id = $2",
                       clique_id, user_id)
    added = _changed(status)
    await _count(conn, clique_id, "member_count", added)
    return added == 1


async def remove_member(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await conn.execute("DELETE FROM clique_members WHERE clique_id = $1 AND user_id = $2",
                                clique_id, user_id)
    removed = _changed(status)
    await _count(conn, clique_id, "member_count", -removed)
    return removed == 1


async def member(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> Member | None:
    row = await conn.fetchrow(
        f"""SELECT {USER_BRIEF_COLUMNS}, m.role, m.joined_at
            FROM clique_members m JOIN users u ON u.id = m.user_id
            WHERE m.clique_id = $1 AND m.user_id = $2""",
        clique_id, user_id,
    )
    return None if row is None else Member(user_from_row(row), row["role"], row["joined_at"])


async def set_role(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    await conn.execute("UPDATE clique_members SET role = $3 WHERE clique_id = $1 AND user_id = $2",
                       clique_id, user_id, role)


async def successor(conn: asyncpg.Connection, clique_id: uuid.UUID) -> uuid.UUID | None:
    """Who inherits a clique: the longest-serving admin, else moderator, else member."""
    value = await conn.fetchval(
        """SELECT user_id FROM clique_members WHERE clique_id = $1 AND role <> 'owner'
           ORDER BY CASE role WHEN 'admin' THEN 0 WHEN 'moderator' THEN 1 ELSE 2 END,
                    joined_at, user_id
           LIMIT 1""",
        clique_id,
    )
    return None if value is None else uuid.UUID(str(value))


# ---- join requests --------------------------------------------------------------------

async def add_request(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO clique_join_requests (clique_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        clique_id, user_id,
    )


async def delete_request(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await conn.execute(
        "DELETE FROM clique_join_requests WHERE clique_id = $1 AND user_id = $2", clique_id, user_id)
    return _changed(status) == 1


# ---- invites --------------------------------------------------------------------------

async def invite(
    conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID, by: uuid.UUID
) -> tuple[Invite, bool]:
    """The user's invite to the clique, and whether this call made it (False: it existed)."""
    row = await conn.fetchrow(
        """INSERT INTO clique_invites (clique_id, user_id, invited_by) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING RETURNING clique_id, user_id, invited_by, created_at""",
        clique_id, user_id, by,
    )
    made = row is not None
    if row is None:
        row = await conn.fetchrow(
            """SELECT clique_id, user_id, invited_by, created_at FROM clique_invites
               WHERE clique_id = $1 AND user_id = $2""",
            clique_id, user_id,
        )
    return Invite(row["clique_id"], row["user_id"], row["invited_by"], row["created_at"]), made


async def delete_invite(conn: Executor, clique_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await _ex(conn).execute(
        "DELETE FROM clique_invites WHERE clique_id = $1 AND user_id = $2", clique_id, user_id)
    return _changed(status) == 1


# ---- followers ------------------------------------------------------------------------

async def follow(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> None:
    status = await conn.execute(
        "INSERT INTO clique_followers (clique_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        clique_id, user_id,
    )
    await _count(conn, clique_id, "follower_count", _changed(status))


async def unfollow(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> None:
    status = await conn.execute(
        "DELETE FROM clique_followers WHERE clique_id = $1 AND user_id = $2", clique_id, user_id)
    await _count(conn, clique_id, "follower_count", -_changed(status))


# ---- bans -----------------------------------------------------------------------------

async def ban(
    conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID, by: uuid.UUID,
    reason: str | None,
) -> None:
    """Ban the user (an existing ban stays as it was) and end their membership,
    following, request and invite."""
    await conn.execute(
        """INSERT INTO clique_bans (clique_id, user_id, banned_by, reason) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING""",
        clique_id, user_id, by, reason,
    )
    await remove_member(conn, clique_id, user_id)
    await unfollow(conn, clique_id, user_id)
    await delete_request(conn, clique_id, user_id)
    await delete_invite(conn, clique_id, user_id)


async def unban(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await conn.execute("DELETE FROM clique_bans WHERE clique_id = $1 AND user_id = $2",
                                clique_id, user_id)
    return _changed(status) == 1


BAN_SQL = f"""SELECT {USER_BRIEF_COLUMNS}, b.banned_by, b.reason, b.created_at
    FROM clique_bans b JOIN users u ON u.id = b.user_id WHERE b.clique_id = $1"""


def ban_from_row(row: asyncpg.Record) -> Ban:
    return Ban(user_from_row(row), row["banned_by"], row["reason"], row["created_at"])


async def get_ban(conn: asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID) -> Ban | None:
    row = await conn.fetchrow(f"{BAN_SQL} AND b.user_id = $2", clique_id, user_id)
    return None if row is None else ban_from_row(row)


# ---- users and items ------------------------------------------------------------------

async def user_exists(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)", user_id))


async def blocked_either_way(conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT hs_blocked($1, $2)", a, b))


async def clique_item(conn: asyncpg.Connection, item_id: uuid.UUID) -> CliqueItem | None:
    """An item of a clique thread (its own clique_id, else its root's); None if not one."""
    row = await conn.fetchrow(
        """SELECT i.id, i.author_id, coalesce(r.clique_id, i.clique_id) AS clique_id,
                  i.deleted_at IS NOT NULL AS deleted
           FROM items i LEFT JOIN items r ON r.id = i.root_id WHERE i.id = $1""",
        item_id,
    )
    if row is None or row["clique_id"] is None:
        return None
    return CliqueItem(row["id"], row["author_id"], row["clique_id"], row["deleted"])


async def remove_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Take an account being deleted out of every clique, fixing the counts.

    Its memberships end as clique.leave ends them (an owner's clique passes to the heir;
    a clique it was alone in is deleted); its follows, requests and invites go. Bans stay.
    """
    ids = sorted(r["clique_id"] for r in await conn.fetch(
        """SELECT clique_id FROM clique_members WHERE user_id = $1
           UNION SELECT clique_id FROM clique_followers WHERE user_id = $1""", user_id))
    # One lock order (by id) for every clique at once, so two such deletions cannot deadlock.
    await conn.fetch("SELECT 1 FROM cliques WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", ids)
    for clique_id in ids:
        role = await conn.fetchval(
            "SELECT role FROM clique_members WHERE clique_id = $1 AND user_id = $2", clique_id, user_id)
        heir = await successor(conn, clique_id) if role == "owner" else None
        await remove_member(conn, clique_id, user_id)
        if heir is not None:
            await set_role(conn, clique_id, heir, "owner")
        elif role == "owner":
            await soft_delete(conn, clique_id)
        await unfollow(conn, clique_id, user_id)
    await conn.execute("DELETE FROM clique_join_requests WHERE user_id = $1", user_id)
    await conn.execute("DELETE FROM clique_invites WHERE user_id = $1", user_id)
