"""Outreach campaigns (admin): create, start, pause, resume, and watch their progress."""

from __future__ import annotations

import uuid

from handlers.campaign_schemas import (
    CampaignCreateInput,
    CampaignIdInput,
    CampaignInfo,
    CampaignList,
    CampaignListInput,
)
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.rates import Rate
from handlers.scopes import Scope
from jobs.campaigns import QUEUE, batch_job, email_content, sms_content
from jobs.queue import QueueUnavailable
from jobs.templates import (
    campaign_params,
    email_templates,
    render_email_template,
    render_sms_text,
    sms_templates,
)
from storage import campaigns as store
from storage.campaigns import Campaign
from storage.views.campaigns import progress_event


def _info(campaign: Campaign, progress: store.Progress) -> CampaignInfo:
    return CampaignInfo(
        **progress_event(campaign, progress), channel=campaign.channel,
        template=campaign.template, subject=campaign.subject, audience=campaign.audience,
        created_at=campaign.created_at, started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        created_by=str(campaign.created_by) if campaign.created_by else None,
        started_by=str(campaign.started_by) if campaign.started_by else None,
    )


async def _load(ctx: Context, campaign_id: uuid.UUID) -> tuple[Campaign, CampaignInfo]:
    campaign = await store.get_campaign(ctx.services.db, campaign_id)
    if campaign is None:
        raise CommandError("not_found", "no such campaign")
    progress = (await store.progress(ctx.services.db, [campaign.id]))[campaign.id]
    return campaign, _info(campaign, progress)


def _check_content(data: CampaignCreateInput, app_link: str) -> None:
    """Refuse templates a campaign cannot fill, before anything is stored."""
    params = campaign_params("Sample", "sample", app_link)
    field = "template" if data.template is not None else "text"
    try:
        if data.channel == "email":
            if data.template is not None and data.template not in email_templates():
                raise invalid("template", f"no email template {data.template!r}", "unknown_template")
            if data.template is None and data.subject is None:
                raise invalid("subject", "an email campaign needs a subject", "missing")
            render_email_template(email_content(data.template, data.subject, data.text, data.html),
                                  params)
        else:
            # SMS and push bodies are SMS templates or text; a push may have a title (subject).
            if data.html is not None or (data.channel == "sms" and data.subject is not None):
                raise invalid("html" if data.html else "subject",
                              f"an {data.channel} campaign has no {'html' if data.html else 'subject'}",
                              "text_only")
            if data.template is not None and data.template not in sms_templates():
                raise invalid("template", f"no SMS template {data.template!r}", "unknown_template")
            render_sms_text(sms_content(data.template, data.text), params)
            render_sms_text(data.subject or "", params)
    except KeyError as exc:
        raise invalid(field, f"a campaign can only use $display_name, $username and $app_link, "
                             f"not ${exc.args[0]}", "template_parameter") from None
    except ValueError as exc:
        raise invalid(field, f"bad $ placeholder: {exc}", "template_syntax") from None


@command("outreach.campaign.create", input=CampaignCreateInput,
         rest=("POST", "/outreach/campaigns"), scope=Scope.ADMIN, status=201, output=CampaignInfo,
         role="admin", rate=Rate("campaign_manage"))
async def create_campaign(ctx: Context, data: CampaignCreateInput) -> CampaignInfo:
    """Create a draft campaign (admin): channel, content and audience; start sends it."""
    _check_content(data, ctx.services.settings.public_base_url)
    campaign = await store.create_campaign(
        ctx.services.db, name=data.name, channel=data.channel, template=data.template,
        subject=data.subject, body_text=data.text, body_html=data.html,
        audience=data.audience.model_dump(exclude_defaults=True), created_by=ctx.user.user_id,
    )
    return _info(campaign, store.Progress())


async def _queue_batches(ctx: Context, campaign_id: uuid.UUID, batches: list[int]) -> None:
    """One job per batch; if the queue fails midway the campaign is paused for a resume."""
    try:
        for batch in batches:
            await ctx.services.queue.publish(
                QUEUE, batch_job(campaign_id, batch))
    except QueueUnavailable:
        await store.set_status(ctx.services.db, campaign_id, "paused", only_from="running")
        raise CommandError("unavailable", "the queue is unavailable; the campaign is paused, "
                                          "resume it when the queue is back") from None


