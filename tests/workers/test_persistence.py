"""Durable delivery: worker crashes, redeliveries and an unreachable broker lose and duplicate nothing."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import socketio

from channels.bus import InProcessBus
from config import Rates, Settings
from storage.db import Database
from storage.messages import MessageDraft
from tests.conftest import AppFactory, SocketFactory, free_port, process_env, signup
from tests.handlers.conversation_helpers import make_group
from workers.persistence import PersistenceWorker

HOTSPOT = str(Path(sys.executable).parent / "hotspot")


async def test_redelivered_and_repeated_drafts_store_one_message(settings: Settings,
                                                                  client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = uuid.UUID(await make_group(settings, alice, bob))
    db = await Database.connect(settings.database_url or "", 1, 2)
    try:
        worker = PersistenceWorker(db, InProcessBus("n"))

        def draft(client_id: str) -> MessageDraft:
            return MessageDraft(id=uuid.uuid4(), conversation_id=conversation_id,
                                sender_id=uuid.UUID(alice.id), client_id=client_id, body=client_id,
                                media=[], reply_to=None)

        first = await worker.write_batch([draft("a"), draft("b"), draft("a")])
        assert [o["ok"] for o in first] == [True, True, True]
        assert first[0]["message"]["id"] == first[2]["message"]["id"]
        again = await worker.write_batch([draft("b"), draft("c")])
        assert again[0]["message"]["id"] == first[1]["message"]["id"]
        seqs = await db.pool.fetch(
            "SELECT client_id, seq FROM messages WHERE conversation_id = $1 ORDER BY seq",
            conversation_id)
        assert [(r["client_id"], r["seq"]) for r in seqs] == [("a", 1), ("b", 2), ("c", 3)]
        stranger = MessageDraft(id=uuid.uuid4(), conversation_id=conversation_id,
                                sender_id=uuid.UUID((await signup(client)).id), client_id="x",
                                body="x", media=[], reply_to=None)
        refused = await worker.write_batch([stranger])
        assert refused[0]["ok"] is False and refused[0]["error"]["code"] == "not_found"
    finally:
        await db.close()


async def test_the_worker_refuses_a_dm_send_once_either_side_blocked(settings: Settings,
                                                                   client: Any) -> None:
    # An API node that tracks the sender as a member queues without asking the database;
    # the worker decides, so a block that came first always wins.
    alice, bob = await signup(client), await signup(client)
    resp = await client.post("/v1/conversations/direct", json={"user_id": bob.id},
                             headers=alice.headers)
    conversation_id = uuid.UUID((await resp.json())["id"])
    db = await Database.connect(settings.database_url or "", 1, 2)
    try:
        worker = PersistenceWorker(db, InProcessBus("n"))

        def draft(sender: str, client_id: str) -> MessageDraft:
            return MessageDraft(id=uuid.uuid4(), conversation_id=conversation_id,
                                sender_id=uuid.UUID(sender), client_id=client_id, body="hi",
                                media=[], reply_to=None)

        before = await worker.write_batch([draft(alice.id, "a1")])
        assert before[0]["ok"] is True
        resp = await client.put(f"/v1/users/me/blocks/{alice.id}", headers=bob.headers)
        assert resp.status in (200, 204)
        after = await worker.write_batch([draft(alice.id, "a2"), draft(bob.id, "b1"),
                                          draft(alice.id, "a1")])
        assert [o["ok"] for o in after] == [False, False, True]
        assert {o["error"]["code"] for o in after[:2]} == {"forbidden"}
        # A retry of what was stored before the block still answers the stored message.
        assert after[2]["message"]["id"] == before[0]["message"]["id"]
        count = await db.pool.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1", conversation_id)
        assert count == 1
    finally:
        await db.close()


async def test_unreachable_rabbitmq_fails_sends_fast_and_writes_nothing(
    make_client: AppFactory, settings: Settings, connect_socket: SocketFactory
) -> None:
    node = await make_client(amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    alice, bob = await signup(node), await signup(node)
    conversation_id = await make_group(settings, alice, bob)
    ready = await node.get("/ready")
    assert ready.status == 503
    assert (await ready.json())["checks"]["rabbitmq"] != "ok"
    sio = await connect_socket(alice.access_token, target=node)
    started = time.monotonic()
    ack = await sio.call("message.send", {"conversation_id": conversation_id, "body": "lost?",
                                          "client_id": "m1"}, timeout=10)
    assert time.monotonic() - started < 3
    assert ack["ok"] is False
    assert ack["error"]["code"] == "unavailable"
    assert ack["error"]["details"] == {"accepted": False}
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1",
                                   uuid.UUID(conversation_id)) == 0
        assert await conn.fetchval("SELECT count(*) FROM conversation_events WHERE "
                                   "conversation_id = $1", uuid.UUID(conversation_id)) == 0
    finally:
        await conn.close()


def worker_env(settings: Settings) -> dict[str, str]:
    return process_env(settings, HOTSPOT_LOG_LEVEL="WARNING")


async def start_worker(settings: Settings) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        HOTSPOT, "worker", "persistence", "--port", str(free_port()), env=worker_env(settings),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


async def open_socket(node: Any, token: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(str(node.make_url("/")), auth={"token": token}, transports=["websocket"],
                      wait_timeout=5)
    return sio


async def test_worker_killed_mid_stream_loses_and_duplicates_nothing(
    make_client: AppFactory, settings: Settings
) -> None:
    # The only app here runs no workers: every send must go through the worker process.
    node = await make_client(inprocess_workers=False, send_timeout_s=1.0,
                             rates=Rates(message_send=(1000, 10)))
    alice, bob = await signup(node), await signup(node)
    conversation_id = await make_group(settings, alice, bob)
    sio = await open_socket(node, alice.access_token)
    live: list[dict[str, Any]] = []
    bob_sio = await open_socket(node, bob.access_token)
    bob_sio.on("message.new", live.append)
    worker = await start_worker(settings)
    acked: dict[str, dict[str, Any]] = {}
    pending: list[str] = []
    total = 60
    try:
        for n in range(total):
            client_id = f"m{n}"
            if n == 20:
                worker.send_signal(signal.SIGKILL)
                await worker.wait()
            if n == 28:
                worker = await start_worker(settings)
            ack = await sio.call("message.send", {"conversation_id": conversation_id,
                                                  "body": f"#{n}", "client_id": client_id},
                                 timeout=15)
            if ack["ok"]:
                acked[client_id] = ack["data"]
            else:
                assert ack["error"]["code"] == "unavailable", ack
                pending.append(client_id)
        assert pending, "the outage should have left sends unanswered"
        # Retrying every unanswered send with its client_id returns the stored message.
        for client_id in pending:
            for _ in range(20):
                ack = await sio.call("message.send", {
                    "conversation_id": conversation_id, "body": f"#{client_id[1:]}",
                    "client_id": client_id}, timeout=15)
                if ack["ok"]:
                    acked[client_id] = ack["data"]
                    break
        assert len(acked) == total
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.wait(), 20)
        await sio.disconnect()
        await bob_sio.disconnect()
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT id, client_id, seq FROM messages WHERE conversation_id = $1 "
                                "ORDER BY seq", uuid.UUID(conversation_id))
    finally:
        await conn.close()
    assert len(rows) == total
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    assert {r["client_id"]: str(r["id"]) for r in rows} == {k: v["id"] for k, v in acked.items()}
    # What bob saw live is in history, in history's order.
    seen = list(dict.fromkeys(m["id"] for m in live))
    stored_order = [str(r["id"]) for r in rows]
    assert seen == [i for i in stored_order if i in set(seen)]


async def test_a_failing_job_does_not_fail_its_batch_neighbours(settings: Settings,
                                                                 client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = uuid.UUID(await make_group(settings, alice, bob))
    db = await Database.connect(settings.database_url or "", 1, 2)
    worker = PersistenceWorker(db, InProcessBus("n"))
    await worker.start()
    try:
        def job(client_id: str, body: str) -> dict[str, Any]:
            return {"id": client_id, "type": "message.send", "message": {
                "id": str(uuid.uuid4()), "conversation_id": str(conversation_id),
                "sender_id": alice.id, "client_id": client_id, "body": body}}

        # A NUL byte cannot be stored; it reaches the worker only if validation is bypassed.
        results = await asyncio.gather(
            worker.handle(job("good-1", "fine")), worker.handle(job("bad", "nul\x00")),
            worker.handle(job("good-2", "also fine")), return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], Exception)
        stored = await db.pool.fetch("SELECT client_id FROM messages WHERE conversation_id = $1",
                                     conversation_id)
        assert sorted(r["client_id"] for r in stored) == ["good-1", "good-2"]
    finally:
        await worker.stop()
        await db.close()
