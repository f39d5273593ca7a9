"""Who is online across nodes, `presence` events on transitions, and which sockets watch whom.

A user is online while any of their sockets is connected on any node. With Redis,
each node keeps its own counts in a hash (`{ns}:presence:node:{node}`: user ->
sockets) and refreshes a heartbeat key with a TTL; a user counts as online if a
node whose heartbeat is alive counts them. A crashed node's counts stop counting
when its heartbeat expires, and the next live node to look reaps them, announcing
`offline` for those now seen nowhere. Counting, the per-user socket limit and the
transition announcements run in one Lua script each, so two nodes changing the same
user never both (or neither) announce, and announcements are published in the order
the counts changed. Without Redis, the counts live in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import redis.asyncio as aioredis
import socketio

from channels.bus import Bus

if TYPE_CHECKING:
    from channels.realtime import Connection

log = logging.getLogger(__name__)

PersistLastSeen = Callable[[list[uuid.UUID], datetime], Awaitable[None]]
LoadLastSeen = Callable[[list[uuid.UUID]], Awaitable[dict[uuid.UUID, datetime]]]
BACKEND_ERRORS = (aioredis.RedisError, OSError)


def topic(user_id: uuid.UUID | str) -> str:
    """The bus topic carrying a user's presence transitions (also the sio room of watchers)."""
    return f"presence:{user_id}"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def wire(user_id: uuid.UUID | str, online: bool, last_seen_ms: int | None) -> dict[str, Any]:
    """The `presence` event payload and the status shape in command answers."""
    return {"user_id": str(user_id), "status": "online" if online else "offline",
            "last_seen": None if last_seen_ms is None else iso(last_seen_ms)}


