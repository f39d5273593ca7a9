"""Owner insights (issue 12): owner-only access, suppression under 5 people, freshness, and
throttled live updates. Events are seeded through the analytics store's write path and the
live counters, as the analytics worker does, over real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from config import Settings
from handlers.insights import retention_curve
from server.resources import SERVICES
from storage.analytics import EventRow
from tests.conftest import Account, SocketFactory, signup
from tests.handlers.clique_helpers import staffed
from tests.handlers.item_helpers import create
from tests.handlers.story_helpers import post_story
from workers.analytics import build_store, live_hits

Client = TestClient[Any, Any]


async def seed(client: Client, settings: Settings, rows: list[EventRow]) -> None:
    """Store events as the analytics worker does: the store's batch write, then Redis."""
    services = client.app[SERVICES]
    result = await build_store(settings, services.db).write(rows, datetime.now(UTC))
    assert services.analytics_live is not None
    await services.analytics_live.add(live_hits(result.inserted))


def event(name: str, subject: str, subject_id: str, user: uuid.UUID | None = None,
          at: datetime | None = None, **props: Any) -> EventRow:
    now = datetime.now(UTC)
    return EventRow(event_id=uuid.uuid4(), name=name, source="client", occurred_at=at or now,
                    received_at=now, user_id=user, subject_type=subject,
                    subject_id=uuid.UUID(subject_id), props=props,
                    ip_hash=None if user else uuid.uuid4().hex)


async def get_json(client: Client, who: Account, path: str) -> tuple[int, Any]:
    resp = await client.get(path, headers=who.headers)
    return resp.status, await resp.json()


async def insight(client: Client, who: Account, item_id: str) -> tuple[int, Any]:
    return await get_json(client, who, f"/v1/items/{item_id}/insights")


async def test_item_insight_is_for_its_author_only(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    item = await create(client, alice)
    status, body = await insight(client, alice, item["id"])
    assert status == 200, body
    status, body = await insight(client, bob, item["id"])
    assert status == 403 and body["error"]["code"] == "forbidden"
    private = await create(client, alice, visibility="private")
    status, body = await insight(client, bob, private["id"])
    assert status == 404 and body["error"]["code"] == "not_found"
    status, _ = await insight(client, bob, str(uuid.uuid4()))
    assert status == 404


async def test_breakdowns_under_five_people_are_suppressed(client: Client,
                                                           settings: Settings) -> None:
    alice = await signup(client)
    item = await create(client, alice)
    people = [uuid.uuid4() for _ in range(5)]
    rows = [event("item.reacted", "item", item["id"], p, kind="like") for p in people]
    rows += [event("item.reacted", "item", item["id"], p, kind="love") for p in people[:4]]
    rows += [event("item.impression", "item", item["id"], p, visible_ms=1500) for p in people]
    rows += [event("item.impression", "item", item["id"], people[0], visible_ms=1500)]
    await seed(client, settings, rows)
    status, body = await insight(client, alice, item["id"])
    assert status == 200, body
    reactions = body["engagement"]["reactions"]
    assert reactions["like"]["value"] == 5 and reactions["like"]["suppressed"] is False
    assert reactions["love"] == {"value": None, "suppressed": True,
                                 "as_of": reactions["love"]["as_of"]}
    assert body["impressions"]["value"] == 6 and body["reach"]["value"] == 5


async def test_figures_are_fresh_and_add_past_days_to_today(client: Client,
                                                             settings: Settings) -> None:
    alice = await signup(client)
    item = await create(client, alice)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    await seed(client, settings, [
        event("item.impression", "item", item["id"], uuid.uuid4(), at=yesterday, visible_ms=1000)
        for _ in range(3)])
    before = datetime.now(UTC)
    await seed(client, settings, [event("item.impression", "item", item["id"], uuid.uuid4(),
                                        visible_ms=1000)])
    status, body = await insight(client, alice, item["id"])
    assert status == 200, body
    # Yesterday from the day roll-up, today from the live counter.
    assert body["impressions"]["value"] == 4
    as_of = datetime.fromisoformat(body["impressions"]["as_of"])
    assert before <= as_of <= datetime.now(UTC)


def test_retention_curve_interpolates_between_quartiles() -> None:
    curve = retention_curve([25, 50, 100, 100])
    assert len(curve) == 11 and curve[0] == 1.0 and curve[10] == 0.5
    assert curve[5] == 0.75  # 50 %: exactly the half-way quartile
    assert 0.75 < curve[4] < 1.0  # 40 %: between 25 % (1.0) and 50 % (0.75)


async def test_live_updates_at_most_once_a_second(client: Client, settings: Settings,
                                                  connect_socket: SocketFactory) -> None:
    alice, bob = await signup(client), await signup(client)
    item = await create(client, alice)
    sio = await connect_socket(alice.access_token)
    updates: list[tuple[float, dict[str, Any]]] = []
    loop = asyncio.get_running_loop()
    sio.on("insight.updated", lambda data: updates.append((loop.time(), data)))
    other = await connect_socket(bob.access_token)
    refused = await other.call("insight.subscribe", {"item_id": item["id"]})
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
    ack = await sio.call("insight.subscribe", {"item_id": item["id"]})
    assert ack["ok"] is True, ack
    # Events land every 100 ms for 3.5 s: the owner gets one update per second at most.
    for _ in range(35):
        await seed(client, settings, [event("item.impression", "item", item["id"],
                                            uuid.uuid4(), visible_ms=1000)])
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.2)
    assert 2 <= len(updates) <= 5
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(updates)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert updates[-1][1]["impressions"]["value"] == 35
    ack = await sio.call("insight.unsubscribe", {"item_id": item["id"]})
    assert ack["ok"] is True
    # Unsubscribing stops the node's polling of the item: nothing can be pushed any more.
    services = client.app[SERVICES]
    assert services.insight_live is not None and services.insight_live.polled_items == 0
    # Closing the socket ends its watches too.
    again = await connect_socket(alice.access_token)
    assert (await again.call("insight.subscribe", {"item_id": item["id"]}))["ok"] is True
    assert services.insight_live.polled_items == 1
    await again.disconnect()
    for _ in range(50):
        if services.insight_live.polled_items == 0:
            break
        await asyncio.sleep(0.05)
    assert services.insight_live.polled_items == 0


