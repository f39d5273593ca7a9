"""The slides queue: a slide to render (effects, stitch, duet), consumed by workers/slides.py."""

from __future__ import annotations

import uuid
from typing import Any

from jobs.queue import new_job

QUEUE = "slides"
RENDER_JOB = "slide.render"
# The most of the original a stitch takes (docs/slides.md): the input's bound, and the
# length the worker renders for a stored credit that names none.
STITCH_MAX_MS = 5000


def render_job(slide_id: uuid.UUID) -> dict[str, Any]:
    """The job that has the slides worker render a slide."""
    return new_job(RENDER_JOB, slide_id=str(slide_id))
