"""Named queries on OAuth apps, the consents users gave them, and their token families.

An app's token family for one user is a `sessions` row with `client_id` set, so revoking
an app's tokens is revoking sessions: the callers announce the returned (session, user)
pairs to the revocation list and to the sockets, as for any other session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Database

APP_COLUMNS = """a.id, a.client_id, a.owner_id, a.name, a.website, a.logo_media_id,
    a.redirect_uris, a.client_type, a.allowed_scopes, a.secret_hash, a.secret_rotated_at,
    a.suspended_at, a.suspended_reason, a.deleted_at, a.created_at, a.updated_at"""
# What an owner may change with update_app; anything else is a programming error.
UPDATABLE = frozenset({"name", "website", "logo_media_id", "redirect_uris", "allowed_scopes"})


@dataclass(frozen=True)
class OAuthApp:
    id: uuid.UUID
    client_id: str
    owner_id: uuid.UUID
    name: str
    website: str | None
    logo_media_id: uuid.UUID | None
    redirect_uris: tuple[str, ...]
    client_type: str  # "confidential" | "public"
    allowed_scopes: tuple[str, ...]
    secret_hash: bytes | None
    secret_rotated_at: datetime | None
    suspended_at: datetime | None
    suspended_reason: str | None
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Consent:
    user_id: uuid.UUID
    app_id: uuid.UUID
    scopes: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Grant:
    """A live consent as its user sees it: the app, and when a token of it was last used."""

    consent: Consent
    app: OAuthApp
    last_used_at: datetime | None


@dataclass(frozen=True)
class EndedSession:
    """A session revoked here, for the caller to announce to the nodes and the sockets."""

    session_id: uuid.UUID
    user_id: uuid.UUID


class TooManyApps(Exception):
    """The owner already has the most live apps allowed."""


def _app(row: asyncpg.Record) -> OAuthApp:
    values = {name: row[name] for name in OAuthApp.__dataclass_fields__}
    values["redirect_uris"] = tuple(row["redirect_uris"])
    values["allowed_scopes"] = tuple(row["allowed_scopes"])
    return OAuthApp(**values)


def _consent(row: asyncpg.Record, prefix: str = "") -> Consent:
    return Consent(
        user_id=row[prefix + "user_id"], app_id=row[prefix + "app_id"],
        scopes=tuple(row[prefix + "scopes"]), created_at=row[prefix + "created_at"],
        updated_at=row[prefix + "updated_at"], revoked_at=row[prefix + "revoked_at"],
    )


async def create_app(
    db: Database, *, owner_id: uuid.UUID, client_id: str, name: str, website: str | None,
    logo_media_id: uuid.UUID | None, redirect_uris: list[str], client_type: str,
    allowed_scopes: list[str], secret_hash: bytes | None, max_per_owner: int,
) -> OAuthApp:
    """Register an app; TooManyApps once the owner has max_per_owner live ones."""
    async with db.transaction() as conn:
        # Lock the owner's row so two concurrent creates cannot both pass the count.
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", owner_id)
        live = await conn.fetchval(
            "SELECT count(*) FROM oauth_apps WHERE owner_id = $1 AND deleted_at IS NULL",
            owner_id)
        if live >= max_per_owner:
            raise TooManyApps()
        row = await conn.fetchrow(
            f"""INSERT INTO oauth_apps AS a (client_id, owner_id, name, website, logo_media_id,
                    redirect_uris, client_type, allowed_scopes, secret_hash, secret_rotated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                        CASE WHEN $9::bytea IS NULL THEN NULL ELSE now() END)
                RETURNING {APP_COLUMNS}""",
            client_id, owner_id, name, website, logo_media_id, redirect_uris, client_type,
            allowed_scopes, secret_hash,
        )
    return _app(row)


async def get_app(db: Database, app_id: uuid.UUID) -> OAuthApp | None:
    """The app if it is not deleted (suspended apps are returned)."""
    row = await db.pool.fetchrow(
        f"SELECT {APP_COLUMNS} FROM oauth_apps a WHERE a.id = $1 AND a.deleted_at IS NULL",
        app_id)
    return None if row is None else _app(row)


async def get_app_by_client_id(db: Database, client_id: str) -> OAuthApp | None:
    """The app a client_id names, deleted or not (the caller decides what a deleted one means)."""
    row = await db.pool.fetchrow(
        f"SELECT {APP_COLUMNS} FROM oauth_apps a WHERE a.client_id = $1", client_id)
    return None if row is None else _app(row)


async def list_owned(
    db: Database, owner_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int,
) -> list[OAuthApp]:
    """The owner's live apps, newest first, strictly after `after`; limit + 1 to page."""
    row_at, row_id = after if after is not None else (None, None)
    rows = await db.pool.fetch(
        f"""SELECT {APP_COLUMNS} FROM oauth_apps a
            WHERE a.owner_id = $1 AND a.deleted_at IS NULL
              AND ($2::timestamptz IS NULL OR (a.created_at, a.id) < ($2, $3::uuid))
            ORDER BY a.created_at DESC, a.id DESC LIMIT $4""",
        owner_id, row_at, row_id, limit + 1,
    )
    return [_app(r) for r in rows]


