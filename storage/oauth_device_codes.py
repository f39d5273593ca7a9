"""Device codes of the device authorization grant (migration 0022, RFC 8628).

A row is written when a device asks /oauth/device_authorization, found by its user code on
/oauth/device, approved or denied there, polled by its device code at /oauth/token and
spent by the one token request that follows its approval.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Database, unique_violation

_COLUMNS = """device_code_hash, user_code, app_id, scopes, status, user_id, auth_time,
    interval_s, last_polled_at, expires_at, used_at, session_id"""


@dataclass(frozen=True)
class DeviceCode:
    device_code_hash: bytes
    user_code: str
    app_id: uuid.UUID
    scopes: tuple[str, ...]
    status: str
    user_id: uuid.UUID | None
    auth_time: datetime | None
    interval_s: int
    last_polled_at: datetime | None
    expires_at: datetime
    used_at: datetime | None
    session_id: uuid.UUID | None


def _device_code(row: asyncpg.Record) -> DeviceCode:
    values = {name: row[name] for name in DeviceCode.__dataclass_fields__}
    values["scopes"] = tuple(row["scopes"])
    return DeviceCode(**values)


async def create_device_code(
    db: Database, *, device_code_hash: bytes, user_code: str, app_id: uuid.UUID,
    scopes: list[str], interval_s: int, expires_at: datetime,
) -> None:
    """Write a pending pair; UniqueViolation if the user code is taken (draw another)."""
    async with db.transaction() as conn:
        # No sweeper: the next device authorization clears rows expired for an hour (kept
        # that long so a late poll still hears expired_token rather than invalid_grant).
        await conn.execute(
            "DELETE FROM oauth_device_codes WHERE expires_at < now() - interval '1 hour'")
        async with unique_violation():
            await conn.execute(
                """INSERT INTO oauth_device_codes (device_code_hash, user_code, app_id, scopes,
                       interval_s, expires_at) VALUES ($1, $2, $3, $4, $5, $6)""",
                device_code_hash, user_code, app_id, scopes, interval_s, expires_at)


async def pending_by_user_code(db: Database, user_code: str, now: datetime) -> DeviceCode | None:
    """The pending, unexpired pair with this user code (what /oauth/device may show)."""
    row = await db.pool.fetchrow(
        f"""SELECT {_COLUMNS} FROM oauth_device_codes
            WHERE user_code = $1 AND status = 'pending' AND expires_at > $2""", user_code, now)
    return None if row is None else _device_code(row)


async def decide(
    db: Database, user_code: str, now: datetime, *, user_id: uuid.UUID, approved: bool,
    scopes: list[str], auth_time: datetime,
) -> DeviceCode | None:
    """Approve (with the scopes kept) or deny a pending pair; None if it is no longer pending."""
    row = await db.pool.fetchrow(
        f"""UPDATE oauth_device_codes SET status = $3, user_id = $4, scopes = $5, auth_time = $6
            WHERE user_code = $1 AND status = 'pending' AND expires_at > $2
            RETURNING {_COLUMNS}""",
        user_code, now, "approved" if approved else "denied", user_id, scopes, auth_time)
    return None if row is None else _device_code(row)


async def lock_for_poll(conn: asyncpg.Connection, device_code_hash: bytes) -> DeviceCode | None:
    """The pair, locked until the caller's transaction ends, so that two concurrent polls
    are judged one after the other (the second one sees the first's last_polled_at)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM oauth_device_codes WHERE device_code_hash = $1 FOR UPDATE",
        device_code_hash)
    return None if row is None else _device_code(row)


async def record_poll(conn: asyncpg.Connection, device_code_hash: bytes, now: datetime,
                      interval_s: int) -> None:
    await conn.execute(
        """UPDATE oauth_device_codes SET last_polled_at = $2, interval_s = $3
           WHERE device_code_hash = $1""", device_code_hash, now, interval_s)


async def spend(conn: asyncpg.Connection, device_code_hash: bytes, now: datetime) -> bool:
    """Mark an approved, unspent, unexpired pair used; False if another request did first.

    The UPDATE holds the row lock until the caller's transaction ends, so the session it
    opens and binds in the same transaction is the only one.
    """
    spent = await conn.fetchval(
        """UPDATE oauth_device_codes SET used_at = $2
           WHERE device_code_hash = $1 AND status = 'approved' AND used_at IS NULL
             AND expires_at > $2
           RETURNING device_code_hash""", device_code_hash, now)
    return spent is not None


async def bind_session(conn: asyncpg.Connection, device_code_hash: bytes,
                       session_id: uuid.UUID) -> None:
    """Record the token family the pair opened (what a revocation audit can follow)."""
    await conn.execute(
        "UPDATE oauth_device_codes SET session_id = $2 WHERE device_code_hash = $1",
        device_code_hash, session_id)
