"""Authorization codes (migration 0021): written at consent, spent once at the token endpoint."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Database

_COLUMNS = """code_hash, app_id, user_id, redirect_uri, scopes, code_challenge,
    code_challenge_method, nonce, auth_time, expires_at, used_at, session_id"""


@dataclass(frozen=True)
class AuthorizationCode:
    code_hash: bytes
    app_id: uuid.UUID
    user_id: uuid.UUID
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    auth_time: datetime
    expires_at: datetime
    used_at: datetime | None
    session_id: uuid.UUID | None


def _code(row: asyncpg.Record) -> AuthorizationCode:
    values = {name: row[name] for name in AuthorizationCode.__dataclass_fields__}
    values["scopes"] = tuple(row["scopes"])
    return AuthorizationCode(**values)


async def create_code(
    db: Database, *, code_hash: bytes, app_id: uuid.UUID, user_id: uuid.UUID,
    redirect_uri: str, scopes: list[str], code_challenge: str | None,
    code_challenge_method: str | None, nonce: str | None, auth_time: datetime,
    expires_at: datetime,
) -> None:
    async with db.transaction() as conn:
        # Codes live a minute; clearing the long-expired ones here keeps the table small
        # without a sweeper (an hour's margin keeps a reused code's record for revocation).
        await conn.execute(
            "DELETE FROM oauth_codes WHERE expires_at < now() - interval '1 hour'")
        await conn.execute(
            """INSERT INTO oauth_codes (code_hash, app_id, user_id, redirect_uri, scopes,
                   code_challenge, code_challenge_method, nonce, auth_time, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            code_hash, app_id, user_id, redirect_uri, scopes, code_challenge,
            code_challenge_method, nonce, auth_time, expires_at)


async def get_code(db: Database, code_hash: bytes) -> AuthorizationCode | None:
    """The code, spent or expired or not (the caller decides)."""
    row = await db.pool.fetchrow(
        f"SELECT {_COLUMNS} FROM oauth_codes WHERE code_hash = $1", code_hash)
    return None if row is None else _code(row)


async def spend_code(conn: asyncpg.Connection, code_hash: bytes) -> bool:
    """Mark a live, unexpired code used; False if it was already spent or has expired.

    The UPDATE locks the row until the caller's transaction ends: a concurrent spend waits,
    then sees used_at set and the session bound in that same transaction.
    """
    spent = await conn.fetchval(
        """UPDATE oauth_codes SET used_at = now()
           WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now()
           RETURNING code_hash""", code_hash)
    return spent is not None


async def bind_session(conn: asyncpg.Connection, code_hash: bytes, session_id: uuid.UUID) -> None:
    """Record the token family a code opened, for revoking it if the code comes back
    (in the transaction that spent the code)."""
    await conn.execute(
        "UPDATE oauth_codes SET session_id = $2 WHERE code_hash = $1", code_hash, session_id)
