"""User blocks: no DMs or group adds across a block, and no follows, friends or close friends."""

from __future__ import annotations

from handlers.commands import Empty, command
from handlers.context import Context
from handlers.conversation_schemas import BlockedOut, BlockInput, BlockList
from handlers.errors import CommandError, invalid
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import blocks as store
from storage import networks as network_store
from storage import users as user_store

# A block list is read whole; this bounds one answer.
BLOCK_LIST_MAX = 1000


async def _other_user(ctx: Context, data: BlockInput) -> None:
    if data.user_id == ctx.user.user_id:
        raise invalid("user_id", "you cannot block yourself", "self")
    if await user_store.get_user(ctx.services.db, data.user_id) is None:
        raise CommandError("not_found", "no such user")


@command("user.block", input=BlockInput, rest=("PUT", "/users/me/blocks/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("block"))
async def block(ctx: Context, data: BlockInput) -> None:
    """Block a user: no DMs or group adds, and every follow, friendship and request ends both ways."""
    await _other_user(ctx, data)
    # Also cuts follows, requests, friendships and close-friend entries, in one transaction.
    if not await network_store.block(ctx.services.db, ctx.user.user_id, data.user_id):
        raise CommandError("not_found", "no such user")
    # Neither sees the other's presence any more: live watches on either side stop.
    await ctx.services.presence.access_changed([ctx.user.user_id], [data.user_id])


@command("user.unblock", input=BlockInput, rest=("DELETE", "/users/me/blocks/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("block"))
async def unblock(ctx: Context, data: BlockInput) -> None:
    """Unblock a user; unblocking someone not blocked is fine."""
    await _other_user(ctx, data)
    await store.unblock(ctx.services.db, ctx.user.user_id, data.user_id)
    # A conversation they still share shows presence again.
    await ctx.services.presence.access_changed([ctx.user.user_id], [data.user_id])


@command("block.list", rest=("GET", "/users/me/blocks"), scope=Scope.READ_NETWORK, output=BlockList,
         rate=Rate("reads"))
async def blocks(ctx: Context, data: Empty) -> BlockList:
    """The users you have blocked, most recent first (at most 1,000)."""
    rows = await store.blocked_by(ctx.services.db, ctx.user.user_id, BLOCK_LIST_MAX)
    return BlockList(blocked=[BlockedOut(user_id=u, blocked_at=at) for u, at in rows])
