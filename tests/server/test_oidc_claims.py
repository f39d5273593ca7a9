"""OIDC claims by scope: the id_token (Core 3.1.3.6) and GET/POST /oauth/userinfo (Core 5.3)."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from handlers.oidc import issue_id_token
from storage import users as user_store
from storage.users import User
from tests.conftest import Account
from tests.server.oidc_helpers import CLIENT_ID, app_token, issuer, services, verify_with_pyjwt

USERINFO = "/oauth/userinfo"
PROFILE_CLAIMS = {"preferred_username", "name", "profile", "updated_at"}


async def verify_email(client: TestClient[Any, Any], account: Account) -> None:
    await services(client).db.pool.execute(
        "UPDATE users SET email_verified_at = now() WHERE id = $1", uuid.UUID(account.id))


async def set_avatar(client: TestClient[Any, Any], account: Account, url: str) -> None:
    resp = await client.patch("/v1/users/me", json={"avatar_url": url}, headers=account.headers)
    assert resp.status == 200, await resp.text()


async def user_of(client: TestClient[Any, Any], account: Account) -> User:
    user = await user_store.get_user(services(client).db, uuid.UUID(account.id))
    assert user is not None
    return user


async def id_token_claims(client: TestClient[Any, Any], account: Account, scopes: list[str],
                          **kwargs: Any) -> dict[str, Any]:
    token = issue_id_token(services(client).oauth_keys, issuer=issuer(client),
                           user=await user_of(client, account), client_id=CLIENT_ID,
                           scopes=scopes, ttl_s=600, base_url=issuer(client), **kwargs)
    return await verify_with_pyjwt(client, token, audience=CLIENT_ID)


async def userinfo(client: TestClient[Any, Any], token: str, method: str = "GET") -> Any:
    return await client.request(method, USERINFO, headers={"Authorization": f"Bearer {token}"})


async def test_id_token_core_claims(client: TestClient[Any, Any], account: Account) -> None:
    access = app_token(client, account, ["openid"])
    auth_time = int(time.time()) - 30
    before = int(time.time())
    claims = await id_token_claims(client, account, ["openid"], auth_time=auth_time,
                                   nonce="n-0S6_WzA2Mj", access_token=access)
    assert claims["iss"] == issuer(client)
    assert claims["sub"] == account.id
    assert claims["aud"] == CLIENT_ID
    assert claims["auth_time"] == auth_time
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 600
    # at_hash, computed here as OIDC Core 3.1.3.6 says: left half of SHA-256, base64url.
    digest = hashlib.sha256(access.encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    # openid alone releases nothing about the person beyond the subject.
    assert not {"email", "email_verified", *PROFILE_CLAIMS} & set(claims)


async def test_id_token_email_only_when_granted_and_verified(
    client: TestClient[Any, Any], account: Account,
) -> None:
    unverified = await id_token_claims(client, account, ["openid", "email"], auth_time=0)
    assert "email" not in unverified and "email_verified" not in unverified
    await verify_email(client, account)
    without_scope = await id_token_claims(client, account, ["openid", "profile"], auth_time=0)
    assert "email" not in without_scope
    granted = await id_token_claims(client, account, ["openid", "email"], auth_time=0)
    assert granted["email"] == account.email and granted["email_verified"] is True
    assert not PROFILE_CLAIMS & set(granted)


async def test_id_token_profile_claims(client: TestClient[Any, Any], account: Account) -> None:
    await set_avatar(client, account, "https://cdn.example.com/a.png")
    claims = await id_token_claims(client, account, ["openid", "profile"], auth_time=0)
    assert claims["preferred_username"] == account.username
    assert claims["name"]
    assert claims["picture"] == "https://cdn.example.com/a.png"
    assert claims["profile"] == f"{issuer(client)}/v1/users/by_username/{account.username}"
    assert isinstance(claims["updated_at"], int)
    assert "email" not in claims


async def test_userinfo_releases_claims_by_scope(
    client: TestClient[Any, Any], account: Account,
) -> None:
    resp = await userinfo(client, app_token(client, account, ["openid"]))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    assert await resp.json() == {"sub": account.id}

    # email granted, address not verified: not released.
    resp = await userinfo(client, app_token(client, account, ["openid", "email"]))
    assert await resp.json() == {"sub": account.id}
    await verify_email(client, account)
    resp = await userinfo(client, app_token(client, account, ["openid", "email"]), "POST")
    assert resp.status == 200
    assert await resp.json() == {"sub": account.id, "email": account.email,
                                 "email_verified": True}

    resp = await userinfo(client, app_token(client, account, ["openid", "profile"]))
    body = await resp.json()
    assert body["sub"] == account.id and body["preferred_username"] == account.username
    assert PROFILE_CLAIMS <= set(body) and "email" not in body
    # The id_token and userinfo agree on what a scope releases.
    from_id_token = await id_token_claims(client, account, ["openid", "profile"], auth_time=0)
    assert {k: from_id_token[k] for k in body if k != "sub"} == {
        k: v for k, v in body.items() if k != "sub"}


async def test_userinfo_errors_follow_rfc_6750(
    client: TestClient[Any, Any], account: Account,
) -> None:
    resp = await client.get(USERINFO)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="hotspot"'

    for bad in ("not-a-jwt", app_token(client, account, ["openid"], aud="https://other.example")):
        resp = await userinfo(client, bad)
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]

    resp = await client.get(USERINFO, headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert resp.status == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]

    expired = app_token(client, account, ["openid"], now=time.time() - 3600, ttl_s=60)
    resp = await userinfo(client, expired)
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]

    resp = await userinfo(client, app_token(client, account, ["read:profile", "email"]))
    assert resp.status == 403
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="hotspot", error="insufficient_scope", scope="openid"')
    assert (await resp.json())["error"]["details"]["required_scope"] == "openid"

    # A revoked session (or grant) stops its tokens here as everywhere.
    token = app_token(client, account, ["openid"])
    logout = await client.post("/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert logout.status == 204, await logout.text()
    resp = await userinfo(client, token)
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_userinfo_for_a_first_party_token(
    client: TestClient[Any, Any], account: Account,
) -> None:
    """A person's own session carries every scope: userinfo answers, by the same rule."""
    resp = await userinfo(client, account.access_token)
    assert resp.status == 200
    body = await resp.json()
    assert body["sub"] == account.id and "email" not in body
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    assert claims["scopes"] == ["*"]
