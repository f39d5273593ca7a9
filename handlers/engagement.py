"""Engagement on items: reactions, shares, saves, quote detach, and live item subscriptions.

The rules (docs/content.md, "Engagement and live updates", has the full list):
- Acting on an item needs seeing it (hs_can_see, and not an expired story): otherwise
  not_found. Undoing (unreact, unshare, unsave) also works on an item the caller no
  longer sees, when there is something of theirs to undo.
- One reaction per user and item; reacting with another kind replaces it. Counters are
  kept exact in the transaction that changes the reaction.
- A share reposts a top-level post, notice or slide, once per user (sharing again answers
  the same share); sharing a share shares its original. Private and private-clique items
  cannot be shared (forbidden); a deleted item takes no new reaction, share or save (conflict).
- Changes go live to the item's subscribers as coalesced item.updated events.
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.item_live import UPDATED, SubscriptionLimitExceeded
from handlers import activities, notifications
from handlers.commands import command
from handlers.context import Context
from handlers.engagement_schemas import (
    ItemIdInput,
    ReactInput,
    ReactionsInput,
    ReactionsOut,
    ReactorOut,
    ReactorPage,
    SaveOut,
    ShareInput,
    ShareOut,
    SubscribedOut,
    UnsharedOut,
    UnsubscribedOut,
)
from handlers.errors import CommandError, invalid
from handlers.items import one, visible_item
from handlers.pagination import Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from jobs.notifications import preview
from storage import engagement as store
from storage import items as items_store
from storage.engagement import Reactions, Reactor
from storage.items import Item
from storage.notifications import Kind
from storage.views.items import AuthorOut, ItemOut, hydrate

# Per connection (docs/limits.md).
SUBSCRIPTIONS_PER_SOCKET = 50
# Per user: reactions, shares, saves and quote detaches together; and item subscribes.
SHAREABLE = ("post", "notice", "slide")
# The notifications worker renders "<who> reacted <emoji> to ..." from data.emoji.
EMOJI = {"like": "👍", "love": "❤️", "haha": "😂", "wow": "😮", "sad": "😢", "angry": "😠"}


def _refuse(message: str, reason: str) -> CommandError:
    return CommandError("forbidden", message, {"reason": reason})


def _deleted() -> CommandError:
    return CommandError("conflict", "this item was deleted", {"reason": "deleted"})


def _not_found() -> CommandError:
    return CommandError("not_found", "no such item")


def _socket(ctx: Context, name: str) -> str:
    """The connection a subscription belongs to (the commands are declared socket-only)."""
    if ctx.sid is None:
        raise CommandError("invalid_input", f"{name} needs a Socket.IO connection")
    return ctx.sid


# -- live subscriptions ------------------------------------------------------------------


@command("item.subscribe", input=ItemIdInput, scope=Scope.READ_CONTENT, output=SubscribedOut,
         rate=Rate("item_subscribe"), socket_only=True)
async def subscribe(ctx: Context, data: ItemIdInput) -> SubscribedOut:
    """Receive an item's live events on this connection: item.updated, comment.new."""
    # Socket-only (no REST route): the subscription lives on the connection until it
    # closes or calls item.unsubscribe; at most SUBSCRIPTIONS_PER_SOCKET items each.
    sid = _socket(ctx, "item.subscribe")
    me = ctx.user.user_id
    item = await visible_item(ctx, data.item_id)
    try:
        count = await ctx.services.item_live.subscribe(sid, me, item.id, item.author_id,
                                                       SUBSCRIPTIONS_PER_SOCKET)
    except SubscriptionLimitExceeded as exc:
        message = f"a connection subscribes to at most {exc.limit} items"
        raise CommandError("invalid_input", message, {
            "fields": [{"field": "item_id", "message": message, "type": "too_many_subscriptions"}],
            "limit": exc.limit, "subscriptions": exc.subscribed}) from None
    # Read after subscribing: a change committed in between is in the answer or in an event.
    now = await items_store.get(ctx.services.db, item.id) or item
    return SubscribedOut(item_id=now.id, subscriptions=count, reaction_count=now.reaction_count,
                         reactions=dict(now.reaction_counts), share_count=now.share_count,
                         reply_count=now.reply_count, quote_count=now.quote_count)


@command("item.unsubscribe", input=ItemIdInput, scope=Scope.READ_CONTENT, output=UnsubscribedOut,
         rate=Rate("item_unsubscribe"), socket_only=True)
async def unsubscribe(ctx: Context, data: ItemIdInput) -> UnsubscribedOut:
    """Stop receiving an item's live events on this connection (not subscribed: no change)."""
    sid = _socket(ctx, "item.unsubscribe")
    count = await ctx.services.item_live.unsubscribe(sid, [data.item_id])
    return UnsubscribedOut(item_id=data.item_id, subscriptions=count)


# -- reactions ---------------------------------------------------------------------------


