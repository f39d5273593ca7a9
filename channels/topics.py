"""Bus topic names: where each kind of cross-node message travels (channels/bus.py).

A node subscribes to a user's or a conversation's topic while it holds a socket that
needs it; writers (the event relay, workers) publish there without holding sockets.
"""

from __future__ import annotations

import uuid


def user_topic(user_id: uuid.UUID | str) -> str:
    """Everything for one user's devices: events addressed to them, session ends."""
    return f"user:{user_id}"


def conversation_topic(conversation_id: uuid.UUID | str) -> str:
    """A conversation's events, for the nodes holding its members' sockets."""
    return f"conv:{conversation_id}"


def reply_topic(node_id: str) -> str:
    """Where a node waits for the outcome of the sends it queued (channels/replies.py)."""
    return f"replies:{node_id}"
