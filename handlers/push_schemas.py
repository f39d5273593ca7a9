"""Wire models of push: command inputs and outputs, with the rules their fields follow."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import AfterValidator, BaseModel, Field, model_validator

from handlers.commands import Input


def _b64url(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("must be base64url") from None


def _check_p256dh(value: str) -> str:
    raw = _b64url(value)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError("must be an uncompressed P-256 public key (65 bytes, base64url)") from None
    if len(raw) != 65:
        raise ValueError("must be an uncompressed P-256 public key (65 bytes, base64url)")
    return value


def _check_auth(value: str) -> str:
    if len(_b64url(value)) != 16:
        raise ValueError("must be a 16-byte auth secret, base64url")
    return value


B64 = r"^[A-Za-z0-9_-]+={0,2}$"


P256dh = Annotated[str, Field(min_length=80, max_length=100, pattern=B64),
                   AfterValidator(_check_p256dh)]


AuthSecret = Annotated[str, Field(min_length=16, max_length=30, pattern=B64),
                       AfterValidator(_check_auth)]


Endpoint = Annotated[str, Field(min_length=10, max_length=2048, pattern=r"^https?://[^\s]+$")]


Token = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^\S+$")]


class SubscriptionKeys(Input):
    p256dh: P256dh
    auth: AuthSecret


class SubscribeInput(Input):
    kind: Literal["webpush", "fcm", "apns"]
    endpoint: Endpoint | None = Field(default=None, description="webpush: the push service URL")
    keys: SubscriptionKeys | None = Field(default=None, description="webpush: p256dh and auth")
    token: Token | None = Field(default=None, description="fcm or apns: the device token")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> SubscribeInput:
        if self.kind == "webpush":
            if self.endpoint is None or self.keys is None or self.token is not None:
                raise ValueError("webpush takes endpoint and keys, and no token")
        elif self.token is None or self.endpoint is not None or self.keys is not None:
            raise ValueError(f"{self.kind} takes token, and no endpoint or keys")
        return self


class UnsubscribeInput(Input):
    endpoint: Endpoint | None = None
    token: Token | None = None

    @model_validator(mode="after")
    def _one_of(self) -> UnsubscribeInput:
        if (self.endpoint is None) == (self.token is None):
            raise ValueError("give endpoint or token")
        return self


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    kind: str
    endpoint: str | None
    token_tail: str | None = Field(description="the last characters of a device token")
    created_at: datetime
    last_success_at: datetime | None
    last_error: str | None = Field(description=(
        "why the last push failed, in the server's own words (an HTTP status or a fixed "
        "phrase); never what the push service answered"))


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionOut]


class PushConfigOut(BaseModel):
    vapid_public_key: str | None = Field(
        description="the applicationServerKey for PushManager.subscribe (base64url); null: no Web Push")
    mobile_push: Literal["http", "outbox"]
