"""Items: create, read, edit (with history), delete posts, notices, comments and replies.

The rules (docs/content.md has the full list):
- post: top-level, up to 5,000 chars and 10 media, optionally in a clique the author
  belongs to and is not banned from; notice: up to 500 chars, answers a notice when
  parent_id is given; comment: answers a top-level post, notice, story or slide;
  reply: answers a comment. Comments and replies are up to 2,000 chars.
- A child (comment, reply, answering notice) takes its thread's audience: its root's
  visibility and clique are copied onto it, and a `visibility` of its own is refused.
- Acting on an item the caller cannot see answers not_found; on a visible item the
  caller may not act on (comments off, quote policy, not the author), forbidden.
- A deleted item stays as a tombstone: no body, media, mentions, tags or history.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import asyncpg

from channels.item_live import COMMENT_NEW, UPDATED
from handlers import activities, notifications
from handlers import media as media_handlers
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.idempotency import item_retry
from handlers.item_schemas import (
    CreateInput,
    EditInput,
    EditOut,
    EditPage,
    EditsInput,
    ItemIdInput,
    ItemPage,
    RepliesInput,
)
from handlers.pagination import Position, decode_cursor, encode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from jobs.notifications import preview
from storage import items as store
from storage.items import Edit, Item, NewItem
from storage.mentions import mentioned_usernames
from storage.notifications import Kind
from storage.views.items import ItemOut, hydrate

log = logging.getLogger(__name__)

# Body length per kind, in characters (docs/limits.md).
BODY_LIMITS = {"post": 5000, "notice": 500, "comment": 2000, "reply": 2000}
MEDIA_MAX = 10
MENTIONS_MAX = 20
TAGS_MAX = 20
TAG = re.compile(r"(?<![\w#])#(\w{1,64})(?!\w)")
# What a comment may answer; stories and slides are made by their own commands.
COMMENTABLE = ("post", "notice", "story", "slide")
EDITABLE = ("post", "notice", "comment", "reply")
# Kinds with their own undo, which also clears what a tombstone would leave behind
# (highlights, a rendered video).
DELETED_ELSEWHERE = {"story": "story.delete", "slide": "slide.delete", "share": "item.unshare"}


def _not_found() -> CommandError:
    return CommandError("not_found", "no such item")


def _refuse(message: str, reason: str) -> CommandError:
    return CommandError("forbidden", message, {"reason": reason})


def mentioned_names(body: str | None) -> list[str]:
    """Distinct @usernames in a body, lower-cased, in order; invalid_input past the cap."""
    names = mentioned_usernames(body)
    if len(names) > MENTIONS_MAX:
        raise invalid("body", f"at most {MENTIONS_MAX} distinct @mentions", "too_many_mentions")
    return names


def hashtags(body: str | None) -> list[str]:
    """Distinct #tags in a body, lower-cased without '#'; invalid_input past the cap."""
    tags = list(dict.fromkeys(t.lower() for t in TAG.findall(body or "")))
    if len(tags) > TAGS_MAX:
        raise invalid("body", f"at most {TAGS_MAX} distinct #tags", "too_many_tags")
    return tags


def _check_body(kind: str, body: str | None, has_media: bool) -> None:
    limit = BODY_LIMITS[kind]
    if body is not None and len(body) > limit:
        raise invalid("body", f"a {kind} has at most {limit} characters", "string_too_long")
    if (body is None or not body.strip()) and not has_media:
        raise invalid("body", f"a {kind} needs a body or media", "empty")


def _live(ctx: Context, item: Item) -> bool:
    """Not an expired story: those are gone for everyone but their author."""
    return (item.expires_at is None or item.expires_at > ctx.services.clock()
            or item.author_id == ctx.user.user_id)


async def visible_item(ctx: Context, item_id: uuid.UUID) -> Item:
    """The item if the caller may see it (and neither it nor its thread's root has expired);
    not_found otherwise."""
    item = await store.get_live(ctx.services.db, ctx.user.user_id, item_id, ctx.services.clock())
    if item is None:
        raise _not_found()
    return item


