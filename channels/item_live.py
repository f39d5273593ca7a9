"""Live item updates: sockets subscribe to items; hot items are coalesced per node.

Anything that changes an item publishes on the bus topic `item:{id}`; a node listens
to that topic only while one of its sockets is subscribed to the item, and emits to
the sio room `item:{id}`. Per item, a node emits at most one flush per `interval_s`
(4 per second by default): the first event after a quiet period goes out at once;
events arriving within the following interval wait for one flush at its end.

- `item.updated`: only the newest value of each field is sent (fields merge, and a
  field set by an older `version` never overrides a newer one);
- `comment.new`: the comments of one flush go out as one batch, in arrival order,
  none dropped;
- any other event flushes what is pending, then goes out as is, in order.

Each flush re-checks who may still see the item: a socket whose user lost sight of it
(a block, an unfollow, a narrowed audience, leaving a private clique, a deletion of the
thread's root) is unsubscribed before anything is emitted. Comments whose author and the
subscriber block each other are left out of that subscriber's batch (see docs/content.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from channels.bus import Bus

if TYPE_CHECKING:
    from channels.realtime import Connection, Realtime

log = logging.getLogger(__name__)

UPDATED = "item.updated"
COMMENT_NEW = "comment.new"
DEFAULT_INTERVAL_S = 0.25
BUS_ERRORS = (aioredis.RedisError, OSError)
# Given subscribers and authors, the (subscriber, author) pairs that block each other.
BlockedPairs = Callable[
    [list[uuid.UUID], list[uuid.UUID]], Awaitable[set[tuple[uuid.UUID, uuid.UUID]]]
]
# Given an item and users, those of them who may see it now.
Viewers = Callable[[uuid.UUID, list[uuid.UUID]], Awaitable[set[uuid.UUID]]]


def topic(item_id: uuid.UUID | str) -> str:
    """The bus topic of an item's live events (also the sio room of its subscribers)."""
    return f"item:{item_id}"


class SubscriptionLimitExceeded(Exception):
    """A socket would subscribe to more items than allowed."""

    def __init__(self, limit: int, subscribed: int) -> None:
        super().__init__(f"a socket subscribes to at most {limit} items")
        self.limit = limit
        self.subscribed = subscribed


