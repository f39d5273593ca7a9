"""The key ring that signs third-party access tokens and OIDC id_tokens, and the JWK Set.

Keys live in oauth_signing_keys (storage/oauth_keys.py), their private halves sealed with
AES-256-GCM under a key derived from HOTSPOT_OAUTH_KEY_ENCRYPTION_SECRET. Each process
loads the published keys at start and re-reads them every HOTSPOT_OAUTH_KEY_REFRESH_S
(a plain database poll: no bus message is needed because a rotation activates its new key
later than every node's next poll, see `activation_delay_s`).

- The ring keeps one key in effect per algorithm: the configured one
  (HOTSPOT_OAUTH_SIGNING_ALG, ES256 by default), which signs access tokens and id_tokens
  unless told otherwise, and RS256, which OIDC Discovery requires every provider to offer
  (and OIDC clients expect when they registered no id_token algorithm).
- Per algorithm, the newest key in effect (activated, not retired) this process can open signs.
- Every key not retired, or retired less than the longest token lifetime ago, is published
  in /oauth/jwks and accepted when verifying, so rotation never breaks an issued token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwk, jwt
from joserfc.jwk import ECKey, RSAKey

from config.clock import utc_now
from storage import oauth_keys as key_store
from storage.db import Database
from storage.oauth_keys import SigningKeyRow

log = logging.getLogger(__name__)

Algorithm = Literal["ES256", "RS256"]
# How long relying parties may cache /oauth/jwks (its Cache-Control max-age).
JWKS_MAX_AGE_S = 300
# Clock skew allowed between us and relying parties when a key leaves the JWK Set.
SKEW_S = 60
_SEAL_VERSION = b"\x01"


class KeyRingError(Exception):
    """The signing keys cannot be used as configured; the message says why."""


class KeyCipher:
    """Seals private keys at rest; the kid is bound in as associated data.

    The kid binding means a sealed blob copied onto another row does not open. The
    leading version byte leaves room for a later change of scheme without a rewrite.
    """

    def __init__(self, secret: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"hotspot oauth signing keys").derive(secret)
        self._aead = AESGCM(derived)

    def seal(self, kid: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return _SEAL_VERSION + nonce + self._aead.encrypt(nonce, plaintext, kid.encode())

    def open(self, kid: str, sealed: bytes) -> bytes:
        """The plaintext; ValueError when this secret did not seal it (or it was altered)."""
        if sealed[:1] != _SEAL_VERSION:
            raise ValueError("unknown sealing version")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], kid.encode())
        except InvalidTag:
            raise ValueError("the key encryption secret does not open this key") from None


@dataclass(frozen=True)
class LoadedKey:
    """A published key: its public half always, its private half when this process has it."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    public: jwk.Key
    private: jwk.Key | None
    activated_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class NewKey:
    kid: str
    alg: Algorithm
    public_jwk: dict[str, Any]
    private_pem: bytes


def generate_key(alg: Algorithm) -> NewKey:
    """A fresh key pair (blocking for RSA: call it off the event loop)."""
    key: ECKey | RSAKey = (ECKey.generate_key("P-256", auto_kid=False) if alg == "ES256"
                           else RSAKey.generate_key(2048, auto_kid=False))
    # The RFC 7638 thumbprint: unique per key and checkable by anyone holding the JWK.
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    return NewKey(kid=kid, alg=alg, public_jwk=public, private_pem=key.as_pem(private=True))


async def rotate_key(db: Database, cipher: KeyCipher, alg: Algorithm,
                     activated_at: datetime) -> SigningKeyRow:
    """Store a new key of alg signing from activated_at; the others of alg retire then."""
    new = await asyncio.to_thread(generate_key, alg)
    async with key_store.locked(db) as conn:
        row = await key_store.insert_key(
            conn, kid=new.kid, alg=new.alg, public_jwk=new.public_jwk,
            private_key=cipher.seal(new.kid, new.private_pem), activated_at=activated_at)
        await key_store.retire_others(conn, new.kid, alg, activated_at)
    return row


def _load(row: SigningKeyRow, cipher: KeyCipher) -> LoadedKey:
    private: jwk.Key | None = None
    try:
        private = jwk.import_key(cipher.open(row.kid, row.private_key),
                                 "EC" if row.alg == "ES256" else "RSA")
    except ValueError:
        # Published and verifiable all the same; only signing needs the private half.
        log.warning("cannot open signing key with this encryption secret", extra={"kid": row.kid})
    return LoadedKey(kid=row.kid, alg=row.alg, public_jwk=row.public_jwk,
                     public=jwk.import_key(row.public_jwk), private=private,
                     activated_at=row.activated_at, retired_at=row.retired_at)