async def _own_item(ctx: Context, item_id: uuid.UUID) -> Item:
    item = await visible_item(ctx, item_id)
    if item.author_id != ctx.user.user_id:
        raise _refuse("only the author can do this", "not_author")
    return item


async def one(ctx: Context, item: Item) -> ItemOut:
    [out] = await hydrate(ctx.services.db, ctx.user.user_id, [item])
    return out


# -- create ------------------------------------------------------------------------------


async def _thread_of(ctx: Context, data: CreateInput) -> tuple[Item | None, Item | None]:
    """The parent and root a new item answers, after checking it may answer them."""
    if data.kind == "post":
        if data.parent_id is not None:
            raise invalid("parent_id", "a post does not answer anything", "not_allowed")
        return None, None
    if data.parent_id is None:
        if data.kind == "notice":
            return None, None
        raise invalid("parent_id", f"a {data.kind} needs parent_id", "missing")
    if data.visibility is not None:
        raise invalid("visibility", "an answer is visible where its thread is", "not_allowed")
    if data.clique_id is not None:
        raise invalid("clique_id", "an answer belongs to its thread's clique", "not_allowed")
    parent = await visible_item(ctx, data.parent_id)
    wanted = {"comment": COMMENTABLE, "reply": ("comment",), "notice": ("notice",)}[data.kind]
    if parent.kind not in wanted or (data.kind == "comment" and parent.root_id is not None):
        raise invalid("parent_id", f"a {data.kind} answers a {' or '.join(wanted)}",
                      "wrong_parent_kind")
    root = parent if parent.root_id is None else await store.get(ctx.services.db, parent.root_id)
    if root is None or not _live(ctx, root):
        raise _not_found()
    if parent.deleted or root.deleted:
        raise CommandError("conflict", "this thread's item was deleted", {"reason": "deleted"})
    if not parent.allow_comments or not root.allow_comments:
        raise _refuse("the author turned off comments", "comments_off")
    if root.clique_id is not None and not await store.may_post_in_clique(
            ctx.services.db, root.clique_id, ctx.user.user_id):
        raise _refuse("only the clique's members can answer here", "not_member")
    return parent, root


async def _check_quote(ctx: Context, data: CreateInput) -> Item | None:
    """The item a new post or notice quotes, once the caller may quote it (None: no quote)."""
    if data.quoted_id is None:
        return None
    if data.kind not in ("post", "notice"):
        raise invalid("quoted_id", "only posts and notices quote", "not_allowed")
    quoted = await visible_item(ctx, data.quoted_id)
    if quoted.kind == "share":
        raise invalid("quoted_id", "quote the shared item, not the share", "wrong_quoted_kind")
    if quoted.deleted:
        raise CommandError("conflict", "the quoted item was deleted", {"reason": "deleted"})
    me = ctx.user.user_id
    if quoted.author_id == me or quoted.quote_policy == "public":
        return quoted
    if quoted.quote_policy == "nobody" or not await store.follows_or_friend(
            ctx.services.db, me, quoted.author_id):
        raise _refuse("the author does not allow you to quote this", "quote_policy")
    return quoted


async def _check_clique(ctx: Context, data: CreateInput) -> None:
    if data.clique_id is None:
        return
    if data.kind != "post":
        raise invalid("clique_id", "only posts go in a clique", "not_allowed")
    if not await store.may_post_in_clique(ctx.services.db, data.clique_id, ctx.user.user_id):
        # A clique the caller cannot post in answers like one that does not exist.
        raise CommandError("not_found", "no such clique, or you are not a member")


def _same_request(item: Item, media_ids: list[uuid.UUID], data: CreateInput) -> bool:
    return (item.kind == data.kind and item.body == data.body and item.parent_id == data.parent_id
            and item.quoted_id == data.quoted_id
            and (data.parent_id is not None or item.clique_id == data.clique_id)
            and media_ids == data.media_ids)


