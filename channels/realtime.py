"""Which sockets this node holds, and delivery to them; the only module that emits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import socketio

from channels.bus import Bus

log = logging.getLogger(__name__)


@dataclass
class Connection:
    sid: str
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None


class Realtime:
    """Local connections by user, kept in step with the bus topics this node listens to."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._sio: socketio.AsyncServer | None = None
        self._connections: dict[str, Connection] = {}
        self._by_user: dict[uuid.UUID, set[str]] = {}
        # Commands in flight per socket: ending a session waits until their acks are out.
        self._busy: dict[str, int] = {}
        self._pending_end: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def connection(self, sid: str) -> Connection | None:
        return self._connections.get(sid)

    async def connected(self, sid: str) -> None:
        self._connections[sid] = Connection(sid)

    async def bind(self, sid: str, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """Tie a socket to a user's session: it now receives that user's events."""
        conn = self._connections.setdefault(sid, Connection(sid))
        if conn.user_id is not None and conn.user_id != user_id:
            await self._unbind(conn)
        conn.user_id, conn.session_id = user_id, session_id
        sids = self._by_user.setdefault(user_id, set())
        first = not sids
        sids.add(sid)
        if self._sio is not None:
            await self._sio.enter_room(sid, self.user_room(user_id))
        if first:
            await self.bus.subscribe(self.user_topic(user_id), self._on_user_message)

    async def disconnected(self, sid: str) -> None:
        conn = self._connections.pop(sid, None)
        self._busy.pop(sid, None)
        self._pending_end.pop(sid, None)
        if conn is not None:
            await self._unbind(conn)

    def begin_command(self, sid: str) -> None:
        self._busy[sid] = self._busy.get(sid, 0) + 1

    def end_command(self, sid: str) -> None:
        left = self._busy.get(sid, 1) - 1
        if left > 0:
            self._busy[sid] = left
            return
        self._busy.pop(sid, None)
        reason = self._pending_end.pop(sid, None)
        if reason is not None:
            self.end_local_soon(sid, reason)

    def end_local_soon(self, sid: str, reason: str) -> None:
        """End a socket's session after the current ack has been queued to it."""
        task = asyncio.create_task(self._end_local(sid, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_local(self, sid: str, reason: str) -> None:
        if self._sio is None or sid not in self._connections:
            return
        if self._busy.get(sid):
            self._pending_end[sid] = reason
            return
        await self._sio.emit("session.revoked", {"reason": reason}, to=sid)
        await self._sio.disconnect(sid)

    async def _unbind(self, conn: Connection) -> None:
        if conn.user_id is None:
            return
        sids = self._by_user.get(conn.user_id)
        if sids is not None:
            sids.discard(conn.sid)
            if not sids:
                del self._by_user[conn.user_id]
                await self.bus.unsubscribe(self.user_topic(conn.user_id), self._on_user_message)
        conn.user_id = conn.session_id = None

    @staticmethod
    def user_topic(user_id: uuid.UUID) -> str:
        return f"user:{user_id}"

    @staticmethod
    def user_room(user_id: uuid.UUID) -> str:
        return f"user:{user_id}"

    async def send_to_user(self, user_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        """Deliver an event to every device of a user, on whichever nodes they are."""
        await self.bus.publish(
            self.user_topic(user_id),
            {"kind": "emit", "user_id": str(user_id), "event": event, "data": data},
        )

    async def end_sessions(
        self, user_id: uuid.UUID, session_ids: list[uuid.UUID] | None, reason: str
    ) -> None:
        """Tell and disconnect the sockets of these sessions (None: all of the user's)."""
        await self.bus.publish(
            self.user_topic(user_id),
            {
                "kind": "end_sessions",
                "user_id": str(user_id),
                "sessions": None if session_ids is None else [str(s) for s in session_ids],
                "reason": reason,
            },
        )

    async def _on_user_message(self, message: dict[str, Any]) -> None:
        if self._sio is None:
            return
        user_id = uuid.UUID(message["user_id"])
        if message["kind"] == "emit":
            await self._sio.emit(message["event"], message["data"], room=self.user_room(user_id))
        elif message["kind"] == "end_sessions":
            wanted = message["sessions"]
            for sid in list(self._by_user.get(user_id, ())):
                conn = self._connections.get(sid)
                if conn is None:
                    continue
                if wanted is None or str(conn.session_id) in wanted:
                    await self._end_local(sid, message["reason"])

    async def shutdown(self, reconnect_after_ms: int = 1000) -> None:
        """Tell every local socket this node is going away, then close them."""
        if self._sio is None or not self._connections:
            return
        payload = {"reason": "server_shutdown", "reconnect_after_ms": reconnect_after_ms}
        sids = list(self._connections)
        await asyncio.gather(
            *(self._sio.emit("server.shutdown", payload, to=sid) for sid in sids),
            return_exceptions=True,
        )
        await asyncio.gather(
            *(self._sio.disconnect(sid) for sid in sids), return_exceptions=True
        )
