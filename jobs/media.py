"""The media queue: an upload to process (variants, checks), consumed by workers/media.py."""

from __future__ import annotations

import uuid
from typing import Any

from jobs.queue import new_job

QUEUE = "media"
PROCESS_JOB = "media.process"


def process_job(media_id: uuid.UUID) -> dict[str, Any]:
    """The job that has the media worker process an upload."""
    return new_job(PROCESS_JOB, media_id=str(media_id))
