"""Single-use email, email-change and password-reset tokens, and phone verification codes."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Database


@dataclass(frozen=True)
class ConsumedToken:
    user_id: uuid.UUID
    email: str | None
    purpose: str = ""


@dataclass(frozen=True)
class PhoneCheck:
    """The outcome of one phone code attempt."""

    status: str  # "verified" | "mismatch" | "expired" | "exhausted" | "none"
    phone: str | None = None
    attempts_left: int = 0


async def create_user_token(
    db: Database | asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    purpose: str,
    token_hash: bytes,
    expires_at: datetime,
    email: str | None,
) -> None:
    executor = db.pool if isinstance(db, Database) else db
    await executor.execute(
        """INSERT INTO user_tokens (token_hash, user_id, purpose, email, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        token_hash,
        user_id,
        purpose,
        email,
        expires_at,
    )


async def user_token_usable(db: Database, token_hash: bytes, purpose: str) -> bool:
    """Whether a token exists, is unspent and unexpired (a check before costly work)."""
    return bool(await db.pool.fetchval(
        """SELECT EXISTS (SELECT 1 FROM user_tokens WHERE token_hash = $1 AND purpose = $2
                          AND used_at IS NULL AND expires_at > now())""",
        token_hash, purpose,
    ))


async def consume_user_token(
    conn: asyncpg.Connection, token_hash: bytes, purpose: str
) -> ConsumedToken | None:
    """Spend a live token once; a spent, expired or unknown token gives None."""
    row = await conn.fetchrow(
        """UPDATE user_tokens SET used_at = now()
           WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
           RETURNING user_id, email""",
        token_hash,
        purpose,
    )
    if row is None:
        return None
    if purpose == "password_reset":
        # One reset spends every outstanding reset link of the account.
        await conn.execute(
            """UPDATE user_tokens SET used_at = now()
               WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL""",
            row["user_id"],
        )
    return ConsumedToken(user_id=row["user_id"], email=row["email"])


async def consume_email_token(conn: asyncpg.Connection, token_hash: bytes) -> ConsumedToken | None:
    """Spend a live link mailed to an address: a verification or an email-change link."""
    row = await conn.fetchrow(
        """UPDATE user_tokens SET used_at = now()
           WHERE token_hash = $1 AND purpose IN ('email_verify', 'email_change')
             AND used_at IS NULL AND expires_at > now()
           RETURNING user_id, email, purpose""",
        token_hash,
    )
    if row is None:
        return None
    return ConsumedToken(user_id=row["user_id"], email=row["email"], purpose=row["purpose"])


async def start_phone_verification(
    db: Database, *, user_id: uuid.UUID, phone: str, code_hash: bytes, expires_at: datetime
) -> None:
    """Replace any pending code with a new one and a fresh attempt count."""
    await db.pool.execute(
        """INSERT INTO phone_verifications (user_id, phone, code_hash, expires_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (user_id) DO UPDATE SET phone = EXCLUDED.phone,
               code_hash = EXCLUDED.code_hash, attempts = 0, created_at = now(),
               expires_at = EXCLUDED.expires_at""",
        user_id,
        phone,
        code_hash,
        expires_at,
    )


async def check_phone_code(
    conn: asyncpg.Connection, user_id: uuid.UUID, code_hash: bytes, max_attempts: int
) -> PhoneCheck:
    """Count one attempt against the pending code, under a row lock so attempts cannot race."""
    row = await conn.fetchrow(
        """SELECT phone, code_hash, attempts, expires_at <= now() AS expired
           FROM phone_verifications WHERE user_id = $1 FOR UPDATE""",
        user_id,
    )
    if row is None:
        return PhoneCheck("none")
    if row["expired"]:
        return PhoneCheck("expired")
    if row["attempts"] >= max_attempts:
        return PhoneCheck("exhausted")
    if hmac.compare_digest(bytes(row["code_hash"]), code_hash):
        await conn.execute("DELETE FROM phone_verifications WHERE user_id = $1", user_id)
        return PhoneCheck("verified", phone=row["phone"])
    attempts = row["attempts"] + 1
    await conn.execute(
        "UPDATE phone_verifications SET attempts = $2 WHERE user_id = $1", user_id, attempts
    )
    return PhoneCheck("mismatch", attempts_left=max_attempts - attempts)
