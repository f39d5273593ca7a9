"""The social graph: follows, follow and friend requests, friendships, mutes, close friends.

Every change to an edge locks both users' rows first, in id order (FOR NO KEY UPDATE, so
foreign-key checks elsewhere are not held up), and checks the users and blocks only
then: a follow and a block of the same pair cannot interleave, concurrent follows of one
account count once each, and the profile counters change in the same transaction as
the rows they count. List pages and suggestions are in storage/network_lists.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from storage.blocks import has_blocked_sql, record_block
from storage.db import Database

Outcome = Literal["following", "requested", "friends", "done", "not_found", "no_request",
                  "blocked", "full"]
# The lists graph_page serves: (table, the owner's column, the listed user's column).
Relation = Literal["followers", "following", "friends", "follow_requests", "follow_requests_sent",
                   "friend_requests", "friend_requests_sent", "close_friends"]
RELATIONS: dict[str, tuple[str, str, str]] = {
    "followers": ("follows", "followee_id", "follower_id"),
    "following": ("follows", "follower_id", "followee_id"),
    "friends": ("friendships", "user_id", "friend_id"),
    "follow_requests": ("follow_requests", "target_id", "requester_id"),
    "follow_requests_sent": ("follow_requests", "requester_id", "target_id"),
    "friend_requests": ("friend_requests", "recipient_id", "sender_id"),
    "friend_requests_sent": ("friend_requests", "sender_id", "recipient_id"),
    "close_friends": ("close_friends", "user_id", "friend_id"),
}
Cursor = tuple[datetime, uuid.UUID] | None


@dataclass(frozen=True)
class Change:
    """What a graph command found or did; changed is True when it wrote an edge."""

    outcome: Outcome
    changed: bool = False


@dataclass(frozen=True)
class GraphUser:
    """A user in a list, with when the listed relation began."""

    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None
    since: datetime


@dataclass(frozen=True)
class MutedUser(GraphUser):
    until: datetime | None


@dataclass(frozen=True)
class Suggestion:
    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None
    mutual_count: int


@dataclass(frozen=True)
class Relationship:
    """How the viewer stands with another user (only the viewer's own block is told)."""

    following: bool
    followed_by: bool
    follow_requested: bool
    follow_request_received: bool
    friends: bool
    friend_request_sent: bool
    friend_request_received: bool
    blocked: bool
    muted: bool
    close_friend: bool


@dataclass(frozen=True)
class _Pair:
    found: bool
    other_private: bool
    blocked: bool


async def _lock_pair(conn: asyncpg.Connection, me: uuid.UUID, other: uuid.UUID) -> _Pair:
    rows = await conn.fetch(
        """SELECT id, is_private, deleted_at IS NULL AS active FROM users
           WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE""", [me, other])
    active = {r["id"]: r for r in rows if r["active"]}
    if me not in active or other not in active:
        return _Pair(False, False, False)
    # A separate statement: its snapshot is taken after the locks, so it sees a block
    # committed by a transaction that held them.
    blocked = bool(await conn.fetchval("SELECT hs_blocked($1, $2)", me, other))
    return _Pair(True, bool(active[other]["is_private"]), blocked)


async def _count(conn: asyncpg.Connection, user_id: uuid.UUID, *, followers: int = 0,
                 following: int = 0, friends: int = 0) -> None:
    await conn.execute(
        """UPDATE users SET follower_count = follower_count + $2,
               following_count = following_count + $3, friend_count = friend_count + $4
           WHERE id = $1""", user_id, followers, following, friends)


async def _add_follow(conn: asyncpg.Connection, follower: uuid.UUID, followee: uuid.UUID) -> bool:
    added = await conn.fetchval(
        """INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""", follower, followee)
    if added:
        await _count(conn, followee, followers=1)
        await _count(conn, follower, following=1)
    await conn.execute("DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2",
                       follower, followee)
    return bool(added)


async def _drop_follow(conn: asyncpg.Connection, follower: uuid.UUID, followee: uuid.UUID) -> bool:
    gone = await conn.fetchval(
        "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING true",
        follower, followee)
    if gone:
        await _count(conn, followee, followers=-1)
        await _count(conn, follower, following=-1)
    await conn.execute("DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2",
                       follower, followee)
    return bool(gone)


async def _befriend(conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID) -> bool:
    added = await conn.fetch(
        """INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2), ($2, $1)
           ON CONFLICT DO NOTHING RETURNING user_id""", a, b)
    for row in added:
        await _count(conn, row["user_id"], friends=1)
    await conn.execute(
        """DELETE FROM friend_requests WHERE (sender_id = $1 AND recipient_id = $2)
                                          OR (sender_id = $2 AND recipient_id = $1)""", a, b)
    return bool(added)


async def _unfriend(conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID) -> bool:
    gone = await conn.fetch(
        """DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2)
                                      OR (user_id = $2 AND friend_id = $1) RETURNING user_id""",
        a, b)
    for row in gone:
        await _count(conn, row["user_id"], friends=-1)
    return bool(gone)


async def _edge(conn: asyncpg.Connection, relation: Relation, owner: uuid.UUID,
                other: uuid.UUID) -> bool:
    """Whether `other` is in `owner`'s list of this relation."""
    table, owner_col, other_col = RELATIONS[relation]
    return bool(await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {owner_col} = $1 AND {other_col} = $2)",
        owner, other))


