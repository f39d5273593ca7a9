"""A campaign's progress as clients see it."""

from __future__ import annotations

from typing import Any

from storage.campaigns import Campaign, Progress


def progress_event(campaign: Campaign, progress: Progress) -> dict[str, Any]:
    """The campaign.progress payload (also the counting part of outreach.campaign.get)."""
    return {"id": str(campaign.id), "name": campaign.name, "status": campaign.status,
            "total": progress.total, "pending": progress.pending, "sent": progress.sent,
            "failed": progress.failed, "skipped": progress.skipped}
