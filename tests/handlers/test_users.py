"""Profiles, account deletion, password change and reset, and phone verification."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from config import Rates, Settings
from tests.conftest import (
    Account,
    AppFactory,
    MailSink,
    SocketFactory,
    signup,
    token_from_mail,
    unique_name,
)
from tests.revocation_helpers import Revoked

ME = "/v1/users/me"
SOCIAL_FIELDS = {"is_private", "follower_count", "following_count", "friend_count"}
OWN_FIELDS = ({"id", "username", "display_name", "bio", "avatar_url", "created_at"} | SOCIAL_FIELDS
              | {"email", "email_verified", "pending_email", "pending_email_expires_at", "phone",
                 "phone_verified", "role", "analytics_opt_out"})
# Another user's profile adds how the caller stands with them (docs/networks.md).
PUBLIC_FIELDS = {"id", "username", "display_name", "bio", "avatar_url", "created_at",
                 "relationship"} | SOCIAL_FIELDS
PHONE = "+447911123456"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The error object of a refused request, after checking its status and code."""
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == code, error
    return error


def fields_of(error: dict[str, Any]) -> set[str]:
    return {f["field"] for f in error["details"]["fields"]}


async def me(client: TestClient[Any, Any], account: Account) -> dict[str, Any]:
    resp = await client.get(ME, headers=account.headers)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def patch_me(client: TestClient[Any, Any], account: Account, body: Any) -> Any:
    return await client.patch(ME, json=body, headers=account.headers)


async def login(client: TestClient[Any, Any], name: str, password: str) -> Any:
    return await client.post("/v1/auth/login", json={"login": name, "password": password})


async def login_ok(client: TestClient[Any, Any], name: str, password: str) -> dict[str, Any]:
    resp = await login(client, name, password)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def status_of_me(client: TestClient[Any, Any], token: str) -> int:
    return int((await client.get(ME, headers=bearer(token))).status)


async def verify_email_from_mail(client: TestClient[Any, Any], mail: MailSink, to: str) -> None:
    token = token_from_mail(await mail.wait_for(to, "Confirm"))
    resp = await client.post("/v1/auth/email/verify", json={"token": token})
    assert resp.status == 200, await resp.text()


