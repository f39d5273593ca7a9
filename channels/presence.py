"""Who watches whose presence on this node, and delivery of `presence` events to them.

A socket watches users with presence.subscribe. It receives a watched user's transitions
only while its own user may see that user's presence (storage/presence.py: the rule is
in docs/conversations.md). Those watches are *live*: the socket is in the sio room
`presence:{user_id}`. The others are *held*: watched (and counted against the limit) but
silent; the user reads `offline` with `last_seen: null`, as a user never seen does.

Who may see whom changes with blocks, follows, friendships and shared conversations. The
handler that changes one calls access_changed() after its commit, which publishes on the
user's presence topic (reaching the nodes where someone watches the user) and on the
user's viewer topic (reaching the nodes where the user watches someone). Each such node
re-checks the watches concerned in one query: a live watch that lost sight leaves the
room and gets one last `offline, last_seen: null`; a held one that gained it joins the
room and gets the current status.

Every bus message (transitions and re-checks) is handled in arrival order by one task per
node, so a transition that arrives after a re-check never reaches a socket the re-check
drops, and the bus reader never waits on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import socketio

from channels.bus import Bus
from channels.presence_redis import RedisPresenceStore
from channels.presence_store import (
    BACKEND_ERRORS,
    Count,
    LoadLastSeen,
    MemoryPresenceStore,
    PersistLastSeen,
    PresenceStore,
    TooManySockets,
    now_ms,
    topic,
    wire,
)

if TYPE_CHECKING:
    from channels.realtime import Connection

__all__ = [
    "BACKEND_ERRORS", "Count", "LoadLastSeen", "MemoryPresenceStore", "PersistLastSeen",
    "Presence", "PresenceStore", "RedisPresenceStore", "TooManySockets", "Visible",
    "WatchLimitExceeded", "topic", "viewer_topic", "wire",
]

log = logging.getLogger(__name__)

# Given viewers and targets, the (viewer, target) pairs where the viewer may see the
# target's presence (storage/presence.py: visible_pairs).
Visible = Callable[[list[uuid.UUID], list[uuid.UUID]], Awaitable[set[tuple[uuid.UUID, uuid.UUID]]]]
ACCESS = "presence.access"


def viewer_topic(user_id: uuid.UUID | str) -> str:
    """The bus topic of re-checks of what a user watches (nodes holding its watching sockets)."""
    return f"presence-viewer:{user_id}"


class WatchLimitExceeded(Exception):
    """A socket would watch more users than allowed."""

    def __init__(self, limit: int, watching: int) -> None:
        super().__init__(f"a socket watches at most {limit} users")
        self.limit = limit
        self.watching = watching


class Presence:
    """This node's side of presence: counts its sockets, and relays changes to watching sockets."""

    def __init__(self, store: PresenceStore, bus: Bus, load: LoadLastSeen | None = None,
                 visible: Visible | None = None) -> None:
        self.store = store
        self._bus = bus
        self._load = load
        # Re-checks the watches an access change concerns; None: watches never change.
        self._visible = visible
        self._sio: socketio.AsyncServer | None = None
        self._counted: dict[str, uuid.UUID] = {}
        # Per watching socket: its user, the users it watches, and those of them it may see.
        self._viewer: dict[str, uuid.UUID] = {}
        self._wanted: dict[str, set[uuid.UUID]] = {}
        self._live: dict[str, set[uuid.UUID]] = {}
        # Local watching sockets per watched user, and per watching user (bus topics).
        self._watchers: dict[uuid.UUID, set[str]] = {}
        self._viewing: dict[uuid.UUID, set[str]] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        # Watch changes and re-checks apply one at a time.
        self._lock = asyncio.Lock()

    async def socket_bound(
        self, sio: socketio.AsyncServer | None, sid: str, user_id: uuid.UUID,
        limit: int | None = None,
    ) -> None:
        """Count a socket bound to a user; raises TooManySockets beyond limit, counting nothing."""
        self._sio = sio or self._sio
        if self._counted.get(sid) != user_id:
            try:
                await self.store.connect(user_id, limit)
                self._counted[sid] = user_id
            except BACKEND_ERRORS:
                # Presence is ephemeral: an unreachable store must not refuse the socket.
                log.warning("presence store unreachable; socket not counted", exc_info=True)

    async def socket_closed(self, conn: Connection) -> None:
        """Forget a socket going away or changing user: its watches, then its count."""
        sid = conn.sid
        async with self._lock:
            await self._unwatch(sid, list(self._wanted.get(sid, ())))
        user_id = self._counted.pop(sid, None)
        if user_id is not None:
            try:
                await self.store.disconnect(user_id)
            except BACKEND_ERRORS:
                log.warning("presence store unreachable; socket not uncounted", exc_info=True)

    async def watch(self, sid: str, viewer: uuid.UUID, user_ids: list[uuid.UUID],
                    visible: set[uuid.UUID], limit: int) -> int:
        """Make a local socket of `viewer` watch these users, live for those in `visible`.

        Returns how many users the socket watches; beyond `limit` raises
        WatchLimitExceeded and changes nothing. Watching a user again re-applies `visible`.
        """
        async with self._lock:
            mine = self._wanted.get(sid, set())
            if len(mine | set(user_ids)) > limit:
                raise WatchLimitExceeded(limit, len(mine))
            self._viewer[sid] = viewer
            mine = self._wanted.setdefault(sid, set())
            self._live.setdefault(sid, set())
            sids = self._viewing.setdefault(viewer, set())
            if not sids:
                await self._bus.subscribe(viewer_topic(viewer), self._on_message)
            sids.add(sid)
            for user_id in user_ids:
                if user_id not in mine:
                    mine.add(user_id)
                    watchers = self._watchers.setdefault(user_id, set())
                    watchers.add(sid)
                    if len(watchers) == 1:
                        await self._bus.subscribe(topic(user_id), self._on_message)
                await self._set_live(sid, user_id, user_id in visible)
            return len(mine)

    async def unwatch(self, sid: str, user_ids: list[uuid.UUID]) -> int:
        """Stop a local socket watching these users; returns how many it still watches."""
        async with self._lock:
            await self._unwatch(sid, user_ids)
            return len(self._wanted.get(sid, ()))

    async def _unwatch(self, sid: str, user_ids: Iterable[uuid.UUID]) -> None:
        mine = self._wanted.get(sid)
        if mine is None:
            return
        for user_id in user_ids:
            if user_id not in mine:
                continue
            await self._set_live(sid, user_id, False)
            mine.discard(user_id)
            watchers = self._watchers.get(user_id, set())
            watchers.discard(sid)
            if not watchers:
                self._watchers.pop(user_id, None)
                await self._bus.unsubscribe(topic(user_id), self._on_message)
        if mine:
            return
        del self._wanted[sid]
        self._live.pop(sid, None)
        viewer = self._viewer.pop(sid)
        sids = self._viewing.get(viewer, set())
        sids.discard(sid)
        if not sids:
            self._viewing.pop(viewer, None)
            await self._bus.unsubscribe(viewer_topic(viewer), self._on_message)

    async def _set_live(self, sid: str, user_id: uuid.UUID, live: bool) -> bool:
        """Put a watch in or out of the user's room; True if that changed it."""
        mine = self._live.setdefault(sid, set())
        if (user_id in mine) == live:
            return False
        if live:
            mine.add(user_id)
            if self._sio is not None:
                with contextlib.suppress(KeyError, ValueError):
                    await self._sio.enter_room(sid, topic(user_id))
        else:
            mine.discard(user_id)
            if self._sio is not None:
                with contextlib.suppress(KeyError, ValueError):
                    await self._sio.leave_room(sid, topic(user_id))
        return True

    @property
    def watched_users(self) -> int:
        """How many users this node listens to presence of (for tests and metrics)."""
        return len(self._watchers)

    def live(self, sid: str) -> set[uuid.UUID]:
        """The users a local socket watches and may see now (for tests)."""
        return set(self._live.get(sid, ()))

    async def access_changed(self, users: Sequence[uuid.UUID],
                             others: Sequence[uuid.UUID] | None = None) -> None:
        """Who may see the presence of each of `users`, or whose they may see, changed.

        With `others`, only between them and those users; None: with anyone. Call it after
        the change committed; nodes watching on either side re-check. Best effort: if the
        bus is unreachable the change stands and takes effect at the next subscribe.
        """
        listed = None if others is None else sorted({str(u) for u in others})
        messages: list[tuple[str, dict[str, Any]]] = []
        for user in dict.fromkeys(users):
            messages.append((topic(user), {"kind": ACCESS, "target": str(user), "others": listed}))
            messages.append((viewer_topic(user), {"kind": ACCESS, "viewer": str(user),
                                                  "others": listed}))
        if not messages:
            return
        try:
            await self._bus.publish_many(messages)
        except BACKEND_ERRORS:
            log.warning("presence re-check not published", exc_info=True)

    async def _on_message(self, message: dict[str, Any]) -> None:
        # Never awaits the database: the bus reader calls this for every message it reads.
        self._inbox.put_nowait(message)
        if self._consumer is None or self._consumer.done():
            self._consumer = asyncio.create_task(self._consume(), name="presence-fanout")

    async def _consume(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                if message.get("kind") == ACCESS:
                    await self._recheck(message)
                elif message.get("kind") == "presence":
                    await self._deliver(message)
            except Exception:
                log.exception("presence message could not be handled")

    async def close(self) -> None:
        """Stop handling bus messages (at shutdown)."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer

    async def _deliver(self, message: dict[str, Any]) -> None:
        if self._sio is None:
            return
        payload = {k: message.get(k) for k in ("user_id", "status", "last_seen")}
        # The room holds only the live watches: the sockets that may see this user.
        await self._sio.emit("presence", payload, room=topic(str(message["user_id"])))

    def _concerned(self, message: dict[str, Any]) -> list[tuple[str, uuid.UUID, uuid.UUID]]:
        """The local watches (socket, viewer, watched user) a re-check message is about."""
        others = message.get("others")
        among = None if others is None else {uuid.UUID(str(u)) for u in others}
        if message.get("target") is not None:
            target = uuid.UUID(str(message["target"]))
            return [(sid, self._viewer[sid], target) for sid in self._watchers.get(target, ())
                    if among is None or self._viewer[sid] in among]
        viewer = uuid.UUID(str(message["viewer"]))
        return [(sid, viewer, user) for sid in self._viewing.get(viewer, ())
                for user in self._wanted.get(sid, ()) if among is None or user in among]

    async def _recheck(self, message: dict[str, Any]) -> None:
        watches = self._concerned(message)
        if not watches or self._visible is None:
            return
        try:
            allowed = await self._visible(sorted({w[1] for w in watches}),
                                          sorted({w[2] for w in watches}))
        except Exception:
            # Fail closed: held watches read offline, which any user may be; a later
            # re-check or subscribe brings them back.
            log.exception("presence visibility re-check failed")
            allowed = set()
        gained: list[tuple[str, uuid.UUID]] = []
        async with self._lock:
            for sid, viewer, user in watches:
                if user not in self._wanted.get(sid, ()):
                    continue  # unwatched while the query ran
                may = (viewer, user) in allowed
                if not await self._set_live(sid, user, may):
                    continue
                if may:
                    gained.append((sid, user))
                elif self._sio is not None:
                    # The last word is what anyone without access reads.
                    await self._sio.emit("presence", wire(user, False, None), to=sid)
        if gained and self._sio is not None:
            now = {s["user_id"]: s for s in await self.statuses(sorted({u for _, u in gained}))}
            for sid, user in gained:
                await self._sio.emit("presence", now[str(user)], to=sid)

    async def statuses(self, user_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        """Each user's status now, in the order asked: one store round trip, at most one query."""
        if not user_ids:
            return []
        counts = await self.store.counts(user_ids)
        unknown = [u for u, c in zip(user_ids, counts, strict=True)
                   if c.sockets == 0 and c.last_seen_ms is None]
        durable = await self._load(unknown) if unknown and self._load is not None else {}
        now = now_ms()
        out = []
        for user_id, count in zip(user_ids, counts, strict=True):
            if count.sockets > 0:
                # Online users are being seen right now.
                out.append(wire(user_id, True, now))
                continue
            seen = count.last_seen_ms
            if seen is None and user_id in durable:
                seen = int(durable[user_id].timestamp() * 1000)
            out.append(wire(user_id, False, seen))
        return out