class KeyRing:
    """The published keys of this process, refreshed from the database on a timer."""

    def __init__(
        self, db: Database, cipher: KeyCipher, *, alg: Algorithm, token_lifetime_s: int,
        refresh_s: float, production: bool, clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self.alg = alg
        self.algs: tuple[Algorithm, ...] = (alg,) if alg == "RS256" else (alg, "RS256")
        # A retired key stays published this long: the longest token it can have signed.
        self.publish_for = timedelta(seconds=token_lifetime_s + SKEW_S)
        self.refresh_s = refresh_s
        self._production = production
        self._clock = clock
        self._keys: dict[str, LoadedKey] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def activation_delay_s(self) -> float:
        """How far ahead a rotation publishes its key: every node and JWKS cache sees it first."""
        return 2 * self.refresh_s + JWKS_MAX_AGE_S

    async def start(self) -> None:
        await self.ensure_signing_key()
        self._task = asyncio.create_task(self._poll(), name="oauth-key-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception:
                # A database blip must not end the refreshes; the keys already loaded still work.
                log.exception("refreshing the OAuth signing keys failed")

    async def refresh(self) -> None:
        """Re-read the published keys; a key already opened is not decrypted again."""
        rows = await key_store.published(self._db, self._clock() - self.publish_for)
        loaded: dict[str, LoadedKey] = {}
        for row in rows:
            known = self._keys.get(row.kid)
            if known is not None and known.private is not None:
                loaded[row.kid] = LoadedKey(kid=row.kid, alg=row.alg, public_jwk=row.public_jwk,
                                            public=known.public, private=known.private,
                                            activated_at=row.activated_at, retired_at=row.retired_at)
            else:
                loaded[row.kid] = _load(row, self._cipher)
        self._keys = loaded

    async def ensure_signing_key(self) -> None:
        """Load the keys; create one per algorithm when none in effect can be opened here."""
        await self.refresh()
        for alg in self.algs:
            if self._signer(self._clock(), alg) is None:
                await self._create_first(alg)
        await self.refresh()

    async def _create_first(self, alg: Algorithm) -> None:
        new = await asyncio.to_thread(generate_key, alg)
        async with key_store.locked(self._db) as conn:
            # Checked again under the lock: another node starting at once may have made one.
            current = await key_store.in_effect(conn, self._clock(), alg)
            if any(self._opens(row) for row in current):
                return
            if current and self._production:
                raise KeyRingError(
                    f"HOTSPOT_OAUTH_KEY_ENCRYPTION_SECRET does not open the signing key "
                    f"{current[0].kid}: every node must share the same secret")
            if current:
                log.warning("no signing key opens with this encryption secret (dev mode): "
                            "creating one", extra={"kids": [r.kid for r in current]})
            await key_store.insert_key(
                conn, kid=new.kid, alg=new.alg, public_jwk=new.public_jwk,
                private_key=self._cipher.seal(new.kid, new.private_pem),
                activated_at=self._clock())
        log.info("created an OAuth signing key", extra={"kid": new.kid, "alg": new.alg})

    def _opens(self, row: SigningKeyRow) -> bool:
        try:
            self._cipher.open(row.kid, row.private_key)
        except ValueError:
            return False
        return True

    async def rotate(self, activate_in_s: float | None = None) -> list[SigningKeyRow]:
        """A new key per algorithm, signing after activate_in_s (default: activation_delay_s)."""
        delay = self.activation_delay_s if activate_in_s is None else activate_in_s
        at = self._clock() + timedelta(seconds=delay)
        rows = [await rotate_key(self._db, self._cipher, alg, at) for alg in self.algs]
        await self.refresh()
        return rows

    def _published(self, at: datetime) -> list[LoadedKey]:
        oldest = at - self.publish_for
        return [k for k in self._keys.values() if k.retired_at is None or k.retired_at > oldest]

    def _signer(self, at: datetime, alg: str) -> LoadedKey | None:
        for key in self._keys.values():  # newest activation first, as stored
            in_effect = key.activated_at <= at and (key.retired_at is None or key.retired_at > at)
            if key.alg == alg and in_effect and key.private is not None:
                return key
        return None

    def signing_key(self, alg: str | None = None) -> LoadedKey:
        """The key that signs now with alg (default: the configured algorithm)."""
        key = self._signer(self._clock(), alg or self.alg)
        if key is None:
            raise KeyRingError(f"no OAuth signing key for {alg or self.alg} is in effect")
        return key

    def verification_key(self, kid: str) -> LoadedKey | None:
        """The published key with this kid; None for an unknown or long-retired one."""
        key = self._keys.get(kid)
        if key is None or key not in self._published(self._clock()):
            return None
        return key

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public JWK Set: every published key with kid, alg and use=sig."""
        return {"keys": [dict(k.public_jwk) for k in self._published(self._clock())]}

    def algorithms(self) -> list[str]:
        """The algorithms the ring signs with, the configured one first."""
        return list(self.algs)

    def sign(self, claims: dict[str, Any], typ: str, alg: str | None = None) -> str:
        """A compact JWS of the claims by the current key of alg, its kid in the header."""
        key = self.signing_key(alg)
        assert key.private is not None
        return jwt.encode({"alg": key.alg, "kid": key.kid, "typ": typ}, claims, key.private,
                          algorithms=[key.alg])
