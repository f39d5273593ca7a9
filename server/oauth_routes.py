"""/oauth/authorize, /oauth/token, /oauth/revoke, /oauth/introspect, /oauth/device_authorization.

Plain routes, not commands: their parameters and errors are fixed by RFC 6749 (section 5.2
JSON errors, redirects back to the app), RFC 7009 and RFC 7662. Authlib validates the
protocol in a worker thread (server/oauth_server.py); the pages are server/consent_page.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InsecureTransportError, OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

from handlers.auth import check_password
from handlers.context import Context
from handlers.errors import CommandError
from handlers.oauth_flows import remember_consent, remembered_consent
from handlers.rates import Rate, charge
from handlers.scopes import Scope
from server import consent_page as pages
from server.dispatch import Dispatcher
from server.oauth_server import OAuthServer, Request, parse_form
from server.rest import REQUEST_ID, client_ip, json_response
from storage.oauth_apps import OAuthApp

OAUTH_SERVER = web.AppKey("oauth_server", OAuthServer)
TOKEN_PER_IP = Rate("oauth_token_ip", per="ip")
TOKEN_PER_CLIENT = Rate("oauth_token_client", per="subject")
# The consent page's login form counts like auth.login.
CONSENT_LOGIN = Rate("login", per="ip")
FORM_LIMIT_BYTES = 16 * 1024


@dataclass(frozen=True)
class ConsentUser:
    """The person approving, as Authlib's grant sees request.user."""

    id: uuid.UUID
    auth_time: int


def _context(dispatcher: Dispatcher, request: web.Request) -> Context:
    return Context(services=dispatcher.services, principal=None, transport="http",
                   request_id=request.get(REQUEST_ID) or uuid.uuid4().hex,
                   ip=client_ip(request), user_agent=request.headers.get("User-Agent"))


async def _read_form(request: web.Request) -> list[tuple[str, str]]:
    if request.method != "POST":
        return []
    if (request.content_length or 0) > FORM_LIMIT_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=FORM_LIMIT_BYTES,
                                            actual_size=request.content_length or 0)
    return parse_form(await request.text())


async def _oauth_request(request: web.Request, server: OAuthServer,
                         form: list[tuple[str, str]] | None = None) -> Request:
    """The request as Authlib sees it; `form` overrides the body read (the consent page's
    form is not protocol input: Authlib sees only the query there)."""
    body = await _read_form(request) if form is None else form
    uri = server.services.settings.oauth_issuer + request.path_qs
    oauth = Request(request.method, uri, request.headers, list(request.query.items()), body)
    oauth.ip = client_ip(request)
    return oauth


def _respond(result: tuple[int, Any, list[tuple[str, str]]]) -> web.Response:
    status, body, header_list = result
    headers = dict(header_list)
    if status in (301, 302, 303):
        return web.Response(status=302, headers={"Location": headers["Location"],
                                                 "Cache-Control": "no-store"})
    headers.pop("Content-Type", None)
    headers.setdefault("Cache-Control", "no-store")
    return json_response(body, status, headers)


def _rate_limited(exc: CommandError) -> web.Response:
    retry = exc.details.get("retry_after", 1) if isinstance(exc.details, dict) else 1
    return json_response({"error": "rate_limited", "error_description": exc.message}, 429,
                         {"Retry-After": str(retry), "Cache-Control": "no-store"})


async def page_login(ctx: Context, form: Request, app_row: OAuthApp, action: str,
                     session: pages.ConsentSession) -> web.Response:
    """The login form's post (consent and device pages): on success a 303 back to `action`
    with the cookie naming the user, else the form again with the reason."""
    settings = ctx.services.settings
    try:
        await charge(ctx, CONSENT_LOGIN)
        user = await check_password(ctx, form.form.get("login", ""), form.form.get("password", ""))
    except CommandError as exc:
        return pages.login_page(app_row, action, pages.csrf_token(settings, session),
                                settings.public_base_url, exc.message, 401)
    # A fresh nonce: the CSRF token of the signed-out page does not carry over.
    logged_in = pages.ConsentSession(pages.new_session().nonce, user.id,
                                     int(ctx.services.clock().timestamp()))
    # Post/redirect/get: reloading the next page never re-posts the password.
    after = web.Response(status=303, headers={**pages.PAGE_HEADERS, "Location": action})
    pages.set_session(settings, after, logged_in)
    return after


def oauth_server_ctx(dispatcher: Dispatcher) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx making the app's OAuthServer once the services are bound."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[OAUTH_SERVER] = OAuthServer(dispatcher.services, asyncio.get_running_loop())
        yield

    return ctx


