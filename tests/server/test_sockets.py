"""The Socket.IO door: connect auth, the ack envelope, limits, errors, revocation, shutdown."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import orjson
import pytest
import socketio

import storage.users
from channels.events import ServerShutdown, SessionRevoked
from config import Limits
from server.resources import SERVICES
from tests.conftest import JWT_SECRET, Account, AppFactory, SocketFactory, signup
from tests.server.log_helpers import Collect

TIMEOUT = 5


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait, bounded, for something the server does asynchronously."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def refused_connect(client: Any) -> AsyncIterator[Callable[..., Any]]:
    """Connect with some auth, expect a refusal; returns the connect_error data it carried."""
    opened: list[socketio.AsyncClient] = []

    async def attempt(auth: Any, target: Any = None) -> dict[str, Any]:
        sio = socketio.AsyncClient(reconnection=False)
        opened.append(sio)
        errors: list[Any] = []
        sio.on("connect_error", errors.append)
        url = str((target or client).make_url("/"))
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=TIMEOUT)
        assert not sio.connected
        assert len(errors) == 1, errors
        # python-socketio hands over the CONNECT_ERROR packet: {"message", "data"}.
        assert isinstance(errors[0]["message"], str)
        data: dict[str, Any] = errors[0]["data"]
        return data

    yield attempt
    for sio in opened:
        if sio.connected:
            await sio.disconnect()


def make_token(secret: str = JWT_SECRET, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "hotspot", "sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()),
              "scopes": ["*"], "iat": now, "exp": now + 86400, "jti": "j" + str(now), **overrides}
    return jwt.encode(claims, secret, algorithm="HS256")


def open_connections(client: Any) -> int:
    return int(client.app[SERVICES].realtime.open_connections)


# -- connecting -------------------------------------------------------------------------------


async def test_anonymous_socket_connects_and_may_log_in(
    client: Any, account: Account, connect_socket: SocketFactory
) -> None:
    sio = await connect_socket()
    assert sio.connected
    reply = await sio.call("account.get", {}, timeout=TIMEOUT)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "unauthorized"
    assert reply["error"]["details"]["reason"] == "token_missing"

    reply = await sio.call("auth.login", {"login": account.username, "password": account.password},
                           timeout=TIMEOUT)
    assert reply["ok"] is True, reply
    # The socket adopted the session it just opened.
    reply = await sio.call("account.get", {}, timeout=TIMEOUT)
    assert reply["ok"] is True, reply
    assert reply["data"]["id"] == account.id


async def test_socket_with_token_runs_commands(account: Account, connect_socket: SocketFactory) -> None:
    sio = await connect_socket(account.access_token)
    reply = await sio.call("account.get", {}, timeout=TIMEOUT)
    assert reply == {"ok": True, "data": reply["data"]}
    assert reply["data"]["username"] == account.username


async def test_token_in_authorization_header_is_accepted(
    account: Account, connect_socket: SocketFactory
) -> None:
    sio = await connect_socket(headers={"Authorization": f"Bearer {account.access_token}"})
    reply = await sio.call("account.get", None, timeout=TIMEOUT)
    assert reply["ok"] is True, reply
    assert reply["data"]["id"] == account.id


@pytest.mark.parametrize(("token", "reason"), [
    ("not-a-jwt", "token_invalid"),
    (make_token(secret="forged-" + "z" * 40), "token_invalid"),
    (make_token(exp=int(time.time()) - 60, iat=int(time.time()) - 1000), "token_expired"),
    (make_token(iss="someone-else"), "token_invalid"),
    (jwt.encode({"sub": "x"}, JWT_SECRET, algorithm="HS256"), "token_invalid"),
])
async def test_bad_tokens_are_refused_with_unauthorized(
    client: Any, refused_connect: Callable[..., Any], token: str, reason: str
) -> None:
    data = await refused_connect({"token": token})
    assert data["code"] == "unauthorized"
    assert data["reason"] == reason
    assert open_connections(client) == 0, "a refused socket must not stay registered"


async def test_non_string_token_is_refused(client: Any, refused_connect: Callable[..., Any]) -> None:
    data = await refused_connect({"token": 12345})
    assert data["code"] == "unauthorized"
    assert open_connections(client) == 0


async def test_revoked_token_is_refused(
    client: Any, account: Account, refused_connect: Callable[..., Any]
) -> None:
    resp = await client.post("/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert resp.status == 204
    data = await refused_connect({"token": account.access_token})
    assert data == {**data, "code": "unauthorized", "reason": "session_revoked"}


# -- the ack envelope and its errors ----------------------------------------------------------


@pytest.mark.parametrize("payload", [{}, None, "text"])
async def test_unknown_event_is_unknown_command(connect_socket: SocketFactory, payload: Any) -> None:
    sio = await connect_socket()
    reply = await sio.call("no.such.command", payload, timeout=TIMEOUT)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "unknown_command"
    assert "no.such.command" in reply["error"]["message"]


async def test_unknown_event_without_arguments_is_unknown_command(connect_socket: SocketFactory) -> None:
    sio = await connect_socket()
    reply = await sio.call("definitely_not_a_command", timeout=TIMEOUT)
    assert reply["error"]["code"] == "unknown_command"


def socket_field_errors(reply: dict[str, Any]) -> dict[str, str]:
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "invalid_input", reply
    return {f["field"]: f["type"] for f in reply["error"]["details"]["fields"]}


@pytest.mark.parametrize("payload", ["a string", ["a", "list"], 42, True])
async def test_payload_that_is_not_an_object_is_invalid_input(
    connect_socket: SocketFactory, payload: Any
) -> None:
    sio = await connect_socket()
    reply = await sio.call("auth.login", payload, timeout=TIMEOUT)
    assert socket_field_errors(reply) == {"(body)": "object_type"}


async def test_wrong_types_and_missing_fields_are_reported_per_field(
    connect_socket: SocketFactory,
) -> None:
    sio = await connect_socket()
    reply = await sio.call("auth.signup", {"username": 7, "password": ["x"], "extra": 1},
                           timeout=TIMEOUT)
    fields = socket_field_errors(reply)
    assert fields == {"username": "string_type", "password": "string_type", "email": "missing",
                      "extra": "extra_forbidden"}


async def test_binary_payload_is_invalid_input(connect_socket: SocketFactory) -> None:
    """Socket.IO carries binary attachments; commands take JSON, so bytes are refused, not crashed on."""
    sio = await connect_socket()
    reply = await sio.call("auth.login", {"login": b"\x00\x01", "password": "pw"}, timeout=TIMEOUT)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "invalid_input"
    reply = await sio.call("auth.login", b"raw bytes", timeout=TIMEOUT)
    assert reply["error"]["code"] == "invalid_input"
    reply = await sio.call("no.such.command", {}, timeout=TIMEOUT)
    assert reply["error"]["code"] == "unknown_command"


async def raw_calls(client: Any, *frames: str) -> list[Any]:
    """Speak Engine.IO v4 / Socket.IO v5 by hand on one connection, to send what a library won't.

    Each frame is an event with an ack id ("42<id>[...]"); returns the acks in order.
    """
    acks: list[Any] = []
    async with client.session.ws_connect(
        client.make_url("/socket.io/"), params={"EIO": "4", "transport": "websocket"}
    ) as ws:
        assert (await ws.receive_str(timeout=TIMEOUT)).startswith("0")  # Engine.IO open
        await ws.send_str("40")  # Socket.IO connect to "/"
        assert (await ws.receive_str(timeout=TIMEOUT)).startswith("40")
        for frame in frames:
            await ws.send_str(frame)
            while True:
                text = await ws.receive_str(timeout=TIMEOUT)
                if text.startswith("43"):  # an ack
                    acks.append(orjson.loads(text[text.index("["):])[0])
                    break
    return acks


async def test_too_deeply_nested_payload_is_invalid_input(client: Any) -> None:
    nested = "[" * 300 + "]" * 300
    deep, after = await raw_calls(
        client,
        f'421["auth.login",{{"login":{nested},"password":"pw"}}]',
        '422["no.such.command",{}]',
    )
    assert deep["ok"] is False, deep
    assert deep["error"]["code"] == "invalid_input"
    assert after["error"]["code"] == "unknown_command"


async def test_oversize_payload_is_refused_and_the_socket_stays_up(
    client: Any, account: Account, connect_socket: SocketFactory
) -> None:
    limit = client.app[SERVICES].settings.limits.socket_payload_bytes
    sio = await connect_socket(account.access_token)
    reply = await sio.call("account.update", {"bio": "b" * (limit + 10)}, timeout=TIMEOUT)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "payload_too_large"
    assert reply["error"]["details"]["limit"] == limit
    assert sio.connected
    reply = await sio.call("account.get", {}, timeout=TIMEOUT)
    assert reply["ok"] is True, reply


async def test_oversize_limit_follows_the_settings(
    make_client: AppFactory, connect_socket: SocketFactory
) -> None:
    small = await make_client(limits=Limits(socket_payload_bytes=2048))
    sio = await connect_socket(target=small)
    reply = await sio.call("auth.login", {"login": "x" * 2100, "password": "p"}, timeout=TIMEOUT)
    assert reply["error"]["code"] == "payload_too_large"
    assert reply["error"]["details"]["limit"] == 2048
    # Just under the limit the payload reaches validation.
    reply = await sio.call("auth.login", {"login": "x" * 1900, "password": "p"}, timeout=TIMEOUT)
    assert socket_field_errors(reply) == {"login": "string_too_long"}


async def polling_calls(client: Any, *frames: str) -> list[Any]:
    """The same by HTTP long-polling, the fallback when a network blocks WebSockets."""
    url = client.make_url("/socket.io/")

    async def get(sid: str | None = None) -> list[str]:
        params = {"EIO": "4", "transport": "polling", **({"sid": sid} if sid else {})}
        resp = await client.session.get(url, params=params, timeout=TIMEOUT)
        assert resp.status == 200, await resp.text()
        return (await resp.text()).split("\x1e")  # Engine.IO v4 packet separator

    async def post(sid: str, text: str) -> None:
        resp = await client.session.post(url, params={"EIO": "4", "transport": "polling", "sid": sid},
                                         data=text.encode(), timeout=TIMEOUT)
        assert resp.status == 200, await resp.text()

    (opened,) = await get()
    sid = orjson.loads(opened[1:])["sid"]
    await post(sid, "40")
    assert any(p.startswith("40") for p in await get(sid))
    acks: list[Any] = []
    for frame in frames:
        await post(sid, frame)
        for _ in range(10):
            if found := [p for p in await get(sid) if p.startswith("43")]:
                break
        else:
            raise AssertionError(f"no ack for {frame[:40]!r}")
        acks.append(orjson.loads(found[0][found[0].index("["):])[0])
    await post(sid, "1")  # Engine.IO close
    return acks


async def test_oversize_payload_over_polling_is_refused_too(make_client: AppFactory) -> None:
    """The limit is the transport's, whichever Engine.IO transport carries the frame."""
    small = await make_client(limits=Limits(socket_payload_bytes=2048))
    big = orjson.dumps(["auth.login", {"login": "x" * 2100, "password": "p"}]).decode()
    too_large, after = await polling_calls(small, f"421{big}", '422["no.such.command",{}]')
    assert too_large["error"]["code"] == "payload_too_large"
    assert after["error"]["code"] == "unknown_command"


