"""Changing the account email: the password, a pending address, notices, limits and races."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from config import Rates, Settings
from handlers.scopes import CATALOGUE
from server.app import command_registry
from tests.conftest import (
    Account,
    AppFactory,
    MailSink,
    SocketFactory,
    mail_text,
    signup,
    token_from_mail,
    unique_name,
)

ME = "/v1/users/me"
EMAIL = "/v1/users/me/email"
VERIFY = "/v1/auth/email/verify"


async def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == code, error
    return dict(error)


def fields_of(error: dict[str, Any]) -> dict[str, str]:
    return {f["field"]: f["type"] for f in error["details"]["fields"]}


async def me(client: TestClient[Any, Any], account: Account) -> dict[str, Any]:
    resp = await client.get(ME, headers=account.headers)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def login_status(client: TestClient[Any, Any], name: str, password: str) -> int:
    resp = await client.post("/v1/auth/login", json={"login": name, "password": password})
    return int(resp.status)


async def change(client: TestClient[Any, Any], account: Account, email: str,
                 password: str | None = None) -> Any:
    body = {"email": email, "current_password": account.password if password is None else password}
    return await client.post(EMAIL, json=body, headers=account.headers)


async def mails_to(mail: MailSink, to: str, subject_part: str, count: int) -> list[Any]:
    """The first `count` mails to an address with that subject, once they have all arrived."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [m for m in mail.to(to) if subject_part in (m["Subject"] or "")]
        if len(found) >= count:
            return found[:count]
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} mails to {to} with {subject_part!r}")


async def verified(client: TestClient[Any, Any], mail: MailSink) -> Account:
    """A new account whose email is verified."""
    account = await signup(client)
    token = token_from_mail(await mail.wait_for(account.email, "Confirm your HotSpot"))
    assert (await client.post(VERIFY, json={"token": token})).status == 200
    return account


async def change_token(mail: MailSink, to: str, nth: int = 1) -> str:
    return token_from_mail((await mails_to(mail, to, "Confirm your new", nth))[nth - 1])


async def reset_tokens(settings: Settings, account: Account) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(await conn.fetchval(
            """SELECT count(*) FROM user_tokens
               WHERE user_id = $1::uuid AND purpose = 'password_reset'""", account.id))
    finally:
        await conn.close()


def new_address() -> str:
    return f"{unique_name('new')}@example.com"


def test_the_change_needs_an_account_scope_no_app_can_hold() -> None:
    by_name = {cmd.name: cmd for cmd in command_registry()}
    for name in ("account.email.change", "account.email.cancel"):
        scope = by_name[name].scope
        assert scope is not None and not CATALOGUE[scope].grantable, name


async def test_the_change_needs_the_current_password(
    client: TestClient[Any, Any], account: Account
) -> None:
    before = await me(client, account)
    resp = await client.post(EMAIL, json={"email": new_address()}, headers=account.headers)
    assert fields_of(await error_of(resp, 400, "invalid_input")) == {"current_password": "missing"}
    await error_of(await change(client, account, new_address(), "not the password"), 403,
                   "forbidden")
    assert await me(client, account) == before
    assert before["pending_email"] is None


async def test_wrong_passwords_count_in_the_failure_counter(make_client: AppFactory) -> None:
    node = await make_client(rates=Rates(password_failures=(2, 900)))
    account = await signup(node)
    for _ in range(2):
        await error_of(await change(node, account, new_address(), "wrong password"), 403,
                       "forbidden")
    # The right password is refused too until the window passes: guessing is what it stops.
    await error_of(await change(node, account, new_address()), 429, "rate_limited")
    # The counter is the one account deletion uses.
    resp = await node.delete(ME, json={"password": account.password}, headers=account.headers)
    assert resp.status == 429


