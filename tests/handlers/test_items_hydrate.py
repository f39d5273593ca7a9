"""hydrate(): a page of items in a fixed number of queries, each embedded item checked alone."""

from __future__ import annotations

import uuid
from typing import Any

from storage import items as store
from storage.db import Database
from storage.views.items import ItemOut, UnavailableOut, hydrate
from tests.conftest import signup
from tests.handlers.item_helpers import befriend, create, sql


class CountingPool:
    """A pool stand-in that counts the queries it passes on to the real one."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.queries = 0

    async def fetch(self, *args: Any) -> Any:
        self.queries += 1
        return await self.pool.fetch(*args)

    async def fetchrow(self, *args: Any) -> Any:
        self.queries += 1
        return await self.pool.fetchrow(*args)

    async def fetchval(self, *args: Any) -> Any:
        self.queries += 1
        return await self.pool.fetchval(*args)


async def _page(db: Database, viewer: str, ids: list[str]) -> list[store.Item]:
    found = [await store.get_visible(db, uuid.UUID(viewer), uuid.UUID(i)) for i in ids]
    assert all(found)
    return [i for i in found if i is not None]


async def test_a_page_costs_the_same_queries_whatever_its_length(
    client: Any, database_url: str
) -> None:
    author, friend, viewer = [await signup(client) for _ in range(3)]
    await befriend(client, author, friend)
    public = await create(client, author, body="public")
    hidden = await create(client, author, body="friends only", visibility="friends")
    ids = []
    for n in range(12):
        quoted = public if n % 2 else hidden
        ids.append((await create(client, friend, body=f"q{n} #t{n}",
                                 quoted_id=quoted["id"]))["id"])
    [share] = await sql(database_url, """INSERT INTO items (kind, author_id, shared_id)
                                         VALUES ('share', $1, $2) RETURNING id""",
                        uuid.UUID(viewer.id), uuid.UUID(public["id"]))
    ids.append(str(share["id"]))
    db = await Database.connect(database_url, min_size=1, max_size=2)
    try:
        counting = CountingPool(db.pool)
        counted = Database(counting)
        items = await _page(db, viewer.id, ids)
        one = await hydrate(counted, uuid.UUID(viewer.id), items[:1])
        few = counting.queries
        counting.queries = 0
        page = await hydrate(counted, uuid.UUID(viewer.id), items)
        assert counting.queries == few == 4
    finally:
        await db.close()
    assert [o.id for o in page] == [uuid.UUID(i) for i in ids] and one[0].id == page[0].id
    for n, out in enumerate(page[:12]):
        assert out.tags == [f"t{n}"] and out.body == f"q{n} #t{n}"
        if n % 2:
            assert isinstance(out.quoted, ItemOut) and out.quoted.body == "public"
        else:
            # The viewer is no friend of the author: the quote shows, what it quotes does not.
            assert out.quoted == UnavailableOut(id=uuid.UUID(hidden["id"]))
    shared = page[-1]
    assert isinstance(shared.shared_item, ItemOut) and shared.shared_item.id == uuid.UUID(
        public["id"])
    assert shared.shared_item.shared is True and shared.shared_item.counts.quotes == 6
