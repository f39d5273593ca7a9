"""Migrations: applied once, in order, even when several processes start together."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage.migrate import load_migrations, migrate
from tests.conftest import ADMIN_DSN


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    name = f"hotspot_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_concurrent_migrations_apply_each_file_once(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in load_migrations())
    conn = await asyncpg.connect(empty_database)
    try:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r["name"] for r in rows] == [m.name for m in load_migrations()]
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await conn.close()
    assert await migrate(empty_database) == []


async def test_failed_migration_rolls_back_and_is_not_recorded(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import migrate as migrate_module

    good = load_migrations()
    broken = [*good, migrate_module.Migration(len(good) + 1, "9999_broken.sql",
                                              "CREATE TABLE half_done (id int); SELECT 1/0;")]
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: broken)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate_module.migrate(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert len(good) + 1 not in versions
    finally:
        await conn.close()
