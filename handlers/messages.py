"""Messages: send (through the persistence worker), history, edit, delete, reactions, receipts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any, Literal

from handlers import activities, notifications
from handlers import media as media_handlers
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.message_schemas import (
    EditInput,
    HistoryInput,
    HistoryPage,
    MessageIdInput,
    MessageOut,
    MessageReactionOut,
    ReactInput,
    ReceiptInput,
    ReceiptOut,
    SendInput,
    SyncEvent,
    SyncInput,
    SyncPageOut,
)
from handlers.rates import Rate
from handlers.scopes import Scope
from jobs.persistence import QUEUE as PERSISTENCE_QUEUE
from jobs.persistence import send_job
from jobs.queue import QueueUnavailable
from storage import conversations as conversation_store
from storage import events as event_store
from storage import messages as message_store
from storage.conversations import Conversation, Membership
from storage.events import EventDraft
from storage.messages import Message, MessageDraft


async def membership(ctx: Context, conversation_id: uuid.UUID) -> tuple[Conversation, Membership]:
    """The conversation if the caller is an active member; not_found hides it otherwise."""
    found = await conversation_store.get_for_member(ctx.services.db, conversation_id,
                                                    ctx.user.user_id)
    if found is None:
        raise CommandError("not_found", "no such conversation")
    return found


async def refuse_blocked_dm(ctx: Context, conversation: Conversation) -> None:
    """In a DM, a block either way stops every write to it: forbidden, reason blocked.

    As message.send: the blocked cannot reach the blocker, and the blocker must unblock
    first. Typing, reactions and edits are writes the other side sees, so they stop too.
    """
    if conversation.kind != "direct":
        return
    check = await conversation_store.send_check(ctx.services.db, conversation.id,
                                                ctx.user.user_id)
    if check is not None and check.blocked:
        raise CommandError("forbidden", "you cannot message this user", {"reason": "blocked"})


async def _message_for_member(ctx: Context, message_id: uuid.UUID, *,
                              writing: bool = False) -> tuple[Message, Membership]:
    """The message if the caller is an active member of its conversation; not_found otherwise.

    `writing`: the caller changes something the other members see (refuse_blocked_dm).
    """
    message = await message_store.get_message(ctx.services.db, message_id)
    if message is None:
        raise CommandError("not_found", "no such message")
    found = await conversation_store.get_for_member(ctx.services.db, message.conversation_id,
                                                    ctx.user.user_id)
    if found is None:
        raise CommandError("not_found", "no such message")
    if writing:
        await refuse_blocked_dm(ctx, found[0])
    return message, found[1]


@command("message.send", input=SendInput, rest=("POST", "/conversations/{conversation_id}/messages"),
         scope=Scope.WRITE_MESSAGES, status=201, output=MessageOut,
         rate=Rate("message_send"), activity=activities.MESSAGE_SENT)
async def send(ctx: Context, data: SendInput) -> dict[str, Any]:
    """Send a message; the ack carries it once it is stored. Retries by client_id are safe."""
    return await send_message(ctx, data)


async def send_message(ctx: Context, data: SendInput, *,
                       story_id: uuid.UUID | None = None) -> dict[str, Any]:
    """message.send's use case; story.reply passes the story the message answers."""
    services, limits = ctx.services, ctx.services.settings.limits
    user_id = ctx.user.user_id
    if data.body is not None and len(data.body) > limits.message_body_chars:
        raise invalid("body", f"at most {limits.message_body_chars} characters", "string_too_long")
    if len(data.media_ids) > limits.message_media_max:
        raise invalid("media_ids", f"at most {limits.message_media_max} media per message",
                      "too_long")
    # The worker decides membership and blocks in the storing transaction. This node only
    # refuses early: with no query when it holds the sender's socket and tracks them as a
    # member (kept current by the join and leave events it receives), else in one query.
    if not services.realtime.tracks_member(user_id, data.conversation_id):
        check = await conversation_store.send_check(services.db, data.conversation_id, user_id)
        if check is None:
            raise CommandError("not_found", "no such conversation")
        if check.blocked:
            # Either side's block ends the DM: the blocked cannot write, the blocker must unblock.
            raise CommandError("forbidden", "you cannot message this user", {"reason": "blocked"})
    if data.reply_to is not None:
        parent = await message_store.get_message(services.db, data.reply_to)
        if parent is None or parent.conversation_id != data.conversation_id:
            raise invalid("reply_to", "no such message in this conversation", "reply_not_found")
    media = await media_handlers.attachments(ctx, data.media_ids) if data.media_ids else []
    request_id, reply = services.replies.expect()
    job = send_job(MessageDraft(uuid.uuid4(), data.conversation_id, user_id, data.client_id,
                                data.body, media, data.reply_to, story_id),
                   request_id=request_id, reply_node=services.settings.node_id)
    try:
        # Sends of the same loop turn share one confirmed RabbitMQ message.
        await services.queue.publish(PERSISTENCE_QUEUE, job, batch=True)
    except QueueUnavailable as exc:
        services.replies.forget(request_id)
        raise CommandError("unavailable", "messages cannot be accepted right now; retry",
                           {"accepted": False}) from exc
    try:
        outcome = await asyncio.wait_for(reply, services.settings.send_timeout_s)
    except TimeoutError:
        services.replies.forget(request_id)
        # The job is durable in the queue and will be stored; a retry returns it.
        raise CommandError("unavailable", "the message is queued but not stored yet; retry "
                           "with the same client_id to get it", {"accepted": True}) from None
    if not outcome.get("ok"):
        error = outcome.get("error", {})
        raise CommandError(error.get("code", "internal"), error.get("message", "send failed"),
                           error.get("details"))
    return dict(outcome["message"])


