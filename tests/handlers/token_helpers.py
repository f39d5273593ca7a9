"""Access tokens with fewer scopes than a login's, for testing scope checks."""

from __future__ import annotations

import uuid

import jwt

from config import Settings
from server.resources import build_token_service


def limited_token(settings: Settings, access_token: str, scopes: list[str]) -> str:
    """A token of the same user and session as `access_token`, carrying only `scopes`."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    tokens = build_token_service(settings)
    return tokens.issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), scopes).token
