"""The conversation event stream (storage/events.py): one total order, read back as stored.

Events get ids in the order they are appended and become visible in that order (an
appender holds a lock until it commits), so sync can hand out cursors: a member's
events after a cursor, in id order, a page at a time, within their membership, or a
gap when the cursor is older than what is kept.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from storage import conversations
from storage.db import Database
from storage.events import EventDraft, StoredEvent, append_events, events_after, latest_event_id, sync_page
from tests.storage.row_helpers import new_group, new_user

TIMEOUT = 10.0


async def append(db: Database, *drafts: EventDraft) -> list[StoredEvent]:
    async with db.transaction() as conn:
        return await append_events(conn, list(drafts))


def draft(conversation_id: uuid.UUID, n: int, audience: list[uuid.UUID] | None = None) -> EventDraft:
    return EventDraft(conversation_id, "test.event", {"n": n}, audience)


async def sync_all(db: Database, user: uuid.UUID, cursor: int, limit: int) -> tuple[list[int], int]:
    """Page through sync from cursor; every event id in order, and the final cursor."""
    ids: list[int] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            page = await sync_page(db, user, cursor, limit)
            assert not page.gap
            assert len(page.events) <= limit
            ids += [e.id for e in page.events]
            assert page.next_cursor >= cursor
            cursor = page.next_cursor
            if not page.has_more:
                return ids, cursor


async def test_a_batch_is_stored_and_read_back_in_order(db: Database) -> None:
    owner = await new_user(db)
    first, second = await new_group(db, owner), await new_group(db, owner)
    drafts = [draft(c, n) for n, c in enumerate([first, second, first, first, second])]
    stored = await append(db, *drafts)
    assert [(e.conversation_id, e.payload) for e in stored] == \
        [(d.conversation_id, d.payload) for d in drafts]
    ids = [e.id for e in stored]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    async with db.pool.acquire() as conn:
        back = await events_after(conn, ids[0] - 1, 1000)
    mine = [e for e in back if e.conversation_id in (first, second)]
    assert [(e.id, e.kind, e.payload) for e in mine] == [(e.id, e.kind, e.payload) for e in stored]
    assert [e.to_wire()["cursor"] for e in mine] == [str(i) for i in ids]


async def test_a_later_append_waits_for_the_earlier_to_commit(db: Database) -> None:
    """Ids become visible as a prefix: no reader sees id k+1 while k may still commit."""
    owner = await new_user(db)
    conversation = await new_group(db, owner)
    async with db.pool.acquire() as early, db.pool.acquire() as late:
        late_pid = await late.fetchval("SELECT pg_backend_pid()")
        async with early.transaction():
            [held] = await append_events(early, [draft(conversation, 1)])

            async def later() -> StoredEvent:
                async with late.transaction():
                    [event] = await append_events(late, [draft(conversation, 2)])
                    return event

            task = asyncio.create_task(later())
            # The later appender is queued on the event lock, behind the open transaction.
            async with asyncio.timeout(TIMEOUT):
                while await db.pool.fetchval(
                        "SELECT wait_event FROM pg_stat_activity WHERE pid = $1",
                        late_pid) != "advisory":
                    await asyncio.sleep(0.01)
            assert not task.done()
            async with db.pool.acquire() as reader:
                assert [e.id for e in await events_after(reader, held.id - 1, 10)
                        if e.conversation_id == conversation] == []
        async with asyncio.timeout(TIMEOUT):
            after = await task
    assert after.id > held.id
    async with db.pool.acquire() as reader:
        seen = [e.payload["n"] for e in await events_after(reader, held.id - 1, 1000)
                if e.conversation_id == conversation]
    assert seen == [1, 2]


async def test_sync_pages_through_a_members_events_in_order(db: Database) -> None:
    me, other = await new_user(db), await new_user(db)
    ours, also_ours = await new_group(db, me, other), await new_group(db, me, other)
    theirs = await new_group(db, other)
    start = await latest_event_id(db)
    plan: list[tuple[uuid.UUID, list[uuid.UUID] | None, bool]] = [
        (ours, None, True), (theirs, None, False), (also_ours, None, True),
        (ours, [other], False),  # for another member's devices only
        (also_ours, [me], True), (ours, None, True), (theirs, None, False),
        (also_ours, None, True), (ours, [me, other], True), (ours, None, True),
    ]
    stored: list[StoredEvent] = []
    # In a few transactions, so the ids are not one contiguous run per append.
    for chunk in (plan[:3], plan[3:4], plan[4:]):
        stored += await append(db, *(draft(c, len(stored) + i, audience)
                                     for i, (c, audience, _) in enumerate(chunk)))
    expected = [e.id for e, (_, _, mine) in zip(stored, plan, strict=True) if mine]
    for limit in (1, 3, 100):
        ids, cursor = await sync_all(db, me, start, limit)
        assert ids == expected, limit
        assert cursor == await latest_event_id(db)
    # Caught up: nothing more, and the cursor stays.
    page = await sync_page(db, me, cursor, 3)
    assert page.events == [] and not page.has_more and page.next_cursor == cursor
    # Resuming from any cursor gives exactly what came after it.
    ids, _ = await sync_all(db, me, expected[2], 2)
    assert ids == expected[3:]


async def test_sync_covers_only_the_membership_window(db: Database) -> None:
    owner, member = await new_user(db), await new_user(db)
    conversation = await new_group(db, owner)
    start = await latest_event_id(db)
    before = await append(db, draft(conversation, 0))
    # The member joins with the event announcing it, and leaves with another.
    async with db.transaction() as conn:
        [joined] = await append_events(conn, [draft(conversation, 1)])
        await conversations.upsert_members(conn, conversation, [(member, "member")], joined.id)
    during = await append(db, draft(conversation, 2))
    async with db.transaction() as conn:
        [left] = await append_events(conn, [draft(conversation, 3)])
        assert await conversations.deactivate_member(conn, conversation, member, left.id)
    await append(db, draft(conversation, 4))
    ids, _ = await sync_all(db, member, start, 10)
    assert ids == [joined.id, during[0].id, left.id]
    everything, _ = await sync_all(db, owner, start, 10)
    assert everything[0] == before[0].id and len(everything) == 5


async def test_a_cursor_older_than_the_horizon_is_a_gap(db: Database) -> None:
    owner = await new_user(db)
    conversation = await new_group(db, owner)
    start = await latest_event_id(db)
    stored = await append(db, *(draft(conversation, n) for n in range(3)))
    horizon: Any = await db.pool.fetchval("SELECT purged_to FROM event_horizon")
    # As a purge of the first of these would leave it (the rows can stay: only the
    # horizon is read); the horizon is shared by the whole run, so it is put back.
    await db.pool.execute("UPDATE event_horizon SET purged_to = $1", stored[0].id)
    try:
        page = await sync_page(db, owner, start, 10)
        assert page.gap and page.events == []
        assert page.next_cursor == await latest_event_id(db)
        # From the horizon on, nothing is missing: no gap.
        ids, _ = await sync_all(db, owner, stored[0].id, 10)
        assert ids == [e.id for e in stored[1:]]
    finally:
        await db.pool.execute("UPDATE event_horizon SET purged_to = $1", horizon)
