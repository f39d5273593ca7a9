"""OAuth apps: register, list, read, change, delete and rotate the secret; admins suspend.

App management needs the `account` scope, which no third-party token can hold, so an app
can never register or change apps for a user. Deleting or suspending an app ends every
token family it holds (handlers.oauth_grants.end_app_sessions).
"""

from __future__ import annotations

import uuid

from handlers.commands import command
from handlers.context import Context, Services
from handlers.errors import CommandError, invalid
from handlers.oauth_clients import new_client_id, new_client_secret
from handlers.oauth_grants import end_app_sessions
from handlers.oauth_schemas import (
    AppCreateInput,
    AppIdInput,
    AppListInput,
    AppOut,
    AppPage,
    AppSuspendInput,
    AppUpdateInput,
    AppWithSecret,
)
from handlers.pagination import Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import media as media_store
from storage import oauth_apps as app_store
from storage import users as user_store
from storage.oauth_apps import OAuthApp, TooManyApps

MANAGE = Rate("oauth_app_manage")
MODERATE = Rate("oauth_app_moderate")


def _no_app() -> CommandError:
    # The same answer for an app that does not exist and one someone else owns.
    return CommandError("not_found", "no such app")


async def _own_app(ctx: Context, app_id: uuid.UUID) -> OAuthApp:
    app = await app_store.get_app(ctx.services.db, app_id)
    if app is None or app.owner_id != ctx.user.user_id:
        raise _no_app()
    return app


async def _check_logo(ctx: Context, media_id: uuid.UUID) -> None:
    found = await media_store.owned_by(ctx.services.db, [media_id], ctx.user.user_id)
    if not found or found[0].kind != "image":
        raise invalid("logo_media_id", "not an image you uploaded", "media_not_found")


def _with_secret(app: OAuthApp, secret: str | None) -> AppWithSecret:
    return AppWithSecret(**AppOut.of(app).model_dump(), client_secret=secret)


@command("oauth.app.create", input=AppCreateInput, output=AppWithSecret,
         rest=("POST", "/oauth/apps"), scope=Scope.ACCOUNT, status=201, rate=MANAGE)
async def create_app(ctx: Context, data: AppCreateInput) -> AppWithSecret:
    """Register an app; a confidential client's secret is in this answer and never again."""
    services = ctx.services
    owner = await user_store.get_user(services.db, ctx.user.user_id)
    # Apps act for other people: their owners must be reachable and accountable.
    if owner is None or owner.email_verified_at is None:
        raise CommandError("conflict", "verify your email address before registering apps",
                           {"reason": "unverified"})
    if data.logo_media_id is not None:
        await _check_logo(ctx, data.logo_media_id)
    client_id = new_client_id()
    secret, secret_hash = (new_client_secret(client_id) if data.client_type == "confidential"
                           else (None, None))
    cap = services.settings.limits.oauth_apps_per_user
    try:
        app = await app_store.create_app(
            services.db, owner_id=owner.id, client_id=client_id, name=data.name,
            website=data.website, logo_media_id=data.logo_media_id,
            redirect_uris=data.redirect_uris, client_type=data.client_type,
            allowed_scopes=data.allowed_scopes, secret_hash=secret_hash, max_per_owner=cap,
        )
    except TooManyApps:
        raise CommandError("conflict", f"you have {cap} apps, the most one account may have",
                           {"reason": "too_many_apps", "limit": cap}) from None
    return _with_secret(app, secret)


@command("oauth.app.list", input=AppListInput, output=AppPage, rest=("GET", "/oauth/apps"),
         scope=Scope.ACCOUNT, rate=Rate("reads"))
async def list_apps(ctx: Context, data: AppListInput) -> AppPage:
    """Your apps, newest first."""
    after = decode_cursor(data.cursor, "oauth.app.list")
    rows = await app_store.list_owned(ctx.services.db, ctx.user.user_id,
                                      None if after is None else (after.at, after.id),
                                      data.limit)
    page, next_cursor = page_of(rows, data.limit, lambda a: Position(a.created_at, a.id))
    return AppPage(items=[AppOut.of(a) for a in page], next_cursor=next_cursor)


@command("oauth.app.get", input=AppIdInput, output=AppOut, rest=("GET", "/oauth/apps/{app_id}"),
         scope=Scope.ACCOUNT, rate=Rate("reads"))
