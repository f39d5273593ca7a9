"""Campaigns and their recipients: creation, the frozen audience, claims and progress."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from storage.db import Database

CAMPAIGN_COLUMNS = """id, name, channel, template, subject, body_text, body_html, audience, status,
    batches, created_by, started_by, created_at, started_at, finished_at"""
CampaignStatus = Literal["draft", "running", "paused", "done"]


@dataclass(frozen=True)
class Campaign:
    id: uuid.UUID
    name: str
    channel: str
    template: str | None
    subject: str | None
    body_text: str | None
    body_html: str | None
    audience: dict[str, Any]
    status: CampaignStatus
    batches: int
    created_by: uuid.UUID | None
    started_by: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Progress:
    total: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Recipient:
    """A claimed recipient with the addresses the account has now."""

    user_id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    email_verified: bool
    phone: str | None
    deleted: bool
    opted_out: bool
    attempts: int


def _campaign(row: asyncpg.Record | None) -> Campaign | None:
    return None if row is None else Campaign(**dict(row))


async def create_campaign(
    db: Database, *, name: str, channel: str, template: str | None, subject: str | None,
    body_text: str | None, body_html: str | None, audience: dict[str, Any], created_by: uuid.UUID,
) -> Campaign:
    row = await db.pool.fetchrow(
        f"""INSERT INTO campaigns (name, channel, template, subject, body_text, body_html,
                                   audience, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {CAMPAIGN_COLUMNS}""",
        name, channel, template, subject, body_text, body_html, audience, created_by,
    )
    campaign = _campaign(row)
    assert campaign is not None
    return campaign


async def get_campaign(db: Database | asyncpg.Connection, campaign_id: uuid.UUID) -> Campaign | None:
    pool = db.pool if isinstance(db, Database) else db
    return _campaign(await pool.fetchrow(
        f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1", campaign_id
    ))


async def list_campaigns(db: Database, limit: int, before: datetime | None) -> list[Campaign]:
    rows = await db.pool.fetch(
        f"""SELECT {CAMPAIGN_COLUMNS} FROM campaigns
            WHERE $2::timestamptz IS NULL OR created_at < $2
            ORDER BY created_at DESC, id DESC LIMIT $1""",
        limit, before,
    )
    return [c for c in map(_campaign, rows) if c is not None]


def _audience_sql(channel: str, audience: dict[str, Any]) -> tuple[str, list[Any]]:
    """WHERE clauses and arguments (from $3 on) choosing the users a campaign goes to."""
    where = ["u.deleted_at IS NULL"]
    args: list[Any] = []
    if channel == "email":
        where.append("u.email IS NOT NULL")
    elif channel == "sms":
        # A phone number is only ever stored once verified, but say so explicitly.
        where.append("u.phone IS NOT NULL AND u.phone_verified_at IS NOT NULL")
    elif channel == "push":
        where.append("EXISTS (SELECT 1 FROM push_subscriptions p WHERE p.user_id = u.id)")
    if audience.get("verified_email_only"):
        where.append("u.email_verified_at IS NOT NULL")
    if audience.get("role") is not None:
        args.append(audience["role"])
        where.append(f"u.role = ${len(args) + 2}")
    if audience.get("inactive_days") is not None:
        args.append(timedelta(days=int(audience["inactive_days"])))
        where.append(f"coalesce(u.last_seen_at, u.created_at) < now() - ${len(args) + 2}::interval")
    return " AND ".join(where), args


async def start_campaign(
    conn: asyncpg.Connection, campaign: Campaign, started_by: uuid.UUID, batch_size: int
) -> int | None:
    """Freeze the audience into recipients split into batches; None if no longer a draft.

    Returns the number of batches. Runs inside the caller's transaction.
    """
    updated = await conn.fetchval(
        """UPDATE campaigns SET status = 'running', started_by = $2, started_at = now()
           WHERE id = $1 AND status = 'draft' RETURNING id""",
        campaign.id, started_by,
    )
    if updated is None:
        return None
    where, args = _audience_sql(campaign.channel, campaign.audience)
    await conn.execute(
        f"""INSERT INTO campaign_recipients (campaign_id, user_id, batch)
            SELECT $1, u.id, ((row_number() OVER (ORDER BY u.id)) - 1) / $2
            FROM users u WHERE {where}
            ON CONFLICT (campaign_id, user_id) DO NOTHING""",
        campaign.id, batch_size, *args,
    )
    total = await conn.fetchval(
        "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1", campaign.id
    )
    batches = (int(total) + batch_size - 1) // batch_size
    await conn.execute("UPDATE campaigns SET batches = $2 WHERE id = $1", campaign.id, batches)
    return batches


async def set_status(
    db: Database, campaign_id: uuid.UUID, status: CampaignStatus, only_from: CampaignStatus
) -> bool:
    """Move the campaign from one status to another; False if it was not in `only_from`."""
    result = await db.pool.execute(
        "UPDATE campaigns SET status = $2 WHERE id = $1 AND status = $3",
        campaign_id, status, only_from,
    )
    return str(result).endswith(" 1")


async def finish_if_complete(db: Database, campaign_id: uuid.UUID) -> bool:
    """Mark a running campaign done once no recipient is pending or being sent to."""
    result = await db.pool.execute(
        """UPDATE campaigns SET status = 'done', finished_at = now()
           WHERE id = $1 AND status = 'running' AND NOT EXISTS (
               SELECT 1 FROM campaign_recipients
               WHERE campaign_id = $1 AND status IN ('pending', 'sending'))""",
        campaign_id,
    )
    return str(result).endswith(" 1")


async def open_batches(db: Database, campaign_id: uuid.UUID) -> list[int]:
    """Batches that still have recipients pending or being sent to."""
    rows = await db.pool.fetch(
        """SELECT DISTINCT batch FROM campaign_recipients
           WHERE campaign_id = $1 AND status IN ('pending', 'sending') ORDER BY batch""",
        campaign_id,
    )
    return [r["batch"] for r in rows]


async def progress(db: Database, campaign_ids: list[uuid.UUID]) -> dict[uuid.UUID, Progress]:
    rows = await db.pool.fetch(
        """SELECT campaign_id, count(*) AS total,
                  count(*) FILTER (WHERE status IN ('pending', 'sending')) AS pending,
                  count(*) FILTER (WHERE status = 'sent') AS sent,
                  count(*) FILTER (WHERE status = 'failed') AS failed,
                  count(*) FILTER (WHERE status = 'skipped') AS skipped
           FROM campaign_recipients WHERE campaign_id = ANY($1::uuid[]) GROUP BY campaign_id""",
        campaign_ids,
    )
    found = {r["campaign_id"]: Progress(r["total"], r["pending"], r["sent"], r["failed"],
                                        r["skipped"]) for r in rows}
    return {cid: found.get(cid, Progress()) for cid in campaign_ids}


async def settle_interrupted(db: Database, campaign_id: uuid.UUID, batch: int) -> int:
    """Fail the batch's rows left 'sending'; call it holding the batch's lock.

    With the lock held nobody else is sending this batch, so such a row was interrupted
    by a crash. Whether that send reached the provider is unknown: failing the row keeps
    "never twice".
    """
    result = await db.pool.execute(
        """UPDATE campaign_recipients
           SET status = 'failed', error = 'interrupted while sending; delivery unknown',
               updated_at = now()
           WHERE campaign_id = $1 AND batch = $2 AND status = 'sending'""",
        campaign_id, batch,
    )
    return int(str(result).rsplit(" ", 1)[1])


async def pending_in_batch(db: Database, campaign_id: uuid.UUID, batch: int) -> list[uuid.UUID]:
    rows = await db.pool.fetch(
        """SELECT user_id FROM campaign_recipients
           WHERE campaign_id = $1 AND batch = $2 AND status = 'pending' ORDER BY user_id""",
        campaign_id, batch,
    )
    return [r["user_id"] for r in rows]


async def claim(db: Database, campaign_id: uuid.UUID, user_id: uuid.UUID) -> Recipient | None:
    """Mark one pending recipient 'sending' (committed at once); None if not pending."""
    row = await db.pool.fetchrow(
        """WITH claimed AS (
               UPDATE campaign_recipients
               SET status = 'sending', attempts = attempts + 1, updated_at = now()
               WHERE campaign_id = $1 AND user_id = $2 AND status = 'pending'
               RETURNING user_id, attempts,
                         (SELECT channel FROM campaigns WHERE id = $1) AS channel)
           SELECT u.id AS user_id, u.username, u.display_name, u.email,
                  u.email_verified_at IS NOT NULL AS email_verified, u.phone,
                  u.deleted_at IS NOT NULL AS deleted,
                  EXISTS (SELECT 1 FROM outreach_optouts o
                          WHERE o.user_id = u.id AND o.channel = c.channel) AS opted_out,
                  c.attempts
           FROM claimed c JOIN users u ON u.id = c.user_id""",
        campaign_id, user_id,
    )
    return None if row is None else Recipient(**dict(row))


async def settle(
    db: Database, campaign_id: uuid.UUID, user_id: uuid.UUID,
    status: Literal["pending", "sent", "failed", "skipped"], error: str | None = None,
) -> None:
    """Record how the claimed send ended ('pending' hands it back for a later retry)."""
    await db.pool.execute(
        """UPDATE campaign_recipients SET status = $3, error = $4, updated_at = now()
           WHERE campaign_id = $1 AND user_id = $2 AND status = 'sending'""",
        campaign_id, user_id, status, error,
    )