async def _replay(ctx: Context, data: CreateInput) -> ItemOut | None:
    """The item an earlier create with this idempotency key made, if any."""
    if data.idempotency_key is None:
        return None
    db = ctx.services.db
    item = await store.by_idempotency_key(db, ctx.user.user_id, data.idempotency_key)
    if item is None:
        return None
    if not item.deleted and not _same_request(item, await store.media_ids_of(db, item.id), data):
        raise CommandError("conflict", "this idempotency_key was used for another item",
                           {"reason": "idempotency_key_reused", "item_id": str(item.id)})
    return await one(ctx, item)


@command("item.create", input=CreateInput, rest=("POST", "/items"), scope=Scope.WRITE_CONTENT,
         status=201, output=ItemOut,
         rate=Rate("item_create"), is_retry=item_retry, activity=activities.ITEM_CREATED)
async def create(ctx: Context, data: CreateInput) -> ItemOut:
    """Post, comment, reply or write a notice; a retry with the same idempotency_key is safe."""
    services, me = ctx.services, ctx.user.user_id
    _check_body(data.kind, data.body, bool(data.media_ids))
    names, tags = mentioned_names(data.body), hashtags(data.body)
    replayed = await _replay(ctx, data)
    if replayed is not None:
        return replayed
    parent, root = await _thread_of(ctx, data)
    quoted = await _check_quote(ctx, data)
    await _check_clique(ctx, data)
    if data.media_ids:
        await media_handlers.attachments(ctx, data.media_ids)
    new = NewItem(
        kind=data.kind, author_id=me, body=data.body,
        parent_id=None if parent is None else parent.id,
        root_id=None if root is None else root.id, quoted_id=data.quoted_id,
        clique_id=data.clique_id if root is None else root.clique_id,
        visibility=(data.visibility or "public") if root is None else root.visibility,
        quote_policy=data.quote_policy, allow_comments=data.allow_comments,
        idempotency_key=data.idempotency_key)
    mentioned: list[uuid.UUID] = []
    reply_count = 0
    async with services.db.transaction() as conn:
        item = await store.insert(conn, new)
        if item is not None:
            mentioned, reply_count = await _fill(conn, item, data, names, tags)
    if item is None:
        # A concurrent create with this key won; the insert waited for it to commit.
        replayed = await _replay(ctx, data)
        if replayed is None:
            raise RuntimeError("an item created under this idempotency key is missing")
        return replayed
    await _notify(ctx, item, parent, mentioned, quoted)
    out = await one(ctx, item)
    await _publish_new(ctx, item, out, reply_count)
    return out


async def _fill(conn: asyncpg.Connection, item: Item, data: CreateInput, names: list[str],
                tags: list[str]) -> tuple[list[uuid.UUID], int]:
    """Media, counters, mentions and tags of a new item, in its transaction.

    Returns the mentioned users and the parent's new reply_count (0 without a parent).
    """
    reply_count = 0
    if data.media_ids:
        await store.attach_media(conn, item.id, data.media_ids)
    if item.parent_id is not None:
        reply_count = await store.add_reply(conn, item.parent_id)
    if item.quoted_id is not None:
        await store.add_quote(conn, item.quoted_id)
    mentioned = await store.set_mentions(
        conn, item.id, list((await store.users_named(conn, names)).values()))
    await store.set_tags(conn, item.id, tags, item.created_at)
    return mentioned, reply_count


