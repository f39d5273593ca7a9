"""Storage tests: the SQL itself, on the run's database with every migration applied."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage.db import Database
from storage.migrate import migrate


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A pool on the migrated test database (migrate is a no-op once the schema is there).

    Other tests share the database: these make their own users and conversations and
    look only at those.
    """
    await migrate(database_url)
    database = await Database.connect(database_url, min_size=1, max_size=12)
    try:
        yield database
    finally:
        await database.close()