def add_oauth_routes(app: web.Application, dispatcher: Dispatcher) -> None:
    """The authorization server's endpoints (the server object: oauth_server_ctx)."""

    def server_of(request: web.Request) -> OAuthServer:
        return request.app[OAUTH_SERVER]

    async def token(request: web.Request) -> web.Response:
        server = server_of(request)
        oauth = await _oauth_request(request, server)
        ctx = _context(dispatcher, request)
        basic = request.headers.get("Authorization", "")
        client_id = oauth.form.get("client_id") or ""
        if basic.lower().startswith("basic "):
            client_id = extract_basic_authorization(request.headers)[0] or client_id
        try:
            await charge(ctx, TOKEN_PER_IP)
            # A device's polls are paced per device code by slow_down instead: counted per
            # client, a CLI's many users polling at once would lock each other out.
            if oauth.form.get("grant_type") != DEVICE_CODE_GRANT_TYPE:
                await charge(ctx, TOKEN_PER_CLIENT, client_id or "-")
        except CommandError as exc:
            return _rate_limited(exc)
        return _respond(await server.call(server.create_token_response, oauth))

    async def endpoint(request: web.Request, name: str) -> web.Response:
        server = server_of(request)
        oauth = await _oauth_request(request, server)
        try:
            await charge(_context(dispatcher, request), TOKEN_PER_IP)
        except CommandError as exc:
            return _rate_limited(exc)
        return _respond(await server.call(server.create_endpoint_response, name, oauth))

    async def revoke(request: web.Request) -> web.Response:
        return await endpoint(request, "revocation")

    async def introspect(request: web.Request) -> web.Response:
        return await endpoint(request, "introspection")

    async def device_authorization(request: web.Request) -> web.Response:
        return await endpoint(request, "device_authorization")

    async def authorize(request: web.Request) -> web.StreamResponse:
        server = server_of(request)
        settings = server.services.settings
        page_form = await _read_form(request)
        try:
            oauth = await _oauth_request(request, server, [])
        except InsecureTransportError:
            return pages.error_page("HOTSPOT_PUBLIC_BASE_URL must be https", 500)
        try:
            grant = await server.call(server.get_consent_grant, oauth, None)
        except OAuth2Error as error:
            if error.redirect_uri:
                return _respond(error())
            return pages.error_page(error.description or error.error)
        app_row = grant.request.client.app
        session = pages.read_session(settings, request)
        form = Request("POST", oauth.uri, {}, [], page_form)
        action = request.path_qs
        base = settings.public_base_url
        if request.method == "POST":
            if not pages.csrf_ok(settings, session, form.form.get("csrf_token")):
                return pages.error_page("The form expired or did not come from this page "
                                        "(CSRF token missing or wrong). Start again.", 403)
            assert session is not None
            step = form.form.get("action")
            if step == "login":
                return await page_login(_context(dispatcher, request), form, app_row, action,
                                        session)
            if session.user_id is None or session.auth_time is None:
                return pages.error_page("Sign in first.", 403)
            if step == "deny":
                denied = AccessDeniedError(redirect_uri=grant.redirect_uri)
                denied.state = oauth.payload.state
                return _respond(denied())
            if step != "approve":
                return pages.error_page("Unknown action.")
            requested = grant.request.scope.split()
            chosen = set(form.form_list("scope"))
            granted = [s for s in requested if s in chosen or s == Scope.OPENID.value]
            if not granted:
                return pages.error_page("Choose at least one permission, or deny.")
            await remember_consent(server.services, session.user_id, app_row, granted)
            return await _issue(server, grant, session, granted)
        if session is None or session.user_id is None or session.auth_time is None:
            fresh = session or pages.new_session()
            page = pages.login_page(app_row, action, pages.csrf_token(settings, fresh), base)
            pages.set_session(settings, page, fresh)
            return page
        requested = grant.request.scope.split()
        if await remembered_consent(server.services, session.user_id, app_row, requested):
            return await _issue(server, grant, session, requested)
        return pages.consent_page(app_row, action, pages.csrf_token(settings, session),
                                  requested, base)

    app.router.add_post("/oauth/token", token)
    app.router.add_post("/oauth/revoke", revoke)
    app.router.add_post("/oauth/introspect", introspect)
    app.router.add_post("/oauth/device_authorization", device_authorization)
    app.router.add_get("/oauth/authorize", authorize)
    app.router.add_post("/oauth/authorize", authorize)


async def _issue(server: OAuthServer, grant: Any, session: pages.ConsentSession,
                 scopes: list[str]) -> web.Response:
    """Redirect back to the app with a code for these scopes (Authlib writes the code)."""
    assert session.user_id is not None and session.auth_time is not None
    grant.request.scope = " ".join(scopes)
    user = ConsentUser(session.user_id, session.auth_time)
    try:
        result = await server.call(grant.create_authorization_response, grant.redirect_uri, user)
    except OAuth2Error as error:
        error.state = grant.request.payload.state
        return _respond(error())
    return _respond(result)
