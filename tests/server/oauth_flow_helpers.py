"""Helpers for the OAuth flow tests: a third-party app driving /oauth/* over real HTTP.

The app is an aiohttp ClientSession (its own cookie jar, redirects followed by hand so
each hop is checked), as a web app's back end and its user's browser would be.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp.test_utils import TestClient

from handlers.context import Services
from server.resources import SERVICES
from tests.conftest import Account, signup
from tests.handlers.oauth_helpers import REDIRECT, create_app

SCOPES = ["openid", "profile", "read", "write:messages", "offline_access"]


def services(client: TestClient[Any, Any]) -> Services:
    found: Services = client.app[SERVICES]
    return found


async def verified_owner(client: TestClient[Any, Any]) -> Account:
    account = await signup(client)
    await services(client).db.pool.execute(
        "UPDATE users SET email_verified_at = now() WHERE id = $1", uuid.UUID(account.id))
    return account


@dataclass
class App:
    client_id: str
    client_secret: str | None
    id: str

    @property
    def basic(self) -> dict[str, str]:
        assert self.client_secret is not None
        return {"Authorization": aiohttp.encode_basic_auth(self.client_id, self.client_secret)}


async def register(client: TestClient[Any, Any], **fields: Any) -> App:
    owner = await verified_owner(client)
    body = await create_app(client, owner, **{"allowed_scopes": SCOPES, **fields})
    return App(body["client_id"], body.get("client_secret"), body["id"])


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def browser() -> aiohttp.ClientSession:
    # unsafe=True: the test server is an IP address, whose cookies aiohttp drops otherwise.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


@dataclass
class Authorization:
    url: str
    state: str
    nonce: str
    verifier: str


def authorize_url(client: TestClient[Any, Any], app: App, scopes: list[str] | None = None,
                  **params: str) -> Authorization:
    verifier, challenge = pkce()
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    query = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
             "scope": " ".join(scopes or SCOPES), "state": state, "nonce": nonce,
             "code_challenge": challenge, "code_challenge_method": "S256", **params}
    query = {k: v for k, v in query.items() if v != ""}
    return Authorization(str(client.make_url("/oauth/authorize")) + "?" + urlencode(query),
                         state, nonce, verifier)


def field(html: str, name: str) -> str:
    found = re.search(rf'name={name} value="([^"]*)"', html)
    assert found, f"no {name} in page"
    return found.group(1)


async def log_in(session: aiohttp.ClientSession, url: str, account: Account) -> aiohttp.ClientResponse:
    """GET the login form, post it, follow the 303; the response after logging in."""
    page = await session.get(url, allow_redirects=False)
    assert page.status == 200, await page.text()
    html = await page.text()
    assert "Sign in with HotSpot" in html
    posted = await session.post(url, allow_redirects=False, data={
        "csrf_token": field(html, "csrf_token"), "action": "login",
        "login": account.username, "password": account.password})
    assert posted.status == 303, await posted.text()
    return await session.get(url, allow_redirects=False)


async def approve(session: aiohttp.ClientSession, url: str, html: str,
                  keep: list[str]) -> aiohttp.ClientResponse:
    data = [("csrf_token", field(html, "csrf_token")), ("action", "approve"),
            *(("scope", s) for s in keep)]
    return await session.post(url, data=data, allow_redirects=False)


def redirect_params(resp: aiohttp.ClientResponse) -> dict[str, str]:
    assert resp.status == 302, resp.status
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def consent_code(client: TestClient[Any, Any], session: aiohttp.ClientSession, app: App,
                       account: Account, keep: list[str] | None = None,
                       scopes: list[str] | None = None) -> tuple[Authorization, str]:
    """Log in if needed, approve if asked (keeping `keep`); the authorization and its code."""
    auth = authorize_url(client, app, scopes)
    page = await session.get(auth.url, allow_redirects=False)
    if page.status == 200 and "Sign in with HotSpot" in await page.text():
        page = await log_in(session, auth.url, account)
    if page.status == 200:
        html = await page.text()
        assert "Allow this app?" in html, html
        page = await approve(session, auth.url, html, keep or scopes or SCOPES)
    params = redirect_params(page)
    assert params["state"] == auth.state
    return auth, params["code"]


async def exchange(client: TestClient[Any, Any], app: App, code: str, verifier: str | None,
                   **extra: str) -> aiohttp.ClientResponse:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    headers = app.basic if app.client_secret else {}
    if app.client_secret is None:
        data["client_id"] = app.client_id
    async with aiohttp.ClientSession() as http:
        resp = await http.post(client.make_url("/oauth/token"), data=data, headers=headers)
        await resp.read()
        return resp


async def token_call(client: TestClient[Any, Any], path: str, app: App,
                     data: dict[str, str]) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(client.make_url(path), data=data,
                               headers=app.basic if app.client_secret else {})
        return resp.status, await resp.json(), resp.headers
