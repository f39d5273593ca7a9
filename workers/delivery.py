"""Where email and SMS leave us: SMTP or an .eml outbox; an SMS provider or an outbox."""

from __future__ import annotations

import asyncio
import email.policy
import time
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

import aiosmtplib
import orjson

# Headers are folded at 998 characters, not 78: a List-Unsubscribe URL has no space to
# fold at, and folding it at 78 would turn it into an encoded word no client reads.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


class PermanentSendError(Exception):
    """The provider refused this message for good (bad address, rejected content): no retry."""


class TransientSendError(Exception):
    """Not delivered this time (provider down, busy, 4xx); the queue retries later.

    provider_wide says the provider itself is unreachable, so the next sends would fail too.
    """

    def __init__(self, message: str, provider_wide: bool = True) -> None:
        super().__init__(message)
        self.provider_wide = provider_wide


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmsProvider(Protocol):
    async def send(self, to: str, text: str) -> None: ...


def message_id(seed: str, mail_from: str) -> str:
    """A Message-ID that depends only on the seed, so a resend carries the same one."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "hotspot.local"
    return f"<{seed}@{domain}>"


def build_email(
    mail_from: str, to: str, subject: str, text: str, html: str, seed: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id(seed, mail_from)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


class SmtpMailer:
    """Sends over SMTP: smtp://[user:pass@]host[:port][?starttls=1], or smtps:// for TLS."""

    def __init__(self, url: str, timeout_s: float = 15.0) -> None:
        parsed = urlparse(url)
        self.hostname = parsed.hostname or "localhost"
        self.use_tls = parsed.scheme == "smtps"
        self.port = parsed.port or (465 if self.use_tls else 25)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.start_tls = parse_qs(parsed.query).get("starttls", ["0"])[0] in ("1", "true")
        self.timeout_s = timeout_s

    async def send(self, message: EmailMessage) -> None:
        """Send, raising PermanentSendError or TransientSendError for the provider's refusals."""
        addresses = getaddresses([*message.get_all("To", []), *message.get_all("Cc", [])])
        try:
            await aiosmtplib.send(
                message.as_bytes(policy=WIRE_POLICY),
                sender=parseaddr(str(message["From"]))[1],
                recipients=[address for _, address in addresses],
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(code >= 500 for code in codes):
                raise PermanentSendError(f"recipient refused: {exc.recipients[0].message}") from exc
            raise TransientSendError(f"recipient deferred: {codes}", provider_wide=False) from exc
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            if exc.code >= 500:
                raise PermanentSendError(f"refused: {exc.code} {exc.message}") from exc
            raise TransientSendError(f"deferred: {exc.code} {exc.message}", False) from exc
        except (aiosmtplib.SMTPReadTimeoutError, aiosmtplib.SMTPServerDisconnected):
            # The server may have taken the message before going quiet: outcome unknown.
            raise
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError,
                aiosmtplib.SMTPResponseException, OSError) as exc:
            # Connection, TLS, login or sender problems concern every message, not this one.
            raise TransientSendError(f"SMTP unavailable: {exc}") from exc


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class OutboxMailer:
    """Writes each message as an .eml file, for the embedded default and development."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{message['Message-ID'].strip('<>').split('@')[0]}.eml"
        await asyncio.to_thread(_write_atomically, self.directory / name,
                                message.as_bytes(policy=WIRE_POLICY))


class OutboxSms:
    """Writes each SMS as a JSON file: the development and test provider."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, to: str, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        body = orjson.dumps({"to": to, "text": text, "sent_at": time.time()})
        await asyncio.to_thread(
            _write_atomically, self.directory / f"{time.time_ns()}.json", body
        )
