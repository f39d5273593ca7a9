"""The aiohttp application factories: the API server and the worker process."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import web

from config import Settings
from handlers import (
    account_email,
    account_export,
    analytics,
    analytics_admin,
    auth,
    blocks,
    campaigns,
    clique_membership,
    clique_moderation,
    cliques,
    conversations,
    engagement,
    feeds,
    highlights,
    insights,
    items,
    media,
    messages,
    networks,
    notifications,
    oauth_apps,
    oauth_grants,
    outreach,
    presence,
    push,
    slides,
    stories,
    story_tray,
    story_views,
    users,
)
from handlers.commands import CommandRegistry, collect_commands
from server.apidocs import event_catalogue, openapi
from server.cors import cors_middleware
from server.device_routes import add_device_routes
from server.dispatch import Dispatcher
from server.health import add_health_routes
from server.media_routes import add_media_routes
from server.metrics import Metrics
from server.oauth_routes import add_oauth_routes, oauth_server_ctx
from server.oidc_routes import add_oidc_routes
from server.outreach_routes import add_outreach_routes
from server.resources import METRICS, SERVICES, SETTINGS, WORKER_NAMES, resource_contexts
from server.rest import (
    HTTP_REQUESTS_METRIC,
    TRUSTED_PROXY_HOPS,
    add_command_routes,
    json_response,
    request_context_middleware,
)
from server.sockets import SocketTransport

TRANSPORT = web.AppKey("socket_transport", SocketTransport)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)


def command_registry() -> CommandRegistry:
    """Every command HotSpot serves; a new handler module is added here."""
    return collect_commands([
        auth, account_email, account_export, users, messages, media, conversations, blocks, presence,
        notifications, push,
        campaigns, outreach, networks, items, engagement, cliques, clique_membership,
        clique_moderation, feeds, stories, story_tray, story_views, highlights, slides, insights,
        oauth_apps, oauth_grants, analytics, analytics_admin,
    ])


def _base_app(settings: Settings, worker_names: list[str], *, metrics_here: bool) -> web.Application:
    app = web.Application(
        middlewares=[cors_middleware(settings.cors_origins), request_context_middleware],
        client_max_size=settings.limits.rest_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[HTTP_REQUESTS_METRIC] = app[METRICS].http_requests
    app[WORKER_NAMES] = worker_names
    app[TRUSTED_PROXY_HOPS] = settings.trusted_proxy_hops
    app.cleanup_ctx.extend(resource_contexts())
    add_health_routes(app, metrics_here=metrics_here)
    return app


def create_app(settings: Settings) -> web.Application:
    """The API server: REST + Socket.IO, and the workers too when they run in-process."""
    # /metrics stays off the public API port unless a token guards it (server/health.py).
    app = _base_app(settings, ["all"] if settings.workers_in_process else [],
                    metrics_here=settings.metrics_token is not None)
    registry = command_registry()
    dispatcher = Dispatcher(registry, app[METRICS])
    transport = SocketTransport(dispatcher, settings)
    transport.sio.attach(app)
    add_command_routes(app, dispatcher)
    add_media_routes(app, dispatcher)
    add_outreach_routes(app, dispatcher)
    add_oidc_routes(app, dispatcher, settings)
    add_oauth_routes(app, dispatcher)
    add_device_routes(app, dispatcher)
    app[DISPATCHER] = dispatcher
    app[TRANSPORT] = transport
    app.cleanup_ctx.append(_transport_ctx)
    app.cleanup_ctx.append(oauth_server_ctx(dispatcher))

    async def openapi_json(request: web.Request) -> web.Response:
        return json_response(openapi(registry, settings.public_base_url, settings.rates))

    async def events_json(request: web.Request) -> web.Response:
        return json_response(event_catalogue(registry, settings.rates))

    app.router.add_get("/v1/openapi.json", openapi_json)
    app.router.add_get("/v1/events.json", events_json)
    app.on_shutdown.append(_close_sockets)
    app.on_startup.append(_freeze_startup_objects)
    return app


async def _transport_ctx(app: web.Application) -> AsyncIterator[None]:
    """Routes need the opened services, so the transport is wired once they exist."""
    services = app[SERVICES]
    app[DISPATCHER].bind(services)
    app[TRANSPORT].bind(services.realtime)
    app[METRICS].track_connections(lambda: services.realtime.open_connections)
    yield


async def _freeze_startup_objects(app: web.Application) -> None:
    """Move everything alive after start-up out of the garbage collector's view.

    Imports, schemas and pools are never freed, yet every collection walked them:
    measured as a quarter of the CPU of a large fan-out.
    """
    gc.collect()
    gc.freeze()


async def _close_sockets(app: web.Application) -> None:
    transport = app.get(TRANSPORT)
    if transport is not None:
        await transport.close_all()
        await transport.sio.shutdown()


def create_worker_app(settings: Settings, names: list[str]) -> web.Application:
    """A worker process: consumers plus /health, /ready and /metrics, no API."""
    return _base_app(settings, names, metrics_here=True)
