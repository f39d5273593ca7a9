"""The processes and service state a benchmark run creates, each undone by its owner.

A database on the local PostgreSQL, RabbitMQ queues and Redis keys under a unique
namespace, the HotSpot server and worker processes, and the baseline server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import aio_pika
import aiohttp
import asyncpg
import redis.asyncio as aioredis

from bench.common import free_port, log

ROOT = Path(__file__).resolve().parent.parent
HOTSPOT = str(Path(sys.executable).parent / "hotspot")
# The same services and defaults the test suite uses (tests/conftest.py).
ADMIN_DSN = os.environ.get("HOTSPOT_TEST_DATABASE_ADMIN_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HOTSPOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HOTSPOT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# Queues HotSpot may declare, with their retry and dead-letter companions; used to clean up
# when rabbitmqctl cannot list them.
KNOWN_QUEUES = ("persistence", "outreach", "media", "notifications")
STOP_TIMEOUT_S = 15.0


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the benchmark dies, so no server outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    """One server process with its log file, readiness probe and a bounded stop."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path,
                 port: int, ready_path: str) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.port = port
        self.ready_path = ready_path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _open_log(self) -> BinaryIO:
        return open(self.log_path, "ab")

    async def start(self, timeout_s: float = 60.0) -> None:
        with self._open_log() as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
                # Its own process group: Ctrl-C reaches the benchmark, which stops it in order.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    async with http.get(self.url + self.ready_path) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log(f"{self.name} did not stop in {STOP_TIMEOUT_S:.0f} s; killing it")
            self.proc.kill()
            await self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def create_database(name: str) -> str:
    """A fresh database for this run; its DSN."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _namespace_queues(namespace: str) -> list[str]:
    """The queues RabbitMQ holds under the namespace (rabbitmqctl), else every name HotSpot may use."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name",
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        if proc.returncode == 0:
            return [q for q in out.decode().split() if q.startswith(namespace + ".")]
    except (OSError, TimeoutError):
        pass
    suffixes = ["", ".dead", *(f".retry.{n}" for n in range(1, 12))]
    return [f"{namespace}.{q}{s}" for q in KNOWN_QUEUES for s in suffixes]


async def drop_queues(namespace: str) -> int:
    names = await _namespace_queues(namespace)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in names:
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.ChannelClosed:
                channel = await connection.channel()  # a missing queue closes the channel
    return len(names)


async def drop_redis_keys(namespace: str) -> int:
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


# What the benchmark changes from HotSpot's defaults, and why; printed with the results.
BENCH_OVERRIDES = {
    # 2,000+ accounts are signed up from one IP (default 20 per hour).
    "HOTSPOT_RATE_SIGNUP": "1000000/3600",
    "HOTSPOT_RATE_LOGIN": "1000000/60",
    # Closed-loop senders send far more than a person (default 20 per 10 s per user), and
    # read (feeds, history) and acknowledge (receipts) far faster.
    "HOTSPOT_RATE_MESSAGE_SEND": "1000000/10",
    "HOTSPOT_RATE_READS": "1000000/60",
    "HOTSPOT_RATE_RECEIPT": "1000000/60",
    # Each benchmark user has one socket; raised in case the limit is lower than that.
    "HOTSPOT_LIMIT_SOCKETS_PER_USER": "100",
    # Argon2 at the cheapest settings: sign-up is set-up here, not what is measured.
    "HOTSPOT_ARGON2_TIME_COST": "1",
    "HOTSPOT_ARGON2_MEMORY_KIB": "1024",
    "HOTSPOT_ARGON2_PARALLELISM": "1",
    # Access tokens outlive the run (default 15 minutes).
    "HOTSPOT_ACCESS_TOKEN_TTL_S": "7200",
}


def hotspot_env(*, dsn: str, namespace: str, jwt_secret: str, data_dir: Path, port: int,
                inprocess_workers: bool) -> dict[str, str]:
    """HotSpot's configuration for the benchmark: real services, limits raised, cheap hashing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    env.update(BENCH_OVERRIDES)
    env.update({
        "HOTSPOT_DATABASE_URL": dsn,
        "HOTSPOT_REDIS_URL": REDIS_URL,
        "HOTSPOT_AMQP_URL": AMQP_URL,
        "HOTSPOT_NAMESPACE": namespace,
        "HOTSPOT_JWT_SECRET": jwt_secret,
        "HOTSPOT_DATA_DIR": str(data_dir),
        "HOTSPOT_PORT": str(port),
        "HOTSPOT_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "HOTSPOT_INPROCESS_WORKERS": "true" if inprocess_workers else "false",
        "HOTSPOT_LOG_LEVEL": "WARNING",
        "HOTSPOT_LOG_FORMAT": "text",
        # No metrics listener: a dev server on this machine may hold its default port.
        "HOTSPOT_METRICS_PORT": "0",
    })
    return env


class HotSpot:
    """`hotspot serve`, plus `hotspot worker persistence` unless the workers run in-process."""

    def __init__(self, *, dsn: str, namespace: str, jwt_secret: str, work_dir: Path,
                 inprocess_workers: bool) -> None:
        self.inprocess_workers = inprocess_workers
        port, worker_port = free_port(), free_port()
        env = hotspot_env(dsn=dsn, namespace=namespace, jwt_secret=jwt_secret,
                          data_dir=work_dir / "var", port=port, inprocess_workers=inprocess_workers)
        self.server = ServerProcess("hotspot-serve", [HOTSPOT, "serve"], env, work_dir, port, "/ready")
        self.worker = None if inprocess_workers else ServerProcess(
            "hotspot-worker", [HOTSPOT, "worker", "persistence", "--port", str(worker_port)],
            env, work_dir, worker_port, "/ready")

    @property
    def processes(self) -> list[ServerProcess]:
        return [self.server] + ([self.worker] if self.worker else [])

    async def start(self) -> None:
        # The server applies migrations; the worker starts once the schema exists.
        await self.server.start()
        if self.worker is not None:
            await self.worker.start()

    async def stop(self) -> None:
        for proc in reversed(self.processes):
            await proc.stop()


def baseline_process(*, jwt_secret: str, members_file: Path, work_dir: Path) -> ServerProcess:
    port = free_port()
    env = {**os.environ, "BENCH_JWT_SECRET": jwt_secret, "BENCH_JWT_ISSUER": "hotspot"}
    return ServerProcess(
        "baseline", [sys.executable, "-m", "bench.baseline_server", "--port", str(port),
                     "--members", str(members_file)],
        env, work_dir, port, "/health")


async def run_cleanup(steps: list[tuple[str, Callable[[], object]]]) -> None:
    """Run every clean-up step even if one fails; report failures, raise none."""
    for name, step in steps:
        try:
            result = step()
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:
            log(f"clean-up: {name} failed: {exc!r}")
