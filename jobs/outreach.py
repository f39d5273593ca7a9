"""The outreach queue: one email, SMS or test push to send, consumed by workers/outreach.py.

`template` names one of jobs/templates.py, filled with `params`. The worker's ledger
sends each job id at most once, so a caller that must never send twice derives the id
from what it announces (job_id) instead of drawing a new one.
"""

from __future__ import annotations

from typing import Any, Literal

from jobs.queue import new_job

QUEUE = "outreach"
Channel = Literal["email", "sms", "push"]


def outreach_job(
    channel: Channel, to: str, template: str, params: dict[str, Any], *, job_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An email, SMS or push (to a user id, every device; the body is an SMS template) job.

    extra: test (a test send, marked as such), unsubscribe_url (email: the recipient's
    opt-out link, for non-transactional mail), notification_id.
    """
    job = new_job(channel, to=to, template=template, params=params, **extra)
    if job_id is not None:
        job["id"] = job_id
    return job
