"""Helpers for the notification worker tests: stored-message payloads, quiet hours around now."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Account


def message(conversation_id: str, sender: Account, body: str,
            reply_to: str | None = None) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "conversation_id": conversation_id, "sender_id": sender.id,
            "body": body, "reply_to": reply_to}


def quiet_now() -> dict[str, str]:
    """Quiet hours around the current time, in UTC."""
    now = datetime.now(UTC)
    return {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
            "end": (now + timedelta(hours=1)).strftime("%H:%M"), "timezone": "UTC"}
