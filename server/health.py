"""The operations endpoints: GET /health (alive), /ready (dependencies answer), /metrics.

/health and /ready are public. /metrics tells anyone who can read it the traffic by
command, so it stays off the public API port: `hotspot serve` answers it on a listener
of its own (HOTSPOT_METRICS_HOST:HOTSPOT_METRICS_PORT, 127.0.0.1:9464 by default), a worker
on its operations port, and the API port only when HOTSPOT_METRICS_TOKEN is set. With the
token set every /metrics requires `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from server.resources import BUS, METRICS, QUEUE, SERVICES, SETTINGS, StartupError

log = logging.getLogger(__name__)


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


def _bearer_ok(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time: the comparison must not tell a scraper how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


async def metrics(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token is not None and not _bearer_ok(request, token):
        return web.json_response(
            {"error": {"code": "unauthorized",
                       "message": "/metrics needs Authorization: Bearer <HOTSPOT_METRICS_TOKEN>",
                       "details": {"reason": "metrics_token"}}},
            status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def add_health_routes(app: web.Application, *, metrics_here: bool) -> None:
    """/health and /ready; /metrics too when this port may serve it (see the module doc)."""
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    if metrics_here:
        app.router.add_get("/metrics", metrics)


def metrics_listener(
    host: str, port: int,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context serving the app's /metrics, and nothing else, on host:port."""

    async def listen(app: web.Application) -> AsyncIterator[None]:
        site_app = web.Application()
        site_app[SETTINGS] = app[SETTINGS]
        site_app[METRICS] = app[METRICS]
        site_app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(site_app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise StartupError(f"cannot listen for /metrics on {host}:{port} "
                               f"({exc.strerror or exc}); set HOTSPOT_METRICS_PORT "
                               "(0: no metrics listener)") from exc
        log.info("metrics listening", extra={"url": f"http://{host}:{port}/metrics"})
        try:
            yield
        finally:
            await runner.cleanup()

    return listen