class TooManySockets(Exception):
    """The user already has the maximum number of connected sockets."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} connected sockets per user")
        self.limit = limit


class WatchLimitExceeded(Exception):
    """A socket would watch more users than allowed."""

    def __init__(self, limit: int, watching: int) -> None:
        super().__init__(f"a socket watches at most {limit} users")
        self.limit = limit
        self.watching = watching


@dataclass(frozen=True)
class Count:
    """What the store knows of one user: sockets connected anywhere, last seen (epoch ms)."""

    sockets: int
    last_seen_ms: int | None


class PresenceStore(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def connect(self, user_id: uuid.UUID, limit: int | None) -> None:
        """Count one socket; raises TooManySockets when limit sockets are already counted."""
        ...

    async def disconnect(self, user_id: uuid.UUID) -> None: ...
    async def counts(self, user_ids: list[uuid.UUID]) -> list[Count]: ...


class _Persisting:
    """Writes last-seen times to the database in the background: connects never wait on it."""

    def __init__(self, persist: PersistLastSeen | None) -> None:
        self._persist = persist
        self._tasks: set[asyncio.Task[None]] = set()

    def _persist_soon(self, user_ids: list[uuid.UUID], at_ms: int) -> None:
        if self._persist is None or not user_ids:
            return
        task = asyncio.create_task(self._write(user_ids, at_ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, user_ids: list[uuid.UUID], at_ms: int) -> None:
        assert self._persist is not None
        try:
            await self._persist(user_ids, datetime.fromtimestamp(at_ms / 1000, UTC))
        except Exception:
            log.warning("last_seen could not be stored", exc_info=True)

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class MemoryPresenceStore(_Persisting):
    """Counts for a single process; transitions go out on the in-process bus."""

    def __init__(self, bus: Bus, persist: PersistLastSeen | None = None) -> None:
        super().__init__(persist)
        self._bus = bus
        self._sockets: dict[uuid.UUID, int] = {}
        self._last_seen: dict[uuid.UUID, int] = {}
        # Held across the announcement too, so events leave in the order counts changed.
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._drain()

    async def connect(self, user_id: uuid.UUID, limit: int | None) -> None:
        async with self._lock:
            count = self._sockets.get(user_id, 0)
            if limit is not None and count >= limit:
                raise TooManySockets(limit)
            self._sockets[user_id] = count + 1
            if count == 0:
                await self._announce(user_id, True)

    async def disconnect(self, user_id: uuid.UUID) -> None:
        async with self._lock:
            count = self._sockets.get(user_id, 0) - 1
            if count > 0:
                self._sockets[user_id] = count
                return
            if self._sockets.pop(user_id, None) is not None:
                await self._announce(user_id, False)

    async def _announce(self, user_id: uuid.UUID, online: bool) -> None:
        at = now_ms()
        self._last_seen[user_id] = at
        self._persist_soon([user_id], at)
        await self._bus.publish(topic(user_id), {"kind": "presence", **wire(user_id, online, at)})

    async def counts(self, user_ids: list[uuid.UUID]) -> list[Count]:
        return [Count(self._sockets.get(u, 0), self._last_seen.get(u)) for u in user_ids]


# Shared by every script: ARGV[1] is the key prefix, ARGV[2] the bus channel prefix of
# presence topics. Keys are built inside the scripts, which a single Redis (or a
# primary with replicas) allows; Redis Cluster would need hash-tagged keys.
_PRELUDE = """
local P, B = ARGV[1], ARGV[2]
local function live_nodes()
  local out = {}
  for _, node in ipairs(redis.call('HKEYS', P .. 'nodes')) do
    if redis.call('EXISTS', P .. 'alive:' .. node) == 1 then out[#out + 1] = node end
  end
  return out
end
local function total(nodes, uid)
  local n = 0
  for _, node in ipairs(nodes) do
    n = n + tonumber(redis.call('HGET', P .. 'node:' .. node, uid) or '0')
  end
  return n
end
local function announce(uid, status, seen_ms, seen_iso, node)
  redis.call('HSET', P .. 'last_seen', uid, seen_ms)
  redis.call('PUBLISH', B .. uid, cjson.encode({kind = 'presence', user_id = uid,
    status = status, last_seen = seen_iso, node = node}))
end
"""

# ARGV: 3 node, 4 user, 5 limit (0: none), 6 now ms, 7 now iso. -1: refused, else sockets before.
_CONNECT = _PRELUDE + """
local before = total(live_nodes(), ARGV[4])
local limit = tonumber(ARGV[5])
if limit > 0 and before >= limit then return -1 end
redis.call('HINCRBY', P .. 'node:' .. ARGV[3], ARGV[4], 1)
if before == 0 then announce(ARGV[4], 'online', ARGV[6], ARGV[7], ARGV[3]) end
return before
"""

# ARGV: 3 node, 4 user, 5 now ms, 6 now iso. 1 when the user went offline.
_DISCONNECT = _PRELUDE + """
local key = P .. 'node:' .. ARGV[3]
local left = redis.call('HINCRBY', key, ARGV[4], -1)
if left <= 0 then redis.call('HDEL', key, ARGV[4]) end
-- Below zero: a reaper took this node's counts while its heartbeat lapsed, and announced.
if left < 0 then return 0 end
if total(live_nodes(), ARGV[4]) == 0 then
  announce(ARGV[4], 'offline', ARGV[5], ARGV[6], ARGV[3])
  return 1
end
return 0
"""

# ARGV: 3 node, 4 ttl ms, 5 now ms. 0 when the node was not alive and registered.
_HEARTBEAT = _PRELUDE + """
local existed = redis.call('EXISTS', P .. 'alive:' .. ARGV[3])
redis.call('SET', P .. 'alive:' .. ARGV[3], '1', 'PX', ARGV[4])
local known = redis.call('HSET', P .. 'nodes', ARGV[3], ARGV[5]) == 0
if existed == 1 and known then return 1 end
return 0
"""

# ARGV: 3 node, 4 now ms, 5 now iso, 6 '1' to clear first, then user, count pairs.
# Puts back this node's counts after its heartbeat lapsed; users it brings back online
# are announced (possibly a second time, if nothing announced them offline meanwhile).
_RESTORE = _PRELUDE + """
local key = P .. 'node:' .. ARGV[3]
if ARGV[6] == '1' then redis.call('DEL', key) end
local nodes = live_nodes()
for i = 7, #ARGV, 2 do
  if total(nodes, ARGV[i]) == 0 then announce(ARGV[i], 'online', ARGV[4], ARGV[5], ARGV[3]) end
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
return 1
"""

# ARGV: 3 dead node, 4 '1' to reap even if alive, 5 its last heartbeat ms, 6 same as iso,
# 7 reaping node. Returns the users announced offline.
_REAP = _PRELUDE + """
local dead = ARGV[3]
if ARGV[4] ~= '1' and redis.call('EXISTS', P .. 'alive:' .. dead) == 1 then return {} end
redis.call('DEL', P .. 'alive:' .. dead)
local key = P .. 'node:' .. dead
local entries = redis.call('HGETALL', key)
redis.call('DEL', key)
redis.call('HDEL', P .. 'nodes', dead)
local nodes = live_nodes()
local gone = {}
for i = 1, #entries, 2 do
  if tonumber(entries[i + 1]) > 0 and total(nodes, entries[i]) == 0 then
    announce(entries[i], 'offline', ARGV[5], ARGV[6], ARGV[7])
    gone[#gone + 1] = entries[i]
  end
end
return gone
"""

# ARGV: 3.. users. Returns sockets, last seen ms (or nil) per user.
_COUNTS = _PRELUDE + """
local nodes = live_nodes()
local out = {}
for i = 3, #ARGV do
  out[#out + 1] = total(nodes, ARGV[i])
  out[#out + 1] = redis.call('HGET', P .. 'last_seen', ARGV[i])
end
return out
"""


class RedisPresenceStore(_Persisting):
    """Per-node counts in Redis with a heartbeat; survives the crash of any node."""

    RESTORE_CHUNK = 500

    def __init__(
        self, client: aioredis.Redis, namespace: str, node_id: str,
        persist: PersistLastSeen | None = None, heartbeat_s: float = 5.0, ttl_s: float = 15.0,
    ) -> None:
        super().__init__(persist)
        self._client = client
        self._node = node_id
        # Must match RedisBus's channel names: the scripts publish straight onto the bus.
        self._base = [f"{namespace}:presence:", f"{namespace}:bus:{topic('')}"]
        self._heartbeat_s = heartbeat_s
        self._ttl_ms = int(ttl_s * 1000)
        self._scripts = {name: client.register_script(body) for name, body in (
            ("connect", _CONNECT), ("disconnect", _DISCONNECT), ("heartbeat", _HEARTBEAT),
            ("restore", _RESTORE), ("reap", _REAP), ("counts", _COUNTS))}
        # This node's counts, to put back if a lapse of its heartbeat let them be reaped.
        self._local: dict[uuid.UUID, int] = {}
        self._beat: asyncio.Task[None] | None = None

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._scripts[name](args=[*self._base, *args])

    async def start(self) -> None:
        # Counts left by an earlier life of this node id (a crash) are stale: reap them first.
        await self._reap(self._node, force=True)
        await self.heartbeat()
        self._beat = asyncio.create_task(self._beat_forever(), name="presence-heartbeat")

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        with contextlib.suppress(*BACKEND_ERRORS):
            await self._reap(self._node, force=True)
        await self._drain()

    async def connect(self, user_id: uuid.UUID, limit: int | None) -> None:
        at = now_ms()
        before = await self._run("connect", self._node, str(user_id), limit or 0, at, iso(at))
        if int(before) < 0:
            assert limit is not None
            raise TooManySockets(limit)
        self._local[user_id] = self._local.get(user_id, 0) + 1
        if int(before) == 0:
            self._persist_soon([user_id], at)

    async def disconnect(self, user_id: uuid.UUID) -> None:
        left = self._local.get(user_id, 0) - 1
        if left > 0:
            self._local[user_id] = left
        else:
            self._local.pop(user_id, None)
        at = now_ms()
        if int(await self._run("disconnect", self._node, str(user_id), at, iso(at))):
            self._persist_soon([user_id], at)

    async def counts(self, user_ids: list[uuid.UUID]) -> list[Count]:
        if not user_ids:
            return []
        raw = await self._run("counts", *(str(u) for u in user_ids))
        return [Count(int(raw[i]), None if raw[i + 1] is None else int(raw[i + 1]))
                for i in range(0, len(raw), 2)]

    async def heartbeat(self) -> None:
        """Refresh this node's heartbeat; put its counts back if it had lapsed; reap dead nodes."""
        at = now_ms()
        if not int(await self._run("heartbeat", self._node, self._ttl_ms, at)):
            # Only reached after a stall longer than the TTL (or at start, with nothing local).
            # A connect racing this restore may leave its user's count off by one here.
            items = list(self._local.items())
            for i in range(0, max(len(items), 1), self.RESTORE_CHUNK):
                chunk = items[i : i + self.RESTORE_CHUNK]
                pairs = [str(v) for user_id, count in chunk for v in (user_id, count)]
                await self._run("restore", self._node, at, iso(at), "1" if i == 0 else "0", *pairs)
        nodes = await self._client.hgetall(self._base[0] + "nodes")
        for raw_node, raw_seen in nodes.items():
            node = raw_node.decode() if isinstance(raw_node, bytes) else str(raw_node)
            if node != self._node and not await self._client.exists(self._base[0] + "alive:" + node):
                await self._reap(node, force=False, seen_ms=int(raw_seen))

    async def _reap(self, node: str, force: bool, seen_ms: int | None = None) -> None:
        if seen_ms is None:
            raw = await self._client.hget(self._base[0] + "nodes", node)
            seen_ms = now_ms() if raw is None else int(raw)
        gone = await self._run("reap", node, "1" if force else "0", seen_ms, iso(seen_ms),
                               self._node)
        if gone:
            log.info("presence reaped a node", extra={"node": node, "offline": len(gone)})
            self._persist_soon([uuid.UUID(g.decode() if isinstance(g, bytes) else g) for g in gone],
                               seen_ms)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self.heartbeat()
            except BACKEND_ERRORS:
                log.warning("presence heartbeat failed; retrying", exc_info=True)


class Presence:
    """This node's side of presence: counts its sockets, and relays changes to watching sockets.

    A watching socket is in the sio room `presence:{user_id}` of each user it watches;
    the node listens to that user's bus topic while any local socket watches them.
    """

    def __init__(self, store: PresenceStore, bus: Bus, load: LoadLastSeen | None = None) -> None:
        self.store = store
        self._bus = bus
        self._load = load
        self._sio: socketio.AsyncServer | None = None
        self._counted: dict[str, uuid.UUID] = {}
        self._watching: dict[str, set[uuid.UUID]] = {}
        self._watchers: dict[uuid.UUID, set[str]] = {}

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
        await self._unwatch(sid, list(self._watching.get(sid, ())))
        user_id = self._counted.pop(sid, None)
        if user_id is not None:
            try:
                await self.store.disconnect(user_id)
            except BACKEND_ERRORS:
                log.warning("presence store unreachable; socket not uncounted", exc_info=True)
    async def watch(self, sids: list[str], user_ids: list[uuid.UUID], limit: int) -> int:
        """Make these local sockets watch these users; returns how many they watch."""
        for sid in sids:
            total = len(self._watching.get(sid, set()) | set(user_ids))
            if total > limit:
                raise WatchLimitExceeded(limit, len(self._watching.get(sid, ())))
        watching = 0
        for sid in sids:
            mine = self._watching.setdefault(sid, set())
            for user_id in user_ids:
                if user_id in mine:
                    continue
                mine.add(user_id)
                watchers = self._watchers.setdefault(user_id, set())
                watchers.add(sid)
                if self._sio is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        await self._sio.enter_room(sid, topic(user_id))
                if len(watchers) == 1:
                    await self._bus.subscribe(topic(user_id), self._on_presence)
            watching = max(watching, len(mine))
        return watching

    async def unwatch(self, sids: list[str], user_ids: list[uuid.UUID]) -> int:
        """Stop these local sockets watching these users; returns how many they still watch."""
        watching = 0
        for sid in sids:
            await self._unwatch(sid, user_ids)
            watching = max(watching, len(self._watching.get(sid, ())))
        return watching

    async def _unwatch(self, sid: str, user_ids: Iterable[uuid.UUID]) -> None:
        mine = self._watching.get(sid)
        if mine is None:
            return
        for user_id in user_ids:
            if user_id not in mine:
                continue
            mine.discard(user_id)
            if self._sio is not None:
                await self._sio.leave_room(sid, topic(user_id))
            watchers = self._watchers.get(user_id, set())
            watchers.discard(sid)
            if not watchers:
                self._watchers.pop(user_id, None)
                await self._bus.unsubscribe(topic(user_id), self._on_presence)
        if not mine:
            del self._watching[sid]

    @property
    def watched_users(self) -> int:
        """How many users this node listens to presence of (for tests and metrics)."""
        return len(self._watchers)

    async def _on_presence(self, message: dict[str, Any]) -> None:
        if self._sio is None:
            return
        payload = {k: message.get(k) for k in ("user_id", "status", "last_seen")}
        await self._sio.emit("presence", payload, room=topic(str(message["user_id"])))

    async def statuses(self, user_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        """Each user's status now, in the order asked: one store round trip, at most one query."""
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
