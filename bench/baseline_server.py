"""The baseline: a bare python-socketio AsyncServer on aiohttp doing HotSpot's emits, nothing stored.

It authenticates sockets with the same HS256 access tokens HotSpot issues, puts each
socket in `user:{id}` and in the rooms of its conversations (membership read once at
start from a JSON file, {user_id: [conversation_id, ...]}), and answers
`message.send {conversation_id, body, client_id}` by emitting `message.new` to the
conversation's room and acking the message: the same wire shape as HotSpot's, with
stock python-socketio settings (stdlib json) and no persistence, queue or bus.

    python -m bench.baseline_server --port 8090 --members members.json
    (BENCH_JWT_SECRET and BENCH_JWT_ISSUER in the environment)
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import socketio
from aiohttp import web


class BaselineServer:
    def __init__(self, secret: str, issuer: str, members: dict[str, list[str]]) -> None:
        self.secret = secret
        self.issuer = issuer
        self.conversations_of = members
        self.members_of: dict[str, set[str]] = {}
        for user_id, conversation_ids in members.items():
            for conversation_id in conversation_ids:
                self.members_of.setdefault(conversation_id, set()).add(user_id)
        self.last_seq: dict[str, int] = {}
        self.users: dict[str, str] = {}
        self.sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("message.send", self.on_send)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = jwt.decode(token or "", self.secret, algorithms=["HS256"], issuer=self.issuer,
                                options={"require": ["sub", "sid", "exp"]})
        except jwt.PyJWTError as exc:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized", str(exc)) from None
        user_id = str(claims["sub"])
        self.users[sid] = user_id
        await self.sio.enter_room(sid, f"user:{user_id}")
        for conversation_id in self.conversations_of.get(user_id, ()):
            await self.sio.enter_room(sid, f"conv:{conversation_id}")

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.users.pop(sid, None)

    async def on_send(self, sid: str, data: Any) -> dict[str, Any]:
        user_id = self.users.get(sid)
        conversation_id = str(data.get("conversation_id")) if isinstance(data, dict) else ""
        # The one check a chat server cannot skip: only members write to a conversation.
        if user_id is None or user_id not in self.members_of.get(conversation_id, ()):
            return {"ok": False, "error": {"code": "not_found", "message": "no such conversation"}}
        seq = self.last_seq.get(conversation_id, 0) + 1
        self.last_seq[conversation_id] = seq
        message = {
            "id": str(uuid.uuid4()), "conversation_id": conversation_id, "seq": seq,
            "sender_id": user_id, "client_id": data.get("client_id"), "body": data.get("body"),
            "media": [], "reply_to": None, "created_at": datetime.now(UTC).isoformat(),
            "edited_at": None, "deleted": False, "reactions": {}, "cursor": str(seq),
        }
        await self.sio.emit("message.new", message, room=f"conv:{conversation_id}")
        return {"ok": True, "data": message}


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(secret: str, issuer: str, members: dict[str, list[str]]) -> web.Application:
    app = web.Application()
    BaselineServer(secret, issuer, members).sio.attach(app)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--members", required=True, help="JSON file {user_id: [conversation_id]}")
    args = parser.parse_args()
    with open(args.members) as f:
        members = json.load(f)
    app = create_app(os.environ["BENCH_JWT_SECRET"], os.environ.get("BENCH_JWT_ISSUER", "hotspot"),
                     members)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
