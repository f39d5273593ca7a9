"""The data export: profile, own items, own analytics events paged; account scope, rate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from config.rates import Rates
from handlers import account_export
from server.resources import DATABASE
from storage.analytics import EventRow, PostgresAnalyticsStore, Retention
from tests.conftest import AppFactory, signup
from tests.handlers.token_helpers import limited_token

Client = TestClient[Any, Any]


def event(user: str, at: datetime) -> EventRow:
    return EventRow(event_id=uuid.uuid4(), name="item.saved", source="server",
                    occurred_at=at, received_at=at, user_id=uuid.UUID(user),
                    subject_type="item", subject_id=uuid.uuid4(), ip_hash="abc",
                    platform="rest")


async def test_export_carries_profile_items_and_events_paged(
        make_client: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_export, "EVENTS_PAGE", 2)
    # No in-process worker: the events in the store are exactly the ones written below.
    app = await make_client(inprocess_workers=False)
    alice, bob = await signup(app), await signup(app)
    resp = await app.post("/v1/items", json={"kind": "post", "body": "mine"},
                          headers=alice.headers)
    assert resp.status == 201, await resp.text()
    post = await resp.json()
    await app.post("/v1/items", json={"kind": "post", "body": "not mine"}, headers=bob.headers)
    now = datetime.now(UTC)
    mine = [event(alice.id, now - timedelta(seconds=n)) for n in range(3)]
    server: Any = app.server  # a TestServer, which holds the app
    await PostgresAnalyticsStore(server.app[DATABASE], Retention()).write(
        [*mine, event(bob.id, now)], now)

    resp = await app.get("/v1/users/me/export", headers=alice.headers)
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["profile"]["id"] == alice.id and "analytics_opt_out" in out["profile"]
    assert [(i["id"], i["kind"], i["body"]) for i in out["items"]] == \
        [(post["id"], "post", "mine")]
    assert out["items_truncated"] is False
    oldest_first = [str(e.event_id) for e in reversed(mine)]
    assert [e["event_id"] for e in out["events"]] == oldest_first[:2]
    assert out["events"][0]["ip_hash"] == "abc" and "user_id" not in out["events"][0]
    resp = await app.get("/v1/users/me/analytics_events",
                         params={"cursor": out["next_events_cursor"]}, headers=alice.headers)
    assert resp.status == 200, await resp.text()
    rest = await resp.json()
    assert [e["event_id"] for e in rest["events"]] == oldest_first[2:]
    assert rest["next_cursor"] is None
    bad = await app.get("/v1/users/me/analytics_events", params={"cursor": "nope"},
                        headers=alice.headers)
    assert bad.status == 400


async def test_export_needs_the_account_scope_and_is_rate_limited(
        make_client: AppFactory, settings: Settings) -> None:
    app = await make_client(inprocess_workers=False, rates=Rates(account_export=(1, 86400)))
    alice = await signup(app)
    token = limited_token(settings, alice.access_token, ["read", "write", "profile"])
    for path in ("/v1/users/me/export", "/v1/users/me/analytics_events"):
        resp = await app.get(path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 403
        assert (await resp.json())["error"]["details"]["required_scope"] == "account"
    assert (await app.get("/v1/users/me/export", headers=alice.headers)).status == 200
    assert (await app.get("/v1/users/me/export", headers=alice.headers)).status == 429
