"""Access tokens: their claims, and every way a bad one is refused on REST and on socket connect."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
import socketio
from aiohttp.test_utils import TestClient

from config import Settings
from handlers.tokens import TokenService
from server.resources import build_token_service
from tests.conftest import Account, SocketFactory, signup

ME = "/v1/users/me"


def claims_of(token: str) -> dict[str, Any]:
    """The token's claims, read without checking the signature."""
    return jwt.decode(token, options={"verify_signature": False})


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def expect_unauthorized(resp: Any, reason: str | None = None) -> dict[str, Any]:
    assert resp.status == 401, await resp.text()
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), resp.headers
    error = (await resp.json())["error"]
    assert error["code"] == "unauthorized", error
    if reason is not None:
        assert error["details"]["reason"] == reason, error
    return error


async def refused_connect(client: TestClient[Any, Any], auth: Any) -> dict[str, Any]:
    """Connect a socket that must be refused; returns the connect_error data."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda *args: errors.append(args))
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(str(client.make_url("/")), auth=auth, transports=["websocket"],
                              wait_timeout=5)
    finally:
        if sio.connected:
            await sio.disconnect()
    assert len(errors) == 1, errors
    (data,) = errors[0]
    return data["data"] if "data" in data else data


def service(settings: Settings) -> TokenService:
    return build_token_service(settings)


async def test_access_token_claims(client: TestClient[Any, Any], settings: Settings) -> None:
    before = int(time.time())
    resp = await client.post("/v1/auth/signup", json={
        "username": f"c{uuid.uuid4().hex[:10]}", "email": f"c{uuid.uuid4().hex[:10]}@example.com",
        "password": "correct horse battery"})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    claims = jwt.decode(body["access_token"], settings.jwt_secret, algorithms=["HS256"],
                        issuer=settings.jwt_issuer)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    assert claims["sub"] == body["user"]["id"]
    uuid.UUID(claims["sid"])
    assert claims["scopes"] == ["*"]
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == body["expires_in"] == settings.access_token_ttl_s
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert body["token_type"] == "Bearer"

    # A second login is a second session with its own token id.
    login = await client.post("/v1/auth/login", json={"login": body["user"]["username"],
                                                      "password": "correct horse battery"})
    assert login.status == 200
    other = claims_of((await login.json())["access_token"])
    assert other["sub"] == claims["sub"]
    assert other["sid"] != claims["sid"]
    assert other["jti"] != claims["jti"]


async def test_token_minted_with_the_server_secret_is_accepted(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    """The control for the forgery tests below: the same recipe with the right key works."""
    claims = claims_of(account.access_token)
    token = service(settings).issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), ["*"]).token
    resp = await client.get(ME, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["id"] == account.id


async def test_expired_token_is_refused(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    claims = claims_of(account.access_token)
    expired = service(settings).issue(
        uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), ["*"], now=time.time() - 3600, ttl_s=60
    ).token
    error = await expect_unauthorized(await client.get(ME, headers=bearer(expired)), "token_expired")
    assert "expired" in error["message"]


async def test_token_signed_with_another_secret_is_refused(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    claims = claims_of(account.access_token)
    forged = jwt.encode({**claims, "jti": "forged-token"}, "another-secret-" + "y" * 40,
                        algorithm="HS256")
    await expect_unauthorized(await client.get(ME, headers=bearer(forged)), "token_invalid")


async def test_alg_none_token_is_refused(client: TestClient[Any, Any], account: Account) -> None:
    claims = claims_of(account.access_token)
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."
        await expect_unauthorized(await client.get(ME, headers=bearer(unsigned)), "token_invalid")


async def test_tampered_payload_is_refused(client: TestClient[Any, Any], account: Account) -> None:
    victim = await signup(client)
    header, _, signature = account.access_token.split(".")
    claims = claims_of(account.access_token)
    for change in ({"sub": victim.id}, {"scopes": ["*", "admin"]}, {"exp": claims["exp"] + 86400}):
        tampered = f"{header}.{b64({**claims, **change})}.{signature}"
        await expect_unauthorized(await client.get(ME, headers=bearer(tampered)), "token_invalid")
    # The untouched token still works, so the refusals above are about the tampering.
    resp = await client.get(ME, headers=account.headers)
    assert resp.status == 200
    assert (await resp.json())["id"] == account.id


async def test_token_from_another_issuer_or_without_required_claims_is_refused(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    assert settings.jwt_secret is not None
    claims = claims_of(account.access_token)
    variants = [{**claims, "iss": "someone-else"}]
    for missing in ("sub", "sid", "exp", "iat", "jti"):
        variants.append({k: v for k, v in claims.items() if k != missing})
    variants.append({**claims, "sub": "not-a-uuid"})
    variants.append({**claims, "sid": "not-a-uuid"})
    for variant in variants:
        token = jwt.encode(variant, settings.jwt_secret, algorithm="HS256")
        await expect_unauthorized(await client.get(ME, headers=bearer(token)), "token_invalid")


async def test_signed_token_with_non_string_ids_is_refused(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    assert settings.jwt_secret is not None
    claims = claims_of(account.access_token)
    for change in ({"sid": 12345}, {"sub": ["x"]}):
        token = jwt.encode({**claims, **change}, settings.jwt_secret, algorithm="HS256")
        await expect_unauthorized(await client.get(ME, headers=bearer(token)), "token_invalid")


@pytest.mark.parametrize("header", [
    "Bearer not-a-jwt",
    "Bearer a.b.c",
    "Bearer " + "x" * 2000,
    "Bearer",
    "Bearer    ",
    "Basic dXNlcjpwYXNz",
    "Token abc.def.ghi",
])
async def test_garbage_authorization_is_refused(client: TestClient[Any, Any], header: str) -> None:
    await expect_unauthorized(await client.get(ME, headers={"Authorization": header}))


async def test_missing_authorization_is_refused(client: TestClient[Any, Any]) -> None:
    await expect_unauthorized(await client.get(ME), "token_missing")
    await expect_unauthorized(await client.patch(ME, json={"bio": "x"}), "token_missing")
    await expect_unauthorized(await client.post("/v1/auth/logout_all"), "token_missing")


async def test_bearer_token_without_the_scheme_word_is_refused(
    client: TestClient[Any, Any], account: Account
) -> None:
    await expect_unauthorized(await client.get(ME, headers={"Authorization": account.access_token}))


async def test_bad_tokens_are_refused_on_socket_connect(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    claims = claims_of(account.access_token)
    expired = service(settings).issue(
        uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), ["*"], now=time.time() - 3600, ttl_s=60
    ).token
    data = await refused_connect(client, {"token": expired})
    assert data["code"] == "unauthorized"
    assert data["reason"] == "token_expired"

    forged = jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256")
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    for token in (forged, unsigned, "garbage"):
        data = await refused_connect(client, {"token": token})
        assert data["code"] == "unauthorized"
        assert data["reason"] == "token_invalid"
    data = await refused_connect(client, {"token": 12345})
    assert data["code"] == "unauthorized"


async def test_good_token_connects_a_socket(
    account: Account, connect_socket: SocketFactory
) -> None:
    sio = await connect_socket(account.access_token)
    reply = await sio.call("account.get", {}, timeout=5)
    assert reply["ok"] is True, reply
    assert reply["data"]["id"] == account.id


async def test_scopes_in_the_token_limit_what_it_may_do(
    client: TestClient[Any, Any], account: Account, settings: Settings,
    connect_socket: SocketFactory,
) -> None:
    claims = claims_of(account.access_token)
    read_only = service(settings).issue(
        uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), ["read:profile"]).token
    resp = await client.get(ME, headers=bearer(read_only))
    assert resp.status == 200, await resp.text()
    for method, path, body, scope in (("PATCH", ME, {"bio": "x"}, "write:profile"),
                                      ("POST", "/v1/auth/logout_all", None, "account"),
                                      ("DELETE", ME, {"password": account.password}, "account")):
        resp = await client.request(method, path, json=body, headers=bearer(read_only))
        assert resp.status == 403, await resp.text()
        error = (await resp.json())["error"]
        assert error["code"] == "forbidden"
        assert error["details"]["required_scope"] == scope
    sio = await connect_socket(read_only)
    reply = await sio.call("account.update", {"bio": "x"}, timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "forbidden"
    assert (await sio.call("account.get", {}, timeout=5))["ok"] is True
    # The account is untouched and the full token still works.
    resp = await client.get(ME, headers=account.headers)
    assert (await resp.json())["bio"] is None
