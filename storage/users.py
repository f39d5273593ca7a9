"""Named queries on users; they return User value objects."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.analytics import delete_user_events
from storage.db import Database, unique_violation

USER_COLUMNS = """id, username, email, password_hash, display_name, bio, avatar_url, role,
    email_verified_at, phone, phone_verified_at, created_at, updated_at, deleted_at,
    is_private, follower_count, following_count, friend_count, pending_email,
    pending_email_expires_at, analytics_opt_out"""


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    username: str
    email: str | None
    password_hash: str | None
    display_name: str
    bio: str | None
    avatar_url: str | None
    role: str
    email_verified_at: datetime | None
    phone: str | None
    phone_verified_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    # The social graph (docs/networks.md); the counts change with the rows they count.
    is_private: bool = False
    follower_count: int = 0
    following_count: int = 0
    friend_count: int = 0
    # An email change waiting for the new address to confirm (docs/rest-api.md).
    pending_email: str | None = None
    pending_email_expires_at: datetime | None = None
    # The person stopped analytics tracking (docs/analytics.md, "Privacy").
    analytics_opt_out: bool = False

    @property
    def active(self) -> bool:
        return self.deleted_at is None


@dataclass(frozen=True)
class UserBrief:
    """Who someone is on a card, list or item: id, names and avatar."""

    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None


def _user(row: asyncpg.Record | None) -> User | None:
    return None if row is None else User(**dict(row))


async def create_user(
    db: Database, *, username: str, email: str, password_hash: str, display_name: str
) -> User:
    """Insert a user; raises UniqueViolation naming users_username_key or users_email_key."""
    async with unique_violation():
        row = await db.pool.fetchrow(
            f"""INSERT INTO users (username, email, password_hash, display_name)
                VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}""",
            username,
            email,
            password_hash,
            display_name,
        )
    user = _user(row)
    assert user is not None
    return user


async def get_user(db: Database, user_id: uuid.UUID) -> User | None:
    """A live (not deleted) user by id."""
    return _user(
        await db.pool.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL", user_id
        )
    )


async def get_user_by_username(db: Database, username: str) -> User | None:
    return _user(
        await db.pool.fetchrow(
            f"""SELECT {USER_COLUMNS} FROM users
                WHERE lower(username) = lower($1) AND deleted_at IS NULL""",
            username,
        )
    )


async def get_user_by_email(db: Database, email: str) -> User | None:
    return _user(
        await db.pool.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL",
            email,
        )
    )


async def get_user_by_login(db: Database, login: str) -> User | None:
    """A user by username or email, whichever the login string is."""
    if "@" in login:
        return await get_user_by_email(db, login)
    return await get_user_by_username(db, login)


async def update_profile(db: Database, user_id: uuid.UUID, changes: dict[str, Any]) -> User | None:
    """Set the given profile columns (the email changes only through a confirmed link)."""
    allowed = {"username", "display_name", "bio", "avatar_url", "is_private"}
    if not changes.keys() <= allowed:
        raise ValueError(f"not profile columns: {sorted(changes.keys() - allowed)}")
    sets = [f"{column} = ${i}" for i, column in enumerate(changes, start=2)]
    sets.append("updated_at = now()")
    async with unique_violation():
        row = await db.pool.fetchrow(
            f"""UPDATE users SET {", ".join(sets)}
                WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}""",
            user_id,
            *changes.values(),
        )
    return _user(row)


async def set_analytics_opt_out(db: Database, user_id: uuid.UUID, opt_out: bool) -> User | None:
    """Record the person's analytics choice; the profile after it, None without the account."""
    return _user(await db.pool.fetchrow(
        f"""UPDATE users SET analytics_opt_out = $2, updated_at = now()
            WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}""", user_id, opt_out))


async def analytics_opt_out(db: Database, user_id: uuid.UUID) -> bool:
    """Whether the person opted out of analytics (a missing account counts as opted out)."""
    value = await db.pool.fetchval(
        "SELECT analytics_opt_out FROM users WHERE id = $1 AND deleted_at IS NULL", user_id)
    return True if value is None else bool(value)


async def set_password_hash(conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user_id,
        password_hash,
    )