@dataclass
class _Window:
    """One item's coalescing state on this node, while a local socket is subscribed."""

    author_id: uuid.UUID | None
    sids: set[str] = field(default_factory=set)
    # The newest (version, value) of each item.updated field this node has seen.
    fields: dict[str, tuple[int, Any]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    comments: list[dict[str, Any]] = field(default_factory=list)
    others: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    last_flush: float = float("-inf")
    # The task that sleeps until the next flush, then runs it; None while none is due.
    timer: asyncio.Task[None] | None = None
    timer_wait: float = 0.0
    # One flush at a time per item, so batches leave in order.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ItemLive:
    """This node's item subscriptions, and coalesced delivery of item events to them."""

    def __init__(self, bus: Bus, realtime: Realtime, blocked: BlockedPairs | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S, viewers: Viewers | None = None) -> None:
        self._bus = bus
        self._realtime = realtime
        self._blocked = blocked
        self._viewers = viewers
        self.interval_s = interval_s
        self._windows: dict[uuid.UUID, _Window] = {}
        self._by_sid: dict[str, set[uuid.UUID]] = {}
        self._users: dict[str, uuid.UUID] = {}
        self._lock = asyncio.Lock()
        realtime.on_unbind.append(self.connection_closed)

    async def publish(self, item_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        """Tell every node with a subscriber of the item; call it after the change committed.

        `item.updated` data holds the changed fields (and optionally `version`, an integer
        that grows with each committed change); `comment.new` data is one comment, with
        `author_id`.
        """
        try:
            await self._bus.publish(topic(item_id), {"kind": "item", "item_id": str(item_id),
                                                     "event": event, "data": data})
        except BUS_ERRORS:
            # The change is stored; live delivery is best effort and clients catch up by reading.
            log.warning("item live event not published", exc_info=True,
                        extra={"item_id": str(item_id), "event": event})

    async def subscribe(self, sid: str, user_id: uuid.UUID, item_id: uuid.UUID,
                        author_id: uuid.UUID | None, limit: int) -> int:
        """Subscribe a local socket to an item; returns how many items it is subscribed to."""
        async with self._lock:
            mine = self._by_sid.get(sid, set())
            if item_id not in mine and len(mine) >= limit:
                raise SubscriptionLimitExceeded(limit, len(mine))
            if self._realtime.connection(sid) is None:
                return len(mine)  # the socket closed while the command ran
            self._by_sid.setdefault(sid, set()).add(item_id)
            self._users[sid] = user_id
            window = self._windows.get(item_id)
            newly = window is None
            if window is None:
                window = self._windows[item_id] = _Window(author_id)
            window.sids.add(sid)
            sio = self._realtime.sio
            if sio is not None:
                with contextlib.suppress(KeyError, ValueError):
                    await sio.enter_room(sid, topic(item_id))
            if newly:
                await self._bus.subscribe(topic(item_id), self._on_message)
            return len(self._by_sid[sid])

    async def unsubscribe(self, sid: str, item_ids: Iterable[uuid.UUID]) -> int:
        """Unsubscribe a local socket from items (others ignored); returns how many are left."""
        async with self._lock:
            await self._drop(sid, list(item_ids))
            return len(self._by_sid.get(sid, ()))

    async def connection_closed(self, conn: Connection) -> None:
        """A closing socket (or one changing user) loses every item subscription."""
        async with self._lock:
            await self._drop(conn.sid, list(self._by_sid.get(conn.sid, ())))

    def subscriptions(self, sid: str) -> set[uuid.UUID]:
        """The items a local socket is subscribed to."""
        return set(self._by_sid.get(sid, ()))

    @property
    def subscribed_items(self) -> int:
        """How many items this node listens to (for tests and metrics)."""
        return len(self._windows)

    async def close(self) -> None:
        """Stop pending flushes and every bus subscription."""
        for item_id, window in list(self._windows.items()):
            if window.timer is not None:
                window.timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await window.timer
            await self._bus.unsubscribe(topic(item_id), self._on_message)
        self._windows.clear()
        self._by_sid.clear()
        self._users.clear()

    async def _drop(self, sid: str, item_ids: list[uuid.UUID]) -> None:
        mine = self._by_sid.get(sid)
        if mine is None:
            return
        sio = self._realtime.sio
        for item_id in item_ids:
            if item_id not in mine:
                continue
            mine.discard(item_id)
            if sio is not None:
                with contextlib.suppress(KeyError, ValueError):
                    await sio.leave_room(sid, topic(item_id))
            window = self._windows.get(item_id)
            if window is None:
                continue
            window.sids.discard(sid)
            if not window.sids:
                del self._windows[item_id]
                if window.timer is not None:
                    window.timer.cancel()
                await self._bus.unsubscribe(topic(item_id), self._on_message)
        if not mine:
            del self._by_sid[sid]
            self._users.pop(sid, None)

    async def _on_message(self, message: dict[str, Any]) -> None:
        # Never awaits: the bus reader calls this for every message of every item.
        item_id = uuid.UUID(message["item_id"])
        window = self._windows.get(item_id)
        if window is None:
            return  # the last local subscriber left while the message travelled
        event, data = message["event"], message["data"]
        if event == UPDATED:
            version = int(data.get("version") or 0)
            for name, value in data.items():
                if name in ("item_id", "version"):
                    continue
                known = window.fields.get(name)
                if known is None or version >= known[0]:
                    window.fields[name] = (version, value)
                    window.dirty.add(name)
        elif event == COMMENT_NEW:
            window.comments.append(data)
        else:
            # Rare events (edits, deletes) go out at once, after what is pending.
            window.others.append((event, data))
        self._schedule(item_id, window, at_once=event not in (UPDATED, COMMENT_NEW))

    def _schedule(self, item_id: uuid.UUID, window: _Window, at_once: bool) -> None:
        """Make sure a flush is due: now after a quiet interval, else at the interval's end."""
        wait = 0.0 if at_once else window.last_flush + self.interval_s - time.monotonic()
        if window.timer is not None:
            if not at_once or window.timer_wait <= 0:
                return  # a flush is already due, soon enough
            window.timer.cancel()  # still sleeping: replaced by one that flushes now
        window.timer_wait = max(wait, 0.0)
        window.timer = asyncio.create_task(self._flush_later(item_id, window, window.timer_wait))

    async def _flush_later(self, item_id: uuid.UUID, window: _Window, wait: float) -> None:
        if wait > 0:
            await asyncio.sleep(wait)
        window.timer = None
        async with window.lock:
            try:
                await self._flush(item_id, window)
            except Exception:
                log.exception("item live flush failed", extra={"item_id": str(item_id)})

    async def _flush(self, item_id: uuid.UUID, window: _Window) -> None:
        """Emit what is pending for an item: its newest fields, its comment batch, the rest."""
        if not window.dirty and not window.comments and not window.others:
            return
        window.last_flush = time.monotonic()
        updated: dict[str, Any] | None = None
        if window.dirty:
            version = max(window.fields[name][0] for name in window.dirty)
            updated = {"item_id": str(item_id), "version": version,
                       **{name: window.fields[name][1] for name in sorted(window.dirty)}}
            window.dirty.clear()
        comments, window.comments = window.comments, []
        others, window.others = window.others, []
        await self._drop_unseeing(item_id, window)
        hidden = await self._hidden(item_id, window, comments)
        if self._windows.get(item_id) is not window:
            return  # everyone left during the block check
        if updated is not None:
            await self._emit(item_id, window, UPDATED, updated)
        if comments:
            await self._emit_comments(item_id, window, comments, hidden)
        for event, data in others:
            await self._emit(item_id, window, event, data)

    async def _drop_unseeing(self, item_id: uuid.UUID, window: _Window) -> None:
        """Unsubscribe the local sockets whose users may no longer see the item."""
        if self._viewers is None:
            return
        users = {self._users[sid] for sid in window.sids if sid in self._users}
        if not users:
            return
        try:
            allowed = await self._viewers(item_id, sorted(users))
        except Exception:
            # Like the block check: everyone here could see the item when they subscribed,
            # and dropping them all on a database hiccup would silently end their updates.
            log.exception("item live visibility check failed", extra={"item_id": str(item_id)})
            return
        gone = [sid for sid in list(window.sids) if self._users.get(sid) not in allowed]
        for sid in gone:
            await self.unsubscribe(sid, [item_id])

    async def _hidden(self, item_id: uuid.UUID, window: _Window,
                      comments: list[dict[str, Any]]) -> dict[str, set[str]]:
        """Per local socket, the comment authors it must not see; cuts sockets off the item
        when their user and the item's author block each other."""
        if self._blocked is None:
            return {}
        users = {self._users[sid] for sid in window.sids if sid in self._users}
        authors = {uuid.UUID(str(c["author_id"])) for c in comments if c.get("author_id")}
        if window.author_id is not None:
            authors.add(window.author_id)
        if not users or not authors:
            return {}
        try:
            pairs = await self._blocked(sorted(users), sorted(authors))
        except Exception:
            log.exception("item live block check failed", extra={"item_id": str(item_id)})
            return {}
        if not pairs:
            return {}
        gone: list[str] = []
        hidden: dict[str, set[str]] = {}
        for sid in list(window.sids):
            user = self._users.get(sid)
            blocked = {str(a) for u, a in pairs if u == user}
            if window.author_id is not None and str(window.author_id) in blocked:
                gone.append(sid)
            elif blocked:
                hidden[sid] = blocked
        for sid in gone:
            await self.unsubscribe(sid, [item_id])
        return hidden

    async def _emit_comments(self, item_id: uuid.UUID, window: _Window,
                             comments: list[dict[str, Any]], hidden: dict[str, set[str]]) -> None:
        await self._emit(item_id, window, COMMENT_NEW,
                         {"item_id": str(item_id), "comments": comments}, skip=list(hidden))
        sio = self._realtime.sio
        if sio is None:
            return
        for sid, authors in hidden.items():
            mine = [c for c in comments if str(c.get("author_id")) not in authors]
            if mine and sid in window.sids:
                await sio.emit(COMMENT_NEW, {"item_id": str(item_id), "comments": mine}, to=sid)

    async def _emit(self, item_id: uuid.UUID, window: _Window, event: str, data: dict[str, Any],
                    skip: list[str] | None = None) -> None:
        sio = self._realtime.sio
        if sio is None or not window.sids:
            return
        await sio.emit(event, data, room=topic(item_id), skip_sid=skip or None)
