"""Reads of the social graph: list pages, who may list whom, suggestions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import asyncpg

from storage.db import Database
from storage.networks import (
    RELATIONS,
    Cursor,
    GraphUser,
    MutedUser,
    Relation,
    Suggestion,
)


def _after(alias: str, other_col: str, after: Cursor) -> tuple[str, list[object]]:
    """The keyset condition past a cursor ($3, $4 after the list's own two parameters).

    Two statements rather than one with "$3 IS NULL OR ...": a prepared statement's generic
    plan could not then use the created_at bound as an index range, and a deep page would
    scan every row before it.
    """
    if after is None:
        return "", []
    return (f"""AND {alias}.created_at <= $3
                AND ({alias}.created_at < $3 OR {alias}.{other_col} > $4)""", [after[0], after[1]])


def _graph_user(row: asyncpg.Record) -> GraphUser:
    return GraphUser(row["id"], row["username"], row["display_name"], row["avatar_url"], row["since"])


async def graph_page(db: Database, relation: Relation, owner: uuid.UUID, viewer: uuid.UUID,
                     limit: int, after: Cursor) -> list[GraphUser]:
    """One page of a relation's users, newest first; users blocked with the viewer left out."""
    table, owner_col, other_col = RELATIONS[relation]
    keyset, bounds = _after("e", other_col, after)
    viewer_param = f"${3 + len(bounds)}"
    rows = await db.pool.fetch(
        f"""SELECT u.id, u.username, u.display_name, u.avatar_url, e.created_at AS since
            FROM {table} e JOIN users u ON u.id = e.{other_col} AND u.deleted_at IS NULL
            WHERE e.{owner_col} = $1 {keyset}
              AND (u.id = {viewer_param} OR NOT hs_blocked({viewer_param}, u.id))
            ORDER BY e.created_at DESC, e.{other_col}
            LIMIT $2""",
        owner, limit, *bounds, viewer)
    return [_graph_user(r) for r in rows]


async def mutes_page(db: Database, me: uuid.UUID, now: datetime, limit: int,
                     after: Cursor) -> list[MutedUser]:
    """Your mutes still in force, newest first."""
    keyset, bounds = _after("m", "muted_id", after)
    now_param = f"${3 + len(bounds)}"
    rows = await db.pool.fetch(
        f"""SELECT u.id, u.username, u.display_name, u.avatar_url, m.created_at AS since, m.until
            FROM user_mutes m JOIN users u ON u.id = m.muted_id AND u.deleted_at IS NULL
            WHERE m.muter_id = $1 {keyset}
              AND (m.until IS NULL OR m.until > {now_param})
            ORDER BY m.created_at DESC, m.muted_id
            LIMIT $2""",
        me, limit, *bounds, now)
    return [MutedUser(r["id"], r["username"], r["display_name"], r["avatar_url"], r["since"],
                      r["until"]) for r in rows]


ListAccess = Literal["ok", "not_found", "forbidden"]


async def list_access(db: Database, viewer: uuid.UUID, owner: uuid.UUID) -> ListAccess:
    """Whether the viewer may list the owner's followers, following and friends."""
    row = await db.pool.fetchrow(
        """SELECT u.is_private, hs_blocked($1, u.id) AS blocked,
                  EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $1 AND f.followee_id = u.id)
                  OR EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = u.id AND f.friend_id = $1)
                  AS inside
           FROM users u WHERE u.id = $2 AND u.deleted_at IS NULL""", viewer, owner)
    if row is None or (viewer != owner and row["blocked"]):
        return "not_found"
    if viewer == owner or not row["is_private"] or row["inside"]:
        return "ok"
    return "forbidden"


async def suggestions(db: Database, me: uuid.UUID, limit: int, connections_max: int,
                      fanout_max: int) -> list[Suggestion]:
    """Friends of friends and people your follows follow, by how many of your connections link them.

    Bounded: your connections_max most recent follows and friends, and each one's
    fanout_max most recent follows and friends.
    """
    rows = await db.pool.fetch(
        """WITH mine AS (
               SELECT id FROM (
                   SELECT followee_id AS id, created_at FROM follows WHERE follower_id = $1
                   UNION ALL
                   SELECT friend_id, created_at FROM friendships WHERE user_id = $1) c
               GROUP BY id ORDER BY max(created_at) DESC LIMIT $3),
           reached AS (
               SELECT DISTINCT m.id AS via, r.id AS candidate FROM mine m
               CROSS JOIN LATERAL (
                   (SELECT followee_id AS id FROM follows WHERE follower_id = m.id
                    ORDER BY created_at DESC LIMIT $4)
                   UNION ALL
                   (SELECT friend_id FROM friendships WHERE user_id = m.id
                    ORDER BY created_at DESC LIMIT $4)) r)
           SELECT u.id, u.username, u.display_name, u.avatar_url, count(*) AS mutual_count
           FROM reached r JOIN users u ON u.id = r.candidate AND u.deleted_at IS NULL
           WHERE r.candidate <> $1
             AND NOT EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $1 AND f.followee_id = u.id)
             AND NOT EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = $1 AND f.friend_id = u.id)
             AND NOT EXISTS (SELECT 1 FROM follow_requests f WHERE f.requester_id = $1
                             AND f.target_id = u.id)
             AND NOT EXISTS (SELECT 1 FROM friend_requests f WHERE f.sender_id = $1
                             AND f.recipient_id = u.id)
             AND NOT hs_blocked($1, u.id)
           GROUP BY u.id
           ORDER BY mutual_count DESC, u.follower_count DESC, u.id
           LIMIT $2""",
        me, limit, connections_max, fanout_max)
    return [Suggestion(r["id"], r["username"], r["display_name"], r["avatar_url"],
                       int(r["mutual_count"])) for r in rows]