async def test_the_new_address_is_pending_until_its_link_is_confirmed(
    client: TestClient[Any, Any], mail: MailSink, settings: Settings
) -> None:
    account = await verified(client, mail)
    new = new_address()
    resp = await change(client, account, new)
    assert resp.status == 202, await resp.text()
    data = await resp.json()
    assert (data["email"], data["email_verified"], data["pending_email"]) == (
        account.email, True, new)
    assert data["pending_email_expires_at"] is not None
    assert await me(client, account) == data

    # The old address is told, with the new one masked.
    notice = mail_text(await mail.wait_for(account.email, "is being changed"))
    assert "n***@example.com" in notice and new not in notice
    assert "reset your password" in notice

    # Until the link is confirmed the old address is the account's: login and reset.
    token = await change_token(mail, new)
    assert await login_status(client, account.email, account.password) == 200
    assert await login_status(client, new, account.password) == 401
    resp = await client.post("/v1/auth/password_reset", json={"email": new})
    assert resp.status == 202
    assert await reset_tokens(settings, account) == 0

    resp = await client.post(VERIFY, json={"token": token})
    assert resp.status == 200, await resp.text()
    data = await me(client, account)
    assert (data["email"], data["email_verified"], data["pending_email"],
            data["pending_email_expires_at"]) == (new, True, None, None)
    assert await login_status(client, new, account.password) == 200
    assert await login_status(client, account.email, account.password) == 401
    done = mail_text(await mail.wait_for(account.email, "was changed"))
    assert "n***@example.com" in done and new not in done
    # A link is spent once.
    error = await error_of(await client.post(VERIFY, json={"token": token}), 400, "invalid_input")
    assert fields_of(error) == {"token": "token_invalid"}


async def test_links_mailed_to_the_old_address_die_with_the_change(
    client: TestClient[Any, Any], mail: MailSink
) -> None:
    account = await verified(client, mail)
    assert (await client.post("/v1/auth/password_reset", json={"email": account.email})).status \
        == 202
    reset = token_from_mail(await mail.wait_for(account.email, "Reset"))
    new = new_address()
    assert (await change(client, account, new)).status == 202
    assert (await client.post(VERIFY, json={"token": await change_token(mail, new)})).status == 200
    error = await error_of(await client.post("/v1/auth/password_reset/confirm", json={
        "token": reset, "new_password": "taken over!"}), 400, "invalid_input")
    assert fields_of(error) == {"token": "token_stale"}
    assert await login_status(client, new, account.password) == 200


async def test_an_unverified_account_changes_too_and_its_old_link_goes_stale(
    client: TestClient[Any, Any], account: Account, mail: MailSink
) -> None:
    old_link = token_from_mail(await mail.wait_for(account.email, "Confirm your HotSpot"))
    new = new_address()
    assert (await change(client, account, new)).status == 202
    await mail.wait_for(account.email, "is being changed")
    assert (await client.post(VERIFY, json={"token": await change_token(mail, new)})).status == 200
    data = await me(client, account)
    assert (data["email"], data["email_verified"]) == (new, True)
    error = await error_of(await client.post(VERIFY, json={"token": old_link}), 400,
                           "invalid_input")
    assert fields_of(error) == {"token": "token_stale"}


async def test_a_new_change_replaces_the_pending_one(
    client: TestClient[Any, Any], mail: MailSink
) -> None:
    account = await verified(client, mail)
    first, second = new_address(), new_address()
    assert (await change(client, account, first)).status == 202
    assert (await change(client, account, second)).status == 202
    assert (await me(client, account))["pending_email"] == second
    stale = await change_token(mail, first)
    error = await error_of(await client.post(VERIFY, json={"token": stale}), 400, "invalid_input")
    assert fields_of(error) == {"token": "token_stale"}
    assert "replaced" in error["message"]
    assert (await me(client, account))["email"] == account.email

    resp = await client.post(VERIFY, json={"token": await change_token(mail, second)})
    assert resp.status == 200, await resp.text()
    assert (await me(client, account))["email"] == second
    error = await error_of(await client.post(VERIFY, json={"token": stale}), 400, "invalid_input")
    assert fields_of(error) == {"token": "token_stale"}


