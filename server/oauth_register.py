"""POST /oauth/register: RFC 7591 dynamic client registration, off unless
HOTSPOT_OAUTH_DYNAMIC_REGISTRATION is true (the route does not exist otherwise: 404).

The initial access token (RFC 7591 section 3) is the person's own first-party bearer token,
and the registered app is theirs: registration runs the oauth.app.create command through
the dispatcher, so its scope (`account`, which no app token holds), its rate, the verified
owner and the per-owner cap apply exactly as on the two other doors, and the app is then
managed with oauth.app.* like any other. Anonymous registration would create apps nobody
answers for, outside the cap and the suspension that lean on an owner.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from handlers.context import Context
from handlers.errors import CommandError
from handlers.rates import Rate, charge
from server.dispatch import Dispatcher
from server.rest import REQUEST_ID, client_ip, json_response

REGISTER_PER_IP = Rate("oauth_register_ip", per="ip")
BODY_LIMIT_BYTES = 64 * 1024
# RFC 7591 metadata name -> oauth.app.create field, to name fields in errors both ways.
FIELDS = {"client_name": "name", "client_uri": "website", "redirect_uris": "redirect_uris",
          "scope": "allowed_scopes"}
AUTH_METHODS = {"client_secret_basic": "confidential", "client_secret_post": "confidential",
                "none": "public"}
GRANT_TYPES = {"authorization_code", "refresh_token", "client_credentials",
               "urn:ietf:params:oauth:grant-type:device_code"}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class RegistrationError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def _metadata_error(description: str) -> RegistrationError:
    return RegistrationError("invalid_client_metadata", description)


def _strings(meta: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = meta.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _metadata_error(f"{name} must be an array of strings")
    return value


def to_app_input(meta: dict[str, Any]) -> tuple[dict[str, Any], str, list[str]]:
    """oauth.app.create's input for RFC 7591 metadata, the auth method and the grant types.

    Only the mapping is here; every rule on the values is oauth.app.create's. logo_uri,
    contacts, policy_uri and other metadata HotSpot does not keep are ignored, as RFC 7591
    section 2 allows (the answer lists what was registered).
    """
    method = meta.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise _metadata_error("token_endpoint_auth_method must be one of "
                              + ", ".join(AUTH_METHODS))
    grants = _strings(meta, "grant_types", ["authorization_code"])
    if not grants or not set(grants) <= GRANT_TYPES:
        raise _metadata_error("grant_types may be authorization_code, refresh_token, "
                              "client_credentials and the device_code grant (no implicit, "
                              "no password)")
    if "client_credentials" in grants and method == "none":
        raise _metadata_error("client_credentials needs a confidential client")
    if _strings(meta, "response_types", ["code"]) != ["code"]:
        raise _metadata_error("response_types must be [\"code\"]")
    scope = meta.get("scope", "openid")
    if not isinstance(scope, str):
        raise _metadata_error("scope must be a space-separated string")
    body: dict[str, Any] = {
        "name": meta.get("client_name"), "redirect_uris": meta.get("redirect_uris"),
        "client_type": AUTH_METHODS[method], "allowed_scopes": scope.split()}
    if "client_uri" in meta:
        body["website"] = meta["client_uri"]
    return body, method, grants


def _refusal(exc: CommandError) -> RegistrationError:
    """RFC 7591 section 3.2.2 (and RFC 6750 for the initial access token) for a refusal."""
    details = exc.details if isinstance(exc.details, dict) else {}
    if exc.code == "invalid_input":
        fields = details.get("fields") or [{}]
        first = str(fields[0].get("field", ""))
        rfc = {v: k for k, v in FIELDS.items()}.get(first.split(".")[0], first)
        message = f"{rfc}{first[len(first.split('.')[0]):]}: {fields[0].get('message', exc.message)}"
        error = ("invalid_redirect_uri" if first.startswith("redirect_uris")
                 else "invalid_client_metadata")
        return RegistrationError(error, message)
    if exc.code == "unauthorized":
        return RegistrationError("invalid_token", exc.message, 401)
    if exc.code == "forbidden":
        return RegistrationError("insufficient_scope", "registering an app needs your own "
                                 "HotSpot login token (scope account), not an app's", 403)
    if exc.code == "rate_limited":
        return RegistrationError("rate_limited", exc.message, 429)
    if exc.code == "conflict":
        # Not verified, or at the per-owner cap: the account may not register (more) apps.
        return RegistrationError("access_denied", exc.message, 403)
    return RegistrationError("server_error", exc.message, 500)  # internal, unavailable


def _answer(app: dict[str, Any], method: str, grants: list[str]) -> dict[str, Any]:
    """RFC 7591 section 3.2.1: the client information and the metadata as registered."""
    issued = app["created_at"]
    answer: dict[str, Any] = {
        "client_id": app["client_id"],
        "client_id_issued_at": int(datetime.fromisoformat(issued).timestamp()),
        "client_name": app["name"], "redirect_uris": app["redirect_uris"],
        "scope": " ".join(app["allowed_scopes"]), "token_endpoint_auth_method": method,
        "grant_types": grants, "response_types": ["code"],
    }
    if app.get("website"):
        answer["client_uri"] = app["website"]
    if app.get("client_secret"):
        answer["client_secret"] = app["client_secret"]
        answer["client_secret_expires_at"] = 0  # never: rotate with oauth.app.rotate_secret
    return answer


def add_registration_route(app: web.Application, dispatcher: Dispatcher) -> None:
    """POST /oauth/register, when the setting turns it on (the caller checks)."""

    async def register(request: web.Request) -> web.Response:
        ctx = Context(services=dispatcher.services, principal=None, transport="rest",
                      request_id=request.get(REQUEST_ID) or uuid.uuid4().hex,
                      ip=client_ip(request), user_agent=request.headers.get("User-Agent"))
        try:
            try:
                await charge(ctx, REGISTER_PER_IP)
                scheme, _, token = request.headers.get("Authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise CommandError("unauthorized", "send your HotSpot access token as "
                                       "'Authorization: Bearer <token>' (the initial access token)")
                ctx.principal = dispatcher.authenticate(token.strip())
            except CommandError as exc:
                raise _refusal(exc) from None
            if (request.content_length or 0) > BODY_LIMIT_BYTES:
                raise _metadata_error(f"at most {BODY_LIMIT_BYTES} bytes of metadata")
            try:
                meta = await request.json()
            except ValueError:
                raise _metadata_error("the body must be a JSON object") from None
            if not isinstance(meta, dict):
                raise _metadata_error("the body must be a JSON object")
            body, method, grants = to_app_input(meta)
            cmd = dispatcher.registry.get("oauth.app.create")
            assert cmd is not None
            try:
                created = await dispatcher.run(cmd, body, ctx)
            except CommandError as exc:
                raise _refusal(exc) from None
        except RegistrationError as exc:
            headers = dict(NO_STORE)
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="hotspot", error="invalid_token"'
            return json_response({"error": exc.error, "error_description": exc.description},
                                 exc.status, headers)
        return json_response(_answer(created, method, grants), 201, NO_STORE)

    app.router.add_post("/oauth/register", register)
