"""The hotspot CLI as a real process: serve, clean shutdown on SIGTERM, clear start-up errors."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from config import Settings
from tests.conftest import free_port, process_env

HOTSPOT = str(Path(sys.executable).parent / "hotspot")


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return process_env(settings, HOTSPOT_INPROCESS_WORKERS="true", **extra)


async def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        HOTSPOT, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def wait_healthy(url: str, proc: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            if proc.returncode is not None:
                raise AssertionError("server exited early")
            try:
                async with session.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server never became healthy")


async def test_serve_then_sigterm_tells_sockets_and_exits_cleanly(settings: Settings) -> None:
    port, metrics_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        HOTSPOT, "serve", "--port", str(port),
        env=env_for(settings, HOTSPOT_METRICS_PORT=str(metrics_port)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, proc)
        async with aiohttp.ClientSession() as session:
            # /metrics answers on its own listener, not on the public API port.
            async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                assert resp.status == 200
                assert "hotspot_socket_connections" in await resp.text()
            async with session.get(url + "/metrics") as resp:
                assert resp.status == 404
        sio = socketio.AsyncClient(reconnection=False)
        told: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sio.on("server.shutdown", lambda data: told.done() or told.set_result(data))
        await sio.connect(url, transports=["websocket"], wait_timeout=5)
        reply = await sio.call("auth.signup", {"username": "cli_user", "email": "cli@example.com",
                                               "password": "correct horse battery"}, timeout=10)
        assert reply["ok"] is True, reply
        proc.send_signal(signal.SIGTERM)
        assert (await asyncio.wait_for(told, 10))["reason"] == "server_shutdown"
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err.decode(), err.decode()


async def test_unreachable_redis_is_named_in_a_clear_start_up_error(settings: Settings) -> None:
    env = env_for(settings, HOTSPOT_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    code, _, err = await run("serve", "--port", str(free_port()), env=env)
    assert code == 1
    assert "Redis" in err and "not reachable" in err
    assert "Traceback" not in err


async def test_bad_setting_exits_2_with_the_variable_named(settings: Settings) -> None:
    code, _, err = await run("serve", env=env_for(settings, HOTSPOT_PORT="nope"))
    assert code == 2
    assert "HOTSPOT_PORT" in err


async def test_migrate_and_unknown_worker(settings: Settings) -> None:
    code, out, _ = await run("migrate", env=env_for(settings))
    assert code == 0
    assert "up to date" in out or "applied" in out
    code, _, err = await run("worker", "bogus", env=env_for(settings))
    assert code == 2
    assert "unknown worker" in err
