"""Conversations: open a DM, create and run groups, list and read them, mute.

Membership changes are events in the conversation's stream, appended in the same
transaction as the change (storage/events.py), so live delivery, sync and the
relay's room joins all follow from them:

- member.joined {conversation_id, user_ids, by, conversation: {id, kind, title,
  avatar_url, member_count, created_at}}
- member.left {conversation_id, user_ids, by, reason: "left" | "removed"}
- conversation.updated {conversation_id, title, avatar_url, by, roles?}: roles lists
  [{user_id, role}] that changed, e.g. the heir when an owner leaves a group
- conversation.updated {conversation_id, muted, muted_until}, to the muting member only

Every transaction that changes membership or roles locks the conversation row first,
so concurrent adds respect the member limit and role checks see the latest roles.
Anyone who is not an active member gets not_found: a conversation's existence is
never revealed to outsiders.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from handlers.commands import command
from handlers.context import Context
from handlers.conversation_schemas import (
    AddMembersInput,
    AddMembersOut,
    ConversationIdInput,
    ConversationMemberOut,
    ConversationMuteOut,
    ConversationOut,
    ConversationPage,
    ConversationSummary,
    CreateGroupInput,
    LastMessageOut,
    ListInput,
    MemberInput,
    MuteInput,
    OpenDirectInput,
    SetRoleInput,
    UpdateInput,
    brief,
    wire_time,
)
from handlers.errors import CommandError, invalid
from handlers.messages import membership
from handlers.pagination import Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import blocks as block_store
from storage import conversations as store
from storage import events as event_store
from storage import users as user_store
from storage.conversations import MUTED_FOREVER, Conversation, ConversationView, Membership
from storage.events import EventDraft, StoredEvent

ADMIN_ROLES = ("owner", "admin")


def _not_found() -> CommandError:
    return CommandError("not_found", "no such conversation")


async def _append(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, kind: str, payload: dict[str, Any],
    audience: list[uuid.UUID] | None = None,
) -> StoredEvent:
    [event] = await event_store.append_events(
        conn, [EventDraft(conversation_id, kind, payload, audience)])
    return event


def _summary_fields(view: ConversationView, now: datetime) -> dict[str, Any]:
    conv, mine = view.conversation, view.membership
    muted = mine.muted_until is not None and mine.muted_until > now
    last = view.last_message
    return {
        "id": conv.id, "kind": conv.kind, "title": conv.title, "avatar_url": conv.avatar_url,
        "member_count": conv.member_count, "created_at": conv.created_at,
        "last_seq": conv.last_seq, "last_message_at": conv.last_message_at,
        "last_message": None if last is None else LastMessageOut(**last),
        "role": mine.role, "muted": muted, "muted_until": mine.muted_until if muted else None,
        "unread": view.unread, "last_read_seq": mine.last_read_seq, "peer": view.direct_peer_id,
    }


async def _view(ctx: Context, conversation_id: uuid.UUID) -> ConversationOut:
    view = await store.view_for_member(ctx.services.db, conversation_id, ctx.user.user_id)
    if view is None:
        raise _not_found()
    members = await store.members(ctx.services.db, conversation_id, 1000)
    return ConversationOut(**_summary_fields(view, ctx.services.clock()),
                           members=[ConversationMemberOut.model_validate(
                               {"user_id": m.user_id, "role": m.role}) for m in members])


async def _locked_group(
    conn: asyncpg.Connection, ctx: Context, conversation_id: uuid.UUID, *, admin: bool
) -> tuple[Conversation, Membership]:
    """Lock the conversation, then check the caller is (still) a member of a group."""
    await store.lock_conversation(conn, conversation_id)
    found = await store.get_for_member(conn, conversation_id, ctx.user.user_id)
    if found is None:
        raise _not_found()
    conversation, mine = found
    if conversation.kind != "group":
        raise CommandError("forbidden", "a direct conversation has no members to manage",
                           {"reason": "direct_conversation"})
    if admin and mine.role not in ADMIN_ROLES:
        raise CommandError("forbidden", "only the group's owner or admins can do this",
                           {"reason": "not_admin"})
    return found


async def _check_users_exist(conn: asyncpg.Connection, field: str, ids: list[uuid.UUID]) -> None:
    missing = set(ids) - await store.existing_users(conn, ids)
    if missing:
        raise CommandError("invalid_input", "some users do not exist", {
            "fields": [{"field": field, "message": "no such user", "type": "unknown_user"}],
            "user_ids": sorted(str(u) for u in missing)})


async def _refuse_blockers(conn: asyncpg.Connection, actor: uuid.UUID, ids: list[uuid.UUID]) -> None:
    # Naming them reveals no more than adding them one at a time would, and the
    # client needs it to fix the request.
    blockers = await block_store.blocked_among(conn, actor, ids)
    if blockers:
        raise CommandError("forbidden", "some users cannot be added",
                           {"reason": "blocked", "user_ids": sorted(str(u) for u in blockers)})


def _too_many(field: str, limit: int) -> CommandError:
    message = f"a group has at most {limit} members"
    return CommandError("invalid_input", message, {
        "fields": [{"field": field, "message": message, "type": "too_many_members"}],
        "limit": limit})


@command("conversation.create_group", input=CreateGroupInput, rest=("POST", "/conversations/groups"),
         scope=Scope.WRITE_MESSAGES, status=201, output=ConversationOut,
         rate=Rate("conversation_create"))
async def create_group(ctx: Context, data: CreateGroupInput) -> ConversationOut:
    """Create a group with you as its owner; users who blocked you cannot be added (forbidden)."""
    services, me = ctx.services, ctx.user.user_id
    limit = services.settings.limits.group_members_max
    if me in data.member_ids:
        raise invalid("member_ids", "do not list yourself: you are the owner", "self")
    if len(data.member_ids) + 1 > limit:
        raise _too_many("member_ids", limit)
    async with services.db.transaction() as conn:
        await _check_users_exist(conn, "member_ids", data.member_ids)
        await _refuse_blockers(conn, me, data.member_ids)
        conversation = await store.insert_conversation(
            conn, kind="group", title=data.title, avatar_url=data.avatar_url, created_by=me, key=None)
        if conversation is None:
            raise RuntimeError("a group insert cannot conflict")
        members = [(me, "owner"), *((u, "member") for u in data.member_ids)]
        event = await _append(conn, conversation.id, "member.joined", {
            "conversation_id": str(conversation.id), "user_ids": [str(u) for u, _ in members],
            "by": str(me), "conversation": brief(conversation, len(members))})
        await store.upsert_members(conn, conversation.id, members, event.id)
    # Members now share a conversation, so they see each other's presence (docs/conversations.md).
    await services.presence.access_changed([u for u, _ in members], [u for u, _ in members])
    return await _view(ctx, conversation.id)


@command("conversation.open_direct", input=OpenDirectInput, rest=("POST", "/conversations/direct"),
         scope=Scope.WRITE_MESSAGES, output=ConversationOut,
         rate=Rate("conversation_create"))
async def open_direct(ctx: Context, data: OpenDirectInput) -> ConversationOut:
    """Your one DM with a user: the existing one, or a new one; refused if either blocked the other."""
    db, me, peer = ctx.services.db, ctx.user.user_id, data.user_id
    if peer == me:
        raise invalid("user_id", "you cannot open a conversation with yourself", "self")
    if await user_store.get_user(db, peer) is None:
        raise CommandError("not_found", "no such user")
    if await block_store.is_blocked_either_way(db, me, peer):
        raise CommandError("forbidden", "you cannot message this user", {"reason": "blocked"})
    existing = await store.find_direct(db, me, peer)
    if existing is not None:
        return await _view(ctx, existing.id)
    async with db.transaction() as conn:
        conversation = await store.insert_conversation(
            conn, kind="direct", title=None, avatar_url=None, created_by=me,
            key=store.direct_key(me, peer))
        if conversation is not None:
            event = await _append(conn, conversation.id, "member.joined", {
                "conversation_id": str(conversation.id), "user_ids": [str(me), str(peer)],
                "by": str(me), "conversation": brief(conversation, 2)})
            await store.upsert_members(conn, conversation.id, [(me, "member"), (peer, "member")],
                                       event.id)
    if conversation is not None:
        await ctx.services.presence.access_changed([me], [peer])
    else:
        # Created concurrently: the insert waited for that transaction, so it has committed.
        conversation = await store.find_direct(db, me, peer)
        if conversation is None:
            raise RuntimeError("a concurrently created DM is missing")
    return await _view(ctx, conversation.id)


@command("conversation.get", input=ConversationIdInput,
         rest=("GET", "/conversations/{conversation_id}"), scope=Scope.READ_MESSAGES,
         output=ConversationOut,
         rate=Rate("reads"))
async def get(ctx: Context, data: ConversationIdInput) -> ConversationOut:
    """A conversation you are a member of, with your unread count, mute and its members."""
    return await _view(ctx, data.conversation_id)


def _position(view: ConversationView) -> Position:
    conversation = view.conversation
    return Position(conversation.last_message_at or conversation.created_at, conversation.id)


@command("conversation.list", input=ListInput, rest=("GET", "/conversations"),
         scope=Scope.READ_MESSAGES, output=ConversationPage,
         rate=Rate("reads"))
async def list_conversations(ctx: Context, data: ListInput) -> ConversationPage:
    """Your conversations, most recent activity first, with unread counts and last messages."""
    services, me = ctx.services, ctx.user.user_id
    after = decode_cursor(data.cursor, "conversation.list")
    before = None if after is None else (after.at, after.id)
    views, next_cursor = page_of(await store.list_for_user(services.db, me, data.limit + 1, before),
                                 data.limit, _position)
    now = services.clock()
    return ConversationPage(
        conversations=[ConversationSummary(**_summary_fields(v, now)) for v in views],
        total_unread=await store.total_unread(services.db, me),
        next_cursor=next_cursor,
    )


@command("conversation.update", input=UpdateInput,
         rest=("PATCH", "/conversations/{conversation_id}"), scope=Scope.WRITE_MESSAGES,
         output=ConversationOut,
         rate=Rate("conversation_manage"))
async def update(ctx: Context, data: UpdateInput) -> ConversationOut:
    """Change a group's title or avatar (owner and admins)."""
    await membership(ctx, data.conversation_id)
    changes = {name: getattr(data, name) for name in data.model_fields_set & {"title", "avatar_url"}}
    async with ctx.services.db.transaction() as conn:
        before, _ = await _locked_group(conn, ctx, data.conversation_id, admin=True)
        if any(getattr(before, name) != value for name, value in changes.items()):
            after = await store.update_details(conn, before.id, changes)
            await _append(conn, after.id, "conversation.updated", {
                "conversation_id": str(after.id), "title": after.title,
                "avatar_url": after.avatar_url, "by": str(ctx.user.user_id)})
    return await _view(ctx, data.conversation_id)