async def follow(db: Database, me: uuid.UUID, target: uuid.UUID) -> Change:
    """Follow a public account, or ask to follow a private one."""
    async with db.transaction() as conn:
        pair = await _lock_pair(conn, me, target)
        if not pair.found:
            return Change("not_found")
        if pair.blocked:
            return Change("blocked")
        if await _edge(conn, "following", me, target):
            return Change("following")
        if pair.other_private:
            asked = await conn.fetchval(
                """INSERT INTO follow_requests (requester_id, target_id) VALUES ($1, $2)
                   ON CONFLICT DO NOTHING RETURNING true""", me, target)
            return Change("requested", bool(asked))
        return Change("following", await _add_follow(conn, me, target))


async def _cut(db: Database, me: uuid.UUID, other: uuid.UUID,
               cut: Callable[[asyncpg.Connection], Awaitable[bool]]) -> Change:
    """Lock the pair, then cut(conn): done (changed if an edge went), or not_found."""
    async with db.transaction() as conn:
        if not (await _lock_pair(conn, me, other)).found:
            return Change("not_found")
        return Change("done", await cut(conn))


async def _accept(db: Database, me: uuid.UUID, sender: uuid.UUID,
                  accepted: Literal["following", "friends"]) -> Change:
    """Turn sender's pending follow or friend request to me into the edge it asked for."""
    edge: Relation = "followers" if accepted == "following" else "friends"
    requests: Relation = "follow_requests" if accepted == "following" else "friend_requests"
    async with db.transaction() as conn:
        pair = await _lock_pair(conn, me, sender)
        if not pair.found:
            return Change("not_found")
        if await _edge(conn, edge, me, sender):
            return Change(accepted)
        if not await _edge(conn, requests, me, sender):
            return Change("no_request")
        if pair.blocked:
            return Change("blocked")
        if accepted == "following":
            return Change(accepted, await _add_follow(conn, sender, me))
        return Change(accepted, await _befriend(conn, me, sender))


async def unfollow(db: Database, me: uuid.UUID, target: uuid.UUID) -> Change:
    """Stop following, or withdraw a pending follow request."""
    return await _cut(db, me, target, lambda conn: _drop_follow(conn, me, target))


async def remove_follower(db: Database, me: uuid.UUID, follower: uuid.UUID) -> Change:
    """Make someone stop following you (and drop their pending request)."""
    return await _cut(db, me, follower, lambda conn: _drop_follow(conn, follower, me))


async def approve_request(db: Database, me: uuid.UUID, requester: uuid.UUID) -> Change:
    """Turn a pending follow request into a follow."""
    return await _accept(db, me, requester, "following")


async def reject_request(db: Database, me: uuid.UUID, requester: uuid.UUID) -> bool:
    """Drop a pending follow request; False if there was none."""
    return bool(await db.pool.fetchval(
        "DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2 RETURNING true",
        requester, me))


async def approve_all_requests(db: Database, me: uuid.UUID, batch: int = 500) -> list[uuid.UUID]:
    """Approve every pending follow request of a public account; the requesters approved."""
    approved: list[uuid.UUID] = []
    while True:
        pending: list[uuid.UUID] = [r["requester_id"] for r in await db.pool.fetch(
            """SELECT requester_id FROM follow_requests WHERE target_id = $1
               ORDER BY created_at LIMIT $2""", me, batch)]
        if not pending:
            return approved
        async with db.transaction() as conn:
            locked = await conn.fetch(
                """SELECT id, is_private, deleted_at IS NULL AS active FROM users
                   WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE""", [*pending, me])
            owner = next((r for r in locked if r["id"] == me), None)
            if owner is None or owner["is_private"] or not owner["active"]:
                return approved
            moved = [r["requester_id"] for r in await conn.fetch(
                """DELETE FROM follow_requests WHERE target_id = $1 AND requester_id = ANY($2::uuid[])
                   RETURNING requester_id""", me, pending)]
            added = [r["follower_id"] for r in await conn.fetch(
                """INSERT INTO follows (follower_id, followee_id)
                   SELECT r, $1 FROM unnest($2::uuid[]) AS r WHERE NOT hs_blocked(r, $1)
                   ON CONFLICT DO NOTHING RETURNING follower_id""", me, moved)]
            await conn.execute(
                "UPDATE users SET following_count = following_count + 1 WHERE id = ANY($1::uuid[])",
                added)
            await _count(conn, me, followers=len(added))
        approved.extend(added)