def _reactions_out(result: Reactions) -> ReactionsOut:
    return ReactionsOut(item_id=result.item_id, reaction_count=result.reaction_count,
                        reactions=result.reaction_counts,
                        my_reaction=result.my_reaction,
                        version=result.version)


async def _publish_reactions(ctx: Context, result: Reactions) -> None:
    if result.changed:
        await ctx.services.item_live.publish(result.item_id, UPDATED, {
            "reaction_count": result.reaction_count, "reactions": result.reaction_counts,
            "version": result.version})


async def set_reaction(ctx: Context, item_id: uuid.UUID, author_id: uuid.UUID, kind: str | None,
                       notice: dict[str, Any]) -> Reactions:
    """The one reaction path of every item kind (stories included): set (kind) or remove
    (None) the caller's reaction, publish item.updated, and tell the author of a first one.

    The caller has checked the item may be reacted to; `notice` adds to the notification's
    data (item_kind, preview, ...).
    """
    me = ctx.user.user_id
    result = await store.set_reaction(ctx.services.db, item_id, me, kind)
    if result is None:
        raise _not_found()
    await _publish_reactions(ctx, result)
    if kind is not None and result.previous is None and result.changed and author_id != me:
        # One notification per reactor and item, ever (source_key), grouped per item.
        await notifications.notify(
            ctx.services, Kind.REACTION, [author_id],
            source_key=f"reaction:item:{item_id}:{me}", actor_id=me, subject=("item", item_id),
            group_key=f"reaction:item:{item_id}",
            data={"emoji": EMOJI[kind], "reaction": kind, "item_id": str(item_id), **notice})
    return result


@command("item.react", input=ReactInput, rest=("PUT", "/items/{item_id}/reaction"),
         scope=Scope.WRITE_CONTENT, output=ReactionsOut,
         rate=Rate("engagement"), activity=activities.ITEM_REACTED)
async def react(ctx: Context, data: ReactInput) -> ReactionsOut:
    """React to an item you can see (like, love, haha, wow, sad, angry); replaces your reaction."""
    item = await visible_item(ctx, data.item_id)
    if item.deleted:
        raise _deleted()
    return _reactions_out(await set_reaction(
        ctx, item.id, item.author_id, data.kind,
        {"item_kind": item.kind, "preview": preview(item.body)}))


@command("item.unreact", input=ItemIdInput, rest=("DELETE", "/items/{item_id}/reaction"),
         scope=Scope.WRITE_CONTENT, output=ReactionsOut,
         rate=Rate("engagement"))
async def unreact(ctx: Context, data: ItemIdInput) -> ReactionsOut:
    """Remove your reaction (none: no change)."""
    result = await store.set_reaction(ctx.services.db, data.item_id, ctx.user.user_id, None)
    if result is None or not result.changed:
        # Nothing of the caller's was removed: answer only about an item they may see.
        await visible_item(ctx, data.item_id)
    if result is None:
        raise _not_found()
    await _publish_reactions(ctx, result)
    return _reactions_out(result)


def _reactor_position(reactor: Reactor) -> Position:
    return Position(reactor.created_at, reactor.user_id)


@command("item.reaction.list", input=ReactionsInput, rest=("GET", "/items/{item_id}/reactions"),
         scope=Scope.READ_CONTENT, output=ReactorPage,
         rate=Rate("reads"))
async def reactions(ctx: Context, data: ReactionsInput) -> ReactorPage:
    """Who reacted to an item, newest first (optionally one kind); blocked users are left out."""
    after = decode_cursor(data.cursor, "item.reaction.list")
    item = await visible_item(ctx, data.item_id)
    rows = await store.reactors_page(ctx.services.db, ctx.user.user_id, item.id, data.kind,
                                     (after.at, after.id) if after else None, data.limit + 1)
    page, next_cursor = page_of(rows, data.limit, _reactor_position)
    return ReactorPage(reactions=[ReactorOut(
        user=AuthorOut(id=r.user_id, username=r.username, display_name=r.display_name,
                       avatar_url=r.avatar_url),
        kind=r.kind, created_at=r.created_at) for r in page],
        next_cursor=next_cursor)


# -- shares ------------------------------------------------------------------------------


async def _shareable(ctx: Context, item_id: uuid.UUID) -> Item:
    """The item a share of item_id reposts, after checking it may be shared."""
    item = await visible_item(ctx, item_id)
    if item.kind == "share" and item.shared_id is not None:
        item = await visible_item(ctx, item.shared_id)  # a share of a share reposts the original
    if item.kind not in SHAREABLE or item.root_id is not None:
        raise _refuse("only top-level posts, notices and slides can be shared", "not_shareable")
    if item.deleted:
        raise _deleted()
    if item.visibility == "private":
        raise _refuse("private items cannot be shared", "private")
    if item.clique_id is not None and await store.clique_is_private(ctx.services.db,
                                                                    item.clique_id):
        raise _refuse("items of private cliques cannot be shared", "private_clique")
    return item


