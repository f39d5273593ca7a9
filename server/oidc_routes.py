"""The OAuth/OIDC metadata routes: /oauth/jwks, the two discovery documents, /oauth/userinfo.

Plain aiohttp routes, not commands: their shapes are fixed by RFC 7517 (JWK Set), RFC 8414
(authorization server metadata), OpenID Connect Discovery 1.0 and Core 5.3 (UserInfo, with
RFC 6750 errors in WWW-Authenticate), not by the command envelope.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config import Settings
from handlers.errors import CommandError
from handlers.oauth_keys import JWKS_MAX_AGE_S
from handlers.oidc import CLAIMS_SUPPORTED, userinfo
from handlers.scopes import grantable
from server.dispatch import Dispatcher
from server.oauth_register import add_registration_route
from server.rest import json_response

# Discovery changes only with a deployment (or a new signing algorithm); an hour of caching
# is what relying parties commonly assume.
DISCOVERY_MAX_AGE_S = 3600

# Exactly what /oauth/token answers (server/oauth_server.py); no implicit, no password grant.
GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials",
               "urn:ietf:params:oauth:grant-type:device_code"]
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def discovery_document(settings: Settings, id_token_algs: list[str]) -> dict[str, Any]:
    """RFC 8414 metadata that is also an OpenID Provider configuration (Discovery 1.0 §3)."""
    issuer = settings.oauth_issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        # RFC 8414 section 2: named only when dynamic registration is on.
        **({"registration_endpoint": f"{issuer}/oauth/register"}
           if settings.oauth_dynamic_registration else {}),
        # RFC 8628 section 4.
        "device_authorization_endpoint": f"{issuer}/oauth/device_authorization",
        "scopes_supported": [scope.value for scope in grantable()],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        # RFC 9207: the authorization response carries no iss parameter (yet).
        "authorization_response_iss_parameter_supported": False,
        "grant_types_supported": GRANT_TYPES,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_algs,
        "claims_supported": CLAIMS_SUPPORTED,
        # Discovery's defaults for these are true; HotSpot takes neither request objects
        # nor the claims parameter, so it says so.
        "request_uri_parameter_supported": False,
        "request_parameter_supported": False,
        "claims_parameter_supported": False,
    }


def _bearer_challenge(exc: CommandError) -> tuple[int, str]:
    """RFC 6750 §3: the status and WWW-Authenticate of a refused UserInfo request."""
    reason = exc.details.get("reason") if isinstance(exc.details, dict) else None
    if exc.code == "forbidden":
        return 403, 'Bearer realm="hotspot", error="insufficient_scope", scope="openid"'
    if reason == "token_missing":
        # No credentials at all: no error code (RFC 6750 §3.1).
        return 401, 'Bearer realm="hotspot"'
    description = exc.message.replace('"', "'")
    return 401, f'Bearer realm="hotspot", error="invalid_token", error_description="{description}"'


def add_oidc_routes(app: web.Application, dispatcher: Dispatcher, settings: Settings) -> None:
    """/oauth/jwks, /.well-known/{openid-configuration,oauth-authorization-server}, userinfo."""

    async def jwks(request: web.Request) -> web.Response:
        return json_response(dispatcher.services.oauth_keys.jwks(), headers={
            # Short enough that a rotation's new key (published activation_delay_s ahead,
            # which includes this) reaches every cache before it signs.
            "Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"})

    async def discovery(request: web.Request) -> web.Response:
        document = discovery_document(settings, dispatcher.services.oauth_keys.algorithms())
        return json_response(document,
                             headers={"Cache-Control": f"public, max-age={DISCOVERY_MAX_AGE_S}"})

    async def user_info(request: web.Request) -> web.Response:
        try:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if not header:
                raise CommandError("unauthorized", "authentication required",
                                   {"reason": "token_missing"})
            if scheme.lower() != "bearer" or not token.strip():
                raise CommandError("unauthorized", "the Authorization header must be "
                                   "'Bearer <token>'", {"reason": "token_invalid"})
            principal = dispatcher.authenticate(token.strip())
            if principal.expired():
                raise CommandError("unauthorized", "access token expired",
                                   {"reason": "token_expired"})
            claims = await userinfo(dispatcher.services, principal)
        except CommandError as exc:
            status, challenge = _bearer_challenge(exc)
            return json_response({"error": exc.to_dict()}, status, {
                "WWW-Authenticate": challenge, "Cache-Control": "no-store"})
        return json_response(claims, headers={"Cache-Control": "no-store"})

    app.router.add_get("/oauth/jwks", jwks)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/.well-known/oauth-authorization-server", discovery)
    # OIDC Core 5.3.1: the UserInfo endpoint answers GET and POST alike.
    app.router.add_get("/oauth/userinfo", user_info)
    app.router.add_post("/oauth/userinfo", user_info)
    if settings.oauth_dynamic_registration:
        add_registration_route(app, dispatcher)
