"""Admin analytics reports: admin only, and the right figures on events seeded through the
analytics store's write path (the worker's), at a far-future "now" of each test's own so
the events other tests store never fall in the window."""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from PIL import Image

from config import Settings
from server.resources import SERVICES
from storage.analytics import EventRow, PostgresAnalyticsStore, Retention
from tests.conftest import Account, process_env, signup
from tests.handlers.oauth_helpers import make_admin

HOTSPOT = str(Path(sys.executable).parent / "hotspot")


def far_now() -> datetime:
    """A Thursday noon, UTC, on a random week centuries ahead: a window no other test uses."""
    monday = datetime(2200, 1, 6, tzinfo=UTC) + timedelta(weeks=random.randrange(30000))
    return monday + timedelta(days=3, hours=12)


def event(name: str, user: uuid.UUID | str, at: datetime) -> EventRow:
    return EventRow(event_id=uuid.uuid4(), name=name, source="server", occurred_at=at,
                    received_at=at, user_id=uuid.UUID(str(user)))


async def seed(client: TestClient[Any, Any], now: datetime, events: list[EventRow]) -> None:
    """Through the worker's store, as if each event was written on its own day."""
    store = PostgresAnalyticsStore(client.app[SERVICES].db, Retention())
    for row in events:
        await store.write([row], row.received_at)
    client.app[SERVICES].clock = lambda: now


async def report(client: TestClient[Any, Any], admin: Account, path: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/analytics_reports/{path}", headers=admin.headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_reports_are_for_admins_only(
    client: TestClient[Any, Any], account: Account, db: asyncpg.Connection
) -> None:
    for path in ("active_users", "retention", "signup_funnel", "activity"):
        resp = await client.get(f"/v1/analytics_reports/{path}", headers=account.headers)
        assert resp.status == 403
        error = (await resp.json())["error"]
        assert error["code"] == "forbidden" and error["details"]["required_role"] == "admin"
    await make_admin(db, account)
    assert (await client.get("/v1/analytics_reports/activity",
                             headers=account.headers)).status == 200


async def test_active_users_and_activity_per_day(
    client: TestClient[Any, Any], account: Account, db: asyncpg.Connection
) -> None:
    await make_admin(db, account)
    now = far_now()
    a, b, c = (uuid.uuid4() for _ in range(3))
    day = timedelta(days=1)
    await seed(client, now, [
        event("message.sent", a, now - timedelta(hours=2)),
        event("message.sent", a, now - timedelta(hours=1)),
        event("item.created", b, now - timedelta(hours=3)),
        event("user.signed_up", c, now - day),
        event("item.created", c, now - day),
        event("user.logged_in", a, now - 10 * day),
        event("user.logged_in", b, now - 40 * day),
        # Written when it was fresh, now past the 90-day raw retention: only its roll-up counts.
        event("item.created", a, now - 100 * day),
    ])
    body = await report(client, account, "active_users?days=120")
    assert (body["dau"], body["wau"], body["mau"]) == (2, 3, 3)
    by_day = {d["day"]: d["users"] for d in body["days"]}
    assert len(by_day) == 120
    assert by_day[str(now.date())] == 2 and by_day[str((now - day).date())] == 1
    assert by_day[str((now - 40 * day).date())] == 1
    # Beyond the retention only roll-ups remain: no distinct people.
    assert by_day[str((now - 100 * day).date())] is None
    assert body["raw_since"] == str((now - 90 * day).date())
    assert body["computed_at"] is not None and body["as_of"] is not None
    assert datetime.fromisoformat(body["as_of"]) <= now

    body = await report(client, account, "activity?days=120")
    per_day = {d["day"]: d for d in body["days"]}
    assert per_day[str(now.date())] == {"day": str(now.date()), "signups": 0, "messages": 2,
                                        "items": 1}
    assert per_day[str((now - day).date())]["signups"] == 1
    assert per_day[str((now - day).date())]["items"] == 1
    # The day roll-up outlives the raw partition's retention.
    assert per_day[str((now - 100 * day).date())]["items"] == 1


async def test_weekly_retention_cohorts(
    client: TestClient[Any, Any], account: Account, db: asyncpg.Connection
) -> None:
    await make_admin(db, account)
    now = far_now()
    monday = (now - timedelta(days=now.weekday())).replace(hour=10)
    week = timedelta(weeks=1)
    u1, u2, u3, u4 = (uuid.uuid4() for _ in range(4))
    await seed(client, now, [
        event("user.signed_up", u1, monday - 2 * week),
        event("user.signed_up", u2, monday - 2 * week + timedelta(days=2)),
        event("message.sent", u1, monday - week + timedelta(days=1)),
        event("item.created", u1, monday),
        event("user.signed_up", u3, monday - week),
        event("user.logged_in", u3, monday + timedelta(hours=1)),
        event("user.signed_up", u4, monday),
    ])
    body = await report(client, account, "retention?weeks=3")
    cohorts = [(c["week"], c["size"], c["retained"], c["rates"]) for c in body["cohorts"]]
    assert cohorts == [
        (str((monday - 2 * week).date()), 2, [2, 1, 1], [1.0, 0.5, 0.5]),
        (str((monday - week).date()), 1, [1, 1], [1.0, 1.0]),
        (str(monday.date()), 1, [1], [1.0]),
    ]


async def test_signup_funnel(
    client: TestClient[Any, Any], account: Account, db: asyncpg.Connection
) -> None:
    await make_admin(db, account)
    now = far_now()
    s1, s2, s3 = [await signup(client) for _ in range(3)]
    await db.execute("UPDATE users SET email_verified_at = now() WHERE id = $1::uuid", s1.id)
    hour = timedelta(hours=1)
    await seed(client, now, [
        event("user.signed_up", s1.id, now - 30 * hour),
        event("item.created", s1.id, now - 29 * hour),
        event("item.created", s1.id, now - 28 * hour),
        event("user.signed_up", s2.id, now - 20 * hour),
        event("message.sent", s2.id, now - 2 * hour),
        event("user.signed_up", s3.id, now - 3 * hour),
        # Posted, but signed up before the window: not in the funnel.
        event("item.created", account.id, now - hour),
    ])
    body = await report(client, account, "signup_funnel?days=7")
    assert body["first_day"] == str((now - timedelta(days=6)).date())
    assert [(s["step"], s["users"], s["rate"]) for s in body["steps"]] == [
        ("signed_up", 3, 1.0), ("email_verified", 1, 0.3333), ("item_or_message", 2, 0.6667),
        ("item_created", 1, 0.3333), ("message_sent", 1, 0.3333)]


async def test_cli_report_prints_tables_and_draws_a_png(
    client: TestClient[Any, Any], settings: Settings, account: Account, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    await seed(client, now, [event("message.sent", account.id, now - timedelta(minutes=1))])
    png = tmp_path / "report.png"
    proc = await asyncio.create_subprocess_exec(
        HOTSPOT, "analytics", "report", "--days", "14", "--weeks", "4", "--png", str(png),
        env=process_env(settings), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out_b, err_b = await asyncio.wait_for(proc.communicate(), 120)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, err
    assert "Active users: DAU " in out and "Sign-up funnel" in out
    assert "Weekly retention" in out and str(now.date()) in out
    assert "hotspot: active users (raw events)" in err and "charts written" in err
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 800
        image.verify()

    proc = await asyncio.create_subprocess_exec(
        HOTSPOT, "analytics", "report", "--days", "0", env=process_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err_b = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and "--days must be" in err_b.decode()
