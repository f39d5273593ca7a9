from __future__ import annotations

from typing import Any

from tests.conftest import Account, MailSink, SocketFactory, token_from_mail


async def test_signup_login_socket_profile(client: Any, account: Account, connect_socket: SocketFactory,
                                           mail: MailSink) -> None:
    resp = await client.post("/v1/auth/login", json={"login": account.username, "password": account.password})
    assert resp.status == 200
    token = (await resp.json())["access_token"]
    sio = await connect_socket(token)
    reply = await sio.call("account.get", {}, timeout=5)
    assert reply["ok"] is True, reply
    assert reply["data"]["username"] == account.username
    msg = await mail.wait_for(account.email, "Confirm")
    assert token_from_mail(msg)
