"""Analytics storage: owners resolved from the subject, opted-out people named nowhere."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from storage import analytics as store
from storage.analytics import EventRow, PostgresAnalyticsStore, Retention
from storage.db import Database
from tests.storage.row_helpers import new_user


def event(subject_type: str, subject: uuid.UUID, *, user: uuid.UUID | None,
          name: str = "item.saved", source: str = "server", owner: uuid.UUID | None = None,
          at: datetime | None = None) -> EventRow:
    when = at or datetime.now(UTC)
    return EventRow(event_id=uuid.uuid4(), name=name, source=source, occurred_at=when,
                    received_at=when, user_id=user, subject_type=subject_type,
                    subject_id=subject, owner_id=owner, ip_hash="h" if user else None,
                    platform="web")


async def new_item(db: Database, author: uuid.UUID, kind: str = "post") -> uuid.UUID:
    item_id: uuid.UUID = await db.pool.fetchval(
        "INSERT INTO items (kind, author_id, body) VALUES ($1, $2, 'x') RETURNING id",
        kind, author)
    return item_id


async def day_owner_counts(db: Database, subject: uuid.UUID) -> list[tuple[uuid.UUID | None, int]]:
    rows = await db.pool.fetch(
        "SELECT owner_id, count FROM analytics_rollup_day WHERE subject_id = $1", subject)
    return [(r["owner_id"], r["count"]) for r in rows]


async def test_a_missing_owner_is_resolved_from_the_subject_in_raw_rows_and_rollups(
        db: Database) -> None:
    analytics = PostgresAnalyticsStore(db, Retention())
    author, viewer, given = await new_user(db), await new_user(db), await new_user(db)
    post, story = await new_item(db, author), await new_item(db, author, "story")
    unknown = uuid.uuid4()
    batch = [event("item", post, user=viewer), event("story", story, user=viewer,
                                                    name="story.viewed"),
             event("user", author, user=viewer, name="profile.viewed"),
             # An owner the result did carry is kept as it came.
             event("item", post, user=viewer, owner=given, name="item.shared"),
             # A subject that is gone (deleted item) keeps no owner rather than a wrong one.
             event("item", unknown, user=viewer),
             event("conversation", uuid.uuid4(), user=viewer, name="message.sent")]
    inserted = {e.event_id: e for e in (await analytics.write(batch, datetime.now(UTC))).inserted}
    owners = [inserted[e.event_id].owner_id for e in batch]
    assert owners == [author, author, author, given, None, None]
    assert await day_owner_counts(db, story) == [(author, 1)]
    assert sorted(await day_owner_counts(db, post), key=lambda r: r[1]) in (
        [(author, 1), (given, 1)], [(given, 1), (author, 1)])


async def test_an_opted_out_person_is_named_nowhere_but_still_counted(db: Database) -> None:
    analytics = PostgresAnalyticsStore(db, Retention())
    author, quiet = await new_user(db), await new_user(db)
    await db.pool.execute("UPDATE users SET analytics_opt_out = true WHERE id = $1", quiet)
    post = await new_item(db, author)
    now = datetime.now(UTC)
    viewed = event("item", post, user=quiet, name="item.reacted")
    login = event("user", quiet, user=quiet, name="user.logged_in")
    tapped = event("story", post, user=quiet, name="story.tap", source="client")
    result = await analytics.write([viewed, login, tapped], now)
    stored = {e.event_id: e for e in result.inserted}
    # Client events of an opted-out person are not stored at all.
    assert set(stored) == {viewed.event_id, login.event_id}
    for row in stored.values():
        assert row.user_id is None and row.ip_hash is None
    # The owner's view is whole: the reaction counts for the post and its author.
    assert stored[viewed.event_id].subject_id == post
    assert stored[viewed.event_id].owner_id == author
    assert await day_owner_counts(db, post) == [(author, 1)]
    # An event about the person themself keeps no subject that would name them.
    assert stored[login.event_id].subject_id is None
    assert stored[login.event_id].owner_id is None
    assert await store.events_of_user(db, quiet) == []


async def test_events_of_user_pages_with_a_cursor(db: Database) -> None:
    analytics = PostgresAnalyticsStore(db, Retention())
    user = await new_user(db)
    now = datetime.now(UTC)
    batch = [event("item", uuid.uuid4(), user=user, at=now - timedelta(seconds=n))
             for n in range(5)]
    await analytics.write(batch, now)
    first = await store.events_of_user(db, user, limit=2)
    second = await store.events_of_user(
        db, user, after=(first[-1].occurred_at, first[-1].event_id), limit=2)
    rest = await store.events_of_user(
        db, user, after=(second[-1].occurred_at, second[-1].event_id), limit=2)
    assert [e.event_id for e in first + second + rest] == [e.event_id for e in reversed(batch)]
    assert len(rest) == 1
