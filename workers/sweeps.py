"""Work the workers repeat on a timer: sweeps for lost jobs, purges, stale work folders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from jobs.queue import JobQueue


class Periodic:
    """Awaits action() in a task every interval_s; a failure is logged and the next run retries."""

    def __init__(self, action: Callable[[], Awaitable[object]], interval_s: float, *, name: str,
                 log: logging.Logger, failed: str,
                 quiet: tuple[type[Exception], ...] = ()) -> None:
        self.action = action
        self.interval_s = interval_s
        self.name = name
        self.log = log
        self.failed = failed
        # Failures expected to pass by themselves (a queue that is down): not worth a log line.
        self.quiet = quiet
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task (the first run is immediate)."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.action()
            except self.quiet:
                pass  # the next run tries again
            except Exception:
                self.log.exception(self.failed)
            await asyncio.sleep(self.interval_s)


async def requeue(queue: JobQueue, queue_name: str, ids: Iterable[uuid.UUID],
                  job: Callable[[uuid.UUID], dict[str, Any]],
                  mark: Callable[[uuid.UUID], Awaitable[object]]) -> int:
    """Publish job(id) for each id that never reached the queue, then mark(id); how many."""
    queued = 0
    for row_id in ids:
        await queue.publish(queue_name, job(row_id))
        await mark(row_id)
        queued += 1
    return queued


def clear_stale_work(work_dir: Path, older_than_s: float) -> None:
    """Make the work folder; drop what jobs of a process that died left in it."""
    work_dir.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - older_than_s
    for entry in work_dir.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
