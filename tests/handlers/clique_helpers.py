"""Helpers for the clique tests: make cliques with members in given roles, read cards and pages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Account, signup
from tests.handlers.conversation_helpers import ok, rest

Client = TestClient[Any, Any]


async def people(client: Client, n: int) -> list[Account]:
    return [await signup(client) for _ in range(n)]


async def make_clique(client: Client, owner: Account, *, private: bool = False,
                      name: str = "Hikers", **fields: Any) -> dict[str, Any]:
    resp = await rest(client, owner, "clique.create", {"name": name, "is_private": private, **fields})
    return dict(await ok(resp, 201))


async def card(client: Client, account: Account, clique_id: str) -> dict[str, Any]:
    return dict(await ok(await rest(client, account, "clique.get", {"clique_id": clique_id})))


async def join(client: Client, account: Account, clique_id: str) -> str:
    answer = await ok(await rest(client, account, "clique.join", {"clique_id": clique_id}))
    return str(answer["status"])


async def add_members(client: Client, owner: Account, clique_id: str, *accounts: Account) -> None:
    """Bring accounts in as members, whatever the clique's privacy (invite, then join)."""
    for account in accounts:
        await ok(await rest(client, owner, "clique.invite",
                            {"clique_id": clique_id, "user_id": account.id}))
        assert await join(client, account, clique_id) == "member"


async def set_role(client: Client, actor: Account, clique_id: str, target: Account, role: str) -> Any:
    return await rest(client, actor, "clique.member.set_role",
                      {"clique_id": clique_id, "user_id": target.id, "role": role})


@dataclass
class Staff:
    """A clique with one member of each role, and an outsider."""

    id: str
    name: str
    owner: Account
    admin: Account
    moderator: Account
    member: Account
    outsider: Account

    def by_role(self) -> dict[str, Account]:
        return {"owner": self.owner, "admin": self.admin, "moderator": self.moderator,
                "member": self.member, "outsider": self.outsider}


async def staffed(client: Client, *, private: bool = False) -> Staff:
    owner, admin, moderator, member, outsider = await people(client, 5)
    clique = await make_clique(client, owner, private=private, name=f"Staffed {uuid.uuid4().hex}")
    await add_members(client, owner, clique["id"], admin, moderator, member)
    await ok(await set_role(client, owner, clique["id"], admin, "admin"))
    await ok(await set_role(client, owner, clique["id"], moderator, "moderator"))
    return Staff(clique["id"], clique["name"], owner, admin, moderator, member, outsider)


async def all_pages(client: Client, account: Account, name: str, key: str,
                    payload: dict[str, Any], limit: int) -> list[list[dict[str, Any]]]:
    """Every page of a list, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        body = {**payload, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await ok(await rest(client, account, name, body))
        pages.append(page[key])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100


