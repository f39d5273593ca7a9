"""Typed settings, read once from HOTSPOT_* environment variables."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.push_services import DEFAULT_PUSH_SERVICE_HOSTS, host_patterns
from config.rates import Rates


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable."""


class Limits(BaseSettings):
    """Explicit limits on sizes and counts; every one is documented in docs/limits.md.

    Rate limits are in config.rates (HOTSPOT_RATE_*), named by the commands they count.
    """

    model_config = SettingsConfigDict(env_prefix="HOTSPOT_LIMIT_", extra="ignore")

    rest_body_bytes: int = Field(default=256 * 1024, ge=1024)
    socket_payload_bytes: int = Field(default=64 * 1024, ge=1024)
    phone_code_attempts: int = Field(default=5, ge=1)
    message_body_chars: int = Field(default=4000, ge=1)
    message_media_max: int = Field(default=10, ge=0)
    message_edit_window_s: int = Field(default=24 * 3600, ge=0)
    group_members_max: int = Field(default=1000, ge=2)
    # Larger groups get receipts only on the reader's own devices, and no typing relay.
    receipts_broadcast_max_members: int = Field(default=100, ge=2)
    typing_relay_max_members: int = Field(default=100, ge=2)
    # A typing indicator ends this long after its last typing.start.
    typing_ttl_s: float = Field(default=8.0, gt=0)
    presence_subscribe_max: int = Field(default=200, ge=1)
    sockets_per_user: int = Field(default=10, ge=1)
    # Uploads: the type is sniffed first, then the size limit of that kind applies.
    image_upload_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    video_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    # Campaigns go out in batches of this many recipients, at most this many batches a second.
    campaign_batch_size: int = Field(default=100, ge=1, le=10_000)
    campaign_batches_per_s: float = Field(default=2.0, gt=0)
    # Decoded size the media worker accepts (also Pillow's bomb guard); larger is failed.
    image_max_pixels: int = Field(default=64_000_000, ge=1024)
    video_max_duration_s: int = Field(default=900, ge=1)
    # Stories (docs/stories.md): active (unexpired) stories per user, caption length,
    # highlights per user and stories per highlight.
    stories_active_max: int = Field(default=50, ge=1)
    story_caption_chars: int = Field(default=500, ge=1)
    highlights_max: int = Field(default=100, ge=1)
    highlight_stories_max: int = Field(default=100, ge=1)
    # Slides (docs/slides.md): the longest video a slide takes.
    slide_video_max_s: int = Field(default=180, ge=1)
    # OAuth apps (docs/oauth.md): live (undeleted) apps one user may own.
    oauth_apps_per_user: int = Field(default=25, ge=1)


