"""What an app's token sees of its user's own account: account.get on both doors releases the
email only with the `email` scope and once verified, and never the pending email or phone."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Account, SocketFactory
from tests.server.oauth_flow_helpers import (
    browser,
    consent_code,
    exchange,
    register,
    services,
)

SCOPES = ["openid", "email", "read:profile", "write:profile"]
SECURITY = {"pending_email": None, "pending_email_expires_at": None, "phone": None,
            "phone_verified": None}


async def _with_security_data(client: TestClient[Any, Any], account: Account,
                              verified: bool) -> None:
    await services(client).db.pool.execute(
        """UPDATE users SET email_verified_at = CASE WHEN $2 THEN now() END,
               pending_email = 'next@example.com',
               pending_email_expires_at = now() + interval '1 hour',
               phone = '+14155550123', phone_verified_at = now()
           WHERE id = $1""", uuid.UUID(account.id), verified)


async def _app_token(client: TestClient[Any, Any], account: Account, keep: list[str]) -> str:
    app = await register(client, allowed_scopes=SCOPES)
    async with browser() as session:
        auth, code = await consent_code(client, session, app, account, keep=keep,
                                        scopes=SCOPES)
    resp = await exchange(client, app, code, auth.verifier)
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["access_token"]
    return token


async def _both_doors(client: TestClient[Any, Any], connect_socket: SocketFactory,
                      token: str) -> list[dict[str, Any]]:
    resp = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    sio = await connect_socket(token)
    ack = await sio.call("account.get", {}, timeout=5)
    assert ack["ok"] is True, ack
    return [await resp.json(), ack["data"]]


async def test_app_with_email_scope_sees_a_verified_email_only(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory,
) -> None:
    await _with_security_data(client, account, verified=True)
    token = await _app_token(client, account, SCOPES)
    for profile in await _both_doors(client, connect_socket, token):
        assert profile["email"] == account.email and profile["email_verified"] is True
        assert {k: profile[k] for k in SECURITY} == SECURITY
        assert profile["username"] == account.username
    # The same scopes, but the address is not verified (any more): withheld.
    await _with_security_data(client, account, verified=False)
    for profile in await _both_doors(client, connect_socket, token):
        assert profile["email"] is None and profile["email_verified"] is None
        assert {k: profile[k] for k in SECURITY} == SECURITY
    # account.update answers the same profile, with the same rule.
    resp = await client.patch("/v1/users/me", json={"bio": "hi"},
                              headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["email"] is None and body["phone"] is None and body["pending_email"] is None


async def test_app_without_email_scope_and_first_party(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory,
) -> None:
    await _with_security_data(client, account, verified=True)
    token = await _app_token(client, account, [s for s in SCOPES if s != "email"])
    for profile in await _both_doors(client, connect_socket, token):
        assert profile["email"] is None and profile["email_verified"] is None
        assert {k: profile[k] for k in SECURITY} == SECURITY
    # The person's own token is unchanged: everything, security data included.
    for profile in await _both_doors(client, connect_socket, account.access_token):
        assert profile["email"] == account.email and profile["email_verified"] is True
        assert profile["pending_email"] == "next@example.com"
        assert profile["phone"] == "+14155550123" and profile["phone_verified"] is True
