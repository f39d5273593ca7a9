"""/oauth/device: where a person connects a TV, CLI or bot (RFC 8628 section 3.3).

The device shows a user code and this page's URL; the person opens it (or the
verification_uri_complete link, which carries the code), signs in with the consent page's
login form, sees the app and its scopes, unticks the optional ones and approves or denies.
The cookie, CSRF tokens, headers and HTML are server/consent_page.py's; the rules are
handlers/oauth_device.py's. /oauth/device_authorization and the token grant are in
server/oauth_routes.py and server/oauth_server.py.

A user code is about 34 bits, so guessing is what the page must stop: every wrong code
counts against two failure counters, per IP and per page session (the cookie's nonce), and
once either is reached every code entry is refused until its window ends.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from handlers import oauth_device as device
from handlers.errors import CommandError
from handlers.rates import Rate, count_failure, refuse_if_failed
from server import consent_page as pages
from server.dispatch import Dispatcher
from server.oauth_routes import _context, _read_form, page_login
from server.oauth_server import Request

PATH = "/oauth/device"
FAILURES_IP = Rate("oauth_device_code_failures_ip", per="ip")
FAILURES_SESSION = Rate("oauth_device_code_failures_session", per="subject")
WRONG_CODE = "That code is not valid or has expired. Check the code your device shows."


def add_device_routes(app: web.Application, dispatcher: Dispatcher) -> None:
    """GET and POST /oauth/device."""

    async def device_page(request: web.Request) -> web.Response:
        services = dispatcher.services
        settings = services.settings
        base = settings.public_base_url
        page_form = await _read_form(request)
        session = pages.read_session(settings, request)
        typed = request.query.get("user_code", "").strip()[:64]
        if not typed:
            page = pages.device_code_page(PATH)
            pages.set_session(settings, page, session or pages.new_session())
            return page
        form = Request("POST", str(request.url), {}, [], page_form)
        if request.method == "POST" and not pages.csrf_ok(settings, session,
                                                          form.form.get("csrf_token")):
            return pages.error_page("The form expired or did not come from this page "
                                    "(CSRF token missing or wrong). Start again.", 403)
        # A browser without our cookie gets one now, so its wrong codes count per session.
        fresh = session or pages.new_session()
        ctx = _context(dispatcher, request)
        try:
            await refuse_if_failed(ctx, FAILURES_IP)
            await refuse_if_failed(ctx, FAILURES_SESSION, fresh.nonce)
        except CommandError as exc:
            retry = exc.details.get("retry_after", 60) if isinstance(exc.details, dict) else 60
            page = pages.device_code_page(PATH, typed, "Too many wrong codes. Wait "
                                          f"{max(1, round(retry / 60))} min and try again.", 429)
            page.headers["Retry-After"] = str(retry)
            pages.set_session(settings, page, fresh)
            return page
        code = device.normalize_user_code(typed)
        found = await device.find_pending(services, code) if code is not None else None
        if code is None or found is None:
            if code is not None:
                # Only a well-formed code is a guess; a typo of the format is not counted.
                await count_failure(ctx, FAILURES_IP)
                await count_failure(ctx, FAILURES_SESSION, fresh.nonce)
            page = pages.device_code_page(PATH, typed, WRONG_CODE, 400)
            pages.set_session(settings, page, fresh)
            return page
        record, app_row = found
        shown = device.display_user_code(code)
        action = f"{PATH}?{urlencode({'user_code': shown})}"
        if request.method == "POST":
            assert session is not None  # csrf_ok needs one
            step = form.form.get("action")
            if step == "login":
                return await page_login(ctx, form, app_row, action, session)
            if session.user_id is None or session.auth_time is None:
                return pages.error_page("Sign in first.", 403)
            if step not in ("approve", "deny"):
                return pages.error_page("Unknown action.")
            approved = step == "approve"
            scopes = (device.granted_scopes(record.scopes, set(form.form_list("scope")))
                      if approved else list(record.scopes))
            if not scopes:
                return pages.error_page("Choose at least one permission, or deny.")
            decided = await device.decide(services, app_row, code, user_id=session.user_id,
                                          auth_time=session.auth_time, approved=approved,
                                          scopes=scopes)
            if decided is None:
                return pages.device_code_page(PATH, "", WRONG_CODE, 400)
            return pages.device_done_page(app_row, approved, base)
        if session is None or session.user_id is None or session.auth_time is None:
            page = pages.login_page(app_row, action, pages.csrf_token(settings, fresh), base)
            pages.set_session(settings, page, fresh)
            return page
        return pages.consent_page(app_row, action, pages.csrf_token(settings, session),
                                  list(record.scopes), base, intro=pages.device_check(shown))

    app.router.add_get(PATH, device_page)
    app.router.add_post(PATH, device_page)