async def _notify(ctx: Context, item: Item, parent: Item | None,
                  mentioned: list[uuid.UUID], quoted: Item | None = None) -> None:
    """Tell newly mentioned users, the parent's author of an answer and the quoted item's
    author of a quote, if they may see the new item; a mention wins over the others."""
    services, me = ctx.services, ctx.user.user_id
    db = services.db
    mentioned = [u for u in mentioned if u != me]
    reply_to = [parent.author_id] if parent is not None and parent.author_id != me else []
    quote_of = [quoted.author_id] if quoted is not None and quoted.author_id != me else []
    audience = await store.who_can_see(db, item.id, [*mentioned, *reply_to, *quote_of]) if (
        mentioned or reply_to or quote_of) else set()
    author = (await store.authors(db, [me])).get(me)
    payload: dict[str, Any] = {
        "actor_name": author.display_name if author else None, "preview": preview(item.body),
        "item_kind": item.kind, "item_id": str(item.id),
        "root_id": None if item.root_id is None else str(item.root_id)}
    told = [u for u in mentioned if u in audience]
    if told:
        await notifications.notify(services, Kind.MENTION, told, source_key=f"mention:item:{item.id}",
                                   actor_id=me, subject=("item", item.id), data=payload)
    repliers = [u for u in reply_to if u in audience and u not in told]
    if repliers:
        # Grouped by the parent, as message replies are: "A and 2 others commented".
        await notifications.notify(services, Kind.REPLY, repliers, source_key=f"reply:item:{item.id}",
                                   group_key=f"reply:item:{item.parent_id}",
                                   actor_id=me, subject=("item", item.id),
                                   data={**payload, "parent_id": str(item.parent_id),
                                         "parent_kind": None if parent is None else parent.kind})
    quoters = [u for u in quote_of if u in audience and u not in told]
    if quoted is not None and quoters:
        await notifications.notify(services, Kind.QUOTE, quoters, source_key=f"quote:item:{item.id}",
                                   actor_id=me, subject=("item", item.id),
                                   data={**payload, "quoted_id": str(quoted.id),
                                         "quoted_kind": quoted.kind})


def _version(ctx: Context) -> int:
    """An item.updated version: the change's time in microseconds, growing with each change."""
    return int(ctx.services.clock().timestamp() * 1_000_000)