async def wait_for_mails(mail: MailSink, to: str, subject_part: str, count: int) -> list[Any]:
    """The first `count` mails to an address with that subject, once they have all arrived."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [m for m in mail.to(to) if subject_part in (m["Subject"] or "")]
        if len(found) >= count:
            return found[:count]
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} mails to {to} with {subject_part!r}")


def read_sms(box: Path, to: str) -> list[dict[str, Any]]:
    """The SMS files in the outbox for one number, oldest first (names are ns timestamps)."""
    if not box.exists():
        return []
    messages = [orjson.loads(path.read_bytes()) for path in sorted(box.glob("*.json"))]
    return [m for m in messages if m["to"] == to]


async def wait_for_sms(settings: Settings, to: str, count: int = 1) -> list[dict[str, Any]]:
    """The SMS the outbox provider wrote for a number, oldest first, once `count` exist."""
    box: Path = settings.data_dir / "outbox" / "sms"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(read_sms, box, to)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} SMS to {to}")


def code_of(sms: dict[str, Any]) -> str:
    match = re.search(r"\b(\d{6})\b", sms["text"])
    assert match, sms
    return match.group(1)


# --- reading profiles ------------------------------------------------------------------------


async def test_get_me_shows_the_private_fields(client: TestClient[Any, Any], account: Account) -> None:
    data = await me(client, account)
    assert set(data) == OWN_FIELDS
    assert data["id"] == account.id
    assert data["username"] == account.username
    assert data["email"] == account.email
    assert data["email_verified"] is False
    assert data["phone"] is None
    assert data["role"] == "user"


async def test_public_profile_by_id(client: TestClient[Any, Any], account: Account) -> None:
    other = await signup(client)
    await patch_me(client, other, {"bio": "hello", "avatar_url": "https://cdn.example.com/a.png"})
    resp = await client.get(f"/v1/users/{other.id}", headers=account.headers)
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert set(data) == PUBLIC_FIELDS  # no email, phone or role
    assert data["id"] == other.id
    assert data["username"] == other.username
    assert data["bio"] == "hello"
    assert data["avatar_url"] == "https://cdn.example.com/a.png"


async def test_public_profile_by_id_errors(client: TestClient[Any, Any], account: Account) -> None:
    error = await error_of(await client.get("/v1/users/not-a-uuid", headers=account.headers), 400,
                           "invalid_input")
    assert fields_of(error) == {"user_id"}
    await error_of(await client.get(f"/v1/users/{uuid.uuid4()}", headers=account.headers), 404,
                   "not_found")
    await error_of(await client.get(f"/v1/users/{account.id}"), 401, "unauthorized")


async def test_public_profile_by_username_in_any_case(
    client: TestClient[Any, Any], account: Account
) -> None:
    other = await signup(client)
    for name in (other.username, other.username.upper()):
        resp = await client.get(f"/v1/users/by_username/{name}", headers=account.headers)
        assert resp.status == 200, await resp.text()
        data = await resp.json()
        assert set(data) == PUBLIC_FIELDS
        assert data["id"] == other.id
    await error_of(await client.get(f"/v1/users/by_username/{unique_name('nobody')}",
                                    headers=account.headers), 404, "not_found")
    await error_of(await client.get("/v1/users/by_username/a%00b", headers=account.headers), 400,
                   "invalid_input")


async def test_profiles_over_a_socket(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory
) -> None:
    other = await signup(client)
    sio = await connect_socket(account.access_token)
    reply = await sio.call("user.get_by_username", {"username": other.username.upper()}, timeout=5)
    assert reply["ok"] is True, reply
    assert reply["data"]["id"] == other.id
    reply = await sio.call("user.get", {"user_id": other.id}, timeout=5)
    assert reply["ok"] is True, reply
    assert set(reply["data"]) == PUBLIC_FIELDS
    reply = await sio.call("user.get", {"user_id": "nope"}, timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_input"
    reply = await sio.call("account.update", {"display_name": "Over The Socket"}, timeout=5)
    assert reply["ok"] is True, reply
    assert (await me(client, account))["display_name"] == "Over The Socket"


# --- updating the profile --------------------------------------------------------------------


async def test_patch_changes_several_fields(client: TestClient[Any, Any], account: Account) -> None:
    new_name = unique_name("New_")
    body = {"display_name": "  Grace Hopper  ", "bio": "line one\nline\ttwo", "avatar_url":
            "http://img.example.com/x.png?size=64", "username": new_name}
    resp = await patch_me(client, account, body)
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert set(data) == OWN_FIELDS
    assert data["display_name"] == "Grace Hopper"
    assert data["bio"] == "line one\nline\ttwo"
    assert data["avatar_url"] == "http://img.example.com/x.png?size=64"
    assert data["username"] == new_name.lower()
    assert await me(client, account) == data
    # The new name logs in; the old one is gone.
    await login_ok(client, new_name.lower(), account.password)
    await error_of(await login(client, account.username, account.password), 401, "unauthorized")


async def test_patch_can_clear_bio_and_avatar(client: TestClient[Any, Any], account: Account) -> None:
    resp = await patch_me(client, account, {"bio": "x", "avatar_url": "https://a.example/b.png"})
    assert resp.status == 200
    resp = await patch_me(client, account, {"bio": None, "avatar_url": None})
    assert resp.status == 200, await resp.text()
    data = await me(client, account)
    assert data["bio"] is None and data["avatar_url"] is None


@pytest.mark.parametrize("field", ["username", "display_name"])
async def test_patch_cannot_remove_required_fields(
    client: TestClient[Any, Any], account: Account, field: str
) -> None:
    before = await me(client, account)
    await error_of(await patch_me(client, account, {field: None}), 400, "invalid_input")
    assert await me(client, account) == before


@pytest.mark.parametrize(("body", "field"), [
    ({"display_name": ""}, "display_name"),
    ({"display_name": "   "}, "display_name"),
    ({"display_name": "x" * 51}, "display_name"),
    ({"display_name": "tab\u0007bell"}, "display_name"),
    ({"display_name": "nul\u0000"}, "display_name"),
    ({"display_name": "bidi\u202eevil"}, "display_name"),
    ({"display_name": "zero\u200bwidth"}, "display_name"),
    ({"display_name": 42}, "display_name"),
    ({"bio": "b" * 301}, "bio"),
    ({"bio": "nul\u0000byte"}, "bio"),
    ({"bio": "escape\u001b[31m"}, "bio"),
    ({"bio": ["a"]}, "bio"),
    ({"avatar_url": "ftp://example.com/a.png"}, "avatar_url"),
    ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
    ({"avatar_url": "data:image/png;base64,AAAA"}, "avatar_url"),
    ({"avatar_url": "example.com/a.png"}, "avatar_url"),
    ({"avatar_url": "https://exa mple.com/a.png"}, "avatar_url"),
    ({"avatar_url": "https://example.com/\u0000.png"}, "avatar_url"),
    ({"avatar_url": "https:///no-host.png"}, "avatar_url"),
    ({"avatar_url": "https://example.com/" + "a" * 500}, "avatar_url"),
    ({"username": "ab"}, "username"),
    ({"username": "a" * 31}, "username"),
    ({"username": "no-dashes"}, "username"),
    ({"username": "trailing\n"}, "username"),
    ({"email": "not-an-email"}, "email"),
    ({"role": "admin"}, "role"),
    ({"email_verified": True}, "email_verified"),
    ({"id": str(uuid.uuid4())}, "id"),
])
async def test_patch_validates_every_field(
    client: TestClient[Any, Any], account: Account, body: dict[str, Any], field: str
) -> None:
    before = await me(client, account)
    error = await error_of(await patch_me(client, account, body), 400, "invalid_input")
    assert fields_of(error) == {field}, error
    assert await me(client, account) == before


async def test_patch_accepts_values_at_the_limits(
    client: TestClient[Any, Any], account: Account
) -> None:
    resp = await patch_me(client, account, {"display_name": "d" * 50, "bio": "b" * 300})
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["display_name"] == "d" * 50 and data["bio"] == "b" * 300
    resp = await patch_me(client, account, {"bio": ""})
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("display_name", [
    "Ana \U0001f469\u200d\U0001f4bb",  # woman technologist: a ZWJ emoji sequence
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with a zero-width non-joiner
    "Zoë 🇫🇷 \u263a\ufe0f",
])
async def test_display_names_may_hold_emoji_and_joiners(
    client: TestClient[Any, Any], account: Account, display_name: str
) -> None:
    resp = await patch_me(client, account, {"display_name": display_name})
    assert resp.status == 200, await resp.text()
    assert (await me(client, account))["display_name"] == display_name


async def test_patch_with_nothing_to_change_is_refused(
    client: TestClient[Any, Any], account: Account
) -> None:
    await error_of(await patch_me(client, account, {}), 400, "invalid_input")
    resp = await client.patch(ME, headers=account.headers)
    await error_of(resp, 400, "invalid_input")
    resp = await client.patch(ME, data=b"[1]", headers={**account.headers,
                                                        "Content-Type": "application/json"})
    await error_of(resp, 400, "invalid_input")


async def test_patch_username_conflict_ignores_case(
    client: TestClient[Any, Any], account: Account
) -> None:
    other = await signup(client)
    error = await error_of(await patch_me(client, account, {"username": other.username.upper()}),
                           409, "conflict")
    assert fields_of(error) == {"username"}
    assert (await me(client, account))["username"] == account.username
    # Your own name in another case is not a conflict.
    resp = await patch_me(client, account, {"username": account.username.upper()})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["username"] == account.username


async def test_patch_refuses_the_email_and_points_at_its_command(
    client: TestClient[Any, Any], account: Account
) -> None:
    before = await me(client, account)
    for value in (f"{unique_name('new')}@example.com", account.email, None):
        error = await error_of(await patch_me(client, account, {"email": value, "bio": "x"}),
                               400, "invalid_input")
        assert error["details"]["fields"] == [{
            "field": "email", "type": "use_email_change",
            "message": "the email changes with account.email.change (POST /v1/users/me/email), "
                       "which needs your current password"}]
    assert await me(client, account) == before


# --- deleting the account --------------------------------------------------------------------


async def test_delete_needs_the_right_password(
    client: TestClient[Any, Any], account: Account
) -> None:
    await error_of(await client.delete(ME, json={"password": "not the password"},
                                       headers=account.headers), 403, "forbidden")
    error = await error_of(await client.delete(ME, json={}, headers=account.headers), 400,
                           "invalid_input")
    assert fields_of(error) == {"password"}
    await error_of(await client.delete(ME, json={"password": account.password}), 401,
                   "unauthorized")
    assert (await me(client, account))["id"] == account.id
    await login_ok(client, account.username, account.password)


async def test_delete_ends_everything_and_frees_the_names(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory,
    settings: Settings,
) -> None:
    observer = await signup(client)
    second = await login_ok(client, account.email, account.password)
    sio = await connect_socket(second["access_token"])
    watcher = Revoked(sio)

    resp = await client.delete(ME, json={"password": account.password}, headers=account.headers)
    assert resp.status == 204, await resp.text()

    await watcher.wait()
    assert watcher.reasons == ["account_deleted"]
    for token in (account.access_token, second["access_token"]):
        assert await status_of_me(client, token) == 401
    for refresh in (account.refresh_token, second["refresh_token"]):
        await error_of(await client.post("/v1/auth/refresh", json={"refresh_token": refresh}),
                       401, "unauthorized")
    await error_of(await client.get(f"/v1/users/{account.id}", headers=observer.headers), 404,
                   "not_found")
    await error_of(await client.get(f"/v1/users/by_username/{account.username}",
                                    headers=observer.headers), 404, "not_found")
    for name in (account.username, account.email):
        await error_of(await login(client, name, account.password), 401, "unauthorized")

    # The personal data is gone from the row that stays behind.
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM users WHERE id = $1::uuid", account.id)
    finally:
        await conn.close()
    assert row is not None and row["deleted_at"] is not None
    assert row["email"] is None and row["password_hash"] is None
    assert account.username not in row["username"]

    again = await signup(client, username=account.username)
    assert again.id != account.id
    assert again.email == account.email
    resp = await client.get(f"/v1/users/by_username/{account.username}", headers=observer.headers)
    assert (await resp.json())["id"] == again.id


async def test_delete_over_the_socket_acks_then_disconnects(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory
) -> None:
    sio = await connect_socket(account.access_token)
    watcher = Revoked(sio)
    reply = await sio.call("account.delete", {"password": account.password}, timeout=5)
    assert reply == {"ok": True, "data": None}
    await watcher.wait()
    assert watcher.reasons == ["account_deleted"]


# --- changing the password -------------------------------------------------------------------


async def test_change_password_keeps_this_session_and_ends_the_others(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory
) -> None:
    other = await login_ok(client, account.username, account.password)
    own_sio = await connect_socket(account.access_token)
    own_watcher = Revoked(own_sio)
    other_sio = await connect_socket(other["access_token"])
    other_watcher = Revoked(other_sio)

    new_password = "a brand new passphrase"
    resp = await client.post("/v1/users/me/password", headers=account.headers,
                             json={"current_password": account.password,
                                   "new_password": new_password})
    assert resp.status == 204, await resp.text()

    await other_watcher.wait()
    assert other_watcher.reasons == ["password_changed"]
    assert await status_of_me(client, other["access_token"]) == 401
    await error_of(await client.post("/v1/auth/refresh",
                                     json={"refresh_token": other["refresh_token"]}),
                   401, "unauthorized")

    assert await status_of_me(client, account.access_token) == 200
    reply = await own_sio.call("account.get", {}, timeout=5)
    assert reply["ok"] is True, reply
    assert not own_watcher.event.is_set()
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status == 200

    await error_of(await login(client, account.username, account.password), 401, "unauthorized")
    await login_ok(client, account.username, new_password)


async def test_change_password_checks_its_input(
    client: TestClient[Any, Any], account: Account
) -> None:
    url = "/v1/users/me/password"
    await error_of(await client.post(url, headers=account.headers, json={
        "current_password": "wrong password", "new_password": "long enough new"}),
        403, "forbidden")
    error = await error_of(await client.post(url, headers=account.headers, json={
        "current_password": account.password, "new_password": "short"}), 400, "invalid_input")
    assert fields_of(error) == {"new_password"}
    error = await error_of(await client.post(url, headers=account.headers, json={}), 400,
                           "invalid_input")
    assert fields_of(error) == {"current_password", "new_password"}
    await error_of(await client.post(url, json={"current_password": account.password,
                                                "new_password": "long enough new"}),
                   401, "unauthorized")
    # Nothing changed.
    await login_ok(client, account.username, account.password)


# --- password reset --------------------------------------------------------------------------


async def test_password_reset_answers_the_same_for_unknown_addresses(
    client: TestClient[Any, Any], account: Account, mail: MailSink
) -> None:
    await verify_email_from_mail(client, mail, account.email)
    unknown = f"{unique_name('ghost')}@example.com"
    first = await client.post("/v1/auth/password_reset", json={"email": unknown})
    second = await client.post("/v1/auth/password_reset", json={"email": account.email.upper()})
    assert first.status == second.status == 202
    assert await first.json() == await second.json()
    await mail.wait_for(account.email, "Reset")
    assert mail.to(unknown) == []


async def test_password_reset_is_not_mailed_to_an_unverified_address(
    client: TestClient[Any, Any], account: Account, mail: MailSink, settings: Settings
) -> None:
    async def reset_tokens() -> int:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return int(await conn.fetchval(
                """SELECT count(*) FROM user_tokens
                   WHERE user_id = $1::uuid AND purpose = 'password_reset'""", account.id))
        finally:
            await conn.close()

    unverified = await client.post("/v1/auth/password_reset", json={"email": account.email})
    unknown = await client.post("/v1/auth/password_reset",
                                json={"email": f"{unique_name('ghost')}@example.com"})
    # The same answer as for any address: nothing tells the account is unverified.
    assert unverified.status == unknown.status == 202
    assert await unverified.json() == await unknown.json()
    assert await reset_tokens() == 0
    # Once verified, the address gets its link; the barrier shows the first request sent none.
    await verify_email_from_mail(client, mail, account.email)
    assert (await client.post("/v1/auth/password_reset", json={"email": account.email})).status \
        == 202
    await mail.wait_for(account.email, "Reset")
    assert await reset_tokens() == 1
    assert len([m for m in mail.to(account.email) if "Reset" in m["Subject"]]) == 1


async def test_password_reset_flow(
    client: TestClient[Any, Any], account: Account, mail: MailSink, connect_socket: SocketFactory
) -> None:
    await verify_email_from_mail(client, mail, account.email)
    other = await login_ok(client, account.email, account.password)
    sio = await connect_socket(other["access_token"])
    watcher = Revoked(sio)
    resp = await client.post("/v1/auth/password_reset", json={"email": account.email})
    assert resp.status == 202
    token = token_from_mail(await mail.wait_for(account.email, "Reset"))

    new_password = "reset to something new"
    resp = await client.post("/v1/auth/password_reset/confirm",
                             json={"token": token, "new_password": new_password})
    assert resp.status == 204, await resp.text()

    await watcher.wait()
    assert watcher.reasons == ["password_reset"]
    for access in (account.access_token, other["access_token"]):
        assert await status_of_me(client, access) == 401
    for refresh in (account.refresh_token, other["refresh_token"]):
        await error_of(await client.post("/v1/auth/refresh", json={"refresh_token": refresh}),
                       401, "unauthorized")
    await error_of(await login(client, account.username, account.password), 401, "unauthorized")
    await login_ok(client, account.username, new_password)

    error = await error_of(await client.post("/v1/auth/password_reset/confirm",
                                             json={"token": token, "new_password": "yet another one"}),
                           400, "invalid_input")
    assert fields_of(error) == {"token"}
    await login_ok(client, account.username, new_password)


async def test_using_one_reset_link_spends_the_others(
    client: TestClient[Any, Any], account: Account, mail: MailSink
) -> None:
    await verify_email_from_mail(client, mail, account.email)
    for _ in range(2):
        resp = await client.post("/v1/auth/password_reset", json={"email": account.email})
        assert resp.status == 202
    first, second = (token_from_mail(m) for m in await wait_for_mails(mail, account.email,
                                                                       "Reset", 2))
    assert first != second
    resp = await client.post("/v1/auth/password_reset/confirm",
                             json={"token": second, "new_password": "the second link won"})
    assert resp.status == 204, await resp.text()
    await error_of(await client.post("/v1/auth/password_reset/confirm",
                                     json={"token": first, "new_password": "the first link lost"}),
                   400, "invalid_input")
    await login_ok(client, account.username, "the second link won")


async def test_password_reset_input_is_checked(
    client: TestClient[Any, Any], account: Account, mail: MailSink
) -> None:
    await verify_email_from_mail(client, mail, account.email)
    error = await error_of(await client.post("/v1/auth/password_reset", json={"email": "nope"}),
                           400, "invalid_input")
    assert fields_of(error) == {"email"}
    await error_of(await client.post("/v1/auth/password_reset/confirm", json={
        "token": secrets.token_urlsafe(32), "new_password": "long enough new"}),
        400, "invalid_input")

    resp = await client.post("/v1/auth/password_reset", json={"email": account.email})
    assert resp.status == 202
    token = token_from_mail(await mail.wait_for(account.email, "Reset"))
    error = await error_of(await client.post("/v1/auth/password_reset/confirm",
                                             json={"token": token, "new_password": "short"}),
                           400, "invalid_input")
    assert fields_of(error) == {"new_password"}
    # The refused attempt did not spend the token.
    resp = await client.post("/v1/auth/password_reset/confirm",
                             json={"token": token, "new_password": "long enough new"})
    assert resp.status == 204, await resp.text()


# --- phone verification ----------------------------------------------------------------------


async def start_phone(client: TestClient[Any, Any], account: Account, phone: str = PHONE) -> Any:
    return await client.post("/v1/users/me/phone", json={"phone": phone}, headers=account.headers)


async def verify_phone(client: TestClient[Any, Any], account: Account, code: str) -> Any:
    return await client.post("/v1/users/me/phone/verify", json={"code": code},
                             headers=account.headers)


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.mark.parametrize("phone", [
    "07911123456",        # no country code
    "447911123456",       # no +
    "+44 7911 123456",    # E.164 has no spaces
    "+44-7911-123456",
    "+1800FLOWERS",       # letters
    "+4479111234567",     # one digit too many for the UK
    "+0447911123456",
    "+",
    "phone",
    "+12345678901234567",
])
async def test_phone_must_be_a_valid_e164_number(
    client: TestClient[Any, Any], account: Account, phone: str
) -> None:
    error = await error_of(await start_phone(client, account, phone), 400, "invalid_input")
    assert fields_of(error) == {"phone"}


async def test_phone_verification_flow(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    resp = await start_phone(client, account)
    assert resp.status == 202, await resp.text()
    (sms,) = await wait_for_sms(settings, PHONE)
    code = code_of(sms)

    error = await error_of(await verify_phone(client, account, wrong_code(code)), 400,
                           "invalid_input")
    assert fields_of(error) == {"code"}
    assert error["details"]["attempts_left"] == settings.limits.phone_code_attempts - 1
    assert (await me(client, account))["phone_verified"] is False

    resp = await verify_phone(client, account, code)
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["phone"] == PHONE
    assert data["phone_verified"] is True
    assert await me(client, account) == data

    # The code is spent.
    await error_of(await verify_phone(client, account, code), 404, "not_found")


async def test_five_wrong_codes_lock_the_code(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    assert settings.limits.phone_code_attempts == 5
    assert (await start_phone(client, account)).status == 202
    code = code_of((await wait_for_sms(settings, PHONE))[0])
    for left in (4, 3, 2, 1, 0):
        error = await error_of(await verify_phone(client, account, wrong_code(code)), 400,
                               "invalid_input")
        assert error["details"]["attempts_left"] == left
    error = await error_of(await verify_phone(client, account, code), 403, "forbidden")
    assert error["details"]["reason"] == "attempts_exhausted"
    assert (await me(client, account))["phone_verified"] is False

    # A new code starts over.
    assert (await start_phone(client, account)).status == 202
    new_code = code_of((await wait_for_sms(settings, PHONE, 2))[1])
    resp = await verify_phone(client, account, new_code)
    assert resp.status == 200, await resp.text()


async def test_expired_code_is_refused(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    assert (await start_phone(client, account)).status == 202
    code = code_of((await wait_for_sms(settings, PHONE))[0])
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("""UPDATE phone_verifications SET expires_at = now() - interval '1 s'
                              WHERE user_id = $1::uuid""", account.id)
    finally:
        await conn.close()
    error = await error_of(await verify_phone(client, account, code), 400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "code_expired"
    assert (await me(client, account))["phone_verified"] is False


async def test_phone_code_input_is_checked(
    client: TestClient[Any, Any], account: Account
) -> None:
    await error_of(await verify_phone(client, account, "123456"), 404, "not_found")
    for code in ("12345", "1234567", "abcdef", ""):
        error = await error_of(await verify_phone(client, account, code), 400, "invalid_input")
        assert fields_of(error) == {"code"}
    await error_of(await client.post("/v1/users/me/phone", json={"phone": PHONE}), 401,
                   "unauthorized")


async def test_phone_verification_over_a_socket(
    account: Account, connect_socket: SocketFactory, settings: Settings
) -> None:
    sio = await connect_socket(account.access_token)
    reply = await sio.call("account.phone.start", {"phone": PHONE}, timeout=5)
    assert reply == {"ok": True, "data": {"accepted": True}}
    code = code_of((await wait_for_sms(settings, PHONE))[0])
    reply = await sio.call("account.phone.verify", {"code": wrong_code(code)}, timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_input"
    assert reply["error"]["details"]["attempts_left"] == 4
    reply = await sio.call("account.phone.verify", {"code": code}, timeout=5)
    assert reply["ok"] is True, reply
    assert reply["data"]["phone_verified"] is True


async def test_phone_codes_are_limited_per_user(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(rates=Rates(phone_code=(2, 3600)))
    account = await signup(client)
    for _ in range(2):
        assert (await start_phone(client, account)).status == 202
    resp = await start_phone(client, account)
    error = await error_of(resp, 429, "rate_limited")
    assert resp.headers["Retry-After"] == str(error["details"]["retry_after"])
    # Another user is not affected.
    other = await signup(client)
    assert (await start_phone(client, other, "+33612345678")).status == 202


async def test_concurrent_wrong_codes_count_every_attempt(
    client: TestClient[Any, Any], account: Account, settings: Settings
) -> None:
    assert (await start_phone(client, account)).status == 202
    code = code_of((await wait_for_sms(settings, PHONE))[0])
    responses = await asyncio.gather(*(verify_phone(client, account, wrong_code(code))
                                       for _ in range(8)))
    assert sorted(r.status for r in responses) == [400] * 5 + [403] * 3
    lefts = sorted([(await r.json())["error"]["details"].get("attempts_left", -1)
                    for r in responses if r.status == 400])
    assert lefts == [0, 1, 2, 3, 4]
    await error_of(await verify_phone(client, account, code), 403, "forbidden")


async def test_expired_reset_token_is_refused(
    client: TestClient[Any, Any], account: Account, mail: MailSink, settings: Settings
) -> None:
    await verify_email_from_mail(client, mail, account.email)
    assert (await client.post("/v1/auth/password_reset", json={"email": account.email})).status \
        == 202
    token = token_from_mail(await mail.wait_for(account.email, "Reset"))
    conn = await asyncpg.connect(settings.database_url)
    try:
        result = await conn.execute("""UPDATE user_tokens SET expires_at = now() - interval '1 s'
                                       WHERE user_id = $1::uuid AND purpose = 'password_reset'""",
                                    account.id)
    finally:
        await conn.close()
    assert result == "UPDATE 1"
    await error_of(await client.post("/v1/auth/password_reset/confirm",
                                     json={"token": token, "new_password": "too late now"}),
                   400, "invalid_input")
    await login_ok(client, account.username, account.password)


async def test_password_reset_requests_are_limited_per_ip(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(password_reset=(2, 3600)))
    for _ in range(2):
        resp = await client.post("/v1/auth/password_reset",
                                 json={"email": f"{unique_name()}@example.com"})
        assert resp.status == 202
    resp = await client.post("/v1/auth/password_reset", json={"email": "a@example.com"})
    error = await error_of(resp, 429, "rate_limited")
    assert resp.headers["Retry-After"] == str(error["details"]["retry_after"])