@command("conversation.member.add", input=AddMembersInput,
         rest=("POST", "/conversations/{conversation_id}/members"), scope=Scope.WRITE_MESSAGES,
         output=AddMembersOut,
         rate=Rate("conversation_manage"))
async def add_members(ctx: Context, data: AddMembersInput) -> AddMembersOut:
    """Add users to a group (owner and admins); those already in it are left as they are."""
    me = ctx.user.user_id
    limit = ctx.services.settings.limits.group_members_max
    await membership(ctx, data.conversation_id)
    async with ctx.services.db.transaction() as conn:
        conversation, _ = await _locked_group(conn, ctx, data.conversation_id, admin=True)
        if len(data.user_ids) + 1 > limit:
            raise _too_many("user_ids", limit)
        await _check_users_exist(conn, "user_ids", data.user_ids)
        present = await store.active_among(conn, conversation.id, data.user_ids)
        new = [u for u in data.user_ids if u not in present]
        if new:
            await _refuse_blockers(conn, me, new)
            count = conversation.member_count + len(new)
            if count > limit:
                raise CommandError("conflict", f"the group is full: at most {limit} members", {
                    "reason": "group_full", "limit": limit,
                    "member_count": conversation.member_count})
            event = await _append(conn, conversation.id, "member.joined", {
                "conversation_id": str(conversation.id), "user_ids": [str(u) for u in new],
                "by": str(me), "conversation": brief(conversation, count)})
            await store.upsert_members(conn, conversation.id, [(u, "member") for u in new],
                                       event.id)
    await ctx.services.presence.access_changed(new)
    return AddMembersOut(added=new, conversation=await _view(ctx, data.conversation_id))


