"""Where email and SMS leave us: SMTP or an .eml outbox; an SMS provider or an outbox."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

import aiosmtplib
import orjson


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmsProvider(Protocol):
    async def send(self, to: str, text: str) -> None: ...


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
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            timeout=self.timeout_s,
        )


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
        await asyncio.to_thread(_write_atomically, self.directory / name, bytes(message))


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
