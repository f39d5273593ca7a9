"""GET /health (alive), /ready (dependencies answer) and /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from server.resources import BUS, METRICS, QUEUE, SERVICES, SETTINGS


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "node": request.app[SETTINGS].node_id})


async def _check(probe: Awaitable[Any]) -> str:
    try:
        ok = await asyncio.wait_for(probe, timeout=2.0)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok" if ok else "error"


async def ready(request: web.Request) -> web.Response:
    app = request.app
    settings = app[SETTINGS]
    checks = {"database": await _check(app[SERVICES].db.ping())}
    if settings.redis_url:
        checks["redis"] = await _check(app[BUS].ping())
    if settings.amqp_url:
        checks["rabbitmq"] = await _check(app[QUEUE].ping())
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ready" if ok else "unavailable", "checks": checks},
                             status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