@command("conversation.member.remove", input=MemberInput,
         rest=("DELETE", "/conversations/{conversation_id}/members/{user_id}"),
         scope=Scope.WRITE_MESSAGES, status=204,
         rate=Rate("conversation_manage"))
async def remove_member(ctx: Context, data: MemberInput) -> None:
    """Remove a member from a group (owner and admins; only the owner removes an admin)."""
    me = ctx.user.user_id
    await membership(ctx, data.conversation_id)
    if data.user_id == me:
        raise invalid("user_id", "to leave a group, use conversation.leave", "self")
    async with ctx.services.db.transaction() as conn:
        conversation, mine = await _locked_group(conn, ctx, data.conversation_id, admin=True)
        role = (await store.active_among(conn, conversation.id, [data.user_id])).get(data.user_id)
        if role is None:
            raise CommandError("not_found", "no such member")
        if role == "owner":
            raise CommandError("forbidden", "nobody can remove the group's owner",
                               {"reason": "owner"})
        if role == "admin" and mine.role != "owner":
            raise CommandError("forbidden", "only the owner can remove an admin",
                               {"reason": "not_owner"})
        event = await _append(conn, conversation.id, "member.left", {
            "conversation_id": str(conversation.id), "user_ids": [str(data.user_id)],
            "by": str(me), "reason": "removed"})
        await store.deactivate_member(conn, conversation.id, data.user_id, event.id)
    # Presence between the removed member and the others may end (no other shared ground).
    await ctx.services.presence.access_changed([data.user_id])