async def update_app(
    conn: asyncpg.Connection, app_id: uuid.UUID, changes: dict[str, Any],
) -> OAuthApp | None:
    """Apply the changes (columns of UPDATABLE) to a live app; None if it is gone."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = sorted(changes)
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"""UPDATE oauth_apps a SET {sets}{', ' if sets else ''}updated_at = now()
            WHERE a.id = $1 AND a.deleted_at IS NULL RETURNING {APP_COLUMNS}""",
        app_id, *(changes[name] for name in names),
    )
    return None if row is None else _app(row)


async def set_secret(db: Database, app_id: uuid.UUID, secret_hash: bytes) -> OAuthApp | None:
    """Replace a confidential app's secret: the old one stops working at once."""
    row = await db.pool.fetchrow(
        f"""UPDATE oauth_apps a SET secret_hash = $2, secret_rotated_at = now(),
                                    updated_at = now()
            WHERE a.id = $1 AND a.deleted_at IS NULL AND a.client_type = 'confidential'
            RETURNING {APP_COLUMNS}""",
        app_id, secret_hash,
    )
    return None if row is None else _app(row)


async def revoke_app_sessions(
    conn: asyncpg.Connection, app_id: uuid.UUID, reason: str, user_id: uuid.UUID | None = None,
) -> list[EndedSession]:
    """Revoke the app's live token families (one user's, or everyone's); returns them."""
    rows = await conn.fetch(
        """UPDATE sessions SET revoked_at = now(), revoke_reason = $2
           WHERE client_id = $1 AND revoked_at IS NULL
             AND ($3::uuid IS NULL OR user_id = $3)
           RETURNING id, user_id""",
        app_id, reason, user_id,
    )
    return [EndedSession(r["id"], r["user_id"]) for r in rows]


async def narrow_scopes(
    conn: asyncpg.Connection, app_id: uuid.UUID, allowed: list[str],
) -> list[EndedSession]:
    """After the app's allowed scopes shrank: drop the others from its live consents and
    revoke its live sessions that carry any other (their tokens would outlive the change).

    A scope stays if the app may ask for it or for its parent, the part before ':'
    (handlers.scopes.parent): an app allowed `read` keeps users' `read:messages`.
    """
    kept = "(s = ANY($2::text[]) OR (strpos(s, ':') > 0 AND split_part(s, ':', 1) = ANY($2)))"
    await conn.execute(
        f"""UPDATE oauth_consents
            SET scopes = ARRAY(SELECT s FROM unnest(scopes) s WHERE {kept}), updated_at = now()
            WHERE app_id = $1 AND revoked_at IS NULL
              AND EXISTS (SELECT 1 FROM unnest(scopes) s WHERE NOT {kept})""",
        app_id, allowed)
    rows = await conn.fetch(
        f"""UPDATE sessions SET revoked_at = now(), revoke_reason = 'app_scopes_reduced'
            WHERE client_id = $1 AND revoked_at IS NULL
              AND EXISTS (SELECT 1 FROM unnest(scopes) s WHERE NOT {kept})
            RETURNING id, user_id""",
        app_id, allowed)
    return [EndedSession(r["id"], r["user_id"]) for r in rows]


async def delete_app(db: Database, app_id: uuid.UUID) -> list[EndedSession] | None:
    """Soft-delete a live app with its secret, consents and sessions; None if it is gone."""
    async with db.transaction() as conn:
        deleted = await conn.fetchval(
            """UPDATE oauth_apps SET deleted_at = now(), updated_at = now(), secret_hash = NULL
               WHERE id = $1 AND deleted_at IS NULL RETURNING id""", app_id)
        if deleted is None:
            return None
        await conn.execute(
            """UPDATE oauth_consents SET revoked_at = now(), updated_at = now()
               WHERE app_id = $1 AND revoked_at IS NULL""", app_id)
        return await revoke_app_sessions(conn, app_id, "app_deleted")


