"""The OAuth flows end to end: a third-party app over real HTTP, its user in the consent
page, its tokens on REST and on a socket, refresh rotation and reuse, revoke, introspect."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.conftest import Account, SocketFactory
from tests.handlers.media_helpers import uploaded
from tests.handlers.oauth_helpers import REDIRECT, create_app
from tests.revocation_helpers import Revoked
from tests.server.oauth_flow_helpers import (
    SCOPES,
    App,
    approve,
    authorize_url,
    browser,
    consent_code,
    exchange,
    field,
    log_in,
    redirect_params,
    register,
    services,
    token_call,
    verified_owner,
)


async def test_sign_in_with_hotspot_end_to_end(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory,
) -> None:
    app = await register(client)
    async with browser() as session:
        # The user unticks write:messages on the consent page.
        keep = [s for s in SCOPES if s != "write:messages"]
        auth, code = await consent_code(client, session, app, account, keep=keep)
        resp = await exchange(client, app, code, auth.verifier)
        assert resp.status == 200, await resp.text()
        assert resp.headers["Cache-Control"] == "no-store"
        tokens = await resp.json()
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
        assert set(tokens["scope"].split()) == set(keep)
        # The id_token checked by joserfc against the JWK Set fetched over HTTP.
        jwks = await session.get(client.make_url("/oauth/jwks"))
        keys = KeySet.import_key_set(await jwks.json())
        claims = jose_jwt.decode(tokens["id_token"], keys, algorithms=["ES256", "RS256"]).claims
        issuer = services(client).settings.oauth_issuer
        jose_jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer}, aud={"essential": True, "value": app.client_id},
            nonce={"essential": True, "value": auth.nonce}, sub={"essential": True, "value": account.id},
            exp={"essential": True}).validate(claims)
        assert claims["preferred_username"] == account.username

    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/v1/conversations", headers=bearer)).status == 200
    # A command outside the granted scopes, on both doors.
    refused = await client.post(f"/v1/conversations/{uuid.uuid4()}/messages", headers=bearer,
                                json={"body": "hi", "client_id": str(uuid.uuid4())})
    assert refused.status == 403
    assert (await refused.json())["error"]["details"]["required_scope"] == "write:messages"
    sio = await connect_socket(tokens["access_token"])
    revoked = Revoked(sio)
    ack = await sio.call("message.send", {"conversation_id": str(uuid.uuid4()), "body": "hi",
                                          "client_id": str(uuid.uuid4())}, timeout=5)
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
    assert ack["error"]["details"]["required_scope"] == "write:messages"
    assert (await sio.call("conversation.list", {}, timeout=5))["ok"] is True

    # Refresh rotates; the same old token again within the grace window gets the same pair.
    status, first, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert status == 200, first
    assert first["refresh_token"] != tokens["refresh_token"]
    status, again, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert status == 200 and again["refresh_token"] == first["refresh_token"]

    # After the grace window, the spent token is a theft: the whole family is revoked.
    await services(client).db.pool.execute(
        "UPDATE refresh_tokens SET used_at = now() - interval '1 minute' WHERE used_at IS NOT NULL")
    status, reuse, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert status == 400 and reuse["error"] == "invalid_grant"
    await revoked.wait()
    assert revoked.reasons == ["refresh_token_reuse"]
    assert (await client.get("/v1/conversations", headers=bearer)).status == 401
    status, dead, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert status == 400 and dead["error"] == "invalid_grant"


async def test_remembered_consent_revoke_and_introspect(
    client: TestClient[Any, Any], account: Account,
) -> None:
    app = await register(client)
    async with browser() as session:
        await consent_code(client, session, app, account)
        # Same scopes again: no consent page, straight back with a code.
        auth = authorize_url(client, app)
        params = redirect_params(await session.get(auth.url, allow_redirects=False))
        assert params["state"] == auth.state
    tokens = await (await exchange(client, app, params["code"], auth.verifier)).json()
    status, info, _ = await token_call(client, "/oauth/introspect", app,
                                       {"token": tokens["access_token"]})
    assert status == 200 and info["active"] is True
    assert info["client_id"] == app.client_id and info["sub"] == account.id
    assert set(info["scope"].split()) == set(SCOPES)
    assert {"exp", "iat", "aud", "token_type"} <= set(info)
    status, _, _ = await token_call(client, "/oauth/revoke", app,
                                    {"token": tokens["refresh_token"]})
    assert status == 200
    for token in (tokens["access_token"], tokens["refresh_token"]):
        status, info, _ = await token_call(client, "/oauth/introspect", app, {"token": token})
        assert info == {"active": False}
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/v1/conversations", headers=bearer)).status == 401


async def test_pkce_errors(client: TestClient[Any, Any], account: Account) -> None:
    app = await register(client)
    async with browser() as session:
        _, code = await consent_code(client, session, app, account)
        missing = await exchange(client, app, code, None)
        assert missing.status == 400 and (await missing.json())["error"] == "invalid_request"
        _, code = await consent_code(client, session, app, account)
        wrong = await exchange(client, app, code, "x" * 50)
        assert wrong.status == 400 and (await wrong.json())["error"] == "invalid_grant"
        plain = authorize_url(client, app, code_challenge_method="plain")
        params = redirect_params(await session.get(plain.url, allow_redirects=False))
        assert params["error"] == "invalid_request" and params["state"] == plain.state


async def test_public_client_must_use_pkce(client: TestClient[Any, Any], account: Account) -> None:
    app = await register(client, client_type="public")
    async with browser() as session:
        bare = authorize_url(client, app, code_challenge="", code_challenge_method="")
        params = redirect_params(await session.get(bare.url, allow_redirects=False))
        assert params["error"] == "invalid_request"
        auth, code = await consent_code(client, session, app, account)
        resp = await exchange(client, app, code, auth.verifier)
        assert resp.status == 200, await resp.text()
        assert "refresh_token" in await resp.json()


async def test_bad_client_or_redirect_uri_never_redirects(
    client: TestClient[Any, Any], account: Account,
) -> None:
    app = await register(client)
    async with browser() as session:
        for url in (authorize_url(client, app, redirect_uri="https://evil.example/cb").url,
                    authorize_url(client, app, redirect_uri=REDIRECT + "/x").url,
                    authorize_url(client, app, client_id="nope").url):
            resp = await session.get(url, allow_redirects=False)
            assert resp.status == 400 and "Location" not in resp.headers
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        # A scope the app may not ask for goes back to the app as invalid_scope.
        bad_scope = authorize_url(client, app, ["openid", "write:content"])
        params = redirect_params(await session.get(bad_scope.url, allow_redirects=False))
        assert params["error"] == "invalid_scope" and params["state"] == bad_scope.state


async def test_reused_code_revokes_what_it_issued_and_expired_code(
    client: TestClient[Any, Any], account: Account,
) -> None:
    app = await register(client)
    async with browser() as session:
        auth, code = await consent_code(client, session, app, account)
        tokens = await (await exchange(client, app, code, auth.verifier)).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await client.get("/v1/conversations", headers=bearer)).status == 200
        again = await exchange(client, app, code, auth.verifier)
        assert again.status == 400 and (await again.json())["error"] == "invalid_grant"
        assert (await client.get("/v1/conversations", headers=bearer)).status == 401

        auth, code = await consent_code(client, session, app, account)
        await services(client).db.pool.execute(
            "UPDATE oauth_codes SET expires_at = now() - interval '1 second'")
        expired = await exchange(client, app, code, auth.verifier)
        assert expired.status == 400 and (await expired.json())["error"] == "invalid_grant"


async def test_suspended_app_and_csrf(client: TestClient[Any, Any], account: Account) -> None:
    app = await register(client)
    async with browser() as session:
        auth = authorize_url(client, app)
        page = await log_in(session, auth.url, account)
        html = await page.text()
        no_csrf = await session.post(auth.url, data={"action": "approve", "scope": "openid"},
                                     allow_redirects=False)
        assert no_csrf.status == 403 and "Location" not in no_csrf.headers
        wrong = await session.post(auth.url, data={"action": "approve", "csrf_token": "x"},
                                   allow_redirects=False)
        assert wrong.status == 403
        denied = await session.post(auth.url, allow_redirects=False, data={
            "csrf_token": field(html, "csrf_token"), "action": "deny"})
        assert redirect_params(denied)["error"] == "access_denied"
        await services(client).db.pool.execute(
            "UPDATE oauth_apps SET suspended_at = now() WHERE client_id = $1", app.client_id)
        refused = await session.get(auth.url, allow_redirects=False)
        assert refused.status == 400 and "Location" not in refused.headers
        late = await approve(session, auth.url, html, SCOPES)
        assert late.status == 400 and "Location" not in late.headers


async def test_client_credentials_and_client_errors(
    client: TestClient[Any, Any], account: Account,
) -> None:
    app = await register(client)
    status, body, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "client_credentials", "scope": "read"})
    assert status == 200 and "refresh_token" not in body, body
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    resp = await client.get("/v1/conversations", headers=bearer)
    assert resp.status == 403
    assert (await resp.json())["error"]["details"]["reason"] == "app_only_token"
    status, body, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "client_credentials", "scope": "openid"})
    assert status == 400 and body["error"] == "invalid_scope"
    async with aiohttp.ClientSession() as http:
        resp = await http.post(client.make_url("/oauth/token"),
                               data={"grant_type": "client_credentials"},
                               headers={"Authorization": aiohttp.encode_basic_auth(
                                   app.client_id, "hss_wrong")})
        assert resp.status == 401 and (await resp.json())["error"] == "invalid_client"
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
        resp = await http.post(client.make_url("/oauth/token"), data={
            "grant_type": "password", "username": "a", "password": "b"}, headers=app.basic)
        assert resp.status == 400
        assert (await resp.json())["error"] == "unsupported_grant_type"


async def test_consent_page_names_the_app_without_a_logo(
    client: TestClient[Any, Any], account: Account,
) -> None:
    owner = await verified_owner(client)
    logo = await uploaded(client, owner)
    body = await create_app(client, owner, allowed_scopes=SCOPES, logo_media_id=logo["id"],
                            name="Logo <b>app</b>", website="https://app.example.com")
    app = App(body["client_id"], body["client_secret"], body["id"])
    async with browser() as session:
        auth = authorize_url(client, app)
        for page in (await session.get(auth.url, allow_redirects=False),
                     await log_in(session, auth.url, account)):
            html = await page.text()
            # The name (escaped) and website as text; no <img>: media content needs an
            # Authorization header, and a logo is how an unreviewed app poses as a brand.
            assert "Logo &lt;b&gt;app&lt;/b&gt;" in html and "https://app.example.com" in html
            assert "<img" not in html and logo["id"] not in html
