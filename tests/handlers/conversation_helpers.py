"""Helpers for the conversation tests: call any command over REST by name, watch socket events,
make a group straight in storage."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import socketio
from aiohttp.test_utils import TestClient

from config import Settings
from server.app import command_registry
from storage import conversations as conversation_store
from storage.db import Database
from tests.conftest import Account

COMMANDS = {cmd.name: cmd for cmd in command_registry()}


async def rest(client: TestClient[Any, Any], account: Account, name: str,
               payload: dict[str, Any] | None = None) -> Any:
    """Call a command through its REST twin: path parameters from the payload, the rest as body."""
    cmd = COMMANDS[name]
    assert cmd.method is not None and cmd.rest_path is not None
    body = dict(payload or {})
    path = cmd.rest_path
    for key in re.findall(r"{(\w+)}", path):
        path = path.replace("{" + key + "}", str(body.pop(key)))
    if cmd.method == "GET":
        return await client.get(path, params={k: str(v) for k, v in body.items()},
                                headers=account.headers)
    return await client.request(cmd.method, path, json=body, headers=account.headers)


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return None if status == 204 else await resp.json()


async def refused(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The error of a refused request, after checking its status and code."""
    assert resp.status == status, await resp.text()
    error: dict[str, Any] = (await resp.json())["error"]
    assert error["code"] == code, error
    return error


def fields_of(error: dict[str, Any]) -> set[str]:
    return {f["field"] for f in error["details"]["fields"]}


async def create_group(client: TestClient[Any, Any], owner: Account, *members: Account,
                       title: str = "group") -> dict[str, Any]:
    resp = await rest(client, owner, "conversation.create_group",
                      {"title": title, "member_ids": [m.id for m in members]})
    return dict(await ok(resp, 201))


async def call(sio: socketio.AsyncClient, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = await sio.call(name, payload, timeout=10)
    return reply


async def send(sio: socketio.AsyncClient, conversation_id: str, body: str = "x") -> dict[str, Any]:
    ack = await call(sio, "message.send", {"conversation_id": conversation_id, "body": body,
                                           "client_id": uuid.uuid4().hex})
    assert ack["ok"], ack
    return dict(ack["data"])


Predicate = Callable[[str, dict[str, Any]], bool]


class Inbox:
    """Every listed event a socket receives, in arrival order."""

    def __init__(self, sio: socketio.AsyncClient, *names: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()
        for name in names:
            sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[dict[str, Any]], None]:
        def record(data: dict[str, Any]) -> None:
            self.events.append((name, data))
            self._changed.set()
        return record

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def wait_for(self, predicate: Predicate, timeout: float = 10.0) -> int:
        """The index of the first event matching the predicate; fails after the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            for index, (name, data) in enumerate(self.events):
                if predicate(name, data):
                    return index
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout}s; got {self.names()}")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass


def is_event(kind: str, **fields: Any) -> Predicate:
    """Match an event by name and payload fields."""
    return lambda name, data: name == kind and all(data.get(k) == v for k, v in fields.items())


async def make_group(settings: Settings, owner: Account, *others: Account) -> str:
    """A group straight in storage, for tests of the message path alone."""
    db = await Database.connect(settings.database_url or "", 1, 2)
    try:
        async with db.transaction() as conn:
            conv = await conversation_store.insert_conversation(
                conn, kind="group", title="t", avatar_url=None,
                created_by=uuid.UUID(owner.id), key=None)
            assert conv is not None
            members = [(uuid.UUID(owner.id), "owner"), *((uuid.UUID(o.id), "member") for o in others)]
            await conversation_store.upsert_members(conn, conv.id, members, 0)
        return str(conv.id)
    finally:
        await db.close()
