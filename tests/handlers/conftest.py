"""Fixtures the handler tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from config import Settings


@pytest.fixture
async def db(client: Any, settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database, once the app (the module's `client`) has migrated it:
    for rows no command makes, such as items at fixed times."""
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()