class Settings(BaseSettings):
    """Everything the server and workers are configured by."""

    model_config = SettingsConfigDict(env_prefix="HOTSPOT_", extra="ignore")

    env: Literal["dev", "production"] = "dev"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    worker_port: int = Field(default=8081, ge=0, le=65535)
    # `hotspot serve` answers /metrics on a listener of its own (0: none), kept off the API
    # port; when the token is set, every /metrics (this listener, the API port, a worker's
    # port) requires `Authorization: Bearer <token>`. The API port serves /metrics only then.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_token: str | None = Field(default=None, min_length=32)
    public_base_url: str = "http://127.0.0.1:8080"
    data_dir: Path = Path("var")
    namespace: str = Field(default="hotspot", pattern=r"^[a-zA-Z0-9_.-]{1,40}$")
    node_id: str = Field(default_factory=lambda: secrets.token_hex(4))

    database_url: str | None = None
    database_pool_min: int = Field(default=2, ge=1)
    database_pool_max: int = Field(default=20, ge=1)
    redis_url: str | None = None
    amqp_url: str | None = None
    # None means: run workers inside the server when there is no RabbitMQ.
    inprocess_workers: bool | None = None

    jwt_algorithm: Literal["HS256", "RS256", "EdDSA"] = "HS256"
    jwt_secret: str | None = None
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "hotspot"
    access_token_ttl_s: int = Field(default=900, ge=10)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    email_token_ttl_s: int = Field(default=48 * 3600, ge=60)
    password_reset_ttl_s: int = Field(default=3600, ge=60)
    phone_code_ttl_s: int = Field(default=600, ge=30)
    # How long message.send waits for the persistence worker before answering unavailable.
    send_timeout_s: float = Field(default=10.0, gt=0)
    # The media worker: jobs decoded at once per kind, and the bound on one ffmpeg run.
    media_image_concurrency: int = Field(default=2, ge=1)
    media_video_concurrency: int = Field(default=1, ge=1)
    media_ffmpeg_timeout_s: float = Field(default=300.0, gt=0)
    # Sync events older than this are purged; an older cursor gets {gap: true}.
    event_retention_s: int = Field(default=30 * 24 * 3600, ge=60)
    # Stories expire this long after they are posted; the media of stories expired longer
    # than the retention (and in no highlight) is purged by the media worker every interval.
    story_lifetime_s: int = Field(default=24 * 3600, ge=60)
    story_media_retention_s: int = Field(default=30 * 24 * 3600, ge=0)
    story_purge_interval_s: float = Field(default=3600.0, gt=0)
    # The slides worker: renders at once per process, and the bound on one render's ffmpeg run.
    slide_render_concurrency: int = Field(default=1, ge=1)
    slide_ffmpeg_timeout_s: float = Field(default=600.0, gt=0)
    # Analytics (docs/analytics.md): raw events are kept this many UTC days (whole day
    # partitions are dropped), minute roll-ups and hour roll-ups as long as their settings,
    # day roll-ups forever; partitions exist this many days ahead.
    analytics_retention_days: int = Field(default=90, ge=1)
    analytics_minute_rollup_days: int = Field(default=7, ge=1)
    analytics_hour_rollup_days: int = Field(default=90, ge=1)
    analytics_partitions_ahead_days: int = Field(default=7, ge=1)
    analytics_maintenance_interval_s: float = Field(default=3600.0, gt=0)
    # The analytics worker writes a batch at this many events, or this long after its first.
    analytics_batch_max: int = Field(default=5000, ge=1)
    analytics_batch_wait_ms: int = Field(default=200, ge=0)

    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=2, ge=1)

    smtp_url: str | None = None
    mail_from: str = "HotSpot <no-reply@hotspot.local>"
    sms_provider: Literal["outbox", "twilio"] = "outbox"
    # A Twilio-compatible Messages API: {base}/2010-04-01/Accounts/{sid}/Messages.json.
    twilio_base_url: str = Field(default="https://api.twilio.com", pattern=r"^https?://")
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_timeout_s: float = Field(default=10.0, gt=0)
    # Signs unsubscribe links; unset, it is derived from the JWT signing key.
    unsubscribe_secret: str | None = Field(default=None, min_length=32)
    # OAuth/OIDC (docs/oauth.md): third-party access tokens and id_tokens are signed by a key
    # ring kept in the database, its private keys sealed with a key derived from this secret
    # (required in production; in dev derived from the JWT signing key). The ring re-reads
    # the keys every refresh interval; id_tokens live oauth_id_token_ttl_s.
    oauth_key_encryption_secret: str | None = Field(default=None, min_length=32)
    # RFC 7591 POST /oauth/register (server/oauth_register.py); off, the route does not exist.
    oauth_dynamic_registration: bool = False
    oauth_signing_alg: Literal["ES256", "RS256"] = "ES256"
    oauth_key_refresh_s: float = Field(default=60.0, ge=1)
    oauth_id_token_ttl_s: int = Field(default=3600, ge=60)
    # Device flow (RFC 8628): how long a device_code / user_code pair waits for the person.
    oauth_device_code_ttl_s: int = Field(default=600, ge=60, le=3600)

    # Web Push (VAPID): a PEM or base64url EC P-256 key; in dev mode one is generated under
    # data_dir. The subject is a mailto: or https: contact the push services may use.
    vapid_private_key: str | None = None
    vapid_subject: str = Field(default="mailto:admin@hotspot.local", pattern=r"^(mailto:|https://)")
    # FCM/APNs pushes are posted to this HTTP relay; unset, they go to an outbox folder.
    mobile_push_url: str | None = None
    mobile_push_api_key: str | None = None
    # A push not sent within this long after its notification is dropped, not sent late.
    push_ttl_s: int = Field(default=3600, ge=1)
    # Web Push endpoints must be https on one of these hosts ("*.example.com": any host under
    # example.com); comma-separated or a JSON array. See config/push_services.py.
    push_service_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PUSH_SERVICE_HOSTS))
    # Tests only (refused in production): lets Web Push reach a local stand-in over http on
    # a loopback or private address. The dev default is false, like production.
    push_allow_private_targets: bool = False

    # A comma-separated list (or a JSON array); "*" allows any origin.
    # How many reverse proxies in front of us append to X-Forwarded-For (0: use the peer).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    limits: Limits = Field(default_factory=Limits)
    rates: Rates = Field(default_factory=Rates)

    @field_validator("database_url", "redis_url", "amqp_url", "smtp_url", "jwt_secret",
                     "jwt_private_key_file", "jwt_public_key_file", "vapid_private_key",
                     "mobile_push_url", "mobile_push_api_key", "twilio_account_sid",
                     "twilio_auth_token", "twilio_from", "unsubscribe_secret", "metrics_token",
                     "oauth_key_encryption_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose files and shells often pass VAR= for "not set".
        return None if value == "" else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("amqp_url")
    @classmethod
    def _check_amqp_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("amqp://", "amqps://")):
            raise ValueError("must be an amqp:// URL")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("smtp://", "smtps://")):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise ValueError("HOTSPOT_ARGON2_MEMORY_KIB must be at least 8 x HOTSPOT_ARGON2_PARALLELISM")
        if self.inprocess_workers is False and self.amqp_url is None:
            raise ValueError("HOTSPOT_INPROCESS_WORKERS=false needs HOTSPOT_AMQP_URL: with the "
                             "in-process queue nothing else could run the jobs")
        return self

    @model_validator(mode="after")
    def _check_keys(self) -> Settings:
        if self.jwt_algorithm == "HS256":
            if self.jwt_secret is not None and len(self.jwt_secret) < 32:
                raise ValueError("HOTSPOT_JWT_SECRET must be at least 32 characters")
            if self.env == "production" and self.jwt_secret is None:
                raise ValueError("HOTSPOT_JWT_SECRET is required outside dev mode")
        elif self.jwt_private_key_file is None or self.jwt_public_key_file is None:
            raise ValueError(
                "HOTSPOT_JWT_PRIVATE_KEY_FILE and HOTSPOT_JWT_PUBLIC_KEY_FILE are required "
                f"for {self.jwt_algorithm}"
            )
        return self

    @field_validator("push_service_hosts", mode="before")
    @classmethod
    def _split_push_hosts(cls, value: object) -> object:
        return host_patterns(value)

    @model_validator(mode="after")
    def _check_push_targets(self) -> Settings:
        if self.push_allow_private_targets and self.env == "production":
            raise ValueError("HOTSPOT_PUSH_ALLOW_PRIVATE_TARGETS is for tests only and is "
                             "refused when HOTSPOT_ENV=production")
        return self

    @model_validator(mode="after")
    def _check_sms_provider(self) -> Settings:
        if self.sms_provider == "twilio":
            missing = [f"HOTSPOT_TWILIO_{name.upper()}" for name in ("account_sid", "auth_token", "from")
                       if getattr(self, f"twilio_{name}") is None]
            if missing:
                raise ValueError(f"HOTSPOT_SMS_PROVIDER=twilio needs {', '.join(missing)}")
        return self

    @property
    def workers_in_process(self) -> bool:
        """Whether this server process also consumes the work queues."""
        if self.inprocess_workers is not None:
            return self.inprocess_workers
        return self.amqp_url is None

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def resolved_jwt_secret(self) -> str:
        """The HS256 secret; in dev mode one is generated once and kept under data_dir."""
        if self.jwt_secret is not None:
            return self.jwt_secret
        path = self.data_dir / "jwt_secret"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        path.write_text(secret)
        path.chmod(0o600)
        return secret

    def resolved_unsubscribe_secret(self) -> bytes:
        """The key of unsubscribe links: set, or derived from the JWT key every node shares."""
        if self.unsubscribe_secret is not None:
            return self.unsubscribe_secret.encode()
        if self.jwt_algorithm == "HS256":
            base = self.resolved_jwt_secret().encode()
        else:
            assert self.jwt_private_key_file is not None
            base = self.jwt_private_key_file.read_bytes()
        # A derived key, so an unsubscribe signature never doubles as a JWT signature.
        return hmac.new(base, b"hotspot unsubscribe links", hashlib.sha256).digest()

    @property
    def oauth_issuer(self) -> str:
        """The OAuth/OIDC issuer: the public base URL, which the discovery documents live under."""
        return self.public_base_url.rstrip("/")

    def resolved_oauth_key_secret(self) -> bytes:
        """What seals the OAuth signing keys: set, or (dev only) derived from the JWT key."""
        if self.oauth_key_encryption_secret is not None:
            return self.oauth_key_encryption_secret.encode()
        if self.env != "dev":
            raise SettingsError("HOTSPOT_OAUTH_KEY_ENCRYPTION_SECRET is required outside dev mode")
        if self.jwt_algorithm == "HS256":
            base = self.resolved_jwt_secret().encode()
        else:
            assert self.jwt_private_key_file is not None
            base = self.jwt_private_key_file.read_bytes()
        # Derived, so the sealing key is never the JWT key itself; in dev the JWT secret is
        # generated once under data_dir, so this stays the same across restarts.
        return hmac.new(base, b"hotspot oauth key encryption", hashlib.sha256).digest()

    def analytics_ip_secret(self) -> str:
        """What the daily IP-hash salt of analytics events derives from (docs/analytics.md)."""
        if self.jwt_algorithm == "HS256":
            base = self.resolved_jwt_secret().encode()
        else:
            assert self.jwt_private_key_file is not None
            base = self.jwt_private_key_file.read_bytes()
        # Derived, never the signing key itself: a leaked salt reveals no token key.
        return hmac.new(base, b"hotspot analytics ip salt", hashlib.sha256).hexdigest()

    def resolved_vapid_private_key(self) -> str:
        """The VAPID key (PEM or base64url); in dev mode one is generated once under data_dir."""
        if self.vapid_private_key is not None:
            return self.vapid_private_key
        path = self.data_dir / "vapid_private_key.pem"
        if path.exists():
            return path.read_text()
        if self.env != "dev":
            raise SettingsError("HOTSPOT_VAPID_PRIVATE_KEY is required for Web Push outside dev mode")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(pem)
        path.chmod(0o600)
        return pem


def _describe(exc: ValidationError, prefix: str) -> list[str]:
    lines = []
    for error in exc.errors():
        where = "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{prefix}{where}: {error['msg']}" if where else error["msg"])
    return lines


def load_settings() -> Settings:
    """Read and validate settings, turning pydantic's report into one clear message."""
    try:
        limits = Limits()
    except ValidationError as exc:
        raise SettingsError(
            "invalid configuration:\n  " + "\n  ".join(_describe(exc, "HOTSPOT_LIMIT_"))
        ) from None
    try:
        rates = Rates()
    except ValidationError as exc:
        raise SettingsError(
            "invalid configuration:\n  " + "\n  ".join(_describe(exc, "HOTSPOT_RATE_"))
        ) from None
    try:
        return Settings(limits=limits, rates=rates)
    except ValidationError as exc:
        raise SettingsError(
            "invalid configuration:\n  " + "\n  ".join(_describe(exc, "HOTSPOT_"))
        ) from None
