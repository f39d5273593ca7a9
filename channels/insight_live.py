"""Live owner insights: `insight.updated` to the sockets watching an item's insights.

The analytics worker moves counters in Redis and the roll-ups, but publishes nothing per
event (thousands a second on a hot item), so each node polls instead: while one of its
sockets watches an item, it reads the item's insight once per `interval_s` (1 s) and emits
`insight.updated` to the watchers only when a figure changed. One read serves every local
watcher of the item, and by construction a watcher gets at most one update per interval.
A socket's watches end with `insight.unsubscribe` or when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from channels.realtime import Connection, Realtime

log = logging.getLogger(__name__)

UPDATED = "insight.updated"
DEFAULT_INTERVAL_S = 1.0
# Reads an item's insight as its wire payload; given by the handler that subscribed.
Snapshot = Callable[[], Awaitable[dict[str, Any]]]


def room(item_id: uuid.UUID) -> str:
    return f"insight:{item_id}"


@dataclass
class _Watch:
    snapshot: Snapshot
    sids: set[str] = field(default_factory=set)
    # The figures last sent, without their as_of: an update only when a figure changed.
    last: Any = None
    task: asyncio.Task[None] | None = None


def _figures(payload: Any) -> Any:
    """The payload without freshness stamps, to compare two snapshots."""
    if isinstance(payload, dict):
        return {k: _figures(v) for k, v in payload.items() if k != "as_of"}
    if isinstance(payload, list):
        return [_figures(v) for v in payload]
    return payload


class InsightLive:
    """This node's insight watches, polled once per interval per item."""

    def __init__(self, realtime: Realtime, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self._realtime = realtime
        self.interval_s = interval_s
        self._watches: dict[uuid.UUID, _Watch] = {}
        self._by_sid: dict[str, set[uuid.UUID]] = {}
        realtime.on_unbind.append(self.connection_closed)

    async def subscribe(self, sid: str, item_id: uuid.UUID, snapshot: Snapshot,
                        first: dict[str, Any]) -> None:
        """Watch an item's insight on a local socket; `first` is what its answer carried."""
        if self._realtime.connection(sid) is None:
            return  # the socket closed while the command ran
        watch = self._watches.get(item_id)
        if watch is None:
            watch = self._watches[item_id] = _Watch(snapshot, last=_figures(first))
            watch.task = asyncio.create_task(self._poll(item_id, watch),
                                             name=f"insight-live-{item_id}")
        watch.sids.add(sid)
        self._by_sid.setdefault(sid, set()).add(item_id)
        sio = self._realtime.sio
        if sio is not None:
            with contextlib.suppress(KeyError, ValueError):
                await sio.enter_room(sid, room(item_id))

    async def unsubscribe(self, sid: str, item_id: uuid.UUID) -> None:
        mine = self._by_sid.get(sid)
        if mine is None or item_id not in mine:
            return
        mine.discard(item_id)
        if not mine:
            del self._by_sid[sid]
        sio = self._realtime.sio
        if sio is not None:
            with contextlib.suppress(KeyError, ValueError):
                await sio.leave_room(sid, room(item_id))
        watch = self._watches.get(item_id)
        if watch is None:
            return
        watch.sids.discard(sid)
        if not watch.sids:
            del self._watches[item_id]
            await self._stop(watch)

    async def connection_closed(self, conn: Connection) -> None:
        """A closing socket (or one changing user) stops every watch it had."""
        for item_id in list(self._by_sid.get(conn.sid, ())):
            await self.unsubscribe(conn.sid, item_id)

    def watched(self, sid: str) -> set[uuid.UUID]:
        return set(self._by_sid.get(sid, ()))

    @property
    def polled_items(self) -> int:
        """How many items this node polls (for tests and metrics)."""
        return len(self._watches)

    async def close(self) -> None:
        for watch in list(self._watches.values()):
            await self._stop(watch)
        self._watches.clear()
        self._by_sid.clear()

    @staticmethod
    async def _stop(watch: _Watch) -> None:
        if watch.task is not None:
            watch.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch.task

    async def _poll(self, item_id: uuid.UUID, watch: _Watch) -> None:
        while True:
            # The sleep comes first: the subscribe answer already carried the figures.
            await asyncio.sleep(self.interval_s)
            try:
                payload = await watch.snapshot()
            except Exception:
                # A database or Redis hiccup skips one tick; the next one tries again.
                log.exception("insight live read failed", extra={"item_id": str(item_id)})
                continue
            figures = _figures(payload)
            if figures == watch.last:
                continue
            watch.last = figures
            sio = self._realtime.sio
            if sio is not None and watch.sids:
                await sio.emit(UPDATED, payload, room=room(item_id))
