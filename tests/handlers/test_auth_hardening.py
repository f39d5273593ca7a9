"""Abuse resistance: no account enumeration when mail is down, limits on password guesses."""

from __future__ import annotations

from config import Rates
from tests.conftest import AppFactory, MailSink, free_port, signup, token_from_mail


async def test_password_reset_refuses_everyone_alike_when_mail_cannot_be_queued(
    make_client: AppFactory,
) -> None:
    healthy = await make_client()
    account = await signup(healthy)
    broken = await make_client(amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    known = await broken.post("/v1/auth/password_reset", json={"email": account.email})
    unknown = await broken.post("/v1/auth/password_reset", json={"email": "nobody@example.com"})
    assert known.status == unknown.status == 503
    assert (await known.json()) == (await unknown.json())


async def test_wrong_passwords_on_account_deletion_are_limited(make_client: AppFactory) -> None:
    node = await make_client(rates=Rates(password_failures=(2, 900)))
    account = await signup(node)
    for _ in range(2):
        resp = await node.delete("/v1/users/me", json={"password": "wrong password"},
                                 headers=account.headers)
        assert resp.status == 403
    resp = await node.delete("/v1/users/me", json={"password": account.password},
                             headers=account.headers)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1


async def test_reset_mail_states_the_configured_lifetime(
    make_client: AppFactory, mail: MailSink
) -> None:
    node = await make_client(password_reset_ttl_s=1800)
    account = await signup(node)
    # Resets are mailed to verified addresses only.
    token = token_from_mail(await mail.wait_for(account.email, "Confirm"))
    assert (await node.post("/v1/auth/email/verify", json={"token": token})).status == 200
    resp = await node.post("/v1/auth/password_reset", json={"email": account.email})
    assert resp.status == 202
    message = await mail.wait_for(account.email, "Reset")
    assert "30 minutes" in message.get_payload()[0].get_payload(decode=True).decode()


async def test_reset_confirm_with_a_bogus_token_is_refused_and_limited(
    make_client: AppFactory,
) -> None:
    node = await make_client(rates=Rates(password_reset_confirm=(2, 3600)))
    body = {"token": "x" * 40, "new_password": "another good password"}
    for _ in range(2):
        resp = await node.post("/v1/auth/password_reset/confirm", json=body)
        assert resp.status == 400
    resp = await node.post("/v1/auth/password_reset/confirm", json=body)
    assert resp.status == 429
