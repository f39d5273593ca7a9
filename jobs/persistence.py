"""The persistence queue: a message to store, consumed by workers/persistence.py.

The sending node waits for the outcome on its reply topic (channels.topics.reply_topic),
named by reply_node, under request_id.
"""

from __future__ import annotations

import uuid
from typing import Any

from jobs.queue import new_job
from storage.messages import MessageDraft

QUEUE = "persistence"
SEND_JOB = "message.send"


def send_job(draft: MessageDraft, *, request_id: str, reply_node: str) -> dict[str, Any]:
    """The job that has the persistence worker store one sent message."""
    return new_job(SEND_JOB, request_id=request_id, reply_node=reply_node, message={
        "id": str(draft.id), "conversation_id": str(draft.conversation_id),
        "sender_id": str(draft.sender_id), "client_id": draft.client_id, "body": draft.body,
        "media": draft.media, "reply_to": None if draft.reply_to is None else str(draft.reply_to),
        "story_id": None if draft.story_id is None else str(draft.story_id)})


def draft_of(job: dict[str, Any]) -> MessageDraft:
    """The message a send job carries."""
    d = job["message"]
    return MessageDraft(
        id=uuid.UUID(d["id"]), conversation_id=uuid.UUID(d["conversation_id"]),
        sender_id=uuid.UUID(d["sender_id"]), client_id=d["client_id"], body=d.get("body"),
        media=list(d.get("media") or []),
        reply_to=uuid.UUID(d["reply_to"]) if d.get("reply_to") else None,
        story_id=uuid.UUID(d["story_id"]) if d.get("story_id") else None,
    )
