"""The persistence worker: writes sent messages to PostgreSQL in batches, idempotently.

Jobs arrive one by one (RabbitMQ delivers up to `prefetch` at once); each waits on a
future while a flusher writes everything pending in one transaction. A job is acked
only after its batch committed, so a crash redelivers it, and the (sender, client_id)
key turns the redelivery into a lookup of the stored message instead of a second one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from channels.bus import Bus
from channels.topics import reply_topic
from jobs.persistence import SEND_JOB, draft_of
from storage import events as event_store
from storage import media as media_store
from storage import messages as message_store
from storage.db import Database
from storage.events import EventDraft
from storage.messages import Message, MessageDraft

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    draft: MessageDraft
    future: asyncio.Future[dict[str, Any]]
    # Where the outcome goes: the node that queued the send, and its waiting request.
    reply_node: str | None = None
    request_id: str | None = None


StoredHook = Callable[[list[dict[str, Any]]], Awaitable[None]]


class PersistenceWorker:
    def __init__(self, db: Database, bus: Bus, batch_max: int = 500,
                 on_stored: StoredHook | None = None) -> None:
        self.db = db
        self.bus = bus
        self.batch_max = batch_max
        # Told of each stored batch (redeliveries too) after its commit, e.g. notifications.
        self.on_stored = on_stored
        self._announcing: set[asyncio.Task[None]] = set()
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="persistence-flusher")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._announcing:
            await asyncio.wait(self._announcing, timeout=5)
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("worker stopping"))

    async def handle(self, job: dict[str, Any]) -> None:
        """Store one send (batched with its neighbours); the flusher tells the waiting node."""
        if job.get("type") != SEND_JOB:
            raise ValueError(f"unknown persistence job type {job.get('type')!r}")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(draft_of(job), future, job.get("reply_node") or None,
                                      job.get("request_id") or None))
        self._wakeup.set()
        await future  # raises if the batch failed: the queue retries the job

    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            # One loop turn lets the deliveries already in hand join this batch.
            await asyncio.sleep(0)
            batch, self._pending = self._pending[: self.batch_max], self._pending[self.batch_max :]
            if not self._pending:
                self._wakeup.clear()
            if not batch:
                continue
            stored: list[dict[str, Any]] = []
            replies: dict[str, list[dict[str, Any]]] = {}
            try:
                outcomes = await self.write_batch([p.draft for p in batch])
                for pending, outcome in zip(batch, outcomes, strict=True):
                    self._settle(pending, outcome, stored, replies)
            except Exception as exc:
                log.exception("persistence batch failed", extra={"size": len(batch)})
                if len(batch) == 1:
                    self._settle(batch[0], exc, stored, replies)
                else:
                    # One bad job must not fail its neighbours: write each on its own.
                    for pending in batch:
                        try:
                            self._settle(pending, (await self.write_batch([pending.draft]))[0],
                                         stored, replies)
                        except Exception as single:
                            self._settle(pending, single, stored, replies)
            await self._reply(replies)
            self._announce(stored)

    @staticmethod
    def _settle(pending: _Pending, outcome: dict[str, Any] | BaseException,
                stored: list[dict[str, Any]], replies: dict[str, list[dict[str, Any]]]) -> None:
        """Answer a waiting job: an outcome acks it, an exception sends it back to the queue."""
        if pending.future.done():
            return
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
            return
        pending.future.set_result(outcome)
        if outcome["ok"]:
            stored.append(outcome["message"])
        if pending.reply_node and pending.request_id:
            replies.setdefault(pending.reply_node, []).append(
                {"request_id": pending.request_id, **outcome})

    async def _reply(self, replies: dict[str, list[dict[str, Any]]]) -> None:
        """One bus message per waiting node for the whole batch (after its commit)."""
        if not replies:
            return
        try:
            await self.bus.publish_many([(reply_topic(node), {"replies": answers})
                                         for node, answers in replies.items()])
        except Exception:
            # The messages are stored; a sender who misses its reply retries by client_id.
            log.warning("send replies not delivered", extra={"nodes": len(replies)})

    def _announce(self, messages: list[dict[str, Any]]) -> None:
        # In the background: sends never wait on (nor fail with) what follows a store.
        if self.on_stored is None or not messages:
            return
        task = asyncio.create_task(self._call_hook(self.on_stored, messages))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    @staticmethod
    async def _call_hook(hook: StoredHook, messages: list[dict[str, Any]]) -> None:
        try:
            await hook(messages)
        except Exception:
            log.warning("stored messages not announced", exc_info=True,
                        extra={"messages": len(messages)})

    async def write_batch(self, drafts: list[MessageDraft]) -> list[dict[str, Any]]:
        """Store the drafts in one transaction; one outcome per draft, in order."""
        async with self.db.transaction() as conn:
            # Retries, membership and DM blocks are decided here, in the storing transaction.
            lookup = await message_store.lookup_sends(
                conn, [(d.sender_id, d.client_id) for d in drafts],
                list({(d.conversation_id, d.sender_id) for d in drafts}))
            stored, senders = lookup.stored, lookup.senders
            fresh: dict[tuple[uuid.UUID, str], MessageDraft] = {}
            for d in drafts:
                key = (d.sender_id, d.client_id)
                if key not in stored and key not in fresh and \
                        senders.get((d.conversation_id, d.sender_id)) is False:
                    fresh[key] = d
            by_conversation: dict[uuid.UUID, list[MessageDraft]] = {}
            for d in fresh.values():
                by_conversation.setdefault(d.conversation_id, []).append(d)
            numbered: list[tuple[MessageDraft, int]] = []
            firsts = await message_store.reserve_seq_blocks(
                conn, {c: len(group) for c, group in by_conversation.items()}
            ) if by_conversation else {}
            for conversation_id, group in by_conversation.items():
                numbered.extend((d, firsts[conversation_id] + i) for i, d in enumerate(group))
            created: list[Message] = []
            if numbered:
                created = await message_store.insert_messages(conn, numbered)
                # Media access checks look these links up; they commit with the messages, and
                # before the events, whose lock is held until the commit.
                links = [(m.id, uuid.UUID(item["id"]), position) for m in created
                         for position, item in enumerate(m.media)]
                if links:
                    await media_store.link_to_messages(conn, links)
                await event_store.append_events(conn, [
                    EventDraft(m.conversation_id, "message.new", m.to_wire()) for m in created
                ])
            for m in created:
                stored[(m.sender_id, m.client_id)] = m
        outcomes: list[dict[str, Any]] = []
        for d in drafts:
            message = stored.get((d.sender_id, d.client_id))
            if message is None and senders.get((d.conversation_id, d.sender_id)):
                outcomes.append({"ok": False, "error": {
                    "code": "forbidden", "message": "you cannot message this user",
                    "details": {"reason": "blocked"}}})
            elif message is None:
                outcomes.append({"ok": False, "error": {
                    "code": "not_found", "message": "no such conversation"}})
            elif message.conversation_id != d.conversation_id:
                outcomes.append({"ok": False, "error": {
                    "code": "conflict",
                    "message": "this client_id was already used for another conversation"}})
            else:
                outcomes.append({"ok": True, "message": message.to_wire()})
        return outcomes