async def friend_request(db: Database, me: uuid.UUID, other: uuid.UUID, pending_max: int) -> Change:
    """Ask to be friends; if the other already asked you, you are friends at once."""
    async with db.transaction() as conn:
        pair = await _lock_pair(conn, me, other)
        if not pair.found:
            return Change("not_found")
        if pair.blocked:
            return Change("blocked")
        if await _edge(conn, "friends", me, other):
            return Change("friends")
        if await _edge(conn, "friend_requests", me, other):  # they asked first: accept
            return Change("friends", await _befriend(conn, me, other))
        if await _edge(conn, "friend_requests_sent", me, other):
            return Change("requested")
        # My row is locked, so no other request of mine can slip past this count.
        pending = await conn.fetchval("SELECT count(*) FROM friend_requests WHERE sender_id = $1", me)
        if pending >= pending_max:
            return Change("full")
        await conn.execute("INSERT INTO friend_requests (sender_id, recipient_id) VALUES ($1, $2)",
                           me, other)
        return Change("requested", True)


async def accept_friend(db: Database, me: uuid.UUID, other: uuid.UUID) -> Change:
    """Accept the other's pending friend request."""
    return await _accept(db, me, other, "friends")


async def drop_friend_request(db: Database, sender: uuid.UUID, recipient: uuid.UUID) -> bool:
    """Delete a pending friend request (declined or cancelled); False if there was none."""
    return bool(await db.pool.fetchval(
        "DELETE FROM friend_requests WHERE sender_id = $1 AND recipient_id = $2 RETURNING true",
        sender, recipient))


async def unfriend(db: Database, me: uuid.UUID, other: uuid.UUID) -> Change:
    """End a friendship, both ways."""
    return await _cut(db, me, other, lambda conn: _unfriend(conn, me, other))


async def block(db: Database, blocker: uuid.UUID, blocked: uuid.UUID) -> bool:
    """Block, and cut every edge between the two both ways; False if a user is gone."""
    async with db.transaction() as conn:
        if not (await _lock_pair(conn, blocker, blocked)).found:
            return False
        await record_block(conn, blocker, blocked)
        for a, b in ((blocker, blocked), (blocked, blocker)):
            await _drop_follow(conn, a, b)
            await conn.execute("DELETE FROM friend_requests WHERE sender_id = $1 AND recipient_id = $2",
                               a, b)
            await conn.execute("DELETE FROM close_friends WHERE user_id = $1 AND friend_id = $2", a, b)
        await _unfriend(conn, blocker, blocked)
    return True


async def remove_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Cut every edge of an account being deleted, fixing its neighbours' counters."""
    neighbours = [r["id"] for r in await conn.fetch(
        """SELECT followee_id AS id FROM follows WHERE follower_id = $1
           UNION SELECT follower_id FROM follows WHERE followee_id = $1
           UNION SELECT friend_id FROM friendships WHERE user_id = $1""", user_id)]
    await conn.fetch("""SELECT 1 FROM users WHERE id = ANY($1::uuid[]) ORDER BY id
                        FOR NO KEY UPDATE""", [*neighbours, user_id])
    await conn.execute(
        """WITH gone AS (DELETE FROM follows WHERE follower_id = $1 RETURNING followee_id)
           UPDATE users SET follower_count = follower_count - 1
           WHERE id IN (SELECT followee_id FROM gone)""", user_id)
    await conn.execute(
        """WITH gone AS (DELETE FROM follows WHERE followee_id = $1 RETURNING follower_id)
           UPDATE users SET following_count = following_count - 1
           WHERE id IN (SELECT follower_id FROM gone)""", user_id)
    friends = [r["friend_id"] for r in await conn.fetch(
        "DELETE FROM friendships WHERE user_id = $1 RETURNING friend_id", user_id)]
    await conn.execute(
        """WITH gone AS (DELETE FROM friendships WHERE user_id = ANY($2::uuid[]) AND friend_id = $1
                         RETURNING user_id)
           UPDATE users SET friend_count = friend_count - 1 WHERE id IN (SELECT user_id FROM gone)""",
        user_id, friends)
    await conn.execute("""UPDATE users SET follower_count = 0, following_count = 0, friend_count = 0
                          WHERE id = $1""", user_id)
    for table, a, b in (("follow_requests", "requester_id", "target_id"),
                        ("friend_requests", "sender_id", "recipient_id"),
                        ("close_friends", "user_id", "friend_id"),
                        ("user_mutes", "muter_id", "muted_id")):
        await conn.execute(f"DELETE FROM {table} WHERE {a} = $1", user_id)
        await conn.execute(f"DELETE FROM {table} WHERE {b} = $1", user_id)