@command("message.list", input=HistoryInput, rest=("GET", "/conversations/{conversation_id}/messages"),
         scope=Scope.READ_MESSAGES, output=HistoryPage,
         rate=Rate("reads"))
async def history(ctx: Context, data: HistoryInput) -> HistoryPage:
    """A page of messages in seq order: the newest before before_seq, or the oldest after after_seq."""
    await membership(ctx, data.conversation_id)
    page = await message_store.history(ctx.services.db, data.conversation_id,
                                       before_seq=data.before_seq, after_seq=data.after_seq,
                                       limit=data.limit + 1)
    has_more = len(page) > data.limit
    if has_more:
        page = page[1:] if data.after_seq is None else page[:-1]
    return HistoryPage(messages=[MessageOut(**m.to_wire()) for m in page], has_more=has_more)


@command("message.edit", input=EditInput, rest=("PATCH", "/messages/{message_id}"),
         scope=Scope.WRITE_MESSAGES, output=MessageOut,
         rate=Rate("message_edit"))
async def edit(ctx: Context, data: EditInput) -> MessageOut:
    """Change your message's body, within the edit window (24 h by default)."""
    services = ctx.services
    limit = services.settings.limits.message_body_chars
    if len(data.body) > limit:
        raise invalid("body", f"at most {limit} characters", "string_too_long")
    message, _ = await _message_for_member(ctx, data.message_id, writing=True)
    if message.sender_id != ctx.user.user_id:
        raise CommandError("forbidden", "only the sender can edit a message")
    if message.deleted_at is not None:
        raise CommandError("conflict", "the message was deleted")
    window = timedelta(seconds=services.settings.limits.message_edit_window_s)
    if services.clock() - message.created_at > window:
        raise CommandError("forbidden", "the edit window has passed", {"reason": "edit_window"})
    async with services.db.transaction() as conn:
        edited = await message_store.edit_body(conn, message.id, data.body)
        if edited is None:
            raise CommandError("conflict", "the message was deleted")
        counts = (await message_store.reaction_counts(conn, [message.id])).get(message.id, {})
        wire = {**edited.to_wire(), "reactions": counts}
        await event_store.append_events(conn, [
            EventDraft(edited.conversation_id, "message.updated", wire)])
    return MessageOut(**wire)


@command("message.delete", input=MessageIdInput, rest=("DELETE", "/messages/{message_id}"),
         scope=Scope.WRITE_MESSAGES, status=204,
         rate=Rate("message_delete"))
async def delete(ctx: Context, data: MessageIdInput) -> None:
    """Delete a message (the sender, or a group admin); a tombstone keeps its seq."""
    message, member = await _message_for_member(ctx, data.message_id)
    if message.sender_id != ctx.user.user_id and member.role not in ("owner", "admin"):
        raise CommandError("forbidden", "only the sender or a group admin can delete a message")
    async with ctx.services.db.transaction() as conn:
        gone = await message_store.tombstone(conn, message.id, ctx.user.user_id)
        if gone is None:
            return  # already deleted: deleting is idempotent
        await event_store.append_events(conn, [EventDraft(gone.conversation_id, "message.deleted", {
            "id": str(gone.id), "conversation_id": str(gone.conversation_id), "seq": gone.seq,
            "deleted_by": str(ctx.user.user_id)})])