async def test_command_needing_auth_on_anonymous_socket_is_unauthorized(
    connect_socket: SocketFactory,
) -> None:
    sio = await connect_socket()
    for event in ("account.get", "auth.logout_all", "account.update"):
        reply = await sio.call(event, {"bio": "x"} if event == "account.update" else {},
                               timeout=TIMEOUT)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "unauthorized", (event, reply)


async def test_unexpected_exception_is_internal_and_the_socket_stays_up(
    account: Account, connect_socket: SocketFactory, monkeypatch: pytest.MonkeyPatch,
    server_log: Collect,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("storage exploded: secret detail")

    sio = await connect_socket(account.access_token)
    monkeypatch.setattr(storage.users, "get_user", broken)
    reply = await sio.call("account.get", {}, timeout=TIMEOUT)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "internal"
    assert "secret detail" not in str(reply)
    lines = [line for line in server_log.lines if "RuntimeError: storage exploded" in line.get("exc", "")]
    assert len(lines) == 1, server_log.lines
    assert lines[0]["command"] == "account.get"
    assert lines[0]["request_id"], "the log line names the event it belongs to"

    monkeypatch.undo()
    assert sio.connected
    reply = await sio.call("account.get", {}, timeout=TIMEOUT)
    assert reply["ok"] is True, reply


# -- the end of a session ---------------------------------------------------------------------


async def test_logout_over_the_socket_acks_then_revokes_then_disconnects(
    client: Any, account: Account, connect_socket: SocketFactory
) -> None:
    other_login = await client.post("/v1/auth/login",
                                    json={"login": account.username, "password": account.password})
    other_token = (await other_login.json())["access_token"]
    bystander = await connect_socket(other_token)

    sio = await connect_socket(account.access_token)
    seen: list[tuple[str, Any]] = []
    gone = asyncio.Event()
    sio.on("session.revoked", lambda data: seen.append(("session.revoked", data)))

    def on_disconnect(*args: Any) -> None:
        seen.append(("disconnect", None))
        gone.set()

    sio.on("disconnect", on_disconnect)
    await sio.emit("auth.logout", {"refresh_token": account.refresh_token},
                   callback=lambda reply: seen.append(("ack", reply)))
    await asyncio.wait_for(gone.wait(), TIMEOUT)

    assert [name for name, _ in seen] == ["ack", "session.revoked", "disconnect"], seen
    assert seen[0][1]["ok"] is True
    assert seen[1][1] == {"reason": "logout"}
    SessionRevoked.model_validate(seen[1][1], strict=True)  # what events.json promises
    # Another session of the same user is untouched.
    assert bystander.connected
    reply = await bystander.call("account.get", {}, timeout=TIMEOUT)
    assert reply["ok"] is True, reply


async def test_logout_all_over_rest_disconnects_every_socket_of_the_user(
    client: Any, account: Account, connect_socket: SocketFactory
) -> None:
    second = await (await client.post(
        "/v1/auth/login", json={"login": account.username, "password": account.password})).json()
    stranger = await signup(client)
    sockets = [await connect_socket(account.access_token),
               await connect_socket(second["access_token"])]
    outsider = await connect_socket(stranger.access_token)
    reasons: list[Any] = []
    for sio in sockets:
        sio.on("session.revoked", reasons.append)

    resp = await client.post("/v1/auth/logout_all", headers=account.headers)
    assert resp.status == 204
    await wait_until(lambda: not any(s.connected for s in sockets))
    assert reasons == [{"reason": "logout_all"}] * 2
    assert outsider.connected
    assert (await outsider.call("account.get", {}, timeout=TIMEOUT))["ok"] is True


async def test_closed_sockets_are_forgotten(client: Any, account: Account,
                                            connect_socket: SocketFactory) -> None:
    sio = await connect_socket(account.access_token)
    anonymous = await connect_socket()
    assert open_connections(client) == 2
    await sio.disconnect()
    await anonymous.disconnect()
    await wait_until(lambda: open_connections(client) == 0)


# -- graceful shutdown ------------------------------------------------------------------------


async def test_shutdown_tells_every_socket_before_closing_it(
    make_client: AppFactory, connect_socket: SocketFactory
) -> None:
    node = await make_client()
    account = await signup(node)
    sockets = [await connect_socket(account.access_token, target=node),
               await connect_socket(target=node)]
    seen: list[list[tuple[str, Any]]] = [[], []]
    for sio, log in zip(sockets, seen, strict=True):
        sio.on("server.shutdown", lambda data, log=log: log.append(("server.shutdown", data)))
        sio.on("disconnect", lambda *args, log=log: log.append(("disconnect", None)))

    await asyncio.wait_for(node.close(), 30)
    await wait_until(lambda: all(len(log) >= 2 for log in seen))

    for log in seen:
        assert [name for name, _ in log] == ["server.shutdown", "disconnect"], log
        payload = log[0][1]
        assert payload["reason"] == "server_shutdown"
        assert isinstance(payload["reconnect_after_ms"], int) and payload["reconnect_after_ms"] >= 0
        ServerShutdown.model_validate(payload, strict=True)  # what events.json promises
    assert not any(s.connected for s in sockets)

