"""Which sockets this node holds, and delivery to them; the only module that emits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import socketio

from channels.bus import Bus
from channels.topics import conversation_topic, user_topic

if TYPE_CHECKING:
    from channels.presence import Presence

log = logging.getLogger(__name__)


@dataclass
class Connection:
    sid: str
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None


class Realtime:
    """Local connections by user, kept in step with the bus topics this node listens to.

    A node subscribes to `user:{id}` for each user it holds a socket of, and to
    `conv:{id}` for each conversation one of those users belongs to; each
    conversation event then arrives once per node and is emitted to the
    conversation's room, encoded once for all its local sockets.
    """

    def __init__(
        self, bus: Bus,
        conversations_of: Callable[[uuid.UUID], Awaitable[list[uuid.UUID]]] | None = None,
        presence: Presence | None = None,
    ) -> None:
        self.bus = bus
        self.presence = presence
        # Called with a socket's connection as it closes or changes user (typing, presence).
        self.on_unbind: list[Callable[[Connection], Awaitable[None]]] = []
        if presence is not None:
            self.on_unbind.append(presence.socket_closed)
        self._conversations_of = conversations_of
        # Conversations of each local user, and local users of each conversation.
        self._user_convs: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._conv_users: dict[uuid.UUID, set[uuid.UUID]] = {}
        # The cursor of the member.joined that made this node subscribe to a conversation.
        self._joined_directly: dict[uuid.UUID, str | None] = {}
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
    def sio(self) -> socketio.AsyncServer | None:
        """The Socket.IO server, for channels that keep their own rooms (item_live)."""
        return self._sio

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def connection(self, sid: str) -> Connection | None:
        return self._connections.get(sid)

    def tracks_member(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
        """Whether this node holds a socket of the user and counts them a member here.

        It lags a leave by the time the relay takes to bring the event, so it is only a
        hint for refusing early; the storing worker decides.
        """
        return conversation_id in self._user_convs.get(user_id, ())

    async def connected(self, sid: str) -> None:
        self._connections[sid] = Connection(sid)

    async def bind(self, sid: str, user_id: uuid.UUID, session_id: uuid.UUID,
                   socket_limit: int | None = None) -> None:
        """Tie a socket to a user's session: it now receives that user's events."""
        conn = self._connections.setdefault(sid, Connection(sid))
        if conn.user_id is not None and conn.user_id != user_id:
            for hook in self.on_unbind:
                try:
                    await hook(conn)
                except Exception:
                    log.exception("unbind hook failed")
            await self._unbind(conn)
        if self.presence is not None:
            # Counted first: past socket_limit this raises TooManySockets with nothing bound.
            await self.presence.socket_bound(self._sio, sid, user_id, socket_limit)
        conn.user_id, conn.session_id = user_id, session_id
        sids = self._by_user.setdefault(user_id, set())
        first = not sids
        sids.add(sid)
        if self._sio is not None:
            await self._sio.enter_room(sid, self.user_room(user_id))
        if first:
            await self.bus.subscribe(user_topic(user_id), self._on_user_message)
            convs = await self._conversations_of(user_id) if self._conversations_of else []
            self._user_convs[user_id] = set()
            for conversation_id in convs:
                await self._add_conversation(user_id, conversation_id)
        elif self._sio is not None:
            for conversation_id in self._user_convs.get(user_id, ()):
                await self._sio.enter_room(sid, self.conversation_room(conversation_id))

    async def _add_conversation(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
        """Put the user's local sockets in the conversation's room; True if newly subscribed."""
        self._user_convs.setdefault(user_id, set()).add(conversation_id)
        users = self._conv_users.setdefault(conversation_id, set())
        newly = not users
        users.add(user_id)
        if self._sio is not None:
            for sid in self._by_user.get(user_id, ()):
                await self._sio.enter_room(sid, self.conversation_room(conversation_id))
        if newly:
            await self.bus.subscribe(conversation_topic(conversation_id),
                                     self._on_conversation_message)
        return newly

    async def _drop_conversation(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
        self._user_convs.get(user_id, set()).discard(conversation_id)
        if self._sio is not None:
            for sid in self._by_user.get(user_id, ()):
                await self._sio.leave_room(sid, self.conversation_room(conversation_id))
        users = self._conv_users.get(conversation_id)
        if users is None:
            return
        users.discard(user_id)
        if not users:
            del self._conv_users[conversation_id]
            self._joined_directly.pop(conversation_id, None)
            await self.bus.unsubscribe(conversation_topic(conversation_id),
                                       self._on_conversation_message)

    async def disconnected(self, sid: str) -> None:
        conn = self._connections.pop(sid, None)
        self._busy.pop(sid, None)
        self._pending_end.pop(sid, None)
        if conn is not None:
            for hook in self.on_unbind:
                try:
                    await hook(conn)
                except Exception:
                    log.exception("unbind hook failed")
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
                await self.bus.unsubscribe(user_topic(conn.user_id), self._on_user_message)
                for conversation_id in list(self._user_convs.pop(conn.user_id, ())):
                    await self._drop_conversation(conn.user_id, conversation_id)
        conn.user_id = conn.session_id = None

    @staticmethod
    def user_room(user_id: uuid.UUID) -> str:
        return f"user:{user_id}"

    @staticmethod
    def conversation_room(conversation_id: uuid.UUID) -> str:
        return f"conv:{conversation_id}"
    async def send_to_conversation(
        self, conversation_id: uuid.UUID, event: str, data: dict[str, Any]
    ) -> None:
        """An ephemeral signal (typing) to every member's devices; not stored, may be dropped."""
        await self.bus.publish(
            conversation_topic(conversation_id),
            {"kind": "event", "event": event, "conversation_id": str(conversation_id),
             "data": data},
        )

    async def _on_conversation_message(self, message: dict[str, Any]) -> None:
        if self._sio is None:
            return
        conversation_id = uuid.UUID(message["conversation_id"])
        if message["event"] == "member.joined" and message["data"].get("cursor") is not None \
                and self._joined_directly.get(conversation_id) == message["data"]["cursor"]:
            return  # every local recipient already got this join directly
        room = self.conversation_room(conversation_id)
        await self._sio.emit(message["event"], message["data"], room=room)

    async def send_to_user(self, user_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        """Deliver an event to every device of a user, on whichever nodes they are."""
        await self.bus.publish(
            user_topic(user_id),
            {"kind": "emit", "user_id": str(user_id), "event": event, "data": data},
        )

    async def end_sessions(
        self, user_id: uuid.UUID, session_ids: list[uuid.UUID] | None, reason: str
    ) -> None:
        """Tell and disconnect the sockets of these sessions (None: all of the user's)."""
        await self.bus.publish(
            user_topic(user_id),
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
        kind = message["kind"]
        if kind in ("emit", "event"):
            await self._sio.emit(message["event"], message["data"], room=self.user_room(user_id))
        elif kind == "join":
            conversation_id = uuid.UUID(message["conversation_id"])
            if conversation_id in self._user_convs.get(user_id, set()):
                return
            cursor = message["data"].get("cursor")
            if await self._add_conversation(user_id, conversation_id):
                # This node was not listening to the conversation when the relay broadcast
                # the join, so it misses that broadcast: hand it to the new member directly,
                # and to every other member named in the same join event.
                self._joined_directly[conversation_id] = cursor
                await self._sio.emit(message["event"], message["data"],
                                     room=self.user_room(user_id))
            elif cursor is not None and self._joined_directly.get(conversation_id) == cursor:
                await self._sio.emit(message["event"], message["data"],
                                     room=self.user_room(user_id))
        elif kind == "leave":
            await self._drop_conversation(user_id, uuid.UUID(message["conversation_id"]))
        elif kind == "end_sessions":
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
