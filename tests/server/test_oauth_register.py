"""RFC 7591 dynamic client registration: off by default, and when on, registration by a
person's own token with oauth.app.create's rules, RFC 7591 answers and errors, per-IP rate."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from config.rates import Rates
from tests.conftest import AppFactory, signup
from tests.server.oauth_flow_helpers import App, token_call, verified_owner

META = {"client_name": "Registered app", "client_uri": "https://app.example.com",
        "redirect_uris": ["https://app.example.com/callback"], "scope": "openid read",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "logo_uri": "https://app.example.com/logo.png"}


async def _register(client: TestClient[Any, Any], token: str | None,
                    meta: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.post("/oauth/register", json=meta, headers=headers)
    assert resp.headers.get("Cache-Control") == "no-store" or resp.status == 404
    body: dict[str, Any] = await resp.json() if resp.status != 404 else {}
    return resp.status, body


async def test_off_by_default(client: TestClient[Any, Any]) -> None:
    owner = await verified_owner(client)
    status, _ = await _register(client, owner.access_token, META)
    assert status == 404
    document = await (await client.get("/.well-known/openid-configuration")).json()
    assert "registration_endpoint" not in document


async def test_register_confidential_and_public(make_client: AppFactory) -> None:
    client = await make_client(oauth_dynamic_registration=True)
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        document = await (await client.get(path)).json()
        assert document["registration_endpoint"] == document["issuer"] + "/oauth/register"
    owner = await verified_owner(client)
    status, body = await _register(client, owner.access_token, META)
    assert status == 201, body
    assert body["client_secret"].startswith("hss_") and body["client_secret_expires_at"] == 0
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["grant_types"] == META["grant_types"] and body["response_types"] == ["code"]
    assert body["scope"] == "openid read" and body["client_uri"] == META["client_uri"]
    assert body["redirect_uris"] == META["redirect_uris"] and "logo_uri" not in body
    assert isinstance(body["client_id_issued_at"], int)
    # The registered app works at the token endpoint and belongs to the caller.
    app = App(body["client_id"], body["client_secret"], "")
    status, token, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "client_credentials", "scope": "read"})
    assert status == 200, token
    listed = await (await client.get("/v1/oauth/apps", headers=owner.headers)).json()
    assert [a["client_id"] for a in listed["items"]] == [body["client_id"]]

    status, public = await _register(client, owner.access_token, {
        "client_name": "CLI", "redirect_uris": ["http://127.0.0.1:8765/cb",
                                                "com.example.cli:/cb"],
        "token_endpoint_auth_method": "none"})
    assert status == 201, public
    assert "client_secret" not in public and public["scope"] == "openid"
    assert public["grant_types"] == ["authorization_code"]


async def test_errors(make_client: AppFactory) -> None:
    client = await make_client(oauth_dynamic_registration=True)
    owner = await verified_owner(client)
    token = owner.access_token
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri", "redirect_uris.0"),
        ({"redirect_uris": ["https://a.example/cb#x"]}, "invalid_redirect_uri", "redirect_uris"),
        ({"scope": "openid account"}, "invalid_client_metadata", "scope"),
        ({"client_name": " "}, "invalid_client_metadata", "client_name"),
        ({"client_uri": "javascript:alert(1)"}, "invalid_client_metadata", "client_uri"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata", "token_endpoint"),
        ({"grant_types": ["implicit"]}, "invalid_client_metadata", "grant_types"),
        ({"response_types": ["token"]}, "invalid_client_metadata", "response_types"),
        ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata", "client_credentials"),
    ]
    for change, error, mentioned in cases:
        status, body = await _register(client, token, {**META, **change})
        assert status == 400 and body["error"] == error, (change, body)
        assert mentioned in body["error_description"], (change, body)
    status, body = await _register(client, None, META)
    assert status == 401 and body["error"] == "invalid_token"
    status, body = await _register(client, "not-a-token", META)
    assert status == 401 and body["error"] == "invalid_token"
    # Registering needs a verified email, as oauth.app.create does.
    status, body = await _register(client, (await signup(client)).access_token, META)
    assert status == 403 and body["error"] == "access_denied", body
    # No app was made by any refusal.
    listed = await (await client.get("/v1/oauth/apps", headers=owner.headers)).json()
    assert listed["items"] == []


async def test_app_token_cannot_register_and_rate_per_ip(make_client: AppFactory) -> None:
    client = await make_client(oauth_dynamic_registration=True,
                               rates=Rates(oauth_register_ip=(3, 3600)))
    owner = await verified_owner(client)
    status, body = await _register(client, owner.access_token, META)
    assert status == 201, body
    app = App(body["client_id"], body["client_secret"], "")
    status, app_token, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "client_credentials", "scope": "read"})
    status, body = await _register(client, app_token["access_token"], META)
    assert status == 403 and body["error"] == "insufficient_scope", body
    status, body = await _register(client, None, META)
    assert status == 401
    status, body = await _register(client, owner.access_token, META)
    assert status == 429 and body["error"] == "rate_limited"
