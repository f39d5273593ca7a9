"""Analytics capture (issue 12): server activities published after commit, never failing."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient

from config import Settings
from handlers.analytics_publisher import AnalyticsPublisher
from jobs.analytics import AnalyticsEvent
from jobs.queue import QueueUnavailable
from server.app import command_registry
from server.resources import ANALYTICS
from tests.conftest import AppFactory, signup
from tests.handlers.analytics_helpers import AnalyticsTap, tap

Client = TestClient[Any, Any]

# The activities issue 12 lists, and the commands that record them.
ACTIVITY_COMMANDS = {
    "auth.signup", "auth.login", "message.send", "item.create", "item.react", "item.share",
    "item.save", "user.follow", "clique.join", "story.create", "story.view", "slide.view",
    "user.get", "user.get_by_username", "clique.search",
}


def test_activity_commands_declare_an_activity() -> None:
    declared = {cmd.name: cmd.activity for cmd in command_registry() if cmd.activity}
    missing = ACTIVITY_COMMANDS - set(declared)
    assert not missing, f"these commands record no activity: {sorted(missing)}"
    for name, activity in declared.items():
        # resource.past_participle, like the events the server sends.
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+", activity.name), f"{name}: {activity.name}"


@pytest.fixture
async def analytics(settings: Settings) -> AsyncIterator[AnalyticsTap]:
    async with tap(settings.namespace) as t:
        yield t


@pytest.fixture
async def app(make_client: AppFactory) -> Client:
    # No in-process workers: nothing but the test consumes the analytics queue.
    return await make_client(inprocess_workers=False)


async def test_item_create_publishes_after_commit(app: Client, analytics: AnalyticsTap) -> None:
    alice = await signup(app)
    resp = await app.post("/v1/items", json={"kind": "post", "body": "hello"},
                          headers={**alice.headers, "X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 201, await resp.text()
    item = await resp.json()
    (event,) = await analytics.wait_for("item.created", subject_id=item["id"])
    assert event["source"] == "server"
    assert event["user_id"] == alice.id and event["owner_id"] == alice.id
    assert event["subject_type"] == "item" and event["props"] == {"kind": "post"}
    assert event["ip_hash"] and "203.0.113.9" not in str(event)
    signed_up = await analytics.wait_for("user.signed_up", subject_id=alice.id)
    assert signed_up and signed_up[0]["user_id"] == alice.id


async def test_profile_view_counts_others_only(app: Client, analytics: AnalyticsTap) -> None:
    alice, bob = await signup(app), await signup(app)
    assert (await app.get(f"/v1/users/{alice.id}", headers=alice.headers)).status == 200
    assert (await app.get(f"/v1/users/{alice.id}", headers=bob.headers)).status == 200
    views = await analytics.wait_for("profile.viewed", subject_id=alice.id)
    await analytics.quiet(1.0)
    views = [e for e in analytics.events if e["name"] == "profile.viewed"]
    assert [(v["user_id"], v["owner_id"]) for v in views] == [(bob.id, alice.id)]


async def test_failing_command_publishes_nothing(app: Client, analytics: AnalyticsTap) -> None:
    alice = await signup(app)
    resp = await app.post("/v1/items", json={"kind": "reply", "body": "x",
                                             "parent_id": "00000000-0000-0000-0000-000000000000"},
                          headers=alice.headers)
    assert resp.status in (400, 404), await resp.text()
    events = await analytics.quiet()
    assert not [e for e in events if e["name"] == "item.created"]


async def test_queue_down_never_fails_the_command(make_client: AppFactory,
                                                 analytics: AnalyticsTap) -> None:
    # The broker address answers nothing: every publish fails, the commands still succeed.
    app = await make_client(amqp_url="amqp://guest:guest@127.0.0.1:1/", inprocess_workers=False)
    alice = await signup(app)
    for n in range(3):
        resp = await app.post("/v1/items", json={"kind": "post", "body": f"p{n}"},
                              headers=alice.headers)
        assert resp.status == 201, await resp.text()
    # The events wait in the bounded buffer for the broker to come back.
    assert app.app is not None and app.app[ANALYTICS].pending >= 4


class DownQueue:
    """A queue whose broker never answers."""

    async def publish(self, queue: str, job: dict[str, Any], *, batch: bool = False) -> None:
        raise QueueUnavailable("down")


async def test_full_buffer_drops_the_oldest_and_counts() -> None:
    drops: list[int] = []
    publisher = AnalyticsPublisher(DownQueue(), ip_secret="s", capacity=3,  # type: ignore[arg-type]
                                   on_drop=drops.append)
    now = datetime.now(UTC)
    events = [AnalyticsEvent(uuid.uuid4(), "item.created", "server", now, now) for _ in range(5)]
    publisher.offer(events[:2])
    publisher.offer(events[2:])
    assert publisher.dropped == 2 and drops == [2] and publisher.pending == 3
    with pytest.raises(QueueUnavailable):
        await publisher.flush()
    assert publisher.pending == 3  # unconfirmed events go back to the buffer


def batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


def ev(cid: str, name: str, props: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    return {"client_event_id": cid, "name": name, "props": props,
            "occurred_at": (at or datetime.now(UTC)).isoformat()}


async def test_client_batch_keeps_good_events_and_reports_refusals(
        app: Client, analytics: AnalyticsTap) -> None:
    alice = await signup(app)
    story = str(uuid.uuid4())
    resp = await app.post("/v1/analytics/events", headers=alice.headers, json=batch(
        ev("a1", "story.tap", {"story_id": story, "direction": "forward"}),
        ev("a2", "no.such", {}),
        ev("a3", "item.impression", {"item_id": story, "visible_ms": 10}),
        ev("a4", "link.click", {"item_id": story, "url_host": "https://x.io/p?q=secret"}),
        ev("a5", "screen.view", {"screen": "feed"},
           at=datetime.now(UTC) - timedelta(days=3)),
    ))
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["accepted"] == 2 and out["clamped"] == [4]
    assert [(r["index"], r["client_event_id"], r["code"]) for r in out["refused"]] == [
        (1, "a2", "unknown_event"), (2, "a3", "invalid_props"), (3, "a4", "invalid_props")]
    (tap_event,) = await analytics.wait_for("story.tap")
    assert tap_event["source"] == "client" and tap_event["subject_id"] == story
    (screen,) = await analytics.wait_for("screen.view")
    occurred = datetime.fromisoformat(screen["occurred_at"])
    assert datetime.now(UTC) - occurred < timedelta(hours=24, minutes=1)
    # A retried batch carries the same event ids: the worker stores each once.
    again = await app.post("/v1/analytics/events", headers=alice.headers, json=batch(
        ev("a1", "story.tap", {"story_id": story, "direction": "forward"})))
    assert (await again.json())["accepted"] == 1
    taps = await analytics.wait_for("story.tap", count=2)
    assert len(taps) == 2 and taps[0]["event_id"] == taps[1]["event_id"]


async def test_do_not_track_makes_client_capture_a_no_op(
        app: Client, analytics: AnalyticsTap) -> None:
    alice, bob = await signup(app), await signup(app)
    for header in ({"DNT": "1"}, {"Sec-GPC": "1"}):
        resp = await app.post("/v1/analytics/events", headers={**alice.headers, **header},
                              json=batch(ev("d1", "session.start", {})))
        assert await resp.json() == {"accepted": 0, "clamped": [], "refused": [],
                                     "ignored": "dnt"}
    # Our own socket to `app` (the connect_socket fixture starts a second app whose
    # in-process analytics worker would consume the queue this test reads).
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(str(app.make_url("/")), auth={"token": alice.access_token},
                      headers={"DNT": "1"}, transports=["websocket"], wait_timeout=5)
    try:
        ack = await sio.call("analytics_event.send", batch(ev("d2", "session.start", {})))
        assert ack["ok"] and ack["data"]["ignored"] == "dnt"
    finally:
        await sio.disconnect()
    # Barrier: bob's event goes through the same publisher after alice's calls, so once it
    # has arrived anything alice's calls had published would have arrived before it.
    resp = await app.post("/v1/analytics/events", headers=bob.headers,
                          json=batch(ev("b1", "session.start", {})))
    assert (await resp.json())["accepted"] == 1
    events = await analytics.wait_for("session.start", user_id=bob.id)
    assert events, "the barrier event never arrived"
    assert [e["user_id"] for e in analytics.events if e["name"] == "session.start"] == [bob.id]
