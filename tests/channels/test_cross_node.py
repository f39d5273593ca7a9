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
    assert (await sio.call("account.get", {}, timeout=5))["ok"] is True

    resp = await node_b.post("/v1/auth/logout_all", headers=account.headers)
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


async def test_a_node_listens_only_to_conversations_of_the_sockets_it_holds(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Any
) -> None:
    import redis.asyncio as aioredis

    from tests.handlers.conversation_helpers import make_group

    node_a = await make_client(node_id="node-a")
    node_b = await make_client(node_id="node-b")
    alice, bob = await signup(node_a), await signup(node_a)
    conversation_id = await make_group(settings, alice, bob)
    channel = f"{settings.namespace}:bus:conv:{conversation_id}"
    client = aioredis.from_url(settings.redis_url)

    async def listeners() -> int:
        return int((await client.pubsub_numsub(channel))[0][1])

    try:
        assert await listeners() == 0
        alice_sio = await connect_socket(alice.access_token, target=node_a)
        assert await listeners() == 1
        bob_sio = await connect_socket(bob.access_token, target=node_a)
        assert await listeners() == 1  # one subscription per node, not per socket
        other = await connect_socket((await signup(node_b)).access_token, target=node_b)
        assert await listeners() == 1  # node B holds no member: it does not listen
        await bob_sio.disconnect()
        bob_on_b = await connect_socket(bob.access_token, target=node_b)
        async with asyncio.timeout(5):
            while await listeners() != 2:
                await asyncio.sleep(0.02)
        for sio in (alice_sio, bob_on_b, other):
            await sio.disconnect()
        async with asyncio.timeout(5):
            while await listeners() != 0:
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()