async def get_app(ctx: Context, data: AppIdInput) -> AppOut:
    """One of your apps (without its secret)."""
    return AppOut.of(await _own_app(ctx, data.app_id))


@command("oauth.app.update", input=AppUpdateInput, output=AppOut,
         rest=("PATCH", "/oauth/apps/{app_id}"), scope=Scope.ACCOUNT, rate=MANAGE)
async def update_app(ctx: Context, data: AppUpdateInput) -> AppOut:
    """Change an app's name, website, logo, redirect URIs or allowed scopes.

    Narrowing the allowed scopes drops the others from users' consents and ends the token
    families that carry any of them (their sockets get `session.revoked`).
    """
    services = ctx.services
    app = await _own_app(ctx, data.app_id)
    changes = {name: getattr(data, name) for name in data.model_fields_set - {"app_id"}}
    if changes.get("logo_media_id") is not None:
        await _check_logo(ctx, changes["logo_media_id"])
    narrowed = "allowed_scopes" in changes and not set(app.allowed_scopes) <= set(
        changes["allowed_scopes"])
    async with services.db.transaction() as conn:
        updated = await app_store.update_app(conn, app.id, changes)
        if updated is None:
            raise _no_app()
        ended = (await app_store.narrow_scopes(conn, app.id, changes["allowed_scopes"])
                 if narrowed else [])
    await end_app_sessions(services, ended, "app_scopes_reduced")
    return AppOut.of(updated)


@command("oauth.app.delete", input=AppIdInput, rest=("DELETE", "/oauth/apps/{app_id}"),
         scope=Scope.ACCOUNT, status=204, rate=MANAGE)
async def delete_app(ctx: Context, data: AppIdInput) -> None:
    """Delete an app: every consent and token it holds is revoked, its sockets closed."""
    app = await _own_app(ctx, data.app_id)
    ended = await app_store.delete_app(ctx.services.db, app.id)
    if ended is None:
        raise _no_app()
    await end_app_sessions(ctx.services, ended, "app_deleted")


@command("oauth.app.rotate_secret", input=AppIdInput, output=AppWithSecret,
         rest=("POST", "/oauth/apps/{app_id}/secret"), scope=Scope.ACCOUNT, rate=MANAGE)
async def rotate_secret(ctx: Context, data: AppIdInput) -> AppWithSecret:
    """Replace a confidential app's secret; the old one stops working at once."""
    app = await _own_app(ctx, data.app_id)
    if app.client_type != "confidential":
        raise CommandError("conflict", "a public client has no secret",
                           {"reason": "public_client"})
    secret, secret_hash = new_client_secret(app.client_id)
    updated = await app_store.set_secret(ctx.services.db, app.id, secret_hash)
    if updated is None:
        raise _no_app()
    return _with_secret(updated, secret)


@command("oauth.app.suspend", input=AppSuspendInput, output=AppOut,
         rest=("POST", "/oauth/apps/{app_id}/suspend"), scope=Scope.ADMIN, role="admin",
         rate=MODERATE)
async def suspend_app(ctx: Context, data: AppSuspendInput) -> AppOut:
    """Suspend an app (admin): its tokens stop at once and it cannot authorize anyone."""
    result = await app_store.suspend_app(ctx.services.db, data.app_id, data.reason)
    if result is None:
        raise _no_app()
    app, ended = result
    await end_app_sessions(ctx.services, ended, "app_suspended")
    return AppOut.of(app)


@command("oauth.app.unsuspend", input=AppIdInput, output=AppOut,
         rest=("POST", "/oauth/apps/{app_id}/unsuspend"), scope=Scope.ADMIN, role="admin",
         rate=MODERATE)
async def unsuspend_app(ctx: Context, data: AppIdInput) -> AppOut:
    """Lift an app's suspension (admin); users authorize it again to get new tokens."""
    app = await app_store.unsuspend_app(ctx.services.db, data.app_id)
    if app is None:
        raise _no_app()
    return AppOut.of(app)


async def delete_owned_apps(services: Services, owner_id: uuid.UUID) -> None:
    """Delete every app of an account being deleted, ending the tokens they hold."""
    for app_id in await app_store.owned_app_ids(services.db, owner_id):
        ended = await app_store.delete_app(services.db, app_id)
        await end_app_sessions(services, ended or [], "app_deleted")
