"""The messaging promise end to end, with real processes.

Two `hotspot serve` processes on two ports share Redis; a separate `hotspot worker`
process persists. A message sent with the official JavaScript socket.io-client on
node A reaches a python-socketio client on node B, is in history, survives a worker
restart, and is returned by `sync` after a reconnect.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from config import Settings
from tests.conftest import free_port, process_env, unique_name
from tests.handlers.conversation_helpers import make_group
from tests.server.js_helpers import JS_DIR, node_binary

HOTSPOT = str(Path(sys.executable).parent / "hotspot")


def env_for(settings: Settings) -> dict[str, str]:
    return process_env(settings, HOTSPOT_INPROCESS_WORKERS="false", HOTSPOT_LOG_LEVEL="WARNING")


class Cluster:
    """Real processes: two API nodes and one worker, all on this machine."""

    def __init__(self, settings: Settings) -> None:
        self.env = env_for(settings)
        self.ports = [free_port(), free_port()]
        self.nodes: list[asyncio.subprocess.Process] = []
        self.worker: asyncio.subprocess.Process | None = None

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    async def start(self) -> None:
        for i, port in enumerate(self.ports):
            proc = await asyncio.create_subprocess_exec(
                HOTSPOT, "serve", "--port", str(port), env={**self.env, "HOTSPOT_NODE_ID": f"n{i}"},
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            self.nodes.append(proc)
        await self.start_worker()
        async with aiohttp.ClientSession() as session:
            for i in range(2):
                for _ in range(200):
                    try:
                        async with session.get(self.url(i) + "/ready") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"node {i} never became ready")

    async def start_worker(self) -> None:
        self.worker = await asyncio.create_subprocess_exec(
            HOTSPOT, "worker", "all", "--port", str(free_port()), env=self.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)

    async def stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.worker.wait(), 30) == 0

    async def stop(self) -> None:
        for proc in [*self.nodes, self.worker]:
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.nodes, self.worker]:
            if proc is not None:
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()


@pytest.fixture
async def cluster(settings: Settings) -> AsyncIterator[Cluster]:
    running = Cluster(settings)
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


async def signup_at(url: str) -> dict[str, Any]:
    name = unique_name()
    async with aiohttp.ClientSession() as session, session.post(url + "/v1/auth/signup", json={
        "username": name, "email": f"{name}@example.com", "password": "correct horse battery"},
    ) as resp:
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


async def js_send(url: str, token: str, conversation_id: str, body: str, client_id: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        node_binary(), str(JS_DIR / "send_message.mjs"), url, token, conversation_id, body,
        client_id, cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)["ack"]


async def test_js_on_node_a_reaches_python_on_node_b_and_survives_restart_and_reconnect(
    cluster: Cluster, settings: Settings
) -> None:
    class Person:
        def __init__(self, data: dict[str, Any]) -> None:
            self.id = data["user"]["id"]
            self.token = data["access_token"]

    alice = Person(await signup_at(cluster.url(0)))
    bob = Person(await signup_at(cluster.url(1)))
    conversation_id = await make_group(settings, alice, bob)  # type: ignore[arg-type]

    bob_sio = socketio.AsyncClient(reconnection=False)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    bob_sio.on("message.new", received.put_nowait)
    await bob_sio.connect(cluster.url(1), auth={"token": bob.token}, transports=["websocket"])
    try:
        cursor = (await bob_sio.call("sync", {}, timeout=10))["data"]["cursor"]
        ack = await js_send(cluster.url(0), alice.token, conversation_id, "hello from JS", "js-1")
        assert ack["ok"] is True, ack
        live = await asyncio.wait_for(received.get(), 10)
        assert live["id"] == ack["data"]["id"] and live["body"] == "hello from JS"

        history = (await bob_sio.call("message.list", {"conversation_id": conversation_id},
                                      timeout=10))["data"]["messages"]
        assert [m["id"] for m in history] == [ack["data"]["id"]]
        await bob_sio.disconnect()

        # The worker restarts while bob is away; a second message arrives meanwhile.
        await cluster.stop_worker()
        await cluster.start_worker()
        second = await js_send(cluster.url(0), alice.token, conversation_id, "while away", "js-2")
        assert second["ok"] is True, second

        bob_sio = socketio.AsyncClient(reconnection=False)
        await bob_sio.connect(cluster.url(1), auth={"token": bob.token}, transports=["websocket"])
        synced = (await bob_sio.call("sync", {"cursor": cursor}, timeout=10))["data"]
        assert [(e["event"], e["data"]["id"]) for e in synced["events"]] == [
            ("message.new", ack["data"]["id"]), ("message.new", second["data"]["id"])]
        assert [e["data"]["seq"] for e in synced["events"]] == [1, 2]
    finally:
        if bob_sio.connected:
            await bob_sio.disconnect()
