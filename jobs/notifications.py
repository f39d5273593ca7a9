"""The notifications queue: source events the notifications worker turns into notifications.

Job types (workers/notifications.py consumes them):

- messages.stored {messages: [{id, conversation_id, sender_id, body, reply_to, story_id}]}:
  published by the persistence worker after each stored batch.
- reaction.added {message_id, actor_id, emoji}: a reaction to a message, for its sender.
- notify {kind, user_ids, source_key, group_key, actor_id, subject_type, subject_id, data}:
  any other feature's notification (handlers.notifications.notify).
- push {subscription_id, user_id, notification_id, payload, topic, expires_at, urgency}: one
  push to one device, queued by the worker itself so each is retried on its own.
"""

from __future__ import annotations

import uuid
from typing import Any

from jobs.queue import JobQueue, new_job

QUEUE = "notifications"
STORED_JOB = "messages.stored"
REACTION_JOB = "reaction.added"
NOTIFY_JOB = "notify"
PUSH_JOB = "push"
SUBJECT_TYPES = frozenset({"message", "conversation", "item", "user"})
PREVIEW_CHARS = 140


def preview(body: str | None) -> str | None:
    """A body on one line, cut to PREVIEW_CHARS: what a notification quotes."""
    if body is None:
        return None
    text = " ".join(body.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def stored_job(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The job announcing stored messages: only what notifications need."""
    keep = ("id", "conversation_id", "sender_id", "body", "reply_to", "story_id")
    return new_job(STORED_JOB, messages=[{k: m.get(k) for k in keep} for m in messages])


async def announce_stored(queue: JobQueue, messages: list[dict[str, Any]]) -> None:
    """Queue the notifications of a stored batch: the persistence worker's hook."""
    await queue.publish(QUEUE, stored_job(messages))


def reaction_job(message_id: uuid.UUID, actor_id: uuid.UUID, emoji: str) -> dict[str, Any]:
    """The job telling a message's sender of a reaction (the reaction is already stored)."""
    return new_job(REACTION_JOB, message_id=str(message_id), actor_id=str(actor_id), emoji=emoji)


def notify_job(
    kind: str, user_ids: list[uuid.UUID], *, source_key: str, actor_id: uuid.UUID | None = None,
    subject: tuple[str, uuid.UUID] | None = None, data: dict[str, Any] | None = None,
    group_key: str | None = None,
) -> dict[str, Any]:
    """A notification of `kind` for these users (see handlers.notifications.notify)."""
    if subject is not None and subject[0] not in SUBJECT_TYPES:
        raise ValueError(f"subject type must be one of {sorted(SUBJECT_TYPES)}")
    job = new_job(NOTIFY_JOB, user_ids=[str(u) for u in user_ids],
                  source_key=source_key, group_key=group_key or source_key,
                  actor_id=None if actor_id is None else str(actor_id),
                  subject_type=None if subject is None else subject[0],
                  subject_id=None if subject is None else str(subject[1]), data=data or {})
    job["kind"] = kind  # new_job's own first parameter is named kind
    return job