async def mark_email_verified(conn: asyncpg.Connection, user_id: uuid.UUID, email: str) -> bool:
    """Verify the address the token was sent to, if it is still the account's email."""
    result = await conn.execute(
        """UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
           WHERE id = $1 AND lower(email) = lower($2) AND deleted_at IS NULL""",
        user_id,
        email,
    )
    return str(result).endswith(" 1")


async def has_email(conn: asyncpg.Connection, user_id: uuid.UUID, email: str | None) -> bool:
    """Whether the live account still has this email address, in any letter case."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND lower(email) = lower($2)
                              AND deleted_at IS NULL)""",
            user_id,
            email,
        )
    )


async def set_pending_email(
    conn: asyncpg.Connection, user_id: uuid.UUID, email: str, expires_at: datetime
) -> None:
    """Record the address an email change waits for; it replaces any earlier one."""
    await conn.execute(
        """UPDATE users SET pending_email = $2, pending_email_expires_at = $3, updated_at = now()
           WHERE id = $1 AND deleted_at IS NULL""",
        user_id,
        email,
        expires_at,
    )


async def clear_pending_email(db: Database | asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """Drop the account's pending email change; whether there was one."""
    executor = db.pool if isinstance(db, Database) else db
    result = await executor.execute(
        """UPDATE users SET pending_email = NULL, pending_email_expires_at = NULL,
               updated_at = now()
           WHERE id = $1 AND pending_email IS NOT NULL""",
        user_id,
    )
    return str(result).endswith(" 1")


async def recase_email(db: Database, user_id: uuid.UUID, email: str) -> User | None:
    """Change only the letter case of the account's email (same mailbox, stays verified)."""
    return _user(
        await db.pool.fetchrow(
            f"""UPDATE users SET email = $2, pending_email = NULL,
                    pending_email_expires_at = NULL, updated_at = now()
                WHERE id = $1 AND lower(email) = lower($2) AND deleted_at IS NULL
                RETURNING {USER_COLUMNS}""",
            user_id,
            email,
        )
    )


@dataclass(frozen=True)
class EmailSwap:
    """The outcome of confirming an email change: the address it replaced, or why not."""

    status: str  # "changed" | "stale"
    old_email: str | None = None
    display_name: str = ""


async def apply_pending_email(conn: asyncpg.Connection, user_id: uuid.UUID, email: str) -> EmailSwap:
    """Make a confirmed pending address the account's verified email.

    Stale when the account no longer waits for this address (replaced, cancelled, expired,
    account deleted); raises UniqueViolation when another account took it meanwhile.
    """
    row = await conn.fetchrow(
        """SELECT email, display_name FROM users
           WHERE id = $1 AND deleted_at IS NULL AND lower(pending_email) = lower($2)
             AND pending_email_expires_at > now()
           FOR UPDATE""",
        user_id,
        email,
    )
    if row is None:
        return EmailSwap("stale")
    async with unique_violation():
        await conn.execute(
            """UPDATE users SET email = pending_email, email_verified_at = now(),
                   pending_email = NULL, pending_email_expires_at = NULL, updated_at = now()
               WHERE id = $1""",
            user_id,
        )
    return EmailSwap("changed", old_email=row["email"], display_name=row["display_name"])


async def set_verified_phone(conn: asyncpg.Connection, user_id: uuid.UUID, phone: str) -> None:
    await conn.execute(
        """UPDATE users SET phone = $2, phone_verified_at = now(), updated_at = now()
           WHERE id = $1""",
        user_id,
        phone,
    )


async def anonymise_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Erase personal data but keep the row, so content can still point at it."""
    await conn.execute(
        """UPDATE users SET username = 'deleted_' || replace(id::text, '-', ''),
               email = NULL, password_hash = NULL, display_name = 'Deleted user', bio = NULL,
               avatar_url = NULL, phone = NULL, phone_verified_at = NULL,
               email_verified_at = NULL, pending_email = NULL, pending_email_expires_at = NULL,
               deleted_at = now(), updated_at = now()
           WHERE id = $1""",
        user_id,
    )
    await conn.execute("DELETE FROM user_tokens WHERE user_id = $1", user_id)
    await conn.execute("DELETE FROM phone_verifications WHERE user_id = $1", user_id)
    # Activity is personal data: the raw events go, the anonymous roll-ups stay.
    await delete_user_events(conn, user_id)
