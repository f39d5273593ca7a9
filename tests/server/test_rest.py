"""The REST door: JSON bodies, the error envelope, limits, routing errors, request ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

import storage.users
from config import Limits, Rates
from tests.conftest import Account, AppFactory, signup, unique_name
from tests.server.log_helpers import Collect


def field_errors(body: dict[str, Any]) -> dict[str, str]:
    """The per-field details of an invalid_input error, as {field: type}."""
    assert body["error"]["code"] == "invalid_input", body
    return {f["field"]: f["type"] for f in body["error"]["details"]["fields"]}


def assert_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_malformed_json_is_invalid_input(client: Any) -> None:
    resp = await client.post("/v1/auth/login", data=b'{"login": "a", "password": ',
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert_error(body, "invalid_input")
    assert field_errors(body) == {"(body)": "json_invalid"}


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"login"', b"42", b"null", b"true"])
async def test_json_that_is_not_an_object_is_invalid_input(client: Any, raw: bytes) -> None:
    resp = await client.post("/v1/auth/login", data=raw,
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert field_errors(await resp.json()) == {"(body)": "object_type"}


async def test_wrong_types_are_reported_per_field(client: Any) -> None:
    resp = await client.post("/v1/auth/signup", json={
        "username": 12345, "email": ["a@example.com"], "password": {"x": 1}, "display_name": True,
    })
    assert resp.status == 400
    fields = field_errors(await resp.json())
    assert set(fields) == {"username", "email", "password", "display_name"}
    assert fields["username"] == "string_type"
    assert fields["password"] == "string_type"


async def test_missing_and_unknown_fields_are_reported_per_field(client: Any) -> None:
    resp = await client.post("/v1/auth/signup", json={"username": unique_name(), "nickname": "x"})
    assert resp.status == 400
    fields = field_errors(await resp.json())
    assert fields == {"email": "missing", "password": "missing", "nickname": "extra_forbidden"}


async def test_an_empty_body_is_an_empty_object(client: Any) -> None:
    resp = await client.post("/v1/auth/login")
    assert resp.status == 400
    assert field_errors(await resp.json()) == {"login": "missing", "password": "missing"}


async def test_path_parameters_are_validated_like_body_fields(client: Any, account: Account) -> None:
    resp = await client.get("/v1/users/not-a-uuid", headers=account.headers)
    assert resp.status == 400
    assert set(field_errors(await resp.json())) == {"user_id"}


async def test_unknown_query_parameters_are_refused(client: Any, account: Account) -> None:
    resp = await client.get("/v1/users/me", params={"debug": "1"}, headers=account.headers)
    assert resp.status == 400
    assert field_errors(await resp.json()) == {"debug": "extra_forbidden"}


@pytest.fixture
async def small_client(make_client: AppFactory) -> Any:
    return await make_client(limits=Limits(rest_body_bytes=2048))


def login_body(size: int) -> bytes:
    body = orjson.dumps({"login": "x" * size, "password": "y"})
    assert len(body) > size
    return body


async def test_oversize_body_with_content_length_is_payload_too_large(small_client: Any) -> None:
    body = login_body(3000)
    resp = await small_client.post("/v1/auth/login", data=body,
                                   headers={"Content-Type": "application/json"})
    assert resp.status == 413
    payload = await resp.json()
    assert_error(payload, "payload_too_large")
    assert payload["error"]["details"]["limit"] == 2048


async def test_oversize_chunked_body_is_payload_too_large(small_client: Any) -> None:
    body = login_body(3000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start:start + 500]

    resp = await small_client.post("/v1/auth/login", data=chunks(),
                                   headers={"Content-Type": "application/json"})
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in resp.request_info.headers
    assert resp.status == 413
    payload = await resp.json()
    assert_error(payload, "payload_too_large")
    assert payload["error"]["details"]["limit"] == 2048


async def test_body_just_under_the_limit_is_read(small_client: Any) -> None:
    """The limit refuses only what exceeds it: a body near it reaches validation."""
    body = orjson.dumps({"login": "x" * 1900, "password": "y"})
    assert len(body) <= 2048
    resp = await small_client.post("/v1/auth/login", data=body,
                                   headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert field_errors(await resp.json()) == {"login": "string_too_long"}


async def test_the_server_keeps_serving_after_an_oversize_body(small_client: Any) -> None:
    resp = await small_client.post("/v1/auth/login", data=login_body(50_000),
                                   headers={"Content-Type": "application/json"})
    assert resp.status == 413
    resp = await small_client.get("/health")
    assert resp.status == 200


@pytest.mark.parametrize("path", ["/v1/no-such-thing", "/nope", "/v1/users/me/extra/parts"])
async def test_unknown_route_is_a_json_404(client: Any, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert_error(await resp.json(), "not_found")


async def test_wrong_method_is_a_json_405_with_allow(client: Any) -> None:
    resp = await client.get("/v1/auth/login")
    assert resp.status == 405
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert "error" in body and body["error"]["details"]["allowed"] == ["POST"]
    # RFC 9110 15.5.6: a 405 response must say which methods the resource supports.
    assert "POST" in resp.headers.get("Allow", "")


async def test_missing_token_is_401_with_www_authenticate(client: Any) -> None:
    resp = await client.get("/v1/users/me")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    body = await resp.json()
    assert_error(body, "unauthorized")
    assert body["error"]["details"]["reason"] == "token_missing"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "garbage"])
async def test_malformed_authorization_header_is_401(client: Any, header: str) -> None:
    resp = await client.get("/v1/users/me", headers={"Authorization": header})
    assert resp.status == 401
    assert_error(await resp.json(), "unauthorized")


async def test_rate_limited_is_429_with_retry_after(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(login_failures_account=(2, 900)))
    account = await signup(client)
    statuses = []
    for _ in range(4):
        resp = await client.post("/v1/auth/login",
                                 json={"login": account.username, "password": "wrong password"})
        statuses.append(resp.status)
    assert statuses[:2] == [401, 401]
    assert resp.status == 429
    body = await resp.json()
    assert_error(body, "rate_limited")
    retry_after = body["error"]["details"]["retry_after"]
    assert isinstance(retry_after, int) and retry_after >= 1
    assert resp.headers["Retry-After"] == str(retry_after)


async def test_every_response_carries_a_request_id(client: Any, account: Account) -> None:
    responses = [
        await client.get("/health"),
        await client.get("/v1/users/me", headers=account.headers),
        await client.get("/v1/users/me"),
        await client.post("/v1/auth/login", data=b"{", headers={"Content-Type": "application/json"}),
        await client.get("/v1/nowhere"),
        await client.get("/v1/auth/login"),
        await client.post("/v1/auth/logout", json={"refresh_token": account.refresh_token}),
    ]
    assert [r.status for r in responses] == [200, 200, 401, 400, 404, 405, 204]
    ids = [r.headers.get("X-Request-Id") for r in responses]
    assert all(ids), ids
    assert len(set(ids)) == len(ids), "request ids must be unique per request"


async def test_a_client_request_id_is_echoed(client: Any) -> None:
    for path, status in (("/health", 200), ("/v1/users/me", 401), ("/v1/missing", 404)):
        resp = await client.get(path, headers={"X-Request-Id": "client-abc-123"})
        assert resp.status == status
        assert resp.headers["X-Request-Id"] == "client-abc-123"


async def test_an_unusable_client_request_id_is_replaced(client: Any) -> None:
    resp = await client.get("/health", headers={"X-Request-Id": "x" * 200})
    assert resp.headers["X-Request-Id"] not in ("", "x" * 200)


async def test_unexpected_exception_is_500_internal_logged_and_survived(
    client: Any, account: Account, monkeypatch: pytest.MonkeyPatch, server_log: Collect
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database exploded: secret detail")

    monkeypatch.setattr(storage.users, "get_user", broken)
    resp = await client.get("/v1/users/me", headers={**account.headers, "X-Request-Id": "req-500"})
    assert resp.status == 500
    body = await resp.json()
    assert_error(body, "internal")
    assert "secret detail" not in await resp.text()
    assert resp.headers["X-Request-Id"] == "req-500"

    failures = [r for r in server_log.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(failures) == 1
    (line,) = [line for line in server_log.lines if "RuntimeError" in line.get("exc", "")]
    assert line["level"] == "error"
    assert line["command"] == "account.get"
    assert line["request_id"] == "req-500"
    assert "RuntimeError: database exploded" in line["exc"]
    assert "Traceback" in line["exc"]

    monkeypatch.undo()
    resp = await client.get("/v1/users/me", headers=account.headers)
    assert resp.status == 200
    assert (await resp.json())["username"] == account.username


async def test_unexpected_exception_outside_a_command_is_a_json_500(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch, server_log: Collect
) -> None:
    from server.resources import METRICS

    # /metrics is on the API port only with a token (docs/operations.md).
    token = "m" * 32
    client = await make_client(metrics_token=token)
    auth = {"Authorization": f"Bearer {token}"}

    def broken() -> bytes:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(client.app[METRICS], "render", broken)
    resp = await client.get("/metrics", headers={"X-Request-Id": "req-metrics", **auth})
    assert resp.status == 500
    assert_error(await resp.json(), "internal")
    assert resp.headers["X-Request-Id"] == "req-metrics"
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in server_log.records)
    monkeypatch.undo()
    assert (await client.get("/metrics", headers=auth)).status == 200


async def test_list_pages_carry_a_next_link(client: Any) -> None:
    from tests.handlers.conversation_helpers import create_group, ok, rest

    alice, bob = await signup(client), await signup(client)
    for i in range(3):
        await create_group(client, alice, bob, title=f"g{i}")
    resp = await rest(client, alice, "conversation.list", {"limit": 2})
    first = await ok(resp)
    link = resp.headers["Link"]
    assert link.endswith('>; rel="next"') and f"cursor={first['next_cursor']}" in link
    resp = await client.get(link[1:link.index(">")], headers=alice.headers)
    last = await ok(resp)
    assert len(last["conversations"]) == 1 and last["next_cursor"] is None
    assert "Link" not in resp.headers
