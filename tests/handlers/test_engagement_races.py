"""Engagement under concurrency: the same action from several devices at once."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import signup
from tests.handlers.conversation_helpers import ok, rest
from tests.handlers.item_helpers import create, sql


async def test_concurrent_saves_of_one_item_all_answer_the_first_saved_at(
    client: Any, database_url: str
) -> None:
    alice, bob = await signup(client), await signup(client)
    for _ in range(3):
        post = await create(client, alice, body="save me")
        answers = await asyncio.gather(*(
            rest(client, bob, "item.save", {"item_id": post["id"]}) for _ in range(12)))
        saved = [await ok(answer) for answer in answers]
        assert {s["saved_at"] for s in saved} == {saved[0]["saved_at"]}
        rows = await sql(database_url, "SELECT count(*) AS n FROM item_saves WHERE item_id = $1",
                         post["id"])
        assert rows[0]["n"] == 1
