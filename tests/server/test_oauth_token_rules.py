"""/oauth/token's finer rules: concurrent code reuse, rates per client and per IP, the
redirect_uri binding, introspecting a refresh token, narrowing scopes on refresh, and a
refresh token presented by another app."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from config.rates import Rates
from tests.conftest import Account, AppFactory
from tests.handlers.oauth_helpers import REDIRECT
from tests.server.oauth_flow_helpers import (
    App,
    browser,
    consent_code,
    exchange,
    register,
    token_call,
)

OTHER_REDIRECT = "https://app.example.com/other"


async def _tokens(client: TestClient[Any, Any], app: App, account: Account,
                  scopes: list[str] | None = None) -> dict[str, Any]:
    async with browser() as session:
        auth, code = await consent_code(client, session, app, account, scopes=scopes)
    resp = await exchange(client, app, code, auth.verifier)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_concurrent_code_reuse_revokes_the_winner(
    client: TestClient[Any, Any], account: Account,
) -> None:
    app = await register(client)
    for _ in range(3):  # several rounds: the interleaving differs from run to run
        async with browser() as session:
            auth, code = await consent_code(client, session, app, account)
        first, second = await asyncio.gather(exchange(client, app, code, auth.verifier),
                                             exchange(client, app, code, auth.verifier))
        assert sorted([first.status, second.status]) == [200, 400]
        winner, loser = (first, second) if first.status == 200 else (second, first)
        assert (await loser.json())["error"] == "invalid_grant"
        tokens = await winner.json()
        # RFC 6749 section 4.1.2: what the code issued is revoked, whichever use came first.
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await client.get("/v1/conversations", headers=bearer)).status == 401
        status, body, _ = await token_call(client, "/oauth/token", app, {
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert status == 400 and body["error"] == "invalid_grant"


async def test_token_rate_per_client(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(oauth_token_client=(2, 60)))
    app, other = await register(client), await register(client)
    grant = {"grant_type": "client_credentials", "scope": "read"}
    for _ in range(2):
        status, body, _ = await token_call(client, "/oauth/token", app, grant)
        assert status == 200, body
    status, body, headers = await token_call(client, "/oauth/token", app, grant)
    assert status == 429 and body["error"] == "rate_limited"
    assert int(headers["Retry-After"]) >= 1 and headers["Cache-Control"] == "no-store"
    # Another app from the same address has its own count.
    status, body, _ = await token_call(client, "/oauth/token", other, grant)
    assert status == 200, body


async def test_token_rate_per_ip_counts_revoke_and_introspect(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(oauth_token_ip=(3, 60)))
    app, other = await register(client), await register(client)
    status, body, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "client_credentials", "scope": "read"})
    assert status == 200, body
    assert (await token_call(client, "/oauth/introspect", app, {"token": "x"}))[0] == 200
    assert (await token_call(client, "/oauth/revoke", other, {"token": "x"}))[0] == 200
    for path, data in (("/oauth/token", {"grant_type": "client_credentials"}),
                       ("/oauth/introspect", {"token": "x"})):
        status, body, headers = await token_call(client, path, other, data)
        assert status == 429 and body["error"] == "rate_limited" and "Retry-After" in headers


async def test_redirect_uri_must_match_at_the_token_endpoint(
    client: TestClient[Any, Any], account: Account,
) -> None:
    app = await register(client, redirect_uris=[REDIRECT, OTHER_REDIRECT])
    async with browser() as session:
        auth, code = await consent_code(client, session, app, account)
        # Another URI the app registered is still not the one the code was issued for.
        resp = await exchange(client, app, code, auth.verifier, redirect_uri=OTHER_REDIRECT)
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
        auth, code = await consent_code(client, session, app, account)
        resp = await exchange(client, app, code, auth.verifier, redirect_uri="")
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
        auth, code = await consent_code(client, session, app, account)
        resp = await exchange(client, app, code, auth.verifier)
        assert resp.status == 200, await resp.text()


async def test_introspect_refresh_token_and_narrow_on_refresh(
    client: TestClient[Any, Any], account: Account,
) -> None:
    app = await register(client)
    tokens = await _tokens(client, app, account)
    granted = set(tokens["scope"].split())
    status, info, _ = await token_call(client, "/oauth/introspect", app,
                                       {"token": tokens["refresh_token"]})
    assert status == 200 and info["active"] is True, info
    assert info["token_type"] == "refresh_token" and info["client_id"] == app.client_id
    assert info["sub"] == account.id and set(info["scope"].split()) == granted
    assert info["exp"] > info["iat"]

    # A narrower scope on refresh: the new access token carries only that.
    status, narrow, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "scope": "openid read"})
    assert status == 200, narrow
    assert set(narrow["scope"].split()) == {"openid", "read"}
    status, info, _ = await token_call(client, "/oauth/introspect", app,
                                       {"token": narrow["access_token"]})
    assert set(info["scope"].split()) == {"openid", "read"}
    # RFC 6749 section 6: the grant itself is unchanged; leaving scope out asks for all of it.
    status, full, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": narrow["refresh_token"]})
    assert status == 200 and set(full["scope"].split()) == granted, full
    # Wider than the grant is refused, and does not spend the token.
    status, wide, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": full["refresh_token"],
        "scope": "openid write:content"})
    assert status == 400 and wide["error"] == "invalid_scope", wide
    status, body, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": full["refresh_token"]})
    assert status == 200 and body["refresh_token"] != full["refresh_token"], body


async def test_refresh_token_of_another_app(client: TestClient[Any, Any], account: Account) -> None:
    app, thief = await register(client), await register(client)
    tokens = await _tokens(client, app, account)
    status, body, _ = await token_call(client, "/oauth/token", thief, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert status == 400 and body["error"] == "invalid_grant"
    # Neither spent nor revoked: only the app it was issued to can end it (RFC 7009 2.1).
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/v1/conversations", headers=bearer)).status == 200
    status, body, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert status == 200, body
    # Introspection and revocation by the other app see nothing and change nothing.
    status, info, _ = await token_call(client, "/oauth/introspect", thief,
                                       {"token": body["refresh_token"]})
    assert info == {"active": False}
    assert (await token_call(client, "/oauth/revoke", thief, {"token": body["refresh_token"]}))[0] == 200
    status, info, _ = await token_call(client, "/oauth/introspect", app,
                                       {"token": body["refresh_token"]})
    assert info["active"] is True
