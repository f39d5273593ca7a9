"""The device authorization grant (RFC 8628) end to end: a device polling over real HTTP,
the person approving on /oauth/device in another HTTP session, and the tokens it gets."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from config.rates import Rates
from tests.conftest import Account, AppFactory, SocketFactory
from tests.server.oauth_device_helpers import (
    DEVICE_GRANT,
    USER_CODE,
    consent_on_page,
    enter_code,
    forget_last_poll,
    interval_of,
    local,
    page_url,
    poll,
    post,
    start,
)
from tests.server.oauth_flow_helpers import (
    SCOPES,
    App,
    browser,
    field,
    register,
    services,
    token_call,
)


async def test_device_flow_end_to_end(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory,
) -> None:
    # A CLI: a public client, no secret.
    app = await register(client, client_type="public")
    codes = await start(client, app, SCOPES)
    issuer = services(client).settings.oauth_issuer
    assert USER_CODE.match(codes["user_code"]), codes
    assert codes["verification_uri"] == f"{issuer}/oauth/device"
    assert codes["verification_uri_complete"] == (
        f"{issuer}/oauth/device?user_code={codes['user_code']}")
    assert codes["expires_in"] == 600 and codes["interval"] == 5
    assert len(codes["device_code"]) >= 40

    # Nobody answered yet; polling again at once is too fast, and each time adds 5 s.
    status, body = await poll(client, app, codes["device_code"])
    assert (status, body["error"]) == (400, "authorization_pending")
    status, body = await poll(client, app, codes["device_code"])
    assert (status, body["error"]) == (400, "slow_down")
    assert await interval_of(client, codes["user_code"]) == 10
    status, body = await poll(client, app, codes["device_code"])
    assert (status, body["error"]) == (400, "slow_down")
    assert await interval_of(client, codes["user_code"]) == 15
    await forget_last_poll(client)
    status, body = await poll(client, app, codes["device_code"])
    assert (status, body["error"]) == (400, "authorization_pending")

    # The person opens the link, lowercase (codes are case-insensitive), signs in, sees the
    # code to compare, unticks write:messages and approves.
    keep = [s for s in SCOPES if s != "write:messages"]
    async with browser() as session:
        code = codes["user_code"]
        url = local(client, codes["verification_uri_complete"].replace(code, code.lower()))
        page = await session.get(url, allow_redirects=False)
        assert page.status == 200 and "Sign in with HotSpot" in await page.text()
        assert page.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        done = await consent_on_page(session, url, account, keep)
        assert "is connected" in done

    status, tokens = await poll(client, app, codes["device_code"])
    assert status == 200, tokens
    assert set(tokens["scope"].split()) == set(keep)
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    jwks = KeySet.import_key_set(await (await client.get("/oauth/jwks")).json())
    claims = jose_jwt.decode(tokens["id_token"], jwks, algorithms=["ES256", "RS256"]).claims
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer}, aud={"essential": True, "value": app.client_id},
        sub={"essential": True, "value": account.id}, auth_time={"essential": True},
    ).validate(claims)

    # Spent: the same device code never issues a second family.
    status, again = await poll(client, app, codes["device_code"])
    assert (status, again["error"]) == (400, "invalid_grant")

    # The token works on REST and a socket, within the scopes the person left ticked.
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/v1/conversations", headers=bearer)).status == 200
    refused = await client.post(f"/v1/conversations/{uuid.uuid4()}/messages", headers=bearer,
                                json={"body": "hi", "client_id": str(uuid.uuid4())})
    assert refused.status == 403
    assert (await refused.json())["error"]["details"]["required_scope"] == "write:messages"
    sio = await connect_socket(tokens["access_token"])
    assert (await sio.call("conversation.list", {}, timeout=5))["ok"] is True
    ack = await sio.call("message.send", {"conversation_id": str(uuid.uuid4()), "body": "hi",
                                          "client_id": str(uuid.uuid4())}, timeout=5)
    assert ack["ok"] is False and ack["error"]["details"]["required_scope"] == "write:messages"

    # The grant is listed with the person's apps, and the refresh token rotates.
    grants = await (await client.get("/v1/users/me/oauth_grants", headers=account.headers)).json()
    assert [g["app"]["client_id"] for g in grants["items"]] == [app.client_id]
    status, refreshed, _ = await token_call(client, "/oauth/token", app, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": app.client_id})
    assert status == 200, refreshed


async def test_denied_and_expired(client: TestClient[Any, Any], account: Account) -> None:
    app = await register(client)  # confidential: Basic authentication
    denied = await start(client, app, ["openid", "read"])
    async with browser() as session:
        done = await consent_on_page(session, page_url(client, denied["user_code"]), account,
                                     None, deny=True)
        assert "was not allowed" in done
        # Decided: the code is no longer accepted on the page.
        resp = await enter_code(session, client, denied["user_code"])
        assert resp.status == 400
    status, body = await poll(client, app, denied["device_code"])
    assert (status, body["error"]) == (400, "access_denied")

    expired = await start(client, app, ["read"])
    await services(client).db.pool.execute(
        "UPDATE oauth_device_codes SET expires_at = now() - interval '1 second' "
        "WHERE user_code = $1", expired["user_code"].replace("-", ""))
    status, body = await poll(client, app, expired["device_code"])
    assert (status, body["error"]) == (400, "expired_token")
    async with browser() as session:
        resp = await enter_code(session, client, expired["user_code"])
        assert resp.status == 400 and "not valid or has expired" in await resp.text()


async def test_wrong_codes_are_limited_per_session_and_ip(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(oauth_device_code_failures_session=(3, 900),
                                           oauth_device_code_failures_ip=(5, 900)))
    app = await register(client)
    codes = await start(client, app, ["read"])
    async with browser() as session:
        # Not the shape of a code: not a guess, not counted.
        assert (await enter_code(session, client, "hello")).status == 400
        for _ in range(3):
            resp = await enter_code(session, client, "BBBB-BBBB")
            assert resp.status == 400
        # The session's counter is full: even the right code is refused now.
        resp = await enter_code(session, client, codes["user_code"])
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    async with browser() as fresh:
        # A new cookie starts a new session count, but the IP has 3 of its 5 already.
        for _ in range(2):
            assert (await enter_code(fresh, client, "CCCC-CCCC")).status == 400
        assert (await enter_code(fresh, client, codes["user_code"])).status == 429
    # The right code, entered in time from elsewhere, would still work: the pair is intact.
    status, body = await poll(client, app, codes["device_code"])
    assert body["error"] == "authorization_pending", (status, body)


async def test_device_authorization_and_token_errors(
    client: TestClient[Any, Any], account: Account,
) -> None:
    app = await register(client)
    other = await register(client, client_type="public")
    status, body, _ = await post(client, "/oauth/device_authorization", app,
                                 {"scope": "read admin"})
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body, _ = await post(client, "/oauth/device_authorization", app, {})
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body, _ = await post(client, "/oauth/device_authorization", App("nope", None, "x"),
                                 {"scope": "read"})
    assert (status, body["error"]) == (401, "invalid_client")

    codes = await start(client, app, ["read"])
    # Another app's device code, an unknown one, none at all.
    status, body = await poll(client, other, codes["device_code"])
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await poll(client, app, "not-a-device-code")
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body, _ = await post(client, "/oauth/token", app, {"grant_type": DEVICE_GRANT})
    assert (status, body["error"]) == (400, "invalid_request")

    # A suspended app's code cannot be approved: the page does not know it.
    await services(client).db.pool.execute(
        "UPDATE oauth_apps SET suspended_at = now() WHERE client_id = $1", app.client_id)
    async with browser() as session:
        assert (await enter_code(session, client, codes["user_code"])).status == 400
    status, body = await poll(client, app, codes["device_code"])
    assert (status, body["error"]) == (401, "invalid_client")


async def test_page_needs_csrf_and_login(client: TestClient[Any, Any]) -> None:
    app = await register(client)
    codes = await start(client, app, ["openid", "read"])
    async with browser() as session:
        url = page_url(client, codes["user_code"])
        assert (await session.get(url)).status == 200
        forged = await session.post(url, data={"action": "approve", "scope": "read"})
        assert forged.status == 403
        # The page's own token, but nobody signed in: no approval either.
        login_form = await session.get(url)
        csrf = field(await login_form.text(), "csrf_token")
        anonymous = await session.post(url, data={"csrf_token": csrf, "action": "approve",
                                                  "scope": "read"})
        assert anonymous.status == 403 and "Sign in first" in await anonymous.text()
        entry = await session.get(client.make_url("/oauth/device"))
        assert entry.status == 200 and "name=user_code" in await entry.text()


async def test_discovery_names_the_device_grant(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/.well-known/openid-configuration")).json()
    issuer = services(client).settings.oauth_issuer
    assert doc["device_authorization_endpoint"] == f"{issuer}/oauth/device_authorization"
    assert DEVICE_GRANT in doc["grant_types_supported"]