@command("item.share", input=ShareInput, rest=("PUT", "/items/{item_id}/share"),
         scope=Scope.WRITE_CONTENT, output=ShareOut,
         rate=Rate("engagement"), activity=activities.ITEM_SHARED)
async def share(ctx: Context, data: ShareInput) -> ShareOut:
    """Share (repost) an item you can see; sharing it again answers your existing share."""
    me = ctx.user.user_id
    item = await _shareable(ctx, data.item_id)
    result = await store.share(ctx.services.db, me, item.id, data.visibility)
    if result is None:
        raise _not_found()
    if result.created:
        await ctx.services.item_live.publish(item.id, UPDATED, {
            "share_count": result.share_count, "version": result.version})
        if item.author_id != me:
            # Once per sharer and item, ever; grouped per item ("A and 3 others shared").
            await notifications.notify(
                ctx.services, Kind.SHARE, [item.author_id],
                source_key=f"share:item:{item.id}:{me}", actor_id=me, subject=("item", item.id),
                group_key=f"share:item:{item.id}",
                data={"item_id": str(item.id), "share_id": str(result.share.id),
                      "item_kind": item.kind, "preview": preview(item.body)})
    [out] = await hydrate(ctx.services.db, me, [result.share])
    return ShareOut(share=out, share_count=result.share_count, created=result.created)


@command("item.unshare", input=ItemIdInput, rest=("DELETE", "/items/{item_id}/share"),
         scope=Scope.WRITE_CONTENT, output=UnsharedOut,
         rate=Rate("engagement"))
async def unshare(ctx: Context, data: ItemIdInput) -> UnsharedOut:
    """Undo your share of an item (item_id: the original, or your share itself); deletes it."""
    me, db = ctx.user.user_id, ctx.services.db
    result = await store.unshare(db, me, data.item_id)
    if result is None:
        own = await items_store.get(db, data.item_id)
        if own is not None and own.kind == "share" and own.author_id == me \
                and own.shared_id is not None:
            result = await store.unshare(db, me, own.shared_id)
    if result is None:
        item = await visible_item(ctx, data.item_id)
        return UnsharedOut(item_id=item.id, removed=False, share_count=item.share_count)
    if result.version is not None:
        await ctx.services.item_live.publish(result.shared_id, UPDATED, {
            "share_count": result.share_count, "version": result.version})
    return UnsharedOut(item_id=result.shared_id, removed=True, share_count=result.share_count)


# -- saves -------------------------------------------------------------------------------


@command("item.save", input=ItemIdInput, rest=("PUT", "/items/{item_id}/save"),
         scope=Scope.WRITE_CONTENT, output=SaveOut,
         rate=Rate("engagement"), activity=activities.ITEM_SAVED)
async def save(ctx: Context, data: ItemIdInput) -> SaveOut:
    """Bookmark an item you can see (private; saving again changes nothing)."""
    item = await visible_item(ctx, data.item_id)
    if item.deleted:
        raise _deleted()
    saved_at = await store.save(ctx.services.db, ctx.user.user_id, item.id)
    return SaveOut(item_id=item.id, saved=True, saved_at=saved_at)


@command("item.unsave", input=ItemIdInput, rest=("DELETE", "/items/{item_id}/save"),
         scope=Scope.WRITE_CONTENT, output=SaveOut,
         rate=Rate("engagement"))
async def unsave(ctx: Context, data: ItemIdInput) -> SaveOut:
    """Remove a bookmark (not saved: no change)."""
    if not await store.unsave(ctx.services.db, ctx.user.user_id, data.item_id):
        await visible_item(ctx, data.item_id)
    return SaveOut(item_id=data.item_id, saved=False, saved_at=None)


# -- quotes ------------------------------------------------------------------------------


@command("item.detach_quote", input=ItemIdInput, rest=("POST", "/items/{item_id}/detach_quote"),
         scope=Scope.WRITE_CONTENT, output=ItemOut,
         rate=Rate("engagement"))
async def detach_quote(ctx: Context, data: ItemIdInput) -> ItemOut:
    """Detach your item from a quote of it (item_id: the quoting item); it embeds it no more."""
    quoting = await visible_item(ctx, data.item_id)
    if quoting.quoted_id is None:
        raise invalid("item_id", "this item quotes nothing", "not_a_quote")
    quoted = await items_store.get(ctx.services.db, quoting.quoted_id)
    if quoted is None or quoted.author_id != ctx.user.user_id:
        raise _refuse("only the quoted item's author can detach it", "not_quoted_author")
    if not quoting.quote_detached:
        detached = await store.detach_quote(ctx.services.db, quoting.id)
        if detached is None:
            raise _not_found()
        quoting, version = detached
        await ctx.services.item_live.publish(quoting.id, UPDATED, {
            "quote_detached": True, "version": version})
    return await one(ctx, quoting)
