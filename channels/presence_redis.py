"""The Redis presence store: per-node counts with a heartbeat, shared by every node.

Each node keeps its own counts in a hash (`{ns}:presence:node:{node}`: user -> sockets)
and refreshes a heartbeat key with a TTL; a user counts as online if a node whose
heartbeat is alive counts them. A crashed node's counts stop counting when its
heartbeat expires, and the next live node to look reaps them, announcing `offline` for
those now seen nowhere. Counting, the per-user socket limit and the transition
announcements run in one Lua script each, so two nodes changing the same user never
both (or neither) announce, and announcements are published in the order the counts
changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis

from channels.presence_store import (
    BACKEND_ERRORS,
    Count,
    Persisting,
    PersistLastSeen,
    TooManySockets,
    iso,
    now_ms,
    topic,
)

log = logging.getLogger(__name__)


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


class RedisPresenceStore(Persisting):
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
