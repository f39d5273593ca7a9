"""OAuth apps on both doors: registration rules, secrets, deletion and suspension ending the
app's tokens and sockets, a user's grants, and the scope catalogue."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from config import Limits
from handlers.errors import CommandError
from handlers.oauth_clients import authenticate_client
from handlers.scopes import describe
from server.resources import SERVICES
from tests.conftest import AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.media_helpers import uploaded
from tests.handlers.oauth_helpers import (
    REDIRECT,
    app_body,
    create_app,
    grant,
    make_admin,
    owner,
)
from tests.revocation_helpers import Revoked


async def authenticates(client: TestClient[Any, Any], client_id: str, secret: str | None) -> bool:
    try:
        await authenticate_client(client.app[SERVICES].db, client_id, secret)
    except CommandError as exc:
        assert exc.code == "unauthorized" and exc.details["reason"] == "invalid_client"
        return False
    return True


async def test_the_secret_is_shown_once_and_authenticates_the_client(
    client: TestClient[Any, Any], db: asyncpg.Connection, connect_socket: SocketFactory,
) -> None:
    me = await owner(client, db)
    app = await create_app(client, me, website="https://app.example.com")
    secret = app["client_secret"]
    assert secret.startswith("hss_") and len(secret) > 40
    assert app["client_type"] == "confidential" and app["redirect_uris"] == [REDIRECT]
    assert app["secret_rotated_at"] is not None and app["suspended_at"] is None
    got = await ok(await rest(client, me, "oauth.app.get", {"app_id": app["id"]}))
    assert "client_secret" not in got and got["client_id"] == app["client_id"]
    listed = await ok(await rest(client, me, "oauth.app.list"))
    assert [a["id"] for a in listed["items"]] == [app["id"]]
    assert "client_secret" not in listed["items"][0]
    # The socket door answers the same, without the secret either.
    sio = await connect_socket(me.access_token)
    reply = await sio.call("oauth.app.get", {"app_id": app["id"]}, timeout=5)
    assert reply["ok"] and reply["data"] == got
    assert await authenticates(client, app["client_id"], secret)
    assert not await authenticates(client, app["client_id"], secret + "x")
    assert not await authenticates(client, app["client_id"], None)
    assert not await authenticates(client, "no-such-client", secret)
    stored = await db.fetchval("SELECT secret_hash FROM oauth_apps WHERE id = $1::uuid", app["id"])
    assert secret.encode() not in bytes(stored)


async def test_a_public_client_has_no_secret_and_authenticates_without_one(
    client: TestClient[Any, Any], db: asyncpg.Connection, connect_socket: SocketFactory,
) -> None:
    me = await owner(client, db)
    sio = await connect_socket(me.access_token)
    reply = await sio.call("oauth.app.create", app_body(
        client_type="public", redirect_uris=["com.example.app:/callback",
                                             "http://127.0.0.1:8765/cb"]), timeout=5)
    assert reply["ok"], reply
    app = reply["data"]
    assert app["client_secret"] is None and app["secret_rotated_at"] is None
    assert await authenticates(client, app["client_id"], None)
    assert not await authenticates(client, app["client_id"], "hss_anything")
    error = await refused(await rest(client, me, "oauth.app.rotate_secret", {"app_id": app["id"]}),
                          409, "conflict")
    assert error["details"]["reason"] == "public_client"


async def test_only_verified_accounts_register_apps_and_at_most_the_cap(
    make_client: AppFactory, db: asyncpg.Connection,
) -> None:
    client = await make_client(limits=Limits(oauth_apps_per_user=2))
    unverified = await signup(client)
    error = await refused(await rest(client, unverified, "oauth.app.create", app_body()),
                          409, "conflict")
    assert error["details"]["reason"] == "unverified"
    me = await owner(client, db)
    first = await create_app(client, me)
    await create_app(client, me)
    error = await refused(await rest(client, me, "oauth.app.create", app_body()), 409, "conflict")
    assert error["details"] == {"reason": "too_many_apps", "limit": 2}
    await ok(await rest(client, me, "oauth.app.delete", {"app_id": first["id"]}), 204)
    await create_app(client, me)


GOOD_URIS = [
    "https://app.example.com/callback", "https://app.example.com:8443/cb?x=1",
    "http://127.0.0.1:8765/callback", "http://[::1]:9000/cb", "http://localhost/cb",
    "com.example.app:/oauth2redirect", "io.hotspot.native:/cb",
]
BAD_URIS = {
    "http://app.example.com/cb": "loopback",
    "https://app.example.com/cb#frag": "fragment",
    "https://*.example.com/cb": "wildcard",
    "https://app.example.com/*": "wildcard",
    "https://user:pw@app.example.com/cb": "user name",
    "https:///nohost": "host",
    "/relative/path": "scheme",
    "javascript:alert(1)": "reverse domain",
    "data:text/html,hi": "reverse domain",
    "myapp:/cb": "reverse domain",
    "com.example.app://host/cb": "one slash",
    "HTTPS://app.example.com/cb": "lowercase",
    "https://app.example.com/a b": "spaces",
}


async def test_redirect_uri_rules(client: TestClient[Any, Any], db: asyncpg.Connection) -> None:
    me = await owner(client, db)
    app = await create_app(client, me, redirect_uris=GOOD_URIS)
    assert app["redirect_uris"] == GOOD_URIS
    for uri, why in BAD_URIS.items():
        error = await refused(await rest(client, me, "oauth.app.create",
                                         app_body(redirect_uris=[REDIRECT, uri])),
                              400, "invalid_input")
        assert fields_of(error) == {"redirect_uris.1"}, (uri, error)
        assert why in error["details"]["fields"][0]["message"], (uri, error)
    for uris in ([], [REDIRECT, REDIRECT], [f"https://a.example.com/{n}" for n in range(11)]):
        await refused(await rest(client, me, "oauth.app.create", app_body(redirect_uris=uris)),
                      400, "invalid_input")


async def test_scope_rules(client: TestClient[Any, Any], db: asyncpg.Connection,
                           connect_socket: SocketFactory) -> None:
    me = await owner(client, db)
    for scope in ("account", "admin"):
        error = await refused(await rest(client, me, "oauth.app.create",
                                         app_body(allowed_scopes=["read", scope])),
                              400, "invalid_input")
        assert fields_of(error) == {"allowed_scopes.1"}
        assert "never grantable" in error["details"]["fields"][0]["message"]
    sio = await connect_socket(me.access_token)
    for scopes in (["read:everything"], ["read", "read"], [], ["*"]):
        reply = await sio.call("oauth.app.create", app_body(allowed_scopes=scopes), timeout=5)
        assert not reply["ok"] and reply["error"]["code"] == "invalid_input", (scopes, reply)


async def test_rotating_the_secret_stops_the_old_one(
    client: TestClient[Any, Any], db: asyncpg.Connection, connect_socket: SocketFactory,
) -> None:
    me = await owner(client, db)
    app = await create_app(client, me)
    sio = await connect_socket(me.access_token)
    reply = await sio.call("oauth.app.rotate_secret", {"app_id": app["id"]}, timeout=5)
    assert reply["ok"], reply
    new_secret = reply["data"]["client_secret"]
    assert new_secret != app["client_secret"]
    assert reply["data"]["secret_rotated_at"] > app["secret_rotated_at"]
    assert not await authenticates(client, app["client_id"], app["client_secret"])
    assert await authenticates(client, app["client_id"], new_secret)
    rotated = await ok(await rest(client, me, "oauth.app.rotate_secret", {"app_id": app["id"]}))
    assert not await authenticates(client, app["client_id"], new_secret)
    assert await authenticates(client, app["client_id"], rotated["client_secret"])


async def test_update_changes_only_what_is_sent(
    client: TestClient[Any, Any], db: asyncpg.Connection,
) -> None:
    me = await owner(client, db)
    logo = await uploaded(client, me)
    app = await create_app(client, me, website="https://app.example.com", logo_media_id=logo["id"])
    assert app["logo_media_id"] == logo["id"]
    updated = await ok(await rest(client, me, "oauth.app.update", {
        "app_id": app["id"], "name": "  Renamed  ", "website": None,
        "redirect_uris": ["https://new.example.com/cb"]}))
    assert updated["name"] == "Renamed" and updated["website"] is None
    assert updated["redirect_uris"] == ["https://new.example.com/cb"]
    assert updated["logo_media_id"] == logo["id"]
    assert updated["allowed_scopes"] == app["allowed_scopes"]
    other = await owner(client, db)
    foreign = await uploaded(client, other)
    error = await refused(await rest(client, me, "oauth.app.update", {
        "app_id": app["id"], "logo_media_id": foreign["id"]}), 400, "invalid_input")
    assert fields_of(error) == {"logo_media_id"}
    bad_changes: list[dict[str, Any]] = [
        {"name": None}, {"name": "   "}, {"redirect_uris": []}, {"allowed_scopes": ["account"]},
        {"client_type": "public"}]
    for bad in bad_changes:
        await refused(await rest(client, me, "oauth.app.update", {"app_id": app["id"], **bad}),
                      400, "invalid_input")
    # Someone else's app does not exist, for every command.
    for name in ("oauth.app.get", "oauth.app.delete", "oauth.app.rotate_secret"):
        await refused(await rest(client, other, name, {"app_id": app["id"]}), 404, "not_found")
    await refused(await rest(client, other, "oauth.app.update",
                             {"app_id": app["id"], "name": "mine"}), 404, "not_found")


async def test_narrowing_the_scopes_ends_tokens_that_carry_the_others(
    client: TestClient[Any, Any], db: asyncpg.Connection, connect_socket: SocketFactory,
) -> None:
    me = await owner(client, db)
    app = await create_app(client, me)
    reader, writer = await signup(client), await signup(client)
    keeps = await grant(client, app["id"], reader, ["openid", "read:messages"])
    loses = await grant(client, app["id"], writer, ["read", "write:messages"])
    sio = await connect_socket(loses.access_token)
    revoked = Revoked(sio)
    await ok(await rest(client, me, "oauth.app.update",
                        {"app_id": app["id"], "allowed_scopes": ["openid", "read"]}))
    await revoked.wait()
    assert revoked.reasons == ["app_scopes_reduced"]
    assert (await client.get("/v1/conversations", headers=keeps.headers)).status == 200
    assert (await client.get("/v1/users/me", headers=loses.headers)).status == 401
    grants = await ok(await rest(client, writer, "oauth.grant.list"))
    assert grants["items"][0]["scopes"] == ["read"]


async def test_deleting_an_app_revokes_its_consents_sessions_and_sockets(
    client: TestClient[Any, Any], db: asyncpg.Connection, connect_socket: SocketFactory,
) -> None:
    me = await owner(client, db)
    app = await create_app(client, me)
    users = [await signup(client), await signup(client)]
    tokens = [await grant(client, app["id"], user, ["read"]) for user in users]
    watched = [Revoked(await connect_socket(token.access_token)) for token in tokens]
    # The users' own logins are not the app's and stay connected.
    own = await connect_socket(users[0].access_token)
    await ok(await rest(client, me, "oauth.app.delete", {"app_id": app["id"]}), 204)
    for revoked in watched:
        await revoked.wait()
        assert revoked.reasons == ["app_deleted"]
    for token in tokens:
        resp = await client.get("/v1/users/me", headers=token.headers)
        assert resp.status == 401 and (await resp.json())["error"]["details"]["reason"] == \
            "session_revoked"
    assert own.connected
    for user in users:
        assert (await ok(await rest(client, user, "oauth.grant.list")))["items"] == []
    live = await db.fetchval("""SELECT count(*) FROM oauth_consents
                                WHERE app_id = $1::uuid AND revoked_at IS NULL""", app["id"])
    assert live == 0
    assert not await authenticates(client, app["client_id"], app["client_secret"])
    await refused(await rest(client, me, "oauth.app.get", {"app_id": app["id"]}), 404, "not_found")
    assert (await ok(await rest(client, me, "oauth.app.list")))["items"] == []


async def test_only_admins_suspend_and_a_suspended_app_stops_at_once(
    client: TestClient[Any, Any], db: asyncpg.Connection, connect_socket: SocketFactory,
) -> None:
    me = await owner(client, db)
    app = await create_app(client, me)
    user = await signup(client)
    token = await grant(client, app["id"], user, ["read"])
    revoked = Revoked(await connect_socket(token.access_token))
    error = await refused(await rest(client, me, "oauth.app.suspend", {"app_id": app["id"]}),
                          403, "forbidden")
    assert error["details"]["required_role"] == "admin"
    sio = await connect_socket(me.access_token)
    reply = await sio.call("oauth.app.unsuspend", {"app_id": app["id"]}, timeout=5)
    assert reply["error"]["details"]["required_role"] == "admin"
    admin = await signup(client)
    await make_admin(db, admin)
    suspended = await ok(await rest(client, admin, "oauth.app.suspend",
                                    {"app_id": app["id"], "reason": "phishing"}))
    assert suspended["suspended_at"] is not None and suspended["suspended_reason"] == "phishing"
    await revoked.wait()
    assert revoked.reasons == ["app_suspended"]
    assert (await client.get("/v1/users/me", headers=token.headers)).status == 401
    assert not await authenticates(client, app["client_id"], app["client_secret"])
    seen = await ok(await rest(client, me, "oauth.app.get", {"app_id": app["id"]}))
    assert seen["suspended_reason"] == "phishing"
    grants = await ok(await rest(client, user, "oauth.grant.list"))
    assert grants["items"][0]["app"]["suspended"] is True
    admin_sio = await connect_socket(admin.access_token)
    reply = await admin_sio.call("oauth.app.unsuspend", {"app_id": app["id"]}, timeout=5)
    assert reply["ok"] and reply["data"]["suspended_at"] is None, reply
    assert await authenticates(client, app["client_id"], app["client_secret"])
    await refused(await rest(client, admin, "oauth.app.suspend", {"app_id": str(uuid.uuid4())}),
                  404, "not_found")


async def test_a_user_lists_and_revokes_grants_and_the_app_socket_closes_within_a_second(
    client: TestClient[Any, Any], db: asyncpg.Connection, connect_socket: SocketFactory,
) -> None:
    me = await owner(client, db)
    first, second = await create_app(client, me, name="First"), await create_app(client, me,
                                                                                 name="Second")
    user = await signup(client)
    token = await grant(client, first["id"], user, ["openid", "read"])
    await grant(client, second["id"], user, ["write:messages"])
    await db.execute("UPDATE sessions SET last_used_at = now() - interval '1 hour' "
                     "WHERE id = $1", token.session_id)
    grants = await ok(await rest(client, user, "oauth.grant.list"))
    by_name = {g["app"]["name"]: g for g in grants["items"]}
    assert [g["app"]["name"] for g in grants["items"]] == ["Second", "First"]
    assert by_name["First"]["scopes"] == ["openid", "read"]
    assert by_name["First"]["app"]["client_id"] == first["client_id"]
    assert by_name["First"]["last_used_at"] < by_name["Second"]["last_used_at"]
    page = await ok(await rest(client, user, "oauth.grant.list", {"limit": 1}))
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest_page = await ok(await rest(client, user, "oauth.grant.list",
                                    {"limit": 1, "cursor": page["next_cursor"]}))
    assert rest_page["items"][0]["app"]["name"] == "First" and rest_page["next_cursor"] is None

    app_socket = await connect_socket(token.access_token)
    revoked = Revoked(app_socket)
    own = await connect_socket(user.access_token)
    started = time.monotonic()
    reply = await own.call("oauth.grant.revoke", {"app_id": first["id"]}, timeout=5)
    assert reply["ok"], reply
    await revoked.wait(timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert revoked.reasons == ["grant_revoked"]
    await asyncio.sleep(0.05)
    assert own.connected
    grants = await ok(await rest(client, user, "oauth.grant.list"))
    assert [g["app"]["name"] for g in grants["items"]] == ["Second"]
    await refused(await rest(client, user, "oauth.grant.revoke", {"app_id": first["id"]}),
                  404, "not_found")


async def test_an_app_token_cannot_manage_apps_or_grants(
    client: TestClient[Any, Any], db: asyncpg.Connection, connect_socket: SocketFactory,
) -> None:
    me = await owner(client, db)
    app = await create_app(client, me)
    token = await grant(client, app["id"], me, ["read", "write"])
    for path in ("/v1/oauth/apps", "/v1/users/me/oauth_grants"):
        resp = await client.get(path, headers=token.headers)
        assert resp.status == 403
        assert (await resp.json())["error"]["details"]["required_scope"] == "account"
    sio = await connect_socket(token.access_token)
    reply = await sio.call("oauth.app.create", app_body(), timeout=5)
    assert reply["error"]["details"]["required_scope"] == "account"


async def test_the_scope_catalogue_is_public_on_both_doors(
    client: TestClient[Any, Any], connect_socket: SocketFactory,
) -> None:
    resp = await client.get("/v1/oauth/scopes")
    assert resp.status == 200
    body = await resp.json()
    assert body["scopes"] == describe()
    rows = {row["scope"]: row for row in body["scopes"]}
    assert rows["read:messages"]["parent"] == "read" and rows["read:messages"]["grantable"]
    assert not rows["account"]["grantable"] and not rows["admin"]["grantable"]
    sio = await connect_socket()
    reply = await sio.call("oauth.scope.list", {}, timeout=5)
    assert reply["ok"] and reply["data"] == body


async def test_create_needs_every_required_field(
    client: TestClient[Any, Any], db: asyncpg.Connection,
) -> None:
    me = await owner(client, db)
    for field in ("name", "redirect_uris", "allowed_scopes", "client_type"):
        body = app_body()
        del body[field]
        error = await refused(await rest(client, me, "oauth.app.create", body),
                              400, "invalid_input")
        assert fields_of(error) == {field}


def scope_table() -> str:
    """The scope table of docs/oauth.md, as the catalogue renders it."""
    rows = ["| scope | what it lets a token do | covered by | apps may ask for it |",
            "|---|---|---|---|"]
    for row in describe():
        parent = f"`{row['parent']}`" if row["parent"] else "—"
        rows.append(f"| `{row['scope']}` | {row['description']} | {parent} | "
                    f"{'yes' if row['grantable'] else 'no'} |")
    return "\n".join(rows)


def test_the_oauth_page_lists_the_scope_catalogue() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "oauth.md").read_text()
    between = page.split("<!-- scopes:start", 1)[1].split("-->", 1)[1]
    documented = between.split("<!-- scopes:end -->", 1)[0].strip()
    assert documented == scope_table(), "regenerate the table in docs/oauth.md:\n" + scope_table()
