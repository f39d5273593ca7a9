"""Helpers for the OAuth key and OIDC tests: app tokens, and checks made with standard JOSE code."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import jwt
from aiohttp.test_utils import TestClient
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from handlers.context import Services
from server.resources import SERVICES
from tests.conftest import Account

CLIENT_ID = "test-app"


def services(client: TestClient[Any, Any]) -> Services:
    found: Services = client.app[SERVICES]
    return found


def b64(data: bytes | dict[str, Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def app_token(client: TestClient[Any, Any], account: Account, scopes: list[str],
              **kwargs: Any) -> str:
    """A third-party access token for the account's session, as an OAuth app would hold."""
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    return services(client).tokens.issue(
        uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), scopes,
        client_id=kwargs.pop("client_id", CLIENT_ID), **kwargs).token


def issuer(client: TestClient[Any, Any]) -> str:
    return services(client).settings.oauth_issuer


async def jwks_over_http(client: TestClient[Any, Any]) -> KeySet:
    """The JWK Set as a relying party gets it: GET /oauth/jwks, parsed by joserfc."""
    resp = await client.get("/oauth/jwks")
    assert resp.status == 200
    return KeySet.import_key_set(await resp.json())


async def verify_with_joserfc(client: TestClient[Any, Any], token: str,
                              **expected: Any) -> dict[str, Any]:
    """Claims of a token checked by joserfc against /oauth/jwks (not the server's own code)."""
    keys = await jwks_over_http(client)
    decoded = jose_jwt.decode(token, keys, algorithms=["ES256", "RS256"])
    options: dict[str, Any] = {name: {"essential": True, "value": value}
                               for name, value in expected.items()}
    jose_jwt.JWTClaimsRegistry(exp={"essential": True}, **options).validate(decoded.claims)
    return dict(decoded.claims)


async def verify_with_pyjwt(client: TestClient[Any, Any], token: str, audience: str) -> dict[str, Any]:
    """Claims checked by PyJWT's PyJWKClient, which fetches /oauth/jwks itself over HTTP."""
    jwks = jwt.PyJWKClient(str(client.make_url("/oauth/jwks")), cache_keys=False)
    # PyJWKClient blocks on urllib; the server under test shares this event loop.
    key = await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["ES256", "RS256"],
                                        audience=audience, issuer=issuer(client))
    return claims
