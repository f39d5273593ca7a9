"""Every command as a Socket.IO event on "/", answered in the ack."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import orjson
import socketio

from channels.broadcast import DirectEmitManager
from channels.presence import TooManySockets
from channels.realtime import Realtime
from config import Settings
from handlers.context import Context, Principal
from handlers.errors import CommandError
from server.dispatch import Dispatcher
from server.logs import request_id_var
from server.rest import do_not_track, forwarded_ip

log = logging.getLogger(__name__)


class OrjsonModule:
    """The json interface python-socketio expects, backed by orjson."""

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return orjson.loads(data)


def ok(data: Any) -> dict[str, Any]:
    return {"ok": True, "data": data}


def fail(exc: CommandError) -> dict[str, Any]:
    return {"ok": False, "error": exc.to_dict()}


class SocketTransport:
    """Connects sockets with their token, dispatches events to commands, acks the outcome."""

    def __init__(self, dispatcher: Dispatcher, settings: Settings) -> None:
        self.dispatcher = dispatcher
        self._realtime: Realtime | None = None
        limit = settings.limits.socket_payload_bytes
        cors_origins = settings.cors_origins
        self.trusted_proxy_hops = settings.trusted_proxy_hops
        self.payload_limit = limit
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins=cors_origins if cors_origins != ["*"] else "*",
            json=OrjsonModule,
            # Frames between the command limit and this are answered payload_too_large;
            # past it, Engine.IO drops the connection before we see the frame.
            max_http_buffer_size=limit * 16,
            logger=False,
            engineio_logger=False,
            client_manager=DirectEmitManager(),
        )
        self._principals: dict[str, Principal] = {}
        self._ips: dict[str, str | None] = {}
        # Connections whose handshake asked not to be tracked (DNT / Sec-GPC headers).
        self._dnt: set[str] = set()
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("*", self.on_event)

    def bind(self, realtime: Realtime) -> None:
        """Called at start-up, once the realtime layer exists."""
        self._realtime = realtime
        realtime.attach(self.sio)

    @property
    def realtime(self) -> Realtime:
        if self._realtime is None:
            raise socketio.exceptions.ConnectionRefusedError("starting", {"code": "unavailable"})
        return self._realtime

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None:
            header = environ.get("HTTP_AUTHORIZATION", "")
            if header.lower().startswith("bearer "):
                token = header[7:].strip()
        request = environ.get("aiohttp.request")
        self._ips[sid] = forwarded_ip(
            getattr(request, "remote", None) or environ.get("REMOTE_ADDR"),
            environ.get("HTTP_X_FORWARDED_FOR"), self.trusted_proxy_hops,
        )
        if do_not_track(environ.get("HTTP_DNT"), environ.get("HTTP_SEC_GPC")):
            self._dnt.add(sid)
        await self.realtime.connected(sid)
        if token is None:
            return  # an anonymous socket may still sign up or log in
        try:
            if not isinstance(token, str):
                raise CommandError("unauthorized", "the token must be a string")
            principal = self.dispatcher.authenticate(token)
        except CommandError as exc:
            await self.realtime.disconnected(sid)
            self._ips.pop(sid, None)
            self._dnt.discard(sid)
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, {"code": "unauthorized", "message": exc.message,
                              **(exc.details or {})}
            ) from None
        self._principals[sid] = principal
        limit = self.dispatcher.services.settings.limits.sockets_per_user
        try:
            await self.realtime.bind(sid, principal.user_id, principal.session_id,
                                     socket_limit=limit)
        except TooManySockets as exc:
            self._principals.pop(sid, None)
            await self.realtime.disconnected(sid)
            self._ips.pop(sid, None)
            self._dnt.discard(sid)
            message = f"at most {exc.limit} connected sockets per user; close one first"
            raise socketio.exceptions.ConnectionRefusedError(
                message, {"code": "rate_limited", "message": message, "limit": exc.limit}
            ) from None

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._principals.pop(sid, None)
        self._ips.pop(sid, None)
        self._dnt.discard(sid)
        await self.realtime.disconnected(sid)

    async def on_event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        token = request_id_var.set(request_id)
        self.realtime.begin_command(sid)
        try:
            return await self._run(event, sid, args, request_id)
        finally:
            request_id_var.reset(token)
            self.realtime.end_command(sid)

    async def _run(self, event: str, sid: str, args: tuple[Any, ...], request_id: str) -> dict[str, Any]:
        cmd = self.dispatcher.registry.get(event) if isinstance(event, str) else None
        if cmd is None:
            return fail(CommandError("unknown_command", f"no command named {str(event)[:100]!r}"))
        payload = args[0] if args else {}
        if payload is None:
            payload = {}
        try:
            size = len(orjson.dumps(payload))
        except orjson.JSONEncodeError:
            # Binary attachments arrive as bytes and nesting can be deeper than JSON output
            # allows; neither is a valid command input, and neither may crash the handler.
            return fail(CommandError(
                "invalid_input", "the payload must be plain JSON",
                {"fields": [{"field": "(body)", "message": "binary or too deeply nested data",
                             "type": "json_type"}]},
            ))
        if size > self.payload_limit:
            return fail(CommandError(
                "payload_too_large",
                f"the payload is {size} bytes; the limit is {self.payload_limit}",
                {"limit": self.payload_limit},
            ))
        principal = self._principals.get(sid)
        ctx = Context(
            services=self.dispatcher.services, principal=principal, transport="socket",
            request_id=request_id, ip=self._ips.get(sid), sid=sid, do_not_track=sid in self._dnt,
        )
        try:
            result = await self.dispatcher.run(cmd, payload, ctx)
        except CommandError as exc:
            if exc.code == "unauthorized" and principal is not None and \
                    (exc.details or {}).get("reason") == "session_revoked":
                self.realtime.end_local_soon(sid, "session_revoked")
            return fail(exc)
        if cmd.binds_session and isinstance(result, dict) and "access_token" in result:
            await self._adopt(sid, result["access_token"])
        return ok(result)

    async def _adopt(self, sid: str, access_token: str) -> None:
        """After login, sign-up or refresh over this socket, it carries the new session."""
        try:
            principal = self.dispatcher.authenticate(access_token)
        except CommandError:
            return
        limit = self.dispatcher.services.settings.limits.sockets_per_user
        try:
            await self.realtime.bind(sid, principal.user_id, principal.session_id,
                                     socket_limit=limit)
        except TooManySockets:
            # The login itself stands (its tokens are in the ack); this socket stays
            # anonymous, as it would have been refused had it connected with the token.
            log.info("socket not bound: per-user socket limit", extra={"limit": limit})
            return
        self._principals[sid] = principal

    async def close_all(self) -> None:
        """Tell every socket the node is stopping and close them (graceful shutdown)."""
        if self._realtime is not None:
            await self._realtime.shutdown()
        await asyncio.sleep(0)
