"""Analytics capture (issue 12): server activities published after commit, never failing."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
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
