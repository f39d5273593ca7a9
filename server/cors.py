"""CORS for the REST API, from the same HOTSPOT_CORS_ORIGINS list the Socket.IO server uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id, Idempotency-Key"
EXPOSED_HEADERS = "X-Request-Id, Retry-After, WWW-Authenticate, Link"


def cors_middleware(origins: list[str]) -> Middleware:
    any_origin = "*" in origins
    allowed = set(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        # Socket.IO answers its own CORS; only the API routes are handled here.
        if origin is None or request.path.startswith("/socket.io"):
            return await handler(request)
        permitted = any_origin or origin in allowed
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not permitted:
                return web.Response(status=403)
            response: web.StreamResponse = web.Response(status=204, headers={
                "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": "600",
            })
        else:
            response = await handler(request)
        if permitted:
            response.headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            if not any_origin:
                response.headers["Vary"] = "Origin"
        return response

    return cors
