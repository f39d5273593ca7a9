"""Outreach bookkeeping: the ledger of sent jobs, per-channel opt-outs, the shared throttle."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Literal

from storage.db import Database

SendStatus = Literal["sending", "sent", "failed"]
# The first key of outreach's two-key advisory locks ("OUTR"); the second hashes the name.
LOCK_CLASS = 0x4F555452


@asynccontextmanager
async def exclusive(db: Database, name: str) -> AsyncIterator[bool]:
    """Hold a lock on `name` while the block runs; yields False if someone else holds it.

    A session advisory lock on a connection of its own, kept for the block and closed
    after it: the lock dies with the connection, so a worker that crashes mid-send never
    leaves it behind, and a 'sending' row whose lock is free was interrupted rather than
    in progress. The block's own queries go through the pool, which the lock never holds.
    """
    async with db.session() as conn:
        yield bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))",
                                       LOCK_CLASS, name))


async def begin_send(db: Database, job_id: str, channel: str, recipient: str) -> SendStatus:
    """Record the job as 'sending' (committed at once); returns its status now.

    'sending' is a new job, one being sent right now (see exclusive), or one whose
    earlier attempt died between its send and the 'sent' mark.
    """
    row = await db.pool.fetchrow(
        """INSERT INTO outreach_sends (job_id, channel, recipient, status)
           VALUES ($1, $2, $3, 'sending')
           ON CONFLICT (job_id) DO UPDATE
               SET attempts = outreach_sends.attempts + 1, updated_at = now()
           RETURNING status""",
        job_id, channel, recipient,
    )
    assert row is not None
    status: SendStatus = row["status"]
    return status


async def finish_send(db: Database, job_id: str, status: SendStatus, error: str | None = None) -> None:
    await db.pool.execute(
        "UPDATE outreach_sends SET status = $2, error = $3, updated_at = now() WHERE job_id = $1",
        job_id, status, error,
    )


async def send_status(db: Database, job_id: str) -> SendStatus | None:
    status: SendStatus | None = await db.pool.fetchval(
        "SELECT status FROM outreach_sends WHERE job_id = $1", job_id
    )
    return status


async def prune_sends(db: Database, before: datetime) -> int:
    """Forget ledger rows older than any redelivery can be."""
    result = await db.pool.execute("DELETE FROM outreach_sends WHERE created_at < $1", before)
    return int(str(result).rsplit(" ", 1)[1])


async def opt_out(db: Database, user_id: uuid.UUID, channel: str) -> bool:
    """Record the opt-out; False when it was already recorded (or the user is gone)."""
    result = await db.pool.execute(
        """INSERT INTO outreach_optouts (user_id, channel)
           SELECT id, $2 FROM users WHERE id = $1
           ON CONFLICT (user_id, channel) DO NOTHING""",
        user_id, channel,
    )
    return str(result).endswith(" 1")


async def opt_in(db: Database, user_id: uuid.UUID, channel: str) -> None:
    await db.pool.execute(
        "DELETE FROM outreach_optouts WHERE user_id = $1 AND channel = $2", user_id, channel
    )


async def opted_out_channels(db: Database, user_id: uuid.UUID) -> set[str]:
    rows = await db.pool.fetch("SELECT channel FROM outreach_optouts WHERE user_id = $1", user_id)
    return {r["channel"] for r in rows}

async def claim_slot(db: Database, key: str, interval_s: float) -> float:
    """Take the next send slot of `key`, one per interval; returns seconds to wait for it."""
    wait = await db.pool.fetchval(
        """INSERT INTO outreach_throttle AS t (key, next_at)
           VALUES ($1, clock_timestamp() + make_interval(secs => $2))
           ON CONFLICT (key) DO UPDATE
               SET next_at = greatest(t.next_at, clock_timestamp()) + make_interval(secs => $2)
           RETURNING extract(epoch FROM t.next_at - make_interval(secs => $2) - clock_timestamp())""",
        key, interval_s,
    )
    return max(0.0, float(wait))
