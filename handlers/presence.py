"""Typing indicators and presence: who is typing in a conversation, who is online."""

from __future__ import annotations

import uuid

from channels.events import PresenceChanged
from channels.presence import BACKEND_ERRORS, WatchLimitExceeded
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError
from handlers.messages import membership, refuse_blocked_dm
from handlers.presence_schemas import (
    ConversationInput,
    PresenceList,
    PresenceWatch,
    TypingOut,
    UserIdsInput,
    Watching,
)
from handlers.rates import Rate
from handlers.scopes import Scope
from storage.presence import presence_visible


@command("typing.start", input=ConversationInput,
         rest=("POST", "/conversations/{conversation_id}/typing"), scope=Scope.WRITE_MESSAGES,
         output=TypingOut,
         rate=Rate("typing"))
async def typing_start(ctx: Context, data: ConversationInput) -> TypingOut:
    """Show the members you are typing; repeat within the expiry (8 s) to keep showing it."""
    services, limits = ctx.services, ctx.services.settings.limits
    user = ctx.user
    conversation, _ = await membership(ctx, data.conversation_id)
    await refuse_blocked_dm(ctx, conversation)
    # In big groups typing is noise that costs a fan-out per keystroke burst: not relayed.
    relayed = conversation.member_count <= limits.typing_relay_max_members
    if relayed:
        await services.typing.start(conversation.id, user.user_id, user.session_id)
    return TypingOut(conversation_id=conversation.id, active=True, relayed=relayed,
                     expires_in_s=services.typing.ttl_s if relayed else None)


@command("typing.stop", input=ConversationInput,
         rest=("DELETE", "/conversations/{conversation_id}/typing"), scope=Scope.WRITE_MESSAGES,
         output=TypingOut,
         rate=Rate("typing_stop"))
async def typing_stop(ctx: Context, data: ConversationInput) -> TypingOut:
    """Stop showing that you are typing (sending a message does not stop it by itself)."""
    conversation, _ = await membership(ctx, data.conversation_id)
    relayed = await ctx.services.typing.stop(conversation.id, ctx.user.user_id)
    return TypingOut(conversation_id=conversation.id, active=False, relayed=relayed,
                     expires_in_s=None)


async def _statuses(ctx: Context, user_ids: list[uuid.UUID],
                    visible: set[uuid.UUID]) -> list[PresenceChanged]:
    """Current statuses; a user the caller may not see reads offline, last seen unknown."""
    try:
        found = await ctx.services.presence.statuses([u for u in user_ids if u in visible])
    except BACKEND_ERRORS as exc:
        raise CommandError("unavailable", "presence is unavailable right now") from exc
    by_id = {s["user_id"]: s for s in found}
    return [PresenceChanged(**by_id[str(u)]) if str(u) in by_id else
            PresenceChanged(user_id=str(u), status="offline", last_seen=None) for u in user_ids]


@command("presence.subscribe", input=UserIdsInput, scope=Scope.READ_PROFILE, output=PresenceWatch,
         rate=Rate("presence_subscribe"), socket_only=True)
async def subscribe(ctx: Context, data: UserIdsInput) -> PresenceWatch:
    """Watch users' presence: the ack has their status now, then `presence` events follow."""
    # Socket-only (no REST route): the subscription lives on the caller's connection until
    # it closes or calls presence.unsubscribe. Beyond limits.presence_subscribe_max watched
    # users in total the call is refused with invalid_input and changes nothing.
    limit = ctx.services.settings.limits.presence_subscribe_max
    me = ctx.user.user_id
    # Users the caller may not see are watched too, silently, and read offline: their
    # events start if the caller gains sight of them (channels/presence.py).
    visible = await presence_visible(ctx.services.db, me, data.user_ids)
    try:
        watching = await ctx.services.presence.watch(_sid(ctx), me, data.user_ids, visible, limit)
    except WatchLimitExceeded as exc:
        message = f"a connection watches at most {exc.limit} users; it watches {exc.watching}"
        raise CommandError("invalid_input", message, {
            "fields": [{"field": "user_ids", "message": message, "type": "too_many_watched"}],
            "limit": exc.limit, "watching": exc.watching}) from None
    return PresenceWatch(presence=await _statuses(ctx, data.user_ids, visible), watching=watching)


def _sid(ctx: Context) -> str:
    """The socket a subscription belongs to: exactly the connection that asked."""
    if ctx.sid is None:  # the dispatcher serves socket_only commands on sockets only
        raise RuntimeError("presence watches need a socket")
    return ctx.sid


@command("presence.unsubscribe", input=UserIdsInput, scope=Scope.READ_PROFILE, output=Watching,
         rate=Rate("presence_subscribe"), socket_only=True)
async def unsubscribe(ctx: Context, data: UserIdsInput) -> Watching:
    """Stop watching these users' presence (ids not watched are ignored)."""
    return Watching(watching=await ctx.services.presence.unwatch(_sid(ctx), data.user_ids))


@command("presence.query", input=UserIdsInput, rest=("GET", "/presence"), scope=Scope.READ_PROFILE,
         output=PresenceList,
         rate=Rate("presence_query"))
async def query(ctx: Context, data: UserIdsInput) -> PresenceList:
    """Users' presence now (online, or offline with last_seen), without watching them."""
    visible = await presence_visible(ctx.services.db, ctx.user.user_id, data.user_ids)
    return PresenceList(presence=await _statuses(ctx, data.user_ids, visible))
