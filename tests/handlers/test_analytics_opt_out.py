"""Analytics opt-out: the person's choice, shown on their profile, stops client capture."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient

from config import Settings
from handlers.analytics_opt_out import OptOutCache
from tests.conftest import AppFactory, signup
from tests.handlers.analytics_helpers import AnalyticsTap, tap
from tests.handlers.token_helpers import limited_token

Client = TestClient[Any, Any]


@pytest.fixture
async def analytics(settings: Settings) -> AsyncIterator[AnalyticsTap]:
    async with tap(settings.namespace) as t:
        yield t


@pytest.fixture
async def app(make_client: AppFactory) -> Client:
    return await make_client(inprocess_workers=False)


def one_event(cid: str) -> dict[str, Any]:
    return {"events": [{"client_event_id": cid, "name": "session.start", "props": {},
                        "occurred_at": datetime.now(UTC).isoformat()}]}


async def test_opting_out_stops_client_capture_on_both_doors_and_back(
        app: Client, analytics: AnalyticsTap) -> None:
    alice = await signup(app)
    me = await (await app.get("/v1/users/me", headers=alice.headers)).json()
    assert me["analytics_opt_out"] is False
    # Cached as "not opted out" by this first call: the change below must still count at once.
    first = await app.post("/v1/analytics/events", headers=alice.headers, json=one_event("o0"))
    assert (await first.json())["accepted"] == 1
    assert len(await analytics.wait_for("session.start")) == 1

    resp = await app.put("/v1/users/me/analytics_opt_out", headers=alice.headers,
                         json={"opt_out": True})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["analytics_opt_out"] is True
    me = await (await app.get("/v1/users/me", headers=alice.headers)).json()
    assert me["analytics_opt_out"] is True
    resp = await app.post("/v1/analytics/events", headers=alice.headers, json=one_event("o1"))
    assert await resp.json() == {"accepted": 0, "clamped": [], "refused": [],
                                 "ignored": "opt_out"}
    # Not the connect_socket fixture: its default app's in-process worker would consume
    # the analytics queue this test reads.
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(str(app.make_url("/")), auth={"token": alice.access_token},
                      transports=["websocket"], wait_timeout=5)
    try:
        ack = await sio.call("analytics_event.send", one_event("o2"))
        assert ack["ok"] and ack["data"]["ignored"] == "opt_out"
        ack = await sio.call("account.set_analytics_opt_out", {"opt_out": False})
    finally:
        await sio.disconnect()
    events = await analytics.quiet()
    assert len([e for e in events if e["name"] == "session.start"]) == 1
    assert ack["ok"] and ack["data"]["analytics_opt_out"] is False
    resp = await app.post("/v1/analytics/events", headers=alice.headers, json=one_event("o3"))
    assert (await resp.json())["accepted"] == 1
    assert len(await analytics.wait_for("session.start", count=2)) == 2


async def test_an_app_cannot_switch_tracking_back_on(app: Client, settings: Settings) -> None:
    alice = await signup(app)
    token = limited_token(settings, alice.access_token, ["read", "write", "profile"])
    resp = await app.put("/v1/users/me/analytics_opt_out", json={"opt_out": False},
                         headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 403
    assert (await resp.json())["error"]["details"]["required_scope"] == "account"


def test_the_cache_forgets_after_its_ttl_and_stays_bounded() -> None:
    now = [0.0]
    cache = OptOutCache(ttl_s=30, max_entries=2, clock=lambda: now[0])
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put(a, True)
    assert cache.get(a) is True
    now[0] = 31.0
    assert cache.get(a) is None
    cache.put(a, False)
    cache.put(b, True)
    cache.put(c, True)
    assert cache.get(a) is None and cache.get(b) is True and cache.get(c) is True