@command("conversation.leave", input=ConversationIdInput,
         rest=("POST", "/conversations/{conversation_id}/leave"), scope=Scope.WRITE_MESSAGES,
         status=204,
         rate=Rate("conversation_manage"))
async def leave(ctx: Context, data: ConversationIdInput) -> None:
    """Leave a group; an owner's group passes to the longest-standing admin, else member.

    The handover is a conversation.updated event with roles [{user_id, role: "owner"}],
    after the member.left. The last member to leave leaves an empty group behind.
    """
    me = ctx.user.user_id
    await membership(ctx, data.conversation_id)
    async with ctx.services.db.transaction() as conn:
        conversation, mine = await _locked_group(conn, ctx, data.conversation_id, admin=False)
        event = await _append(conn, conversation.id, "member.left", {
            "conversation_id": str(conversation.id), "user_ids": [str(me)], "by": str(me),
            "reason": "left"})
        await store.deactivate_member(conn, conversation.id, me, event.id)
        heir = await store.successor(conn, conversation.id) if mine.role == "owner" else None
        if heir is not None:
            await store.set_role(conn, conversation.id, heir, "owner")
            await _append(conn, conversation.id, "conversation.updated", {
                "conversation_id": str(conversation.id), "title": conversation.title,
                "avatar_url": conversation.avatar_url, "by": str(me),
                "roles": [{"user_id": str(heir), "role": "owner"}]})
    # Presence between the leaver and the others may end (no other shared ground).
    await ctx.services.presence.access_changed([me])


@command("conversation.member.set_role", input=SetRoleInput,
         rest=("PUT", "/conversations/{conversation_id}/members/{user_id}/role"),
         scope=Scope.WRITE_MESSAGES, output=ConversationOut,
         rate=Rate("conversation_manage"))
async def set_role(ctx: Context, data: SetRoleInput) -> ConversationOut:
    """Make a member an admin or a member again (owner only); role owner hands the group over."""
    me = ctx.user.user_id
    await membership(ctx, data.conversation_id)
    if data.user_id == me:
        raise invalid("user_id", "you cannot change your own role", "self")
    async with ctx.services.db.transaction() as conn:
        conversation, mine = await _locked_group(conn, ctx, data.conversation_id, admin=False)
        if mine.role != "owner":
            raise CommandError("forbidden", "only the group's owner can change roles",
                               {"reason": "not_owner"})
        role = (await store.active_among(conn, conversation.id, [data.user_id])).get(data.user_id)
        if role is None:
            raise CommandError("not_found", "no such member")
        if role != data.role:
            changes = [(data.user_id, data.role)]
            if data.role == "owner":
                changes.append((me, "admin"))
            for user_id, new_role in changes:
                await store.set_role(conn, conversation.id, user_id, new_role)
            await _append(conn, conversation.id, "conversation.updated", {
                "conversation_id": str(conversation.id), "title": conversation.title,
                "avatar_url": conversation.avatar_url, "by": str(me),
                "roles": [{"user_id": str(u), "role": r} for u, r in changes]})
    return await _view(ctx, data.conversation_id)


async def _mute(ctx: Context, conversation_id: uuid.UUID, until: datetime | None) -> ConversationMuteOut:
    me = ctx.user.user_id
    await membership(ctx, conversation_id)
    async with ctx.services.db.transaction() as conn:
        if not await store.set_mute(conn, conversation_id, me, until):
            raise _not_found()
        await _append(conn, conversation_id, "conversation.updated", {
            "conversation_id": str(conversation_id), "muted": until is not None,
            "muted_until": wire_time(until)}, audience=[me])
    return ConversationMuteOut(conversation_id=conversation_id, muted=until is not None, muted_until=until)


@command("conversation.mute", input=MuteInput, rest=("PUT", "/conversations/{conversation_id}/mute"),
         scope=Scope.WRITE_MESSAGES, output=ConversationMuteOut,
         rate=Rate("conversation_manage"))
async def mute(ctx: Context, data: MuteInput) -> ConversationMuteOut:
    """Mute a conversation until a time, or with no end when until is omitted."""
    if data.until is not None and data.until <= ctx.services.clock():
        raise invalid("until", "must be in the future", "past")
    return await _mute(ctx, data.conversation_id, data.until or MUTED_FOREVER)


@command("conversation.unmute", input=ConversationIdInput,
         rest=("DELETE", "/conversations/{conversation_id}/mute"), scope=Scope.WRITE_MESSAGES,
         output=ConversationMuteOut,
         rate=Rate("conversation_manage"))
async def unmute(ctx: Context, data: ConversationIdInput) -> ConversationMuteOut:
    """Unmute a conversation."""
    return await _mute(ctx, data.conversation_id, None)