async def _publish(ctx: Context, item_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
    try:
        await ctx.services.item_live.publish(item_id, event, data)
    except Exception:
        # The change is committed; a lost live event is caught up by the next read.
        log.exception("item live event not published", extra={"item_id": str(item_id)})


async def _publish_new(ctx: Context, item: Item, out: ItemOut, reply_count: int) -> None:
    """Live: a new answer goes to the subscribers of its parent and of its thread's root."""
    if item.parent_id is None:
        return
    comment = {**out.model_dump(mode="json"), "author_id": str(item.author_id)}
    await _publish(ctx, item.parent_id, COMMENT_NEW, comment)
    if item.root_id is not None and item.root_id != item.parent_id:
        await _publish(ctx, item.root_id, COMMENT_NEW, comment)
    await _publish(ctx, item.parent_id, UPDATED,
                   {"reply_count": reply_count, "version": _version(ctx)})


async def _publish_updated(ctx: Context, out: ItemOut) -> None:
    """Live: the fields an edit or a delete changes, to the item's subscribers."""
    fields = out.model_dump(mode="json", include={
        "body", "media", "visibility", "allow_comments", "quote_policy", "mentions", "tags",
        "edited_at", "deleted"})
    await _publish(ctx, out.id, UPDATED, {**fields, "version": _version(ctx)})


# -- read --------------------------------------------------------------------------------


@command("item.get", input=ItemIdInput, rest=("GET", "/items/{item_id}"), scope=Scope.READ_CONTENT,
         output=ItemOut,
         rate=Rate("reads"))
async def get(ctx: Context, data: ItemIdInput) -> ItemOut:
    """An item you may see; a deleted one comes back with deleted=true and no body or media."""
    return await one(ctx, await visible_item(ctx, data.item_id))


@command("item.reply.list", input=RepliesInput, rest=("GET", "/items/{item_id}/replies"),
         scope=Scope.READ_CONTENT, output=ItemPage,
         rate=Rate("reads"))
async def replies(ctx: Context, data: RepliesInput) -> ItemPage:
    """The direct answers to an item you may see, oldest first; deleted ones stay as tombstones."""
    return await answers_page(ctx, data.item_id, data.cursor, data.limit, "item.reply.list")


async def answers_page(ctx: Context, item_id: uuid.UUID, cursor: str | None, limit: int,
                       list_name: str) -> ItemPage:
    """One page of an item's direct answers (item.reply.list, item.comment.list), oldest first."""
    after = decode_cursor(cursor, list_name)
    await visible_item(ctx, item_id)
    me = ctx.user.user_id
    page, following = await store.children_page(
        ctx.services.db, me, item_id, None if after is None else (after.at, after.id), limit)
    return ItemPage(items=await hydrate(ctx.services.db, me, page),
                    next_cursor=None if following is None else encode_cursor(Position(*following)))


# -- edit and delete ---------------------------------------------------------------------


@command("item.edit", input=EditInput, rest=("PATCH", "/items/{item_id}"), scope=Scope.WRITE_CONTENT,
         output=ItemOut,
         rate=Rate("item_edit"))
async def edit(ctx: Context, data: EditInput) -> ItemOut:
    """Change your item's body (kept in its history), audience, comment or quote settings."""
    item = await _own_item(ctx, data.item_id)
    changes = {name: getattr(data, name) for name in data.model_fields_set - {"item_id"}}
    if item.kind not in EDITABLE:
        raise _refuse(f"a {item.kind} is not edited with item.edit", "kind_not_editable")
    if "visibility" in changes and item.root_id is not None:
        raise invalid("visibility", "an answer is visible where its thread is", "not_allowed")
    names: list[str] = []
    tags: list[str] = []
    if "body" in changes:
        names, tags = mentioned_names(data.body), hashtags(data.body)
    async with ctx.services.db.transaction() as conn:
        current = await store.get_locked(conn, item.id)
        if current is None:
            raise _not_found()
        if current.deleted:
            raise CommandError("conflict", "a deleted item cannot be edited", {"reason": "deleted"})
        if "body" in changes:
            _check_body(current.kind, data.body, bool(await store.media_count(conn, current.id)))
            if data.body == current.body:
                del changes["body"]
        updated = current
        if changes:
            updated = await store.update(conn, current.id, changes, ctx.services.clock())
        new_mentions: list[uuid.UUID] = []
        if "body" in changes:
            new_mentions = await store.set_mentions(
                conn, current.id, list((await store.users_named(conn, names)).values()))
            await store.set_tags(conn, current.id, tags, current.created_at)
    if new_mentions:
        await _notify(ctx, updated, None, new_mentions)
    out = await one(ctx, updated)
    if changes:
        await _publish_updated(ctx, out)
    return out


def _edit_position(edit: Edit) -> Position:
    # item_edits ids are bigints: the cursor carries one in the uuid slot.
    return Position(edit.edited_at, uuid.UUID(int=edit.id))


@command("item.edit.list", input=EditsInput, rest=("GET", "/items/{item_id}/edits"),
         scope=Scope.READ_CONTENT, output=EditPage,
         rate=Rate("reads"))
async def edits(ctx: Context, data: EditsInput) -> EditPage:
    """Earlier versions of an item you may see, newest first."""
    await visible_item(ctx, data.item_id)
    after = decode_cursor(data.cursor, "item.edit.list")
    if after is not None and after.id.int >= 2**63:
        raise invalid("cursor", "not a cursor from item.edit.list", "cursor_invalid")
    rows = await store.edits_page(ctx.services.db, data.item_id,
                                  None if after is None else after.id.int, data.limit + 1)
    page, next_cursor = page_of(rows, data.limit, _edit_position)
    return EditPage(edits=[EditOut(body=e.body, edited_at=e.edited_at) for e in page],
                    next_cursor=next_cursor)


@command("item.delete", input=ItemIdInput, rest=("DELETE", "/items/{item_id}"),
         scope=Scope.WRITE_CONTENT, status=204,
         rate=Rate("item_delete"))
async def delete(ctx: Context, data: ItemIdInput) -> None:
    """Delete your item, leaving a tombstone so its answers stay reachable; twice is fine."""
    item = await _own_item(ctx, data.item_id)
    if item.kind in DELETED_ELSEWHERE:
        raise invalid("item_id", f"a {item.kind} is removed with {DELETED_ELSEWHERE[item.kind]}",
                      "wrong_kind")
    if item.deleted:
        return
    async with ctx.services.db.transaction() as conn:
        await store.tombstone(conn, item.id)
    gone = await store.get(ctx.services.db, item.id)
    if gone is not None:
        await _publish_updated(ctx, await one(ctx, gone))
