"""The server's VAPID key (RFC 8292): Web Push is signed with it, clients subscribe with its public half.

It lives below both handlers/ (push.get_config shows the public key) and workers/ (the sender signs).
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02


def load_vapid(private_key: str) -> Vapid02:
    """A VAPID signer from a PEM key or a base64url key (raw 32 bytes or DER)."""
    text = private_key.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        return Vapid02(key)
    return Vapid02.from_string(text)


def vapid_public_key(vapid: Vapid02) -> str:
    """The application server key browsers subscribe with: base64url of the uncompressed point."""
    raw = vapid.public_key.public_bytes(serialization.Encoding.X962,
                                        serialization.PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
