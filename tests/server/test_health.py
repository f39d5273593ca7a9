"""GET /health, /ready and /metrics; /metrics off the API port unless a token guards it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from config import Settings
from server.app import create_app, create_worker_app
from server.health import metrics_listener
from server.metrics import Metrics
from server.resources import BUS, METRICS, QUEUE, SERVICES, SETTINGS, StartupError
from tests.conftest import Account, AppFactory, SocketFactory, free_port

TOKEN = "metrics-" + "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(make_client: AppFactory) -> Any:
    """The API with a metrics token: the one way its own port serves /metrics."""
    return await make_client(metrics_token=TOKEN)


async def scrape(client: Any) -> list[Sample]:
    resp = await client.get("/metrics", headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert "version=0.0.4" in resp.headers["Content-Type"]
    text = await resp.text()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample with this name and (at least) these labels, if any."""
    found = [s for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) <= 1, found
    return found[0].value if found else None


async def gauge_becomes(client: Any, name: str, expected: float, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (current := value(await scrape(client), name)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} is {current}, expected {expected}")
        await asyncio.sleep(0.05)


async def test_health_answers(client: Any, settings: Any) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert body["node"] == settings.node_id


async def test_ready_checks_every_configured_dependency(client: Any) -> None:
    resp = await client.get("/ready")
    assert resp.status == 200
    body = await resp.json()
    assert body == {"status": "ready",
                    "checks": {"database": "ok", "redis": "ok", "rabbitmq": "ok"}}


@pytest.mark.parametrize(("key", "check"), [(BUS, "redis"), (QUEUE, "rabbitmq")])
async def test_ready_is_503_when_a_dependency_fails(
    client: Any, monkeypatch: pytest.MonkeyPatch, key: Any, check: str
) -> None:
    async def down() -> bool:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(client.app[key], "ping", down)
    resp = await client.get("/ready")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable"
    assert body["checks"][check].startswith("error")
    assert body["checks"]["database"] == "ok"
    assert (await client.get("/health")).status == 200, "alive even when not ready"


async def test_ready_is_503_when_the_database_fails(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down() -> bool:
        raise OSError("connection reset")

    monkeypatch.setattr(client.app[SERVICES].db, "ping", down)
    resp = await client.get("/ready")
    assert resp.status == 503
    assert (await resp.json())["checks"]["database"].startswith("error")


async def test_commands_are_counted_by_name_transport_and_outcome(
    client: Any, account: Account, connect_socket: SocketFactory
) -> None:
    before = await scrape(client)
    assert value(before, "hotspot_commands_total", command="account.get") is None

    assert (await client.get("/v1/users/me", headers=account.headers)).status == 200
    assert (await client.get("/v1/users/me", headers=account.headers)).status == 200
    assert (await client.get("/v1/users/me")).status == 401
    sio = await connect_socket(account.access_token)
    assert (await sio.call("account.get", {}, timeout=5))["ok"] is True

    samples = await scrape(client)
    counted = {"command": "account.get"}
    assert value(samples, "hotspot_commands_total", **counted, transport="rest", outcome="ok") == 2
    assert value(samples, "hotspot_commands_total", **counted, transport="rest",
                 outcome="unauthorized") == 1
    assert value(samples, "hotspot_commands_total", **counted, transport="socket",
                 outcome="ok") == 1


async def test_command_latency_is_a_histogram(client: Any, account: Account) -> None:
    for _ in range(3):
        assert (await client.get("/v1/users/me", headers=account.headers)).status == 200
    samples = await scrape(client)
    labels = {"command": "account.get", "transport": "rest"}
    assert value(samples, "hotspot_command_seconds_count", **labels) == 3
    total = value(samples, "hotspot_command_seconds_sum", **labels)
    assert total is not None and total > 0
    buckets = sorted(
        ((float(s.labels["le"]), s.value) for s in samples
         if s.name == "hotspot_command_seconds_bucket" and labels.items() <= s.labels.items()),
    )
    assert len(buckets) > 3
    assert buckets[-1] == (float("inf"), 3)
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), "histogram buckets are cumulative"


async def test_open_sockets_are_a_gauge(
    client: Any, account: Account, connect_socket: SocketFactory
) -> None:
    await gauge_becomes(client, "hotspot_socket_connections", 0)
    authenticated = await connect_socket(account.access_token)
    await gauge_becomes(client, "hotspot_socket_connections", 1)
    anonymous = await connect_socket()
    await gauge_becomes(client, "hotspot_socket_connections", 2)
    await authenticated.disconnect()
    await anonymous.disconnect()
    await gauge_becomes(client, "hotspot_socket_connections", 0)


async def test_http_requests_are_counted_by_status(client: Any) -> None:
    await client.get("/v1/nowhere")
    await client.get("/v1/nowhere")
    samples = await scrape(client)
    assert value(samples, "hotspot_http_requests_total", method="GET", status="404") == 2


async def test_the_api_port_serves_no_metrics_without_a_token(make_client: AppFactory) -> None:
    api = await make_client()
    assert (await api.get("/metrics")).status == 404
    assert (await api.get("/health")).status == 200
    assert (await api.get("/ready")).status == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
async def test_metrics_with_a_token_refuse_anything_else(client: Any, header: str | None) -> None:
    resp = await client.get("/metrics", headers={} if header is None else
                            {"Authorization": header})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await resp.json())["error"]["code"] == "unauthorized"
    assert (await client.get("/health")).status == 200, "health stays public"


@pytest.mark.parametrize("token", [None, TOKEN])
async def test_the_metrics_listener_serves_only_metrics(
    aiohttp_client: Any, settings: Settings, token: str | None,
) -> None:
    port = free_port()
    app = create_app(settings.model_copy(update={"metrics_token": token}))
    app.cleanup_ctx.append(metrics_listener("127.0.0.1", port))
    api = await aiohttp_client(app)
    assert (await api.get("/v1/users/me")).status == 401  # the API runs beside it
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        async with session.get("/metrics", headers=AUTH if token else {}) as resp:
            assert resp.status == 200
            assert "hotspot_commands_total" in await resp.text()
        async with session.get("/health") as resp:
            assert resp.status == 404
        if token:
            async with session.get("/metrics") as resp:
                assert resp.status == 401


async def test_a_taken_metrics_port_is_a_clear_start_up_error(settings: Settings) -> None:
    app = web.Application()
    app[SETTINGS], app[METRICS] = settings, Metrics()
    taken = web.AppRunner(web.Application())
    await taken.setup()
    port = free_port()
    await web.TCPSite(taken, "127.0.0.1", port).start()
    try:
        with pytest.raises(StartupError, match="HOTSPOT_METRICS_PORT"):
            await anext(aiter(metrics_listener("127.0.0.1", port)(app)))
    finally:
        await taken.cleanup()


def test_a_workers_operations_port_serves_metrics(settings: Settings) -> None:
    paths = {r.canonical for r in create_worker_app(settings, ["persistence"]).router.resources()}
    assert {"/health", "/ready", "/metrics"} <= paths