async def _react(ctx: Context, data: ReactInput, on: bool) -> dict[str, Any]:
    message, _ = await _message_for_member(ctx, data.message_id, writing=True)
    if message.deleted_at is not None:
        raise CommandError("conflict", "the message was deleted")
    async with ctx.services.db.transaction() as conn:
        counts = await message_store.set_reaction(conn, message.id, ctx.user.user_id, data.emoji, on)
        if counts is None:
            counts = (await message_store.reaction_counts(conn, [message.id])).get(message.id, {})
            return {"message_id": str(message.id), "reactions": counts, "changed": False}
        await event_store.append_events(conn, [EventDraft(message.conversation_id,
                                                          "reaction.updated", {
            "message_id": str(message.id), "conversation_id": str(message.conversation_id),
            "seq": message.seq, "user_id": str(ctx.user.user_id), "emoji": data.emoji,
            "action": "added" if on else "removed", "reactions": counts})])
    if on:
        await notifications.reaction_added(ctx.services, message.id, ctx.user.user_id, data.emoji)
    return {"message_id": str(message.id), "reactions": counts, "changed": True}


@command("message.react", input=ReactInput, rest=("PUT", "/messages/{message_id}/reactions/{emoji}"),
         scope=Scope.WRITE_MESSAGES, output=MessageReactionOut,
         rate=Rate("reaction"))
async def react(ctx: Context, data: ReactInput) -> dict[str, Any]:
    """Add your reaction (one per emoji per user); answers the counts per emoji."""
    return await _react(ctx, data, True)


@command("message.unreact", input=ReactInput,
         rest=("DELETE", "/messages/{message_id}/reactions/{emoji}"), scope=Scope.WRITE_MESSAGES,
         output=MessageReactionOut,
         rate=Rate("reaction"))
async def unreact(ctx: Context, data: ReactInput) -> dict[str, Any]:
    """Take your reaction back; answers the counts per emoji."""
    return await _react(ctx, data, False)


async def _receipt(ctx: Context, data: ReceiptInput, kind: Literal["read", "delivered"]) -> ReceiptOut:
    services = ctx.services
    conversation, member = await membership(ctx, data.conversation_id)
    if data.seq > conversation.last_seq:
        raise invalid("seq", f"the conversation's last seq is {conversation.last_seq}", "seq_ahead")
    user_id = ctx.user.user_id
    async with services.db.transaction() as conn:
        marks = await conversation_store.advance_receipt(conn, conversation.id, user_id, kind,
                                                         data.seq)
        if marks is not None:
            broadcast = conversation.member_count <= \
                services.settings.limits.receipts_broadcast_max_members
            await event_store.append_events(conn, [EventDraft(
                conversation.id, "receipt",
                {"conversation_id": str(conversation.id), "user_id": str(user_id),
                 "read_seq": marks[0], "delivered_seq": marks[1]},
                audience=None if broadcast else [user_id])])
    read_seq, delivered_seq = marks or (member.last_read_seq, member.last_delivered_seq)
    unread = await conversation_store.unread_in(services.db, conversation.id, user_id, read_seq)
    return ReceiptOut(conversation_id=conversation.id, read_seq=read_seq,
                      delivered_seq=delivered_seq, unread=unread)


@command("receipt.mark_read", input=ReceiptInput, rest=("POST", "/conversations/{conversation_id}/read"),
         scope=Scope.WRITE_MESSAGES, output=ReceiptOut,
         rate=Rate("receipt"))
async def mark_read(ctx: Context, data: ReceiptInput) -> ReceiptOut:
    """Mark the conversation read up to seq (never moves back); implies delivered."""
    return await _receipt(ctx, data, "read")


@command("receipt.mark_delivered", input=ReceiptInput,
         rest=("POST", "/conversations/{conversation_id}/delivered"), scope=Scope.WRITE_MESSAGES,
         output=ReceiptOut,
         rate=Rate("receipt"))
async def mark_delivered(ctx: Context, data: ReceiptInput) -> ReceiptOut:
    """Mark the conversation delivered to you up to seq (never moves back)."""
    return await _receipt(ctx, data, "delivered")


@command("sync", input=SyncInput, rest=("GET", "/sync"), scope=Scope.READ_MESSAGES, output=SyncPageOut,
         rate=Rate("reads"))
async def sync(ctx: Context, data: SyncInput) -> SyncPageOut:
    """Every event for you since the cursor, in order; {gap: true} when the cursor is too old."""
    services = ctx.services
    if data.cursor is None:
        # A new client fetches state (conversation.list, history) and syncs from here on.
        latest = await event_store.latest_event_id(services.db)
        return SyncPageOut(events=[], cursor=str(latest), has_more=False, gap=False)
    page = await event_store.sync_page(services.db, ctx.user.user_id, int(data.cursor), data.limit)
    return SyncPageOut(
        events=[SyncEvent(event=e.kind, data=e.to_wire()) for e in page.events],
        cursor=str(page.next_cursor), has_more=page.has_more, gap=page.gap,
    )