async def test_story_insight_taps_completion_and_suppression(client: Client,
                                                             settings: Settings) -> None:
    alice, bob = await signup(client), await signup(client)
    story = await post_story(client, alice)
    status, body = await get_json(client, bob, f"/v1/stories/{story['id']}/insights")
    assert status in (403, 404), body
    viewers = [uuid.uuid4() for _ in range(6)]
    rows = [event("story.viewed", "story", story["id"], v) for v in viewers]
    rows += [event("story.tap", "story", story["id"], v, direction="forward") for v in viewers[:5]]
    rows += [event("story.tap", "story", story["id"], v, direction="back") for v in viewers[:2]]
    rows += [event("story.complete", "story", story["id"], v) for v in viewers[:3]]
    await seed(client, settings, rows)
    status, body = await get_json(client, alice, f"/v1/stories/{story['id']}/insights")
    assert status == 200, body
    assert body["views"]["value"] == 6 and body["reach"]["value"] == 6
    assert body["taps_forward"]["value"] == 5
    assert body["taps_back"] == {"value": None, "suppressed": True,
                                 "as_of": body["taps_back"]["as_of"]}
    assert body["exits"]["value"] == 0 and body["exits"]["suppressed"] is False
    assert body["completion_rate"]["value"] == 0.5


async def test_account_and_clique_insights(client: Client, settings: Settings) -> None:
    staff = await staffed(client)
    owner = staff.owner
    status, body = await get_json(client, owner, "/v1/users/me/insights?days=7")
    assert status == 200, body
    assert len(body["follower_growth"]) == 7 and body["days"] == 7
    await seed(client, settings, [event("profile.viewed", "user", owner.id, uuid.uuid4())
                                  for _ in range(3)])
    status, body = await get_json(client, owner, "/v1/users/me/insights?days=7")
    assert body["profile_visits"]["value"] == 3
    path = f"/v1/cliques/{staff.id}/insights?days=7"
    status, body = await get_json(client, staff.member, path)
    assert status == 403 and body["error"]["details"]["required_role"] == "moderator"
    status, body = await get_json(client, staff.moderator, path)
    assert status == 200, body
    # Three members joined today: fewer than five people, so the day is suppressed.
    assert body["joins"][-1]["value"] == {"value": None, "suppressed": True,
                                          "as_of": body["joins"][-1]["value"]["as_of"]}
    status, _ = await get_json(client, staff.owner, f"/v1/cliques/{uuid.uuid4()}/insights")
    assert status == 404
