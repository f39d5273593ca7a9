"""Push subscriptions, one per device: Web Push endpoints with their keys, or FCM/APNs tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Database

SUBSCRIPTION_COLUMNS = """p.id, p.user_id, p.session_id, p.kind, p.endpoint, p.p256dh, p.auth,
    p.token, p.created_at, p.last_success_at, p.last_error, p.backoff_until"""


@dataclass(frozen=True)
class PushSubscription:
    id: uuid.UUID
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    kind: str
    endpoint: str | None
    p256dh: str | None
    auth: str | None
    token: str | None
    created_at: datetime
    last_success_at: datetime | None
    last_error: str | None
    backoff_until: datetime | None


def _subscription(row: asyncpg.Record) -> PushSubscription:
    return PushSubscription(**{k: row[k] for k in (
        "id", "user_id", "session_id", "kind", "endpoint", "p256dh", "auth", "token",
        "created_at", "last_success_at", "last_error", "backoff_until")})


async def subscribe(
    db: Database, *, user_id: uuid.UUID, session_id: uuid.UUID | None, kind: str,
    endpoint: str | None, p256dh: str | None, auth: str | None, token: str | None,
    keep: int,
) -> PushSubscription:
    """Add or refresh a device's subscription; keeps the user's `keep` newest, dropping older ones.

    An endpoint or token is one device: subscribing it again (even as another user, after a
    logout and login on the same browser) moves it over and clears its error state.
    """
    conflict = "(endpoint) WHERE endpoint IS NOT NULL" if endpoint is not None else \
        "(kind, token) WHERE token IS NOT NULL"
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO push_subscriptions AS p (user_id, session_id, kind, endpoint, p256dh,
                                                     auth, token)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT {conflict} DO UPDATE SET
                    user_id = EXCLUDED.user_id, session_id = EXCLUDED.session_id,
                    p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, created_at = now(),
                    last_error = NULL, last_error_at = NULL, backoff_until = NULL
                RETURNING {SUBSCRIPTION_COLUMNS}""",
            user_id, session_id, kind, endpoint, p256dh, auth, token,
        )
        await conn.execute(
            """DELETE FROM push_subscriptions WHERE id IN (
                   SELECT id FROM push_subscriptions WHERE user_id = $1
                   ORDER BY created_at DESC, id OFFSET $2)""",
            user_id, keep,
        )
    return _subscription(row)


async def unsubscribe(
    db: Database, user_id: uuid.UUID, *, endpoint: str | None, token: str | None
) -> bool:
    """Remove the user's subscription with this endpoint or token; False if there was none."""
    result = await db.pool.execute(
        """DELETE FROM push_subscriptions
           WHERE user_id = $1 AND (endpoint = $2 OR token = $3)""",
        user_id, endpoint, token,
    )
    return not str(result).endswith(" 0")


async def live_for_users(
    db: Database | asyncpg.Connection, user_ids: list[uuid.UUID]
) -> list[PushSubscription]:
    """The users' subscriptions whose login session (if any) is still live."""
    executor = db.pool if isinstance(db, Database) else db
    rows = await executor.fetch(
        f"""SELECT {SUBSCRIPTION_COLUMNS} FROM push_subscriptions p
            LEFT JOIN sessions s ON s.id = p.session_id
            WHERE p.user_id = ANY($1::uuid[])
              AND (p.session_id IS NULL OR (s.revoked_at IS NULL AND s.expires_at > now()))
            ORDER BY p.user_id, p.created_at""",
        user_ids,
    )
    return [_subscription(r) for r in rows]


async def get(db: Database, subscription_id: uuid.UUID) -> PushSubscription | None:
    """A subscription that can still be pushed to (its session, if any, is live)."""
    row = await db.pool.fetchrow(
        f"""SELECT {SUBSCRIPTION_COLUMNS} FROM push_subscriptions p
            LEFT JOIN sessions s ON s.id = p.session_id
            WHERE p.id = $1
              AND (p.session_id IS NULL OR (s.revoked_at IS NULL AND s.expires_at > now()))""",
        subscription_id,
    )
    return None if row is None else _subscription(row)


async def for_user(db: Database, user_id: uuid.UUID) -> list[PushSubscription]:
    rows = await db.pool.fetch(
        f"""SELECT {SUBSCRIPTION_COLUMNS} FROM push_subscriptions p WHERE p.user_id = $1
            ORDER BY p.created_at DESC""",
        user_id,
    )
    return [_subscription(r) for r in rows]


async def delete(db: Database, subscription_id: uuid.UUID) -> None:
    await db.pool.execute("DELETE FROM push_subscriptions WHERE id = $1", subscription_id)


async def record_success(db: Database, subscription_id: uuid.UUID) -> None:
    await db.pool.execute(
        """UPDATE push_subscriptions SET last_success_at = now(), last_error = NULL,
               last_error_at = NULL, backoff_until = NULL
           WHERE id = $1""",
        subscription_id,
    )


async def record_error(
    db: Database, subscription_id: uuid.UUID, error: str, backoff_until: datetime | None = None
) -> None:
    """Note a failed push; backoff_until (from a 429's Retry-After) holds later sends back."""
    await db.pool.execute(
        """UPDATE push_subscriptions SET last_error = left($2, 500), last_error_at = now(),
               backoff_until = coalesce($3, backoff_until)
           WHERE id = $1""",
        subscription_id, error, backoff_until,
    )
