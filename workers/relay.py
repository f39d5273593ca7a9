"""The event relay: publishes stored conversation events to the bus, in id order.

Every writer appends events in one total order (storage/events.py); exactly one relay
in the cluster (holding a session advisory lock; others wait as standbys) tails that
log and publishes each event once it is committed. So clients receive only stored
events, in the same order as history and sync. After a crash the relay resumes from
its saved position: an event may be published twice, never skipped; clients drop a
live event whose cursor they have already seen. The position is saved at most once per
`SAVE_EVERY_S` while events keep coming, and whenever the relay catches up, so a crash
republishes at most about that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from channels.bus import Bus
from channels.topics import conversation_topic, user_topic
from storage import events as event_store
from storage.db import Database, connect_one
from storage.events import StoredEvent

log = logging.getLogger(__name__)
RELAY_LOCK_KEY = 0x48535F52454C4159
# Saving the position is a committed write (a WAL flush): not after every busy batch.
SAVE_EVERY_S = 1.0


def routes(event: StoredEvent) -> list[tuple[str, dict[str, Any]]]:
    """The bus messages for one event, in the order they must go out.

    Membership changes also go to the affected users' topics, so the nodes holding
    their sockets can join or leave the conversation's room: before the room
    broadcast for a join, after it for a leave.
    """
    body = {"kind": "event", "event": event.kind, "conversation_id": str(event.conversation_id),
            "data": event.to_wire()}
    if event.audience is not None:
        return [(user_topic(u), {**body, "user_id": str(u)}) for u in event.audience]
    affected = [str(u) for u in event.payload.get("user_ids", [])]
    room = (conversation_topic(event.conversation_id), body)
    if event.kind == "member.joined":
        return [*[(user_topic(u), {**body, "kind": "join", "user_id": u}) for u in affected], room]
    if event.kind == "member.left":
        return [room, *[(user_topic(u), {**body, "kind": "leave", "user_id": u}) for u in affected]]
    return [room]


class EventRelay:
    def __init__(self, db: Database, dsn: str, bus: Bus, batch: int = 500) -> None:
        self.db = db
        self.dsn = dsn
        self.bus = bus
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self.active = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="event-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _notified(self, *args: Any) -> None:
        self._wakeup.set()

    async def _run_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event relay failed; restarting", extra={"delay": delay})
                self.active = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _run_once(self) -> None:
        conn: asyncpg.Connection = await connect_one(self.dsn)
        try:
            # Another relay is active while the lock is taken: stand by and try again.
            while not await conn.fetchval(  # noqa: ASYNC110
                "SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY
            ):
                await asyncio.sleep(1.0)
            self.active = True
            log.info("event relay active")
            await conn.add_listener(event_store.NOTIFY_CHANNEL, self._notified)
            position = saved = await event_store.relay_position(conn)
            loop = asyncio.get_running_loop()
            saved_at = loop.time()
            while True:
                self._wakeup.clear()
                events = await event_store.events_after(conn, position, self.batch)
                if not events:
                    if position != saved:
                        await event_store.save_relay_position(conn, position)
                        saved, saved_at = position, loop.time()
                    # NOTIFY wakes us at once; the timeout only bounds a lost notification.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
                    continue
                messages = [route for event in events for route in routes(event)]
                await self.bus.publish_many(messages)
                position = events[-1].id
                if loop.time() - saved_at >= SAVE_EVERY_S:
                    await event_store.save_relay_position(conn, position)
                    saved, saved_at = position, loop.time()
        finally:
            self.active = False
            with contextlib.suppress(Exception):
                await conn.close()
