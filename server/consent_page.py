"""The login and consent pages of /oauth/authorize: HTML, the consent cookie and CSRF tokens.

Plain HTML and CSS, no JavaScript. The cookie is signed (HMAC) and carries a random nonce
and, once the person logged in through the form, who they are and when; it lives 10
minutes, is HttpOnly and SameSite=Lax, and serves this flow only (it is no API token).
Each form carries a CSRF token, an HMAC of the cookie's nonce, so a page elsewhere cannot
post an approval in the person's name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from html import escape

from aiohttp import web

from config import Settings
from handlers.scopes import CATALOGUE, Scope
from storage.oauth_apps import OAuthApp

COOKIE = "hs_oauth"
COOKIE_TTL_S = 600
PAGE_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'; "
                               "style-src 'self' 'unsafe-inline'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
STYLE = """body{font-family:system-ui,sans-serif;background:#f4f4f7;margin:0;padding:2rem}
main{max-width:28rem;margin:auto;background:#fff;border-radius:12px;padding:1.5rem 2rem;
box-shadow:0 1px 4px #0002}h1{font-size:1.3rem}label{display:block;margin:.6rem 0}
input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}
button{padding:.6rem 1.2rem;margin:.8rem .4rem 0 0;border-radius:6px;border:1px solid #888}
.approve{background:#2563eb;color:#fff;border-color:#2563eb}.error{color:#b91c1c}
small{color:#555}"""


@dataclass(frozen=True)
class ConsentSession:
    """What the consent cookie says: its CSRF nonce and, after the login form, the user."""

    nonce: str
    user_id: uuid.UUID | None = None
    auth_time: int | None = None


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.resolved_oauth_key_secret(), b"hotspot consent cookie",
                    hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def read_session(settings: Settings, request: web.Request) -> ConsentSession | None:
    """The cookie's session if it is ours, intact and unexpired."""
    raw = request.cookies.get(COOKIE, "")
    body, _, mac = raw.partition(".")
    if not body or not mac:
        return None
    expected = _b64(hmac.new(_key(settings), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        data = json.loads(_unb64(body))
        if float(data["e"]) < time.time():
            return None
        user = uuid.UUID(data["u"]) if data.get("u") else None
        return ConsentSession(str(data["n"]), user, data.get("t"))
    except (ValueError, KeyError, TypeError):
        return None


def new_session() -> ConsentSession:
    return ConsentSession(secrets.token_urlsafe(24))


def set_session(settings: Settings, response: web.StreamResponse, session: ConsentSession) -> None:
    data = {"n": session.nonce, "u": str(session.user_id) if session.user_id else None,
            "t": session.auth_time, "e": time.time() + COOKIE_TTL_S}
    body = _b64(json.dumps(data, separators=(",", ":")).encode())
    mac = _b64(hmac.new(_key(settings), body.encode(), hashlib.sha256).digest())
    response.set_cookie(COOKIE, f"{body}.{mac}", max_age=COOKIE_TTL_S, path="/oauth/",
                        httponly=True, samesite="Lax",
                        secure=settings.oauth_issuer.startswith("https://"))


def csrf_token(settings: Settings, session: ConsentSession) -> str:
    return _b64(hmac.new(_key(settings), f"csrf:{session.nonce}".encode(),
                         hashlib.sha256).digest())


def csrf_ok(settings: Settings, session: ConsentSession | None, given: str | None) -> bool:
    if session is None or not given:
        return False
    return hmac.compare_digest(csrf_token(settings, session), given)


def _page(title: str, inner: str, status: int = 200) -> web.Response:
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{inner}</main></body></html>")
    return web.Response(text=html, status=status, content_type="text/html",
                        headers=PAGE_HEADERS)


def error_page(message: str, status: int = 400) -> web.Response:
    """A refusal shown to the person, never a redirect (bad client or redirect_uri)."""
    return _page("Sign-in error", f"<h1>This sign-in request cannot continue</h1>"
                 f"<p class=error>{escape(message)}</p>"
                 f"<p><small>Go back to the app and try again.</small></p>", status)


def _app_header(app: OAuthApp, base_url: str) -> str:
    """The app's name and website, as text. No logo: media content needs an Authorization
    header, which an <img> cannot send, and an unreviewed app's logo is the easiest way to
    pass for a brand it is not (a name and a website are harder to misread). base_url stays
    for callers; nothing on the page links elsewhere."""
    site = (f"<br><small>{escape(app.website)}</small>" if app.website else "")
    return f"<p class=app><strong>{escape(app.name)}</strong>{site}</p>"


def login_page(app: OAuthApp, action: str, csrf: str, base_url: str,
               error: str | None = None, status: int = 200) -> web.Response:
    problem = f"<p class=error>{escape(error)}</p>" if error else ""
    return _page("Sign in with HotSpot", f"""<h1>Sign in with HotSpot</h1>
{_app_header(app, base_url)}<p>wants to use your HotSpot account. Sign in first.</p>{problem}
<form method=post action="{escape(action)}">
<input type=hidden name=csrf_token value="{escape(csrf)}">
<input type=hidden name=action value=login>
<label>Username or email <input type=text name=login autocomplete=username required></label>
<label>Password <input type=password name=password autocomplete=current-password required></label>
<button class=approve type=submit>Sign in</button></form>""", status)


def consent_page(app: OAuthApp, action: str, csrf: str, scopes: list[str],
                 base_url: str, intro: str = "") -> web.Response:
    rows = []
    for name in scopes:
        description = CATALOGUE[Scope(name)].description
        # openid is what signing in is; every other scope may be unticked.
        fixed = name == Scope.OPENID.value
        box = (f"<input type=hidden name=scope value='{escape(name)}'>"
               f"<input type=checkbox checked disabled>" if fixed else
               f"<input type=checkbox name=scope value='{escape(name)}' checked>")
        rows.append(f"<label>{box} {escape(description)} <small>({escape(name)})</small></label>")
    return _page("Authorize app", f"""<h1>Allow this app?</h1>
{_app_header(app, base_url)}{intro}<p>will be able to:</p>
<form method=post action="{escape(action)}">
<input type=hidden name=csrf_token value="{escape(csrf)}">
{''.join(rows)}
<button class=approve type=submit name=action value=approve>Allow</button>
<button type=submit name=action value=deny>Deny</button></form>
<p><small>You can revoke this at any time from your account's connected apps.</small></p>""")


# The device flow's pages (/oauth/device, RFC 8628 3.3): the code entry form, the consent
# page above with the code to compare, and the end. The entry form is a GET: looking a code
# up changes nothing, and verification_uri_complete links straight to the same URL.

def device_code_page(action: str, typed: str = "", error: str | None = None,
                     status: int = 200) -> web.Response:
    problem = f"<p class=error>{escape(error)}</p>" if error else ""
    return _page("Connect a device", f"""<h1>Connect a device</h1>
<p>Enter the code shown on your TV, console or terminal.</p>{problem}
<form method=get action="{escape(action)}">
<label>Code <input type=text name=user_code value="{escape(typed)}" autocomplete=off
 autocapitalize=characters spellcheck=false placeholder=XXXX-XXXX required></label>
<button class=approve type=submit>Continue</button></form>""", status)


def device_check(user_code: str) -> str:
    """The consent page's warning: a code someone else sent you is how device phishing works
    (RFC 8628 5.4), so the person compares it with their own screen."""
    return (f"<p>Only continue if your device shows the code <strong>{escape(user_code)}</strong>"
            f" and you started this yourself.</p>")


def device_done_page(app: OAuthApp, approved: bool, base_url: str) -> web.Response:
    outcome = ("is connected. You can close this page and go back to your device." if approved
               else "was not allowed. Your device will not get access.")
    return _page("Device connected" if approved else "Device denied",
                 f"<h1>{'Done' if approved else 'Denied'}</h1>{_app_header(app, base_url)}"
                 f"<p>{escape(outcome)}</p>")
