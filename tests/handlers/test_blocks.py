"""User blocks: block, unblock and the block list; idempotent; refusals."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest

Client = TestClient[Any, Any]


async def test_block_and_unblock(client: Client) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    for _ in range(2):
        await ok(await rest(client, alice, "user.block", {"user_id": bob.id}), 204)
    await ok(await rest(client, alice, "user.block", {"user_id": carol.id}), 204)
    blocked = (await ok(await rest(client, alice, "block.list")))["blocked"]
    assert [b["user_id"] for b in blocked] == [carol.id, bob.id]
    assert (await ok(await rest(client, bob, "block.list")))["blocked"] == []
    for _ in range(2):
        await ok(await rest(client, alice, "user.unblock", {"user_id": bob.id}), 204)
    blocked = (await ok(await rest(client, alice, "block.list")))["blocked"]
    assert [b["user_id"] for b in blocked] == [carol.id]


@pytest.mark.parametrize("name", ["user.block", "user.unblock"])
async def test_block_refusals(client: Client, name: str) -> None:
    alice = await signup(client)
    error = await refused(await rest(client, alice, name, {"user_id": alice.id}), 400,
                          "invalid_input")
    assert fields_of(error) == {"user_id"}
    error = await refused(await rest(client, alice, name, {"user_id": "nope"}), 400,
                          "invalid_input")
    assert fields_of(error) == {"user_id"}
    await refused(await rest(client, alice, name, {"user_id": str(uuid.uuid4())}), 404,
                  "not_found")