async def _announce(ctx: Context, info: CampaignInfo) -> None:
    if info.started_by is not None:
        await ctx.services.realtime.send_to_user(
            uuid.UUID(info.started_by), "campaign.progress",
            {k: v for k, v in info.model_dump(mode="json").items()
             if k in ("id", "name", "status", "total", "pending", "sent", "failed", "skipped")})


@command("outreach.campaign.start", input=CampaignIdInput,
         rest=("POST", "/outreach/campaigns/{campaign_id}/start"), scope=Scope.ADMIN, output=CampaignInfo,
         role="admin", rate=Rate("campaign_manage"))
async def start_campaign(ctx: Context, data: CampaignIdInput) -> CampaignInfo:
    """Freeze the audience and start sending in throttled batches (admin)."""
    services = ctx.services
    campaign, _ = await _load(ctx, data.campaign_id)
    if campaign.status != "draft":
        raise CommandError("conflict", f"the campaign is already {campaign.status}")
    if not await services.queue.ping():
        raise CommandError("unavailable", "the queue is unavailable; try again")
    async with services.db.transaction() as conn:
        batches = await store.start_campaign(conn, campaign, ctx.user.user_id,
                                             services.settings.limits.campaign_batch_size)
    if batches is None:
        raise CommandError("conflict", "the campaign was started meanwhile")
    await _queue_batches(ctx, campaign.id, list(range(batches)))
    await store.finish_if_complete(services.db, campaign.id)
    _, info = await _load(ctx, campaign.id)
    await _announce(ctx, info)
    return info


@command("outreach.campaign.get", input=CampaignIdInput, rest=("GET", "/outreach/campaigns/{campaign_id}"),
         scope=Scope.ADMIN, output=CampaignInfo,
         role="admin", rate=Rate("reads"))
async def get_campaign(ctx: Context, data: CampaignIdInput) -> CampaignInfo:
    """A campaign with its progress: total, pending, sent, failed, skipped (admin)."""
    return (await _load(ctx, data.campaign_id))[1]


@command("outreach.campaign.pause", input=CampaignIdInput,
         rest=("POST", "/outreach/campaigns/{campaign_id}/pause"), scope=Scope.ADMIN, output=CampaignInfo,
         role="admin", rate=Rate("campaign_manage"))
async def pause_campaign(ctx: Context, data: CampaignIdInput) -> CampaignInfo:
    """Stop sending after the batches in hand; resume continues where it stopped (admin)."""
    campaign, _ = await _load(ctx, data.campaign_id)
    if not await store.set_status(ctx.services.db, campaign.id, "paused", only_from="running"):
        raise CommandError("conflict", f"only a running campaign can be paused, not "
                                       f"{campaign.status}")
    info = (await _load(ctx, campaign.id))[1]
    await _announce(ctx, info)
    return info


@command("outreach.campaign.resume", input=CampaignIdInput,
         rest=("POST", "/outreach/campaigns/{campaign_id}/resume"), scope=Scope.ADMIN, output=CampaignInfo,
         role="admin", rate=Rate("campaign_manage"))
async def resume_campaign(ctx: Context, data: CampaignIdInput) -> CampaignInfo:
    """Continue a paused campaign: the batches with recipients left are queued again (admin)."""
    services = ctx.services
    campaign, _ = await _load(ctx, data.campaign_id)
    if not await services.queue.ping():
        raise CommandError("unavailable", "the queue is unavailable; try again")
    if not await store.set_status(services.db, campaign.id, "running", only_from="paused"):
        raise CommandError("conflict", f"only a paused campaign can be resumed, not "
                                       f"{campaign.status}")
    # A batch already queued may run twice now; the per-recipient claim makes that harmless.
    await _queue_batches(ctx, campaign.id, await store.open_batches(services.db, campaign.id))
    await store.finish_if_complete(services.db, campaign.id)
    info = (await _load(ctx, campaign.id))[1]
    await _announce(ctx, info)
    return info


@command("outreach.campaign.list", input=CampaignListInput, rest=("GET", "/outreach/campaigns"),
         scope=Scope.ADMIN, output=CampaignList,
         role="admin", rate=Rate("reads"))
async def list_campaigns(ctx: Context, data: CampaignListInput) -> CampaignList:
    """Campaigns, newest first, with their progress (admin)."""
    db = ctx.services.db
    found = await store.list_campaigns(db, data.limit, data.before)
    counts = await store.progress(db, [c.id for c in found])
    return CampaignList(
        campaigns=[_info(c, counts[c.id]) for c in found],
        next_before=found[-1].created_at if len(found) == data.limit else None,
    )
