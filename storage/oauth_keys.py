"""The OAuth/OIDC signing keys (oauth_signing_keys): stored sealed, read by the key ring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Database

# Every process that creates or rotates a key takes this transaction lock first, so two
# nodes starting at once on an empty table create one key, not two.
KEY_LOCK = 0x484F544B455953

COLUMNS = "kid, alg, public_jwk, private_key, created_at, activated_at, retired_at"


@dataclass(frozen=True)
class SigningKeyRow:
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key: bytes  # sealed; see handlers/oauth_keys.KeyCipher
    created_at: datetime
    activated_at: datetime
    retired_at: datetime | None

    def in_effect(self, at: datetime) -> bool:
        """Whether this key is the one meant to sign at this time (with others in effect)."""
        return self.activated_at <= at and (self.retired_at is None or self.retired_at > at)


def _row(record: asyncpg.Record) -> SigningKeyRow:
    return SigningKeyRow(**dict(record))


async def published(db: Database, retired_after: datetime) -> list[SigningKeyRow]:
    """Keys not retired, or retired after the given time; newest activation first."""
    rows = await db.pool.fetch(
        f"""SELECT {COLUMNS} FROM oauth_signing_keys
            WHERE retired_at IS NULL OR retired_at > $1
            ORDER BY activated_at DESC, created_at DESC""",
        retired_after,
    )
    return [_row(r) for r in rows]


async def all_keys(db: Database) -> list[SigningKeyRow]:
    """Every key ever made, newest first (for `hotspot oauth keys`)."""
    rows = await db.pool.fetch(
        f"SELECT {COLUMNS} FROM oauth_signing_keys ORDER BY activated_at DESC, created_at DESC")
    return [_row(r) for r in rows]


@asynccontextmanager
async def locked(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A transaction holding the key lock; keys are created and rotated inside one."""
    async with db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", KEY_LOCK)
        yield conn


async def in_effect(conn: asyncpg.Connection, at: datetime, alg: str) -> list[SigningKeyRow]:
    """The keys of this algorithm meant to sign at this time, newest activation first."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM oauth_signing_keys
            WHERE alg = $2 AND activated_at <= $1 AND (retired_at IS NULL OR retired_at > $1)
            ORDER BY activated_at DESC, created_at DESC""",
        at, alg,
    )
    return [_row(r) for r in rows]


async def insert_key(
    conn: asyncpg.Connection, *, kid: str, alg: str, public_jwk: dict[str, Any],
    private_key: bytes, activated_at: datetime,
) -> SigningKeyRow:
    row = await conn.fetchrow(
        f"""INSERT INTO oauth_signing_keys (kid, alg, public_jwk, private_key, activated_at)
            VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}""",
        kid, alg, public_jwk, private_key, activated_at,
    )
    assert row is not None
    return _row(row)


async def retire_others(conn: asyncpg.Connection, keep: str, alg: str, at: datetime) -> list[str]:
    """Retire at `at` every key of alg still unretired (or retired later) but `keep`."""
    rows = await conn.fetch(
        """UPDATE oauth_signing_keys SET retired_at = greatest($2, created_at)
           WHERE kid <> $1 AND alg = $3 AND (retired_at IS NULL OR retired_at > $2)
           RETURNING kid""",
        keep, at, alg,
    )
    return [r["kid"] for r in rows]
