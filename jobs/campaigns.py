"""The campaigns queue: one batch of a campaign's recipients to send, consumed by
workers/campaigns.py, and what a campaign sends (its own text or a named template)."""

from __future__ import annotations

import uuid
from typing import Any

from jobs.queue import new_job
from jobs.templates import EmailTemplate, email_templates, render_sms_text, sms_templates, text_to_html

# Campaign jobs have their own queue so a throttled campaign never holds up verification
# mail on the outreach queue.
QUEUE = "campaigns"
BATCH_JOB = "campaign_batch"


def batch_job(campaign_id: uuid.UUID, batch: int) -> dict[str, Any]:
    """The job that has the campaign sender send one batch of recipients."""
    return new_job(BATCH_JOB, campaign_id=str(campaign_id), batch=batch)


def email_content(
    template: str | None, subject: str | None, text: str | None, html: str | None
) -> EmailTemplate:
    """A campaign's own subject/text/html, or its named template (KeyError if unknown)."""
    if template is not None:
        return email_templates()[template]
    return EmailTemplate(subject=subject or "", text=text or "", html=html or text_to_html(text or ""))


def sms_content(template: str | None, text: str | None) -> str:
    return sms_templates()[template] if template is not None else text or ""


def push_content(
    template: str | None, subject: str | None, text: str | None, params: dict[str, str]
) -> tuple[str, str]:
    """(title, body) of a push: the subject (or "HotSpot") and the SMS template or text."""
    title = render_sms_text(subject, params) if subject else "HotSpot"
    return title, render_sms_text(sms_content(template, text), params)
