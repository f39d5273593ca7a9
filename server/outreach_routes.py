"""The unsubscribe link of campaign messages: GET shows a page, POST opts out (RFC 8058).

A GET only confirms: mail scanners and link previews fetch links on their own, and
must not unsubscribe anyone. The page's button, and a mail client's one-click
`List-Unsubscribe-Post` (a form body `List-Unsubscribe=One-Click`), POST to the
same URL, which records the opt-out. Neither needs a login: the signed token is
the authority.
"""

from __future__ import annotations

import html
import uuid

from aiohttp import web

from handlers.context import Context
from handlers.errors import CommandError
from jobs.unsubscribe import PATH, verify
from server.dispatch import Dispatcher
from server.rest import REQUEST_ID, client_ip, error_response, json_response

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; form-action 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
CHANNEL_NAMES = {"email": "emails", "sms": "text messages", "push": "push notifications"}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f'<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width"><title>{title}</title></head><body><h1>{title}</h1>'
            f"{body}</body></html>")
    return web.Response(text=text, status=status, content_type="text/html", headers=PAGE_HEADERS)


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def add_outreach_routes(app: web.Application, dispatcher: Dispatcher) -> None:
    async def confirm(request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        try:
            secret = dispatcher.services.settings.resolved_unsubscribe_secret()
        except CommandError as exc:
            return error_response(exc)
        opt_out = verify(secret, token)
        if opt_out is None:
            return _page("Invalid link", "<p>This unsubscribe link is not valid.</p>", 400)
        what = CHANNEL_NAMES[opt_out.channel]
        action = html.escape(f"{PATH}?{request.query_string}")
        return _page(f"Unsubscribe from HotSpot {what}",
                     f"<p>Stop receiving HotSpot campaign {what}? Account and security "
                     f'messages still reach you.</p><form method="post" action="{action}">'
                     f'<button type="submit">Unsubscribe</button></form>')

    async def unsubscribe(request: web.Request) -> web.Response:
        token = request.query.get("token")
        if token is None and request.content_type == "application/x-www-form-urlencoded":
            token = str((await request.post()).get("token", "")) or None
        elif token is None and request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
            token = body.get("token") if isinstance(body, dict) else None
        cmd = dispatcher.registry.get("outreach.unsubscribe")
        assert cmd is not None
        try:
            ctx = Context(services=dispatcher.services, principal=None, transport="rest",
                          request_id=request.get(REQUEST_ID) or uuid.uuid4().hex,
                          ip=client_ip(request), user_agent=request.headers.get("User-Agent"))
            result = await dispatcher.run(cmd, {"token": token or ""}, ctx)
        except CommandError as exc:
            if _wants_html(request):
                return _page("Invalid link", "<p>This unsubscribe link is not valid.</p>",
                             exc.http_status)
            return error_response(exc)
        if _wants_html(request):
            what = CHANNEL_NAMES[result["channel"]]
            return _page("Unsubscribed", f"<p>You will get no more HotSpot campaign {what}.</p>")
        return json_response(result)

    app.router.add_get(PATH, confirm)
    app.router.add_post(PATH, unsubscribe)
