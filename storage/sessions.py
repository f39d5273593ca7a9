"""Login sessions and their rotating refresh tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Database


@dataclass(frozen=True)
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    # The OAuth app (oauth_apps.id) this token family belongs to; None for a first-party login.
    client_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Rotation:
    """The outcome of presenting a refresh token."""

    status: str  # "rotated" | "reused" | "invalid" | "grace" (rotate_with_grace only)
    session: Session | None = None


def _session(row: asyncpg.Record) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        client_id=row["client_id"],
    )


async def create_session(
    db: Database,
    *,
    user_id: uuid.UUID,
    scopes: list[str],
    token_hash: bytes,
    expires_at: datetime,
    user_agent: str | None,
    ip: str | None,
    client_id: uuid.UUID | None = None,
) -> Session:
    """Open a session with its first refresh token (an app's token family with client_id)."""
    async with db.transaction() as conn:
        return await insert_session(
            conn, user_id=user_id, scopes=scopes, token_hash=token_hash, expires_at=expires_at,
            user_agent=user_agent, ip=ip, client_id=client_id)


async def insert_session(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    scopes: list[str],
    token_hash: bytes,
    expires_at: datetime,
    user_agent: str | None,
    ip: str | None,
    client_id: uuid.UUID | None = None,
) -> Session:
    """create_session inside the caller's transaction (an OAuth code is spent in the same one)."""
    row = await conn.fetchrow(
        """INSERT INTO sessions (user_id, scopes, user_agent, ip, expires_at, client_id)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING id, user_id, scopes, created_at, expires_at, client_id""",
        user_id,
        scopes,
        (user_agent or "")[:300] or None,
        ip,
        expires_at,
        client_id,
    )
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        token_hash,
        row["id"],
    )
    return _session(row)


async def rotate_refresh_token(db: Database, old_hash: bytes, new_hash: bytes) -> Rotation:
    """Spend a refresh token for a new one; a spent token revokes its whole session."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            """SELECT s.id, s.user_id, s.scopes, s.created_at, s.expires_at, s.client_id,
                      s.revoked_at, rt.used_at
               FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
               WHERE rt.token_hash = $1
               FOR UPDATE OF rt, s""",
            old_hash,
        )
        if row is None or row["revoked_at"] is not None:
            return Rotation("invalid")
        session = _session(row)
        if row["used_at"] is not None:
            await _revoke(conn, session.id, "refresh_token_reuse")
            return Rotation("reused", session)
        if await conn.fetchval("SELECT $1::timestamptz <= now()", session.expires_at):
            return Rotation("invalid")
        await conn.execute(
            "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", old_hash
        )
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
            new_hash,
            session.id,
        )
        await conn.execute("UPDATE sessions SET last_used_at = now() WHERE id = $1", session.id)
    return Rotation("rotated", session)


async def rotate_with_grace(
    db: Database, old_hash: bytes, new_hash: bytes, grace_s: float,
) -> Rotation:
    """Rotate an app's refresh token, where new_hash is derived from the old token.

    Like rotate_refresh_token, except that a spent token presented again within grace_s of
    its first use, while its successor (new_hash, the same derivation) is still unspent, is
    a concurrent retry by the app rather than a theft: the answer is "grace" and nothing is
    revoked. Any other reuse revokes the family ("reused").
    """
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            """SELECT s.id, s.user_id, s.scopes, s.created_at, s.expires_at, s.client_id,
                      s.revoked_at, rt.used_at,
                      rt.used_at > now() - make_interval(secs => $2) AS in_grace
               FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
               WHERE rt.token_hash = $1
               FOR UPDATE OF rt, s""",
            old_hash, float(grace_s),
        )
        if row is None or row["revoked_at"] is not None:
            return Rotation("invalid")
        session = _session(row)
        if row["used_at"] is not None:
            successor_unspent = await conn.fetchval(
                """SELECT used_at IS NULL FROM refresh_tokens
                   WHERE token_hash = $1 AND session_id = $2""", new_hash, session.id)
            if row["in_grace"] and successor_unspent:
                return Rotation("grace", session)
            await _revoke(conn, session.id, "refresh_token_reuse")
            return Rotation("reused", session)
        if await conn.fetchval("SELECT $1::timestamptz <= now()", session.expires_at):
            return Rotation("invalid")
        await conn.execute(
            "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", old_hash)
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
            new_hash, session.id)
        await conn.execute("UPDATE sessions SET last_used_at = now() WHERE id = $1", session.id)
    return Rotation("rotated", session)


async def get_session(db: Database, session_id: uuid.UUID) -> Session | None:
    """A live (unrevoked, unexpired) session."""
    row = await db.pool.fetchrow(
        """SELECT id, user_id, scopes, created_at, expires_at, client_id FROM sessions
           WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()""", session_id)
    return None if row is None else _session(row)


async def _revoke(conn: asyncpg.Connection, session_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        """UPDATE sessions SET revoked_at = now(), revoke_reason = $2
           WHERE id = $1 AND revoked_at IS NULL""",
        session_id,
        reason,
    )


async def session_for_refresh_token(db: Database, token_hash: bytes) -> Session | None:
    """The live session a refresh token belongs to, spent or not."""
    row = await db.pool.fetchrow(
        """SELECT s.id, s.user_id, s.scopes, s.created_at, s.expires_at, s.client_id
           FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
           WHERE rt.token_hash = $1 AND s.revoked_at IS NULL""",
        token_hash,
    )
    return None if row is None else _session(row)


async def revoke_session(db: Database, session_id: uuid.UUID, reason: str) -> None:
    async with db.pool.acquire() as conn:
        await _revoke(conn, session_id, reason)


async def revoke_user_sessions(
    conn: asyncpg.Connection, user_id: uuid.UUID, reason: str, keep: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Revoke every live session of a user but `keep`; returns the revoked ids."""
    rows = await conn.fetch(
        """UPDATE sessions SET revoked_at = now(), revoke_reason = $2
           WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3 RETURNING id""",
        user_id,
        reason,
        keep,
    )
    return [r["id"] for r in rows]

async def recently_revoked(db: Database, within_s: int) -> list[uuid.UUID]:
    """Sessions revoked recently enough that their access tokens may still be unexpired."""
    rows = await db.pool.fetch(
        "SELECT id FROM sessions WHERE revoked_at > now() - make_interval(secs => $1)",
        float(within_s),
    )
    return [r["id"] for r in rows]
