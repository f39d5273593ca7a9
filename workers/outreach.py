"""The outreach worker: renders and sends transactional email and SMS jobs."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from workers.delivery import Mailer, SmsProvider
from workers.templates import render_email, render_sms

log = logging.getLogger(__name__)
QUEUE = "outreach"


class OutreachWorker:
    def __init__(self, mailer: Mailer, sms: SmsProvider, mail_from: str) -> None:
        self.mailer = mailer
        self.sms = sms
        self.mail_from = mail_from

    async def handle(self, job: dict[str, Any]) -> None:
        kind = job.get("type")
        if kind == "email":
            await self._email(job)
        elif kind == "sms":
            await self.sms.send(job["to"], render_sms(job["template"], job.get("params", {})))
            log.info("sms sent", extra={"job_id": job["id"], "template": job["template"]})
        else:
            raise ValueError(f"unknown outreach job type {kind!r}")

    async def _email(self, job: dict[str, Any]) -> None:
        subject, text, html = render_email(job["template"], job.get("params", {}))
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = job["to"]
        message["Subject"] = subject
        # The job id makes the Message-ID, so a redelivered job is recognisable downstream.
        message["Message-ID"] = make_msgid(idstring=job["id"], domain="hotspot.local")
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        await self.mailer.send(message)
        log.info("email sent", extra={"job_id": job["id"], "template": job["template"]})