async def owned_app_ids(db: Database, owner_id: uuid.UUID) -> list[uuid.UUID]:
    """The owner's live apps (for account deletion)."""
    rows = await db.pool.fetch(
        "SELECT id FROM oauth_apps WHERE owner_id = $1 AND deleted_at IS NULL", owner_id)
    return [r["id"] for r in rows]


async def suspend_app(
    db: Database, app_id: uuid.UUID, reason: str | None,
) -> tuple[OAuthApp, list[EndedSession]] | None:
    """Mark the app suspended (keeping the first suspension time) and revoke its sessions."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""UPDATE oauth_apps a SET suspended_at = coalesce(a.suspended_at, now()),
                                        suspended_reason = $2, updated_at = now()
                WHERE a.id = $1 AND a.deleted_at IS NULL RETURNING {APP_COLUMNS}""",
            app_id, reason)
        if row is None:
            return None
        return _app(row), await revoke_app_sessions(conn, app_id, "app_suspended")


async def unsuspend_app(db: Database, app_id: uuid.UUID) -> OAuthApp | None:
    row = await db.pool.fetchrow(
        f"""UPDATE oauth_apps a SET suspended_at = NULL, suspended_reason = NULL,
                                    updated_at = now()
            WHERE a.id = $1 AND a.deleted_at IS NULL RETURNING {APP_COLUMNS}""", app_id)
    return None if row is None else _app(row)


# -- consents ---------------------------------------------------------------------------------


async def upsert_consent(
    db: Database, user_id: uuid.UUID, app_id: uuid.UUID, scopes: list[str],
) -> Consent:
    """Remember the scopes the user granted the app (replacing what was remembered).

    A consent granted again after a revocation is a new grant: its created_at restarts.
    """
    row = await db.pool.fetchrow(
        """INSERT INTO oauth_consents (user_id, app_id, scopes) VALUES ($1, $2, $3)
           ON CONFLICT (user_id, app_id) DO UPDATE SET
               scopes = excluded.scopes, updated_at = now(), revoked_at = NULL,
               created_at = CASE WHEN oauth_consents.revoked_at IS NULL
                                 THEN oauth_consents.created_at ELSE now() END
           RETURNING user_id, app_id, scopes, created_at, updated_at, revoked_at""",
        user_id, app_id, scopes)
    return _consent(row)


async def get_consent(db: Database, user_id: uuid.UUID, app_id: uuid.UUID) -> Consent | None:
    """The user's live consent to the app, if any."""
    row = await db.pool.fetchrow(
        """SELECT user_id, app_id, scopes, created_at, updated_at, revoked_at
           FROM oauth_consents WHERE user_id = $1 AND app_id = $2 AND revoked_at IS NULL""",
        user_id, app_id)
    return None if row is None else _consent(row)


async def list_grants(
    db: Database, user_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int,
) -> list[Grant]:
    """The user's live consents to live apps, newest first, with each app's last use."""
    row_at, row_id = after if after is not None else (None, None)
    rows = await db.pool.fetch(
        f"""SELECT {APP_COLUMNS}, c.user_id AS c_user_id, c.app_id AS c_app_id,
                   c.scopes AS c_scopes, c.created_at AS c_created_at,
                   c.updated_at AS c_updated_at, c.revoked_at AS c_revoked_at,
                   (SELECT max(s.last_used_at) FROM sessions s
                     WHERE s.client_id = c.app_id AND s.user_id = c.user_id
                       AND s.revoked_at IS NULL) AS last_used_at
            FROM oauth_consents c JOIN oauth_apps a ON a.id = c.app_id AND a.deleted_at IS NULL
            WHERE c.user_id = $1 AND c.revoked_at IS NULL
              AND ($2::timestamptz IS NULL OR (c.created_at, c.app_id) < ($2, $3::uuid))
            ORDER BY c.created_at DESC, c.app_id DESC LIMIT $4""",
        user_id, row_at, row_id, limit + 1,
    )
    return [Grant(_consent(r, "c_"), _app(r), r["last_used_at"]) for r in rows]


async def revoke_grant(
    db: Database, user_id: uuid.UUID, app_id: uuid.UUID,
) -> list[EndedSession] | None:
    """Revoke the user's consent to the app and the user's sessions of it.

    None when there was neither a live consent nor a live session to revoke.
    """
    async with db.transaction() as conn:
        consent = await conn.fetchval(
            """UPDATE oauth_consents SET revoked_at = now(), updated_at = now()
               WHERE user_id = $1 AND app_id = $2 AND revoked_at IS NULL RETURNING app_id""",
            user_id, app_id)
        ended = await revoke_app_sessions(conn, app_id, "grant_revoked", user_id)
    if consent is None and not ended:
        return None
    return ended
