"""Server-to-client events: each name with its payload schema, for the event catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel


class SessionRevoked(BaseModel):
    """The connection's session ended; the server disconnects the socket right after."""

    reason: Literal["logout", "logout_all", "refresh_token_reuse", "account_deleted",
                    "password_reset", "password_changed"]


class ServerShutdown(BaseModel):
    """This node is stopping; reconnect (to any node) after the given delay."""

    reason: str
    reconnect_after_ms: int


@dataclass(frozen=True)
class ServerEvent:
    name: str
    payload: type[BaseModel]
    description: str


def server_events() -> list[ServerEvent]:
    """Every event the server emits to clients."""
    return [
        ServerEvent("session.revoked", SessionRevoked, SessionRevoked.__doc__ or ""),
        ServerEvent("server.shutdown", ServerShutdown, ServerShutdown.__doc__ or ""),
    ]
