"""Which workers exist and how to start their consumers."""

from __future__ import annotations

from config import Settings
from workers.delivery import Mailer, OutboxMailer, OutboxSms, SmsProvider, SmtpMailer
from workers.outreach import QUEUE as OUTREACH_QUEUE
from workers.outreach import OutreachWorker
from workers.queue import JobQueue

WORKER_NAMES = ("outreach",)


def resolve_worker_names(names: list[str]) -> list[str]:
    """Expand 'all' and refuse unknown names with a clear message."""
    if not names or "all" in names:
        return list(WORKER_NAMES)
    unknown = sorted(set(names) - set(WORKER_NAMES))
    if unknown:
        raise ValueError(f"unknown worker(s) {unknown}; known: {list(WORKER_NAMES)} or all")
    return list(dict.fromkeys(names))


def build_mailer(settings: Settings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url)
    return OutboxMailer(settings.outbox_dir / "mail")


def build_sms_provider(settings: Settings) -> SmsProvider:
    return OutboxSms(settings.outbox_dir / "sms")


async def start_workers(settings: Settings, queue: JobQueue, names: list[str]) -> None:
    for name in resolve_worker_names(names):
        if name == "outreach":
            worker = OutreachWorker(build_mailer(settings), build_sms_provider(settings),
                                    settings.mail_from)
            await queue.consume(OUTREACH_QUEUE, worker.handle, prefetch=10)
