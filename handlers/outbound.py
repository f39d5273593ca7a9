"""Handing email and SMS to the outreach worker through the queue."""

from __future__ import annotations

from typing import Any

from handlers.context import Services
from handlers.errors import CommandError
from jobs.outreach import QUEUE, outreach_job
from jobs.queue import QueueUnavailable


async def enqueue_email(
    services: Services, to: str, template: str, params: dict[str, Any], *, test: bool = False
) -> str:
    """Queue a transactional email (opt-outs do not apply); returns the job id."""
    return await _enqueue(services, outreach_job("email", to, template, params, test=test))


async def enqueue_sms(
    services: Services, to: str, template: str, params: dict[str, Any], *, test: bool = False
) -> str:
    """Queue a transactional SMS; returns the job id."""
    return await _enqueue(services, outreach_job("sms", to, template, params, test=test))


async def enqueue_push(
    services: Services, to: str, template: str, params: dict[str, Any], *, test: bool = False
) -> str:
    """Queue a push to every device of the user whose id is `to`; the body is an SMS template."""
    return await _enqueue(services, outreach_job("push", to, template, params, test=test))


async def _enqueue(services: Services, job: dict[str, Any]) -> str:
    try:
        await services.queue.publish(QUEUE, job)
    except QueueUnavailable as exc:
        raise CommandError("unavailable", "the outreach queue is unavailable; try again") from exc
    return str(job["id"])
