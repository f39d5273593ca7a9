"""Access tokens (JWT) and opaque refresh/verification tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from handlers.context import Principal
from handlers.errors import CommandError


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_in: int


def new_opaque_token() -> tuple[str, bytes]:
    """A random token for the client and the hash we store instead of it."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenService:
    """Signs and verifies access tokens with one configured algorithm and key."""

    def __init__(
        self,
        *,
        algorithm: str,
        signing_key: Any,
        verifying_key: Any,
        issuer: str,
        ttl_s: int,
    ) -> None:
        self.algorithm = algorithm
        self._signing_key = signing_key
        self._verifying_key = verifying_key
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(
        self, user_id: uuid.UUID, session_id: uuid.UUID, scopes: list[str] | tuple[str, ...],
        now: float | None = None, ttl_s: int | None = None,
    ) -> IssuedAccessToken:
        issued_at = int(now if now is not None else time.time())
        ttl = self.ttl_s if ttl_s is None else ttl_s
        claims = {
            "iss": self.issuer,
            "sub": str(user_id),
            "sid": str(session_id),
            "scopes": list(scopes),
            "iat": issued_at,
            "exp": issued_at + ttl,
            "jti": secrets.token_urlsafe(12),
        }
        token = jwt.encode(claims, self._signing_key, algorithm=self.algorithm)
        return IssuedAccessToken(token=token, expires_in=ttl)

    def verify(self, token: str) -> Principal:
        """The principal behind a token; unauthorized for a bad, forged or expired one."""
        try:
            claims = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                options={"require": ["sub", "sid", "exp", "iat", "jti"]},
            )
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                scopes=frozenset(claims.get("scopes", [])),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise CommandError("unauthorized", "access token expired",
                               {"reason": "token_expired"}) from None
        except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError):
            raise CommandError("unauthorized", "invalid access token",
                               {"reason": "token_invalid"}) from None
