"""Sign-up, login, refresh, logout and email verification, over REST and over a socket."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestClient

from config import Rates, Settings
from tests.conftest import (
    AppFactory,
    MailSink,
    SocketFactory,
    signup,
    token_from_mail,
    unique_name,
)
from tests.revocation_helpers import Revoked

ME = "/v1/users/me"
PASSWORD = "correct horse battery"


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


def signup_body(**fields: Any) -> dict[str, Any]:
    name = unique_name()
    return {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **fields}


async def login(client: TestClient[Any, Any], login: str, password: str = PASSWORD) -> Any:
    return await client.post("/v1/auth/login", json={"login": login, "password": password})


async def login_ok(client: TestClient[Any, Any], login_name: str,
                   password: str = PASSWORD) -> dict[str, Any]:
    resp = await login(client, login_name, password)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def status_of_me(client: TestClient[Any, Any], token: str) -> int:
    resp = await client.get(ME, headers=bearer(token))
    return int(resp.status)


async def refused_connect(client: TestClient[Any, Any], token: str) -> dict[str, Any]:
    """Connect with a token that must be refused; returns the connect_error data."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda *args: errors.append(args))
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(str(client.make_url("/")), auth={"token": token},
                              transports=["websocket"], wait_timeout=5)
    finally:
        if sio.connected:
            await sio.disconnect()
    assert len(errors) == 1, errors
    (data,) = errors[0]
    return dict(data.get("data", data))


# --- sign-up ---------------------------------------------------------------------------------


