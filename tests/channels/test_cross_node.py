"""Two server nodes sharing Redis: a logout on one ends the session's sockets on the other."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import AppFactory, SocketFactory, signup


async def test_logout_all_on_node_b_disconnects_socket_on_node_a(
    make_client: AppFactory, connect_socket: SocketFactory
) -> None:
    node_a = await make_client(node_id="node-a")
    node_b = await make_client(node_id="node-b")
    account = await signup(node_a)
    revoked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    sio = await connect_socket(account.access_token, target=node_a)
    sio.on("session.revoked", lambda data: revoked.done() or revoked.set_result(data))
    assert (await sio.call("users.me.get", {}, timeout=5))["ok"] is True

    resp = await node_b.post("/v1/auth/logout-all", headers=account.headers)
    assert resp.status == 204
    assert await asyncio.wait_for(revoked, 5) == {"reason": "logout_all"}
    async with asyncio.timeout(5):
        while sio.connected:
            await asyncio.sleep(0.02)
    for node in (node_a, node_b):
        resp = await node.get("/v1/users/me", headers=account.headers)
        assert resp.status == 401
        assert (await resp.json())["error"]["details"]["reason"] == "session_revoked"


async def test_a_node_started_after_a_revocation_still_refuses_the_token(
    make_client: AppFactory,
) -> None:
    node_a = await make_client(node_id="node-a")
    account = await signup(node_a)
    resp = await node_a.post("/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert resp.status == 204
    late_node = await make_client(node_id="node-late")
    resp = await late_node.get("/v1/users/me", headers=account.headers)
    assert resp.status == 401


async def test_without_redis_a_restarted_node_still_refuses_a_logged_out_token(
    make_client: AppFactory,
) -> None:
    first = await make_client(redis_url=None)
    account = await signup(first)
    resp = await first.post("/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert resp.status == 204
    await first.close()
    restarted = await make_client(redis_url=None)
    resp = await restarted.get("/v1/users/me", headers=account.headers)
    assert resp.status == 401