async def add_close_friend(db: Database, me: uuid.UUID, other: uuid.UUID, max_size: int) -> Change:
    async with db.transaction() as conn:
        pair = await _lock_pair(conn, me, other)
        if not pair.found:
            return Change("not_found")
        if pair.blocked:
            return Change("blocked")
        if await _edge(conn, "close_friends", me, other):
            return Change("done")
        if await conn.fetchval("SELECT count(*) FROM close_friends WHERE user_id = $1", me) >= max_size:
            return Change("full")
        await conn.execute("INSERT INTO close_friends (user_id, friend_id) VALUES ($1, $2)", me, other)
        return Change("done", True)


async def remove_close_friend(db: Database, me: uuid.UUID, other: uuid.UUID) -> bool:
    return bool(await db.pool.fetchval(
        "DELETE FROM close_friends WHERE user_id = $1 AND friend_id = $2 RETURNING true", me, other))


async def mute(db: Database, me: uuid.UUID, other: uuid.UUID, until: datetime | None,
               now: datetime, max_size: int) -> Change:
    """Mute (or change a mute's end); expired mutes neither count nor keep their start."""
    async with db.transaction() as conn:
        # My row's lock serialises my mutes, so the count below cannot be raced past.
        found = await conn.fetch(
            """SELECT id FROM users WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL
               ORDER BY id FOR NO KEY UPDATE""", [me, other])
        if len(found) < 2:
            return Change("not_found")
        active = """muter_id = $1 AND (until IS NULL OR until > $2)"""
        if not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM user_mutes WHERE {active} "
                                   "AND muted_id = $3)", me, now, other):
            if await conn.fetchval(f"SELECT count(*) FROM user_mutes WHERE {active}", me, now) >= max_size:
                return Change("full")
        await conn.execute(
            """INSERT INTO user_mutes (muter_id, muted_id, until, created_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (muter_id, muted_id) DO UPDATE SET until = EXCLUDED.until,
                   created_at = CASE WHEN user_mutes.until IS NOT NULL AND user_mutes.until <= $4
                                     THEN $4 ELSE user_mutes.created_at END""",
            me, other, until, now)
        return Change("done", True)


async def unmute(db: Database, me: uuid.UUID, other: uuid.UUID) -> bool:
    return bool(await db.pool.fetchval(
        "DELETE FROM user_mutes WHERE muter_id = $1 AND muted_id = $2 RETURNING true", me, other))


# Each Relationship edge: the table and the condition on ($1 viewer, $2 other, $3 now).
_EDGES = {
    "following": "follows WHERE follower_id = $1 AND followee_id = $2",
    "followed_by": "follows WHERE follower_id = $2 AND followee_id = $1",
    "follow_requested": "follow_requests WHERE requester_id = $1 AND target_id = $2",
    "follow_request_received": "follow_requests WHERE requester_id = $2 AND target_id = $1",
    "friends": "friendships WHERE user_id = $1 AND friend_id = $2",
    "friend_request_sent": "friend_requests WHERE sender_id = $1 AND recipient_id = $2",
    "friend_request_received": "friend_requests WHERE sender_id = $2 AND recipient_id = $1",
    "muted": "user_mutes WHERE muter_id = $1 AND muted_id = $2 AND (until IS NULL OR until > $3)",
    "close_friend": "close_friends WHERE user_id = $1 AND friend_id = $2",
}
# Each Relationship field as an SQL condition.
_RELATIONSHIP_SQL = {**{name: f"EXISTS (SELECT 1 FROM {where})" for name, where in _EDGES.items()},
                     "blocked": has_blocked_sql("$1", "$2")}


async def relationship(db: Database, viewer: uuid.UUID, other: uuid.UUID, now: datetime) -> Relationship:
    """Every edge between the viewer and another user, in one query."""
    columns = ", ".join(f"{condition} AS {name}" for name, condition in _RELATIONSHIP_SQL.items())
    row = await db.pool.fetchrow(f"SELECT {columns}", viewer, other, now)
    assert row is not None
    return Relationship(**{name: row[name] for name in _RELATIONSHIP_SQL})