async def test_cancel_drops_the_pending_change(
    client: TestClient[Any, Any], mail: MailSink
) -> None:
    account = await verified(client, mail)
    new = new_address()
    assert (await change(client, account, new)).status == 202
    resp = await client.delete(EMAIL, headers=account.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["pending_email"] is None
    error = await error_of(await client.post(VERIFY, json={"token": await change_token(mail, new)}),
                           400, "invalid_input")
    assert fields_of(error) == {"token": "token_stale"}
    await error_of(await client.delete(EMAIL, headers=account.headers), 404, "not_found")
    assert (await me(client, account))["email"] == account.email


@pytest.mark.parametrize("how", ["password_change", "password_reset"])
async def test_securing_the_password_cancels_a_pending_change(
    client: TestClient[Any, Any], mail: MailSink, how: str
) -> None:
    account = await verified(client, mail)
    new = new_address()
    assert (await change(client, account, new)).status == 202
    if how == "password_change":
        resp = await client.post(f"{ME}/password", headers=account.headers, json={
            "current_password": account.password, "new_password": "a brand new secret"})
    else:
        assert (await client.post("/v1/auth/password_reset",
                                  json={"email": account.email})).status == 202
        reset = token_from_mail(await mail.wait_for(account.email, "Reset"))
        resp = await client.post("/v1/auth/password_reset/confirm",
                                 json={"token": reset, "new_password": "a brand new secret"})
    assert resp.status == 204, await resp.text()
    error = await error_of(await client.post(VERIFY, json={"token": await change_token(mail, new)}),
                           400, "invalid_input")
    assert fields_of(error) == {"token": "token_stale"}
    assert await login_status(client, account.email, "a brand new secret") == 200


async def test_an_address_in_use_is_a_conflict_at_request_time(
    client: TestClient[Any, Any], account: Account
) -> None:
    other = await signup(client)
    error = await error_of(await change(client, account, other.email.upper()), 409, "conflict")
    assert fields_of(error) == {"email": "taken"}
    assert (await me(client, account))["pending_email"] is None


async def test_an_address_taken_meanwhile_is_a_conflict_at_confirmation(
    client: TestClient[Any, Any], mail: MailSink
) -> None:
    account = await verified(client, mail)
    new = new_address()
    assert (await change(client, account, new)).status == 202
    await signup(client, email=new.upper())
    error = await error_of(await client.post(VERIFY, json={"token": await change_token(mail, new)}),
                           409, "conflict")
    assert fields_of(error) == {"email": "taken"}
    data = await me(client, account)
    assert (data["email"], data["pending_email"]) == (account.email, new)


async def test_concurrent_claims_of_one_address_one_wins(
    client: TestClient[Any, Any], mail: MailSink
) -> None:
    first, second = await verified(client, mail), await verified(client, mail)
    new = new_address()
    for account in (first, second):
        assert (await change(client, account, new)).status == 202
    tokens = [token_from_mail(m) for m in await mails_to(mail, new, "Confirm your new", 2)]
    answers = await asyncio.gather(*(client.post(VERIFY, json={"token": t}) for t in tokens))
    assert sorted(resp.status for resp in answers) == [200, 409]
    emails = [(await me(client, account))["email"] for account in (first, second)]
    assert emails.count(new) == 1


async def test_only_the_letter_case_changes_without_a_link(
    client: TestClient[Any, Any], mail: MailSink
) -> None:
    account = await verified(client, mail)
    shouting = account.email.split("@")[0].upper() + "@example.com"  # domains are lowercased
    resp = await change(client, account, shouting)
    assert resp.status == 202, await resp.text()
    data = await resp.json()
    assert (data["email"], data["email_verified"], data["pending_email"]) == (shouting, True, None)
    assert await login_status(client, account.email, account.password) == 200


async def test_the_verification_mail_limit_counts_email_changes(
    make_client: AppFactory, mail: MailSink
) -> None:
    node = await make_client(rates=Rates(verification_mail=(3, 3600)))
    account = await signup(node)  # the sign-up mail is the first
    first = new_address()
    assert (await change(node, account, first)).status == 202
    assert (await node.post("/v1/auth/email/resend", headers=account.headers)).status == 202
    await mails_to(mail, first, "Confirm your new", 2)  # resend mails the pending address
    error = await error_of(await change(node, account, new_address()), 429, "rate_limited")
    assert error["details"]["retry_after"] >= 1
    # The refused change left the earlier one pending.
    assert (await me(node, account))["pending_email"] == first
    await error_of(await node.post("/v1/auth/email/resend", headers=account.headers), 429,
                   "rate_limited")


async def test_change_over_a_socket(
    client: TestClient[Any, Any], mail: MailSink, connect_socket: SocketFactory
) -> None:
    account = await verified(client, mail)
    sio = await connect_socket(account.access_token)
    new = new_address()
    reply = await sio.call("account.email.change",
                           {"email": new, "current_password": account.password}, timeout=5)
    assert reply["ok"] is True, reply
    assert reply["data"]["pending_email"] == new
    reply = await sio.call("account.email.change",
                           {"email": new, "current_password": "nope"}, timeout=5)
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
