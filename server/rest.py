"""Every command with a REST route, served under /v1 with JSON bodies."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter

from handlers.commands import Command
from handlers.context import Context, Principal
from handlers.errors import CommandError, invalid
from server.dispatch import Dispatcher
from server.logs import request_id_var

log = logging.getLogger(__name__)

HTTP_REQUESTS_METRIC = web.AppKey("http_requests_metric", Counter)
REQUEST_ID = web.RequestKey("request_id", str)
TRUSTED_PROXY_HOPS = web.AppKey("trusted_proxy_hops", int)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def error_response(exc: CommandError) -> web.Response:
    headers: dict[str, str] = {}
    if exc.code == "rate_limited" and isinstance(exc.details, dict):
        headers["Retry-After"] = str(exc.details.get("retry_after", 1))
    if exc.code == "unauthorized":
        headers["WWW-Authenticate"] = 'Bearer realm="hotspot"'
    return json_response({"error": exc.to_dict()}, exc.http_status, headers)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CommandError("unauthorized", "the Authorization header must be 'Bearer <token>'",
                           {"reason": "token_invalid"})
    return token.strip()


async def read_json_body(request: web.Request, limit: int) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise CommandError("payload_too_large", f"the body is larger than {limit} bytes",
                           {"limit": limit})
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise CommandError("payload_too_large", f"the body is larger than {limit} bytes",
                           {"limit": limit}) from None
    if not body.strip():
        return {}
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CommandError("invalid_input", f"malformed JSON: {exc}",
                           {"fields": [{"field": "(body)", "message": "malformed JSON",
                                        "type": "json_invalid"}]}) from None
    if not isinstance(parsed, dict):
        raise CommandError("invalid_input", "the body must be a JSON object",
                           {"fields": [{"field": "(body)", "message": "not an object",
                                        "type": "object_type"}]})
    return parsed


def forwarded_ip(peer: str | None, forwarded_for: str | None, trusted_hops: int) -> str | None:
    """The client address, trusting only the last `trusted_hops` proxies' X-Forwarded-For entries.

    Each trusted proxy appends the address it saw, so the client is the entry that many
    places from the right; anything further left was written by the client and is ignored.
    """
    if trusted_hops <= 0 or not forwarded_for:
        return peer
    chain = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    chain.append(peer or "")
    return chain[-(trusted_hops + 1)] if len(chain) > trusted_hops else chain[0]


def do_not_track(dnt: str | None, gpc: str | None) -> bool:
    """Whether the client asked not to be tracked (Do-Not-Track: 1, or Global Privacy Control)."""
    return (dnt or "").strip() == "1" or (gpc or "").strip() == "1"


def client_ip(request: web.Request) -> str | None:
    hops = request.app[TRUSTED_PROXY_HOPS] if TRUSTED_PROXY_HOPS in request.app else 0
    return forwarded_ip(request.remote, request.headers.get("X-Forwarded-For"), hops)


def make_route_handler(cmd: Command, dispatcher: Dispatcher) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        request_id = request.get(REQUEST_ID) or uuid.uuid4().hex
        try:
            settings = dispatcher.services.settings
            token = bearer_token(request)
            principal: Principal | None = None
            if token is not None:
                try:
                    principal = dispatcher.authenticate(token)
                except CommandError:
                    if cmd.auth != "none":
                        raise
            raw: dict[str, Any] = dict(request.query)
            if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                raw.update(await read_json_body(request, settings.limits.rest_body_bytes))
            raw.update(request.match_info)
            _take_idempotency_key(cmd, request, raw)
            ctx = Context(
                services=dispatcher.services, principal=principal, transport="rest",
                request_id=request_id, ip=client_ip(request),
                user_agent=request.headers.get("User-Agent"),
                do_not_track=do_not_track(request.headers.get("DNT"),
                                          request.headers.get("Sec-GPC")),
            )
            result = await dispatcher.run(cmd, raw, ctx)
        except CommandError as exc:
            return error_response(exc)
        if cmd.status == 204:
            return web.Response(status=204)
        return json_response(result, cmd.status, _next_link(request, result))

    return handle


def _take_idempotency_key(cmd: Command, request: web.Request, raw: dict[str, Any]) -> None:
    """A create that accepts `idempotency_key` also takes it from the Idempotency-Key header."""
    header = request.headers.get("Idempotency-Key")
    if header is None or "idempotency_key" not in cmd.input.model_fields:
        return
    if raw.get("idempotency_key", header) != header:
        raise invalid("idempotency_key", "the Idempotency-Key header and body field differ",
                      "idempotency_key_mismatch")
    raw["idempotency_key"] = header


def _next_link(request: web.Request, result: Any) -> dict[str, str] | None:
    """RFC 8288 Link header pointing at the next page of a list that has one."""
    if request.method != "GET" or not isinstance(result, dict):
        return None
    cursor = result.get("next_cursor")
    if not isinstance(cursor, str):
        return None
    url = request.rel_url.update_query({"cursor": cursor})
    return {"Link": f'<{url}>; rel="next"'}


@web.middleware
async def request_context_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Give every request an id (the client's X-Request-Id if sane) and JSON errors for 404/405/500."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    metrics = request.app[HTTP_REQUESTS_METRIC] if HTTP_REQUESTS_METRIC in request.app else None
    try:
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            response = error_response(CommandError("not_found", "no such route"))
        except web.HTTPMethodNotAllowed as exc:
            allowed = sorted(exc.allowed_methods)
            response = error_response(CommandError(
                "invalid_input", f"method not allowed; allowed: {allowed}", {"allowed": allowed},
            ))
            response.set_status(405)
            # RFC 9110 requires a 405 to list the methods the resource supports.
            response.headers["Allow"] = ", ".join(allowed)
        except web.HTTPException:
            raise
        except Exception:
            # Commands map their own failures; this catches the other routes (health,
            # metrics, docs) so they too answer with the error envelope and the request id.
            log.exception("request failed", extra={"path": request.path})
            response = error_response(CommandError("internal", "internal error"))
        response.headers["X-Request-Id"] = request_id
        if metrics is not None:
            metrics.labels(request.method, str(response.status)).inc()
        return response
    finally:
        request_id_var.reset(token)


def add_command_routes(app: web.Application, dispatcher: Dispatcher) -> None:
    for cmd in dispatcher.registry:
        if cmd.method is not None and cmd.rest_path is not None and not cmd.custom_route:
            app.router.add_route(cmd.method, cmd.rest_path, make_route_handler(cmd, dispatcher),
                                 name=cmd.name)