async def test_signup_answers_201_with_the_user_and_a_token_pair(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    body = signup_body()
    resp = await client.post("/v1/auth/signup", json=body)
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert set(data) == {"user", "access_token", "refresh_token", "expires_in", "token_type"}
    assert data["expires_in"] == settings.access_token_ttl_s
    assert data["access_token"] and data["refresh_token"]
    user = data["user"]
    assert user["username"] == body["username"]
    assert user["email"] == body["email"]
    assert user["display_name"] == body["username"]
    assert user["email_verified"] is False
    assert user["phone"] is None and user["phone_verified"] is False
    assert user["role"] == "user"
    assert "password" not in str(user) and "password_hash" not in user

    me = await client.get(ME, headers=bearer(data["access_token"]))
    assert me.status == 200
    assert (await me.json())["id"] == user["id"]


async def test_signup_stores_an_argon2id_hash(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    account = await signup(client)
    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1::uuid",
                                     account.id)
    finally:
        await conn.close()
    assert stored.startswith("$argon2id$")
    assert account.password not in stored


async def test_signup_with_display_name(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/v1/auth/signup", json=signup_body(display_name="  Ada Lovelace "))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["user"]["display_name"] == "Ada Lovelace"


async def test_signup_lowercases_the_username(client: TestClient[Any, Any]) -> None:
    name = unique_name("Mixed_Case_")
    resp = await client.post("/v1/auth/signup", json=signup_body(username=name))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["user"]["username"] == name.lower()


@pytest.mark.parametrize("length", [3, 30])
async def test_signup_accepts_usernames_at_the_length_bounds(
    client: TestClient[Any, Any], length: int
) -> None:
    name = ("u" + secrets.token_hex(15))[:length]
    resp = await client.post("/v1/auth/signup", json=signup_body(username=name))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["user"]["username"] == name


@pytest.mark.parametrize("username", [
    "ab", "a" * 31, "bad-name", "bad name", "bad.name", "émile", "名前です", "", " abc", "abc\n",
    "a\u0000bc", "user@x",
])
async def test_signup_refuses_bad_usernames(client: TestClient[Any, Any], username: str) -> None:
    error = await error_of(
        await client.post("/v1/auth/signup", json=signup_body(username=username)), 400,
        "invalid_input")
    assert fields_of(error) == {"username"}


async def test_signup_refuses_a_username_taken_in_any_case(client: TestClient[Any, Any]) -> None:
    first = await signup(client)
    body = signup_body(username=first.username.upper())
    error = await error_of(await client.post("/v1/auth/signup", json=body), 409, "conflict")
    assert fields_of(error) == {"username"}
    assert "username" in error["message"]


async def test_signup_refuses_an_email_taken_in_any_case(client: TestClient[Any, Any]) -> None:
    first = await signup(client)
    body = signup_body(email=first.email.upper())
    error = await error_of(await client.post("/v1/auth/signup", json=body), 409, "conflict")
    assert fields_of(error) == {"email"}
    assert "email" in error["message"]


async def test_signup_password_must_have_eight_characters(client: TestClient[Any, Any]) -> None:
    error = await error_of(
        await client.post("/v1/auth/signup", json=signup_body(password="1234567")), 400,
        "invalid_input")
    assert fields_of(error) == {"password"}
    resp = await client.post("/v1/auth/signup", json=signup_body(password="12345678"))
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com", ""])
async def test_signup_refuses_bad_emails(client: TestClient[Any, Any], email: str) -> None:
    error = await error_of(
        await client.post("/v1/auth/signup", json=signup_body(email=email)), 400, "invalid_input")
    assert fields_of(error) == {"email"}


@pytest.mark.parametrize("display_name", ["   ", "x" * 51, "bell\u0007", "a\u0000b"])
async def test_signup_refuses_bad_display_names(
    client: TestClient[Any, Any], display_name: str
) -> None:
    error = await error_of(
        await client.post("/v1/auth/signup", json=signup_body(display_name=display_name)), 400,
        "invalid_input")
    assert fields_of(error) == {"display_name"}


async def test_signup_lists_every_missing_field(client: TestClient[Any, Any]) -> None:
    error = await error_of(await client.post("/v1/auth/signup", json={}), 400, "invalid_input")
    assert fields_of(error) == {"username", "email", "password"}
    error = await error_of(
        await client.post("/v1/auth/signup", json={"username": unique_name()}), 400,
        "invalid_input")
    assert fields_of(error) == {"email", "password"}


async def test_signup_refuses_wrong_types(client: TestClient[Any, Any]) -> None:
    body = {"username": 12345, "email": True, "password": ["correct horse battery"],
            "display_name": {"x": 1}}
    error = await error_of(await client.post("/v1/auth/signup", json=body), 400, "invalid_input")
    assert fields_of(error) == {"username", "email", "password", "display_name"}


async def test_signup_refuses_unknown_fields(client: TestClient[Any, Any]) -> None:
    body = signup_body(role="admin", email_verified=True)
    error = await error_of(await client.post("/v1/auth/signup", json=body), 400, "invalid_input")
    assert fields_of(error) == {"role", "email_verified"}
    # Nothing was created: the same username is still free.
    resp = await client.post("/v1/auth/signup", json={k: body[k] for k in
                                                      ("username", "email", "password")})
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["user"]["role"] == "user"


@pytest.mark.parametrize("raw", [b"{not json", b'{"username": "abc",', b"\xff\xfe", b"nul"])
async def test_signup_refuses_malformed_json(client: TestClient[Any, Any], raw: bytes) -> None:
    resp = await client.post("/v1/auth/signup", data=raw,
                             headers={"Content-Type": "application/json"})
    error = await error_of(resp, 400, "invalid_input")
    assert fields_of(error) == {"(body)"}


@pytest.mark.parametrize("body", [[1, 2], "a string", 42, None, True])
async def test_signup_refuses_a_body_that_is_not_an_object(
    client: TestClient[Any, Any], body: Any
) -> None:
    resp = await client.post("/v1/auth/signup", json=body)
    error = await error_of(resp, 400, "invalid_input")
    if body is not None:
        assert fields_of(error) == {"(body)"}


async def test_signup_sends_a_verification_mail_that_verifies_the_email(
    client: TestClient[Any, Any], mail: MailSink
) -> None:
    account = await signup(client)
    msg = await mail.wait_for(account.email, "Confirm")
    token = token_from_mail(msg)
    me = await client.get(ME, headers=account.headers)
    assert (await me.json())["email_verified"] is False

    resp = await client.post("/v1/auth/email/verify", json={"token": token})
    assert resp.status == 200, await resp.text()
    me = await client.get(ME, headers=account.headers)
    assert (await me.json())["email_verified"] is True

    # The token works once.
    error = await error_of(await client.post("/v1/auth/email/verify", json={"token": token}), 400,
                           "invalid_input")
    assert fields_of(error) == {"token"}


@pytest.mark.parametrize("token", ["x" * 43, secrets.token_urlsafe(32)])
async def test_bogus_verification_token_is_refused(client: TestClient[Any, Any], token: str) -> None:
    error = await error_of(await client.post("/v1/auth/email/verify", json={"token": token}), 400,
                           "invalid_input")
    assert fields_of(error) == {"token"}


async def test_verification_token_shape_is_checked(client: TestClient[Any, Any]) -> None:
    for body in ({}, {"token": "short"}, {"token": 123}, {"token": "x" * 201}):
        error = await error_of(await client.post("/v1/auth/email/verify", json=body), 400,
                               "invalid_input")
        assert fields_of(error) == {"token"}


# --- login -----------------------------------------------------------------------------------


async def test_login_by_username_or_email_in_any_case(client: TestClient[Any, Any]) -> None:
    account = await signup(client)
    sessions = set()
    for name in (account.username, account.username.upper(), account.email, account.email.upper(),
                 f"  {account.username}  ", f"{account.email}\n"):
        data = await login_ok(client, name)
        assert set(data) == {"user", "access_token", "refresh_token", "expires_in", "token_type"}
        assert data["user"]["id"] == account.id
        assert data["user"]["email"] == account.email
        assert await status_of_me(client, data["access_token"]) == 200
        sessions.add(data["refresh_token"])
    assert len(sessions) == 6


async def test_wrong_password_and_unknown_user_look_the_same(client: TestClient[Any, Any]) -> None:
    account = await signup(client)
    wrong_password = await login(client, account.username, "not the password")
    wrong_by_email = await login(client, account.email, "not the password")
    unknown_user = await login(client, unique_name("nobody"), PASSWORD)
    unknown_email = await login(client, f"{unique_name()}@example.com", PASSWORD)
    bodies = []
    for resp in (wrong_password, wrong_by_email, unknown_user, unknown_email):
        await error_of(resp, 401, "unauthorized")
        bodies.append(await resp.json())
    assert all(body == bodies[0] for body in bodies), bodies
    message = bodies[0]["error"]["message"].lower()
    assert "password" in message and "login" in message  # names both, blames neither


async def test_login_input_is_validated(client: TestClient[Any, Any]) -> None:
    cases = [({}, {"login", "password"}), ({"login": "", "password": "x"}, {"login"}),
             ({"login": "abc", "password": ""}, {"password"}),
             ({"login": ["abc"], "password": 1}, {"login", "password"}),
             ({"login": "abc", "password": "x", "remember": True}, {"remember"})]
    for body, fields in cases:
        error = await error_of(await client.post("/v1/auth/login", json=body), 400,
                               "invalid_input")
        assert fields_of(error) == fields, (body, error)


@pytest.mark.parametrize("name", ["a\u0000b", "a\u0000b@example.com"])
async def test_login_with_a_nul_character_is_refused_cleanly(
    client: TestClient[Any, Any], name: str
) -> None:
    error = await error_of(await login(client, name), 400, "invalid_input")
    assert fields_of(error) == {"login"}


async def test_login_failures_are_limited_per_account(make_client: AppFactory) -> None:
    rates = Rates(login_failures_account=(3, 900), login_failures_ip=(100, 900))
    client = await make_client(rates=rates)
    account = await signup(client)
    bystander = await signup(client)
    for _ in range(3):
        await error_of(await login(client, account.username, "wrong password"), 401,
                       "unauthorized")
    # Even the right password is refused now, so guessing cannot go on.
    resp = await login(client, account.username)
    error = await error_of(resp, 429, "rate_limited")
    retry_after = error["details"]["retry_after"]
    assert isinstance(retry_after, int)
    assert 1 <= retry_after <= rates.login_failures_account.window_s
    assert resp.headers["Retry-After"] == str(retry_after)
    # The email, in any case, is the same account.
    await error_of(await login(client, account.email.upper()), 429, "rate_limited")
    # Other accounts on the same address are not affected.
    await login_ok(client, bystander.username)


async def test_login_failures_by_username_and_email_count_together(
    make_client: AppFactory
) -> None:
    client = await make_client(rates=Rates(login_failures_account=(3, 900),
                                           login_failures_ip=(100, 900)))
    account = await signup(client)
    for name in (account.username, account.email, account.username.upper()):
        await error_of(await login(client, name, "wrong password"), 401, "unauthorized")
    await error_of(await login(client, account.email), 429, "rate_limited")


async def test_a_successful_login_resets_the_account_failures(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(login_failures_account=(3, 900),
                                           login_failures_ip=(100, 900)))
    account = await signup(client)
    for _ in range(3):
        for _ in range(2):
            await error_of(await login(client, account.username, "wrong password"), 401,
                           "unauthorized")
        await login_ok(client, account.username)


async def test_login_failures_are_limited_per_ip(make_client: AppFactory) -> None:
    rates = Rates(login_failures_account=(100, 900), login_failures_ip=(3, 900))
    client = await make_client(rates=rates)
    account = await signup(client)
    for _ in range(3):
        await error_of(await login(client, unique_name("nobody"), "wrong password"), 401,
                       "unauthorized")
    resp = await login(client, account.username)
    error = await error_of(resp, 429, "rate_limited")
    assert resp.headers["Retry-After"] == str(error["details"]["retry_after"])
    assert 1 <= error["details"]["retry_after"] <= rates.login_failures_ip.window_s


# --- refresh ---------------------------------------------------------------------------------


async def test_refresh_rotates_the_pair(client: TestClient[Any, Any], settings: Settings) -> None:
    account = await signup(client)
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert resp.status == 200, await resp.text()
    pair = await resp.json()
    assert set(pair) == {"access_token", "refresh_token", "expires_in", "token_type"}
    assert pair["expires_in"] == settings.access_token_ttl_s
    assert pair["refresh_token"] != account.refresh_token
    assert pair["access_token"] != account.access_token
    assert await status_of_me(client, pair["access_token"]) == 200

    # The new refresh token rotates again.
    again = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status == 200, await again.text()


async def test_reusing_a_spent_refresh_token_revokes_the_session(
    client: TestClient[Any, Any]
) -> None:
    account = await signup(client)
    other_session = await login_ok(client, account.username)
    first = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status == 200
    newest = await first.json()

    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    error = await error_of(reuse, 401, "unauthorized")
    assert error["details"]["reason"] == "refresh_token_reuse"
    assert "WWW-Authenticate" in reuse.headers

    # Every token of that family is dead at once...
    assert await status_of_me(client, account.access_token) == 401
    assert await status_of_me(client, newest["access_token"]) == 401
    await error_of(await client.post("/v1/auth/refresh",
                                     json={"refresh_token": newest["refresh_token"]}),
                   401, "unauthorized")
    # ...and another login of the same account is untouched.
    assert await status_of_me(client, other_session["access_token"]) == 200
    resp = await client.post("/v1/auth/refresh",
                             json={"refresh_token": other_session["refresh_token"]})
    assert resp.status == 200


async def test_unknown_or_malformed_refresh_token_is_refused(client: TestClient[Any, Any]) -> None:
    error = await error_of(await client.post("/v1/auth/refresh",
                                             json={"refresh_token": secrets.token_urlsafe(32)}),
                           401, "unauthorized")
    assert error["details"]["reason"] == "token_invalid"
    for body in ({}, {"refresh_token": "short"}, {"refresh_token": None}):
        error = await error_of(await client.post("/v1/auth/refresh", json=body), 400,
                               "invalid_input")
        assert fields_of(error) == {"refresh_token"}


# --- logout ----------------------------------------------------------------------------------


async def test_logout_ends_that_session_only(client: TestClient[Any, Any]) -> None:
    account = await signup(client)
    other = await login_ok(client, account.username)
    resp = await client.post("/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert resp.status == 204, await resp.text()
    assert await resp.read() == b""

    await error_of(await client.get(ME, headers=account.headers), 401, "unauthorized")
    await error_of(await client.post("/v1/auth/refresh",
                                     json={"refresh_token": account.refresh_token}),
                   401, "unauthorized")
    assert await status_of_me(client, other["access_token"]) == 200
    # Logging out again with the same token is refused.
    await error_of(await client.post("/v1/auth/logout",
                                     json={"refresh_token": account.refresh_token}),
                   401, "unauthorized")


async def test_logout_with_another_accounts_token_while_logged_in_is_forbidden(
    client: TestClient[Any, Any]
) -> None:
    me, them = await signup(client), await signup(client)
    resp = await client.post("/v1/auth/logout", json={"refresh_token": them.refresh_token},
                             headers=me.headers)
    await error_of(resp, 403, "forbidden")
    assert await status_of_me(client, them.access_token) == 200


async def test_logout_all_ends_every_session(client: TestClient[Any, Any]) -> None:
    account = await signup(client)
    second = await login_ok(client, account.email)
    third = await login_ok(client, account.username)
    bystander = await signup(client)
    resp = await client.post("/v1/auth/logout_all", headers=bearer(second["access_token"]))
    assert resp.status == 204, await resp.text()
    for token in (account.access_token, second["access_token"], third["access_token"]):
        assert await status_of_me(client, token) == 401
    for refresh in (account.refresh_token, second["refresh_token"], third["refresh_token"]):
        await error_of(await client.post("/v1/auth/refresh", json={"refresh_token": refresh}),
                       401, "unauthorized")
    assert await status_of_me(client, bystander.access_token) == 200
    # The password still works: a new login is a new session.
    fresh = await login_ok(client, account.username)
    assert await status_of_me(client, fresh["access_token"]) == 200


async def test_logout_disconnects_the_sessions_socket(
    client: TestClient[Any, Any], connect_socket: SocketFactory
) -> None:
    account = await signup(client)
    other = await login_ok(client, account.username)
    sio = await connect_socket(account.access_token)
    watcher = Revoked(sio)
    other_sio = await connect_socket(other["access_token"])
    other_watcher = Revoked(other_sio)

    resp = await client.post("/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert resp.status == 204
    await watcher.wait()
    assert watcher.reasons == ["logout"]
    assert not sio.connected

    # The other session's socket is still up and serving commands.
    reply = await other_sio.call("account.get", {}, timeout=5)
    assert reply["ok"] is True, reply
    assert not other_watcher.event.is_set()

    data = await refused_connect(client, account.access_token)
    assert data["code"] == "unauthorized"
    assert data["reason"] == "session_revoked"


async def test_logout_all_disconnects_every_socket(
    client: TestClient[Any, Any], connect_socket: SocketFactory
) -> None:
    account = await signup(client)
    other = await login_ok(client, account.username)
    sockets = [await connect_socket(account.access_token),
               await connect_socket(other["access_token"])]
    watchers = [Revoked(sio) for sio in sockets]
    resp = await client.post("/v1/auth/logout_all", headers=account.headers)
    assert resp.status == 204
    for watcher in watchers:
        await watcher.wait()
        assert watcher.reasons == ["logout_all"]
    for token in (account.access_token, other["access_token"]):
        assert (await refused_connect(client, token))["code"] == "unauthorized"


async def test_logout_reaches_a_socket_on_another_node(
    client: TestClient[Any, Any], make_client: AppFactory, connect_socket: SocketFactory
) -> None:
    node_b = await make_client(node_id="node-b")
    account = await signup(client)
    sio = await connect_socket(account.access_token, target=node_b)
    watcher = Revoked(sio)
    assert (await sio.call("account.get", {}, timeout=5))["ok"] is True
    resp = await client.post("/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert resp.status == 204
    await watcher.wait()
    assert watcher.reasons == ["logout"]


# --- the same flows over a socket ------------------------------------------------------------


async def test_signup_over_an_anonymous_socket_binds_the_session(
    client: TestClient[Any, Any], connect_socket: SocketFactory, mail: MailSink
) -> None:
    sio = await connect_socket()
    reply = await sio.call("account.get", {}, timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "unauthorized"

    body = signup_body()
    reply = await sio.call("auth.signup", body, timeout=5)
    assert reply["ok"] is True, reply
    data = reply["data"]
    assert set(data) == {"user", "access_token", "refresh_token", "expires_in", "token_type"}
    assert data["user"]["username"] == body["username"]

    me = await sio.call("account.get", {}, timeout=5)
    assert me["ok"] is True, me
    assert me["data"]["id"] == data["user"]["id"]
    assert await status_of_me(client, data["access_token"]) == 200
    await mail.wait_for(body["email"], "Confirm")


async def test_login_over_an_anonymous_socket_binds_the_session(
    client: TestClient[Any, Any], connect_socket: SocketFactory
) -> None:
    account = await signup(client)
    sio = await connect_socket()
    reply = await sio.call("auth.login", {"login": account.username, "password": "wrong password"},
                           timeout=5)
    assert reply == {"ok": False, "error": {"code": "unauthorized",
                                            "message": "invalid login or password"}}
    assert (await sio.call("account.get", {}, timeout=5))["ok"] is False

    reply = await sio.call("auth.login", {"login": account.email, "password": account.password},
                           timeout=5)
    assert reply["ok"] is True, reply
    assert reply["data"]["user"]["id"] == account.id
    me = await sio.call("account.get", {}, timeout=5)
    assert me["ok"] is True, me
    assert me["data"]["username"] == account.username


async def test_socket_errors_use_the_same_codes(
    client: TestClient[Any, Any], connect_socket: SocketFactory
) -> None:
    taken = await signup(client)
    sio = await connect_socket()
    reply = await sio.call("auth.signup", {"username": "x", "password": "short"}, timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_input"
    assert fields_of(reply["error"]) == {"username", "email", "password"}

    reply = await sio.call("auth.signup", signup_body(username=taken.username.upper()), timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "conflict"
    assert fields_of(reply["error"]) == {"username"}

    reply = await sio.call("auth.signup", ["not", "an", "object"], timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_input"


async def test_refresh_and_logout_over_a_socket(
    client: TestClient[Any, Any], connect_socket: SocketFactory
) -> None:
    account = await signup(client)
    sio = await connect_socket(account.access_token)
    watcher = Revoked(sio)
    reply = await sio.call("auth.refresh", {"refresh_token": account.refresh_token}, timeout=5)
    assert reply["ok"] is True, reply
    pair = reply["data"]
    assert pair["refresh_token"] != account.refresh_token
    assert (await sio.call("account.get", {}, timeout=5))["ok"] is True

    reply = await sio.call("auth.logout", {"refresh_token": pair["refresh_token"]}, timeout=5)
    assert reply == {"ok": True, "data": None}
    await watcher.wait()
    assert watcher.reasons == ["logout"]
    assert await status_of_me(client, pair["access_token"]) == 401


# --- limits, expiry and races ----------------------------------------------------------------


async def db_execute(settings: Settings, sql: str, *args: Any) -> str:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return str(await conn.execute(sql, *args))
    finally:
        await conn.close()


async def test_signups_are_limited_per_ip(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(signup=(2, 3600)))
    for _ in range(2):
        await signup(client)
    resp = await client.post("/v1/auth/signup", json=signup_body())
    error = await error_of(resp, 429, "rate_limited")
    assert resp.headers["Retry-After"] == str(error["details"]["retry_after"])


async def test_refresh_of_an_expired_session_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    account = await signup(client)
    result = await db_execute(
        settings, "UPDATE sessions SET expires_at = now() - interval '1 s' WHERE user_id = $1::uuid",
        account.id)
    assert result == "UPDATE 1"
    error = await error_of(await client.post("/v1/auth/refresh",
                                             json={"refresh_token": account.refresh_token}),
                           401, "unauthorized")
    assert error["details"]["reason"] == "token_invalid"


async def test_expired_verification_token_is_refused(
    client: TestClient[Any, Any], mail: MailSink, settings: Settings
) -> None:
    account = await signup(client)
    token = token_from_mail(await mail.wait_for(account.email, "Confirm"))
    result = await db_execute(
        settings, """UPDATE user_tokens SET expires_at = now() - interval '1 s'
                     WHERE user_id = $1::uuid AND purpose = 'email_verify'""", account.id)
    assert result == "UPDATE 1"
    await error_of(await client.post("/v1/auth/email/verify", json={"token": token}), 400,
                   "invalid_input")
    assert (await (await client.get(ME, headers=account.headers)).json())["email_verified"] is False


async def test_resend_verification_mail(client: TestClient[Any, Any], mail: MailSink) -> None:
    account = await signup(client)
    await mail.wait_for(account.email, "Confirm")
    resp = await client.post("/v1/auth/email/resend", headers=account.headers)
    assert resp.status == 202, await resp.text()
    deadline = asyncio.get_running_loop().time() + 10
    while len(mail.to(account.email)) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert len(mail.to(account.email)) == 2
    first, second = (token_from_mail(m) for m in mail.to(account.email))
    assert first != second
    resp = await client.post("/v1/auth/email/verify", json={"token": second})
    assert resp.status == 200, await resp.text()
    await error_of(await client.post("/v1/auth/email/resend", headers=account.headers), 409,
                   "conflict")
    await error_of(await client.post("/v1/auth/email/resend"), 401, "unauthorized")


async def test_email_verification_over_an_anonymous_socket(
    client: TestClient[Any, Any], mail: MailSink, connect_socket: SocketFactory
) -> None:
    account = await signup(client)
    token = token_from_mail(await mail.wait_for(account.email, "Confirm"))
    sio = await connect_socket()
    assert await sio.call("auth.email.verify", {"token": token}, timeout=5) == {
        "ok": True, "data": {"accepted": True}}
    reply = await sio.call("auth.email.verify", {"token": token}, timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_input"


async def test_concurrent_signups_for_one_name_create_one_account(
    client: TestClient[Any, Any]
) -> None:
    name = unique_name()
    bodies = [signup_body(username=name if i % 2 else name.upper()) for i in range(6)]
    responses = await asyncio.gather(*(client.post("/v1/auth/signup", json=b) for b in bodies))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 5, statuses


async def test_concurrent_refreshes_with_one_token_rotate_once(
    client: TestClient[Any, Any]
) -> None:
    account = await signup(client)
    responses = await asyncio.gather(*(
        client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
        for _ in range(5)))
    assert sorted(r.status for r in responses) == [200, 401, 401, 401, 401]


async def test_refresh_token_reuse_disconnects_the_sessions_socket(
    client: TestClient[Any, Any], connect_socket: SocketFactory
) -> None:
    account = await signup(client)
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert resp.status == 200
    newest = await resp.json()
    sio = await connect_socket(newest["access_token"])
    watcher = Revoked(sio)
    assert (await sio.call("account.get", {}, timeout=5))["ok"] is True
    await error_of(await client.post("/v1/auth/refresh",
                                     json={"refresh_token": account.refresh_token}),
                   401, "unauthorized")
    await watcher.wait()
    assert watcher.reasons == ["refresh_token_reuse"]
    data = await refused_connect(client, newest["access_token"])
    assert data["reason"] == "session_revoked"
