"""The asyncpg pool and the typed errors storage raises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson


class UniqueViolation(Exception):
    """An insert or update hit a unique constraint; constraint names the index."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


def _encode_json(value: Any) -> str:
    # orjson: several times faster than json on the persistence worker's per-message payloads.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog")


async def connect_one(dsn: str) -> asyncpg.Connection:
    """A single connection with the same codecs as the pool (for LISTEN and session locks)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


class Database:
    """A connection pool; storage modules take it and return value objects."""

    def __init__(self, pool: asyncpg.Pool, dsn: str | None = None) -> None:
        self.pool = pool
        # For connections that hold session state (locks, LISTEN) outside the pool.
        self.dsn = dsn

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 2, max_size: int = 20) -> Database:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30,
            # No session state (LISTEN, session locks, prepared SET) lives on pooled
            # connections (those use connect_one), so the reset round trip per release
            # is pure cost: measured ~30% of DM throughput.
            reset=_no_reset,
        )
        return cls(pool, dsn)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of its own, outside the pool, for session state such as advisory locks.

        Holding such a lock on a pooled connection would both break the pool's no-reset
        rule above and take a pool slot for the whole locked section, so a few concurrent
        lock holders that also query through the pool could starve it.
        """
        if self.dsn is None:
            raise RuntimeError("this Database was made without a DSN")
        conn = await connect_one(self.dsn)
        try:
            yield conn
        finally:
            await conn.close()

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT 1"))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self.pool.fetchrow(query, *args)


@asynccontextmanager
async def unique_violation() -> AsyncIterator[None]:
    """Turn asyncpg's unique violation into our own exception naming the constraint."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise UniqueViolation(exc.constraint_name or "") from exc
