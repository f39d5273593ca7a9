"""Access tokens (JWT: first-party, and third-party signed by the key ring) and opaque tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from joserfc import jwt as jose_jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from handlers.context import Principal
from handlers.errors import CommandError

if TYPE_CHECKING:
    from handlers.oauth_keys import KeyRing

# RFC 9068: the header type of a JWT access token, which an id_token never has.
ACCESS_TOKEN_TYP = "at+jwt"
# The `sub` of a client_credentials token: the app itself, never a user id.
APP_SUBJECT_PREFIX = "app:"


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
    """Signs and verifies access tokens.

    First-party tokens (client_id None) are signed as ever with the one configured
    algorithm and key, and carry no `kid`. Third-party tokens (an OAuth app's) are RFC 9068
    JWTs (`typ: at+jwt`, `aud`, `client_id`, `scope`) signed by the key ring, with the
    key's `kid` in the header, so an app's resource servers can check them against
    /oauth/jwks. `verify` picks the path by the presence of `kid` and allows exactly one
    algorithm on each: the configured one without a kid, the key's own with one.
    """

    def __init__(
        self,
        *,
        algorithm: str,
        signing_key: Any,
        verifying_key: Any,
        issuer: str,
        ttl_s: int,
        keys: KeyRing | None = None,
        oauth_issuer: str | None = None,
    ) -> None:
        self.algorithm = algorithm
        self._signing_key = signing_key
        self._verifying_key = verifying_key
        self.issuer = issuer
        self.ttl_s = ttl_s
        self.keys = keys
        # The OAuth issuer is also the audience of tokens for the HotSpot API itself.
        self.oauth_issuer = oauth_issuer

    def issue(
        self, user_id: uuid.UUID, session_id: uuid.UUID, scopes: list[str] | tuple[str, ...],
        now: float | None = None, ttl_s: int | None = None, *,
        client_id: str | None = None, aud: str | list[str] | None = None,
    ) -> IssuedAccessToken:
        """A first-party token, or with client_id a third-party one (aud: the HotSpot API)."""
        issued_at = int(now if now is not None else time.time())
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if client_id is not None:
            return IssuedAccessToken(
                token=self._issue_app_token(user_id, session_id, scopes, issued_at, ttl,
                                            client_id, aud),
                expires_in=ttl)
        if aud is not None:
            raise ValueError("aud is for third-party tokens; give a client_id")
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

    def _oauth(self) -> tuple[KeyRing, str]:
        if self.keys is None or self.oauth_issuer is None:
            raise RuntimeError("third-party tokens need the key ring (server/resources.py)")
        return self.keys, self.oauth_issuer

    def _issue_app_token(
        self, user_id: uuid.UUID, session_id: uuid.UUID, scopes: list[str] | tuple[str, ...],
        issued_at: int, ttl: int, client_id: str, aud: str | list[str] | None,
    ) -> str:
        keys, issuer = self._oauth()
        claims = {
            "iss": issuer,
            "sub": str(user_id),
            "aud": issuer if aud is None else aud,
            "client_id": client_id,
            # The grant (or session) the token belongs to: revoking it stops the token.
            "sid": str(session_id),
            "scope": " ".join(scopes),
            "iat": issued_at,
            "exp": issued_at + ttl,
            "jti": secrets.token_urlsafe(12),
        }
        return keys.sign(claims, typ=ACCESS_TOKEN_TYP)

    def verify(self, token: str) -> Principal:
        """The principal behind a token; unauthorized for a bad, forged or expired one."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _invalid() from None
        if "kid" in header:
            return self._verify_app_token(token, header["kid"])
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
            raise _expired() from None
        except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError):
            raise _invalid() from None

    def issue_app_only(
        self, client_id: str, grant_id: uuid.UUID, scopes: list[str] | tuple[str, ...],
        now: float | None = None,
    ) -> IssuedAccessToken:
        """A client_credentials token: the app acting for itself, for no user.

        `sub` is "app:<client_id>" (never a user id) and `sid` a grant id of its own that
        no session row has, so revoking it uses the revocation list alone.
        """
        keys, issuer = self._oauth()
        issued_at = int(now if now is not None else time.time())
        claims = {
            "iss": issuer, "sub": f"{APP_SUBJECT_PREFIX}{client_id}", "aud": issuer,
            "client_id": client_id, "sid": str(grant_id), "scope": " ".join(scopes),
            "iat": issued_at, "exp": issued_at + self.ttl_s, "jti": secrets.token_urlsafe(12),
        }
        return IssuedAccessToken(keys.sign(claims, typ=ACCESS_TOKEN_TYP), self.ttl_s)

    def app_token_claims(self, token: str) -> dict[str, Any]:
        """The verified claims of a key-ring access token (user or app-only), for
        introspection and revocation; unauthorized for anything else."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _invalid() from None
        return self._decode_app_token(token, header.get("kid"))

    def _decode_app_token(self, token: str, kid: object) -> dict[str, Any]:
        key = (self.keys.verification_key(kid)
               if self.keys is not None and isinstance(kid, str) else None)
        if key is None or self.oauth_issuer is None:
            raise _invalid()
        try:
            # Only the key's own algorithm: no `none`, no HS256 keyed with the public key.
            decoded = jose_jwt.decode(token, key.public, algorithms=[key.alg])
            if decoded.header.get("typ") != ACCESS_TOKEN_TYP:
                raise _invalid()  # an id_token, or another JWT we signed, is not an access token
            claims = decoded.claims
            need: ClaimsOption = {"essential": True}
            JWTClaimsRegistry(
                iss={"essential": True, "value": self.oauth_issuer},
                aud={"essential": True, "value": self.oauth_issuer},
                sub=need, sid=need, client_id=need, scope=need, exp=need, iat=need, jti=need,
            ).validate(claims)
            if not isinstance(claims["scope"], str) or not isinstance(claims["client_id"], str):
                raise _invalid()
            return dict(claims)
        except ExpiredTokenError:
            raise _expired() from None
        except (JoseError, ValueError, TypeError, AttributeError):
            raise _invalid() from None

    def _verify_app_token(self, token: str, kid: object) -> Principal:
        claims = self._decode_app_token(token, kid)
        if str(claims["sub"]).startswith(APP_SUBJECT_PREFIX):
            # Every command acts for a user; an app acting for itself reaches none of them.
            raise CommandError("forbidden", "an app's own token (client_credentials) acts for "
                               "no user; commands need a token a user granted",
                               {"reason": "app_only_token"})
        try:
            aud = claims["aud"]
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                scopes=frozenset(claims["scope"].split()),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
                client_id=claims["client_id"],
                audience=(aud,) if isinstance(aud, str) else tuple(aud),
            )
        except (ValueError, TypeError, AttributeError):
            raise _invalid() from None


def _invalid() -> CommandError:
    return CommandError("unauthorized", "invalid access token", {"reason": "token_invalid"})


def _expired() -> CommandError:
    return CommandError("unauthorized", "access token expired", {"reason": "token_expired"})
