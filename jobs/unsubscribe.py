"""Signed unsubscribe tokens: who opts out of which channel, with no login needed.

A token is base64url(user id, channel, HMAC-SHA256 prefix). It does not expire: an
unsubscribe link in an old mail must keep working, and all it can do is opt out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from urllib.parse import quote

CHANNELS = ("email", "sms", "push")
SIGNATURE_BYTES = 16
PATH = "/v1/outreach/unsubscribe"


@dataclass(frozen=True)
class OptOut:
    user_id: uuid.UUID
    channel: str


def _signature(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, b"unsubscribe:" + payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def sign(secret: bytes, user_id: uuid.UUID, channel: str) -> str:
    payload = user_id.bytes + bytes([CHANNELS.index(channel)])
    raw = payload + _signature(secret, payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def verify(secret: bytes, token: str) -> OptOut | None:
    """The opt-out a token stands for, or None if it is malformed or not ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 17 + SIGNATURE_BYTES:
        return None
    payload, signature = raw[:17], raw[17:]
    if not hmac.compare_digest(signature, _signature(secret, payload)) or payload[16] >= len(CHANNELS):
        return None
    return OptOut(uuid.UUID(bytes=payload[:16]), CHANNELS[payload[16]])


def link(base_url: str, secret: bytes, user_id: uuid.UUID, channel: str) -> str:
    return f"{base_url.rstrip('/')}{PATH}?token={quote(sign(secret, user_id, channel))}"
