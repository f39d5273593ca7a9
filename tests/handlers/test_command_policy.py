"""Policy is declared on every command, and the dispatcher enforces it for both doors."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config import Rates, Settings
from handlers.commands import Command
from handlers.scopes import CATALOGUE, Scope, covers
from server.app import command_registry
from tests.conftest import AppFactory, SocketFactory, signup
from tests.handlers.token_helpers import limited_token

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
# The only modules that may count rates or check roles themselves: the policy machinery,
# and bodies that charge a declared Rate only for some outcomes (documented in limits.md).
POLICY_MODULES = {"rates.py", "roles.py", "commands.py"}


def registry() -> list[Command]:
    return list(command_registry())


def test_every_command_declares_scope_rate_and_transports() -> None:
    commands = registry()
    assert len(commands) > 150
    for cmd in commands:
        assert cmd.rates, f"{cmd.name} declares no rate limit"
        assert cmd.transports, cmd.name
        if cmd.auth == "required":
            assert isinstance(cmd.scope, Scope), f"{cmd.name} declares no scope"
        if cmd.writes:
            assert all(rate.name not in ("reads", "public_reads") for rate in cmd.rates), (
                f"{cmd.name} changes state but is only counted as a read")
        if "rest" not in cmd.transports:
            assert cmd.path is None, cmd.name


def test_admin_commands_need_the_role_and_an_ungrantable_scope() -> None:
    for cmd in registry():
        if cmd.scope is Scope.ADMIN or cmd.role == "admin":
            assert cmd.role == "admin", f"{cmd.name}: scope admin without the admin role"
            assert cmd.scope is Scope.ADMIN, cmd.name
        if cmd.role is not None:
            assert cmd.scope is not None and not CATALOGUE[cmd.scope].grantable, cmd.name


def test_account_security_is_never_grantable_to_apps() -> None:
    by_name = {cmd.name: cmd for cmd in registry()}
    for name in ("account.password.change", "account.delete", "auth.logout_all"):
        scope = by_name[name].scope
        assert scope is not None and not CATALOGUE[scope].grantable, name


def test_every_rate_a_command_names_exists_in_settings() -> None:
    rates = Rates()
    for cmd in registry():
        for rate in cmd.rates:
            spec = rates.spec(rate.name)
            assert spec.limit >= 1 and spec.window_s >= 1


def test_handler_bodies_do_not_enforce_policy_by_hand() -> None:
    forbidden = {"enforce", "require_role", "refuse_if_over"}
    for path in sorted(HANDLERS.glob("*.py")):
        if path.name in POLICY_MODULES:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                assert name not in forbidden, f"{path.name}:{node.lineno} calls {name}()"
            if isinstance(node, ast.Compare) and any(
                    isinstance(side, ast.Attribute) and side.attr == "transport"
                    for side in (node.left, *node.comparators)):
                raise AssertionError(f"{path.name}:{node.lineno} checks the transport by hand")


def test_scopes_are_hierarchical() -> None:
    assert covers({"read"}, Scope.READ_MESSAGES)
    assert covers({"read:messages"}, Scope.READ_MESSAGES)
    assert not covers({"read"}, Scope.WRITE_MESSAGES)
    assert not covers({"read:content"}, Scope.READ_MESSAGES)
    assert not covers({"write"}, Scope.ACCOUNT)
    assert covers({"*"}, Scope.ADMIN)


# -- the dispatcher enforces the declarations on both doors ----------------------------------


async def test_a_declared_rate_is_counted_on_both_doors(
    make_client: AppFactory, connect_socket: SocketFactory,
) -> None:
    client = await make_client(rates=Rates(profile_update=(3, 3600)))
    account = await signup(client)
    for i in range(2):
        resp = await client.patch("/v1/users/me", json={"bio": f"b{i}"}, headers=account.headers)
        assert resp.status == 200, await resp.text()
    sio = await connect_socket(account.access_token, target=client)
    reply = await sio.call("account.update", {"bio": "third"}, timeout=5)
    assert reply["ok"] is True, reply
    reply = await sio.call("account.update", {"bio": "fourth"}, timeout=5)
    assert reply["ok"] is False and reply["error"]["code"] == "rate_limited"
    assert 1 <= reply["error"]["details"]["retry_after"] <= 3600
    resp = await client.patch("/v1/users/me", json={"bio": "fifth"}, headers=account.headers)
    assert resp.status == 429
    assert resp.headers["Retry-After"].isdigit()
    # Invalid input is refused before it is counted.
    other = await signup(client)
    for _ in range(5):
        resp = await client.patch("/v1/users/me", json={"nope": 1}, headers=other.headers)
        assert resp.status == 400


async def test_a_declared_role_is_checked_on_both_doors(
    client: TestClient[Any, Any], connect_socket: SocketFactory,
) -> None:
    account = await signup(client)
    resp = await client.get("/v1/outreach/campaigns", headers=account.headers)
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["details"]["required_role"] == "admin"
    sio = await connect_socket(account.access_token)
    reply = await sio.call("outreach.campaign.list", {}, timeout=5)
    assert reply["ok"] is False and reply["error"]["details"]["required_role"] == "admin"


async def test_a_token_reaches_exactly_what_its_scopes_cover(
    client: TestClient[Any, Any], settings: Settings, connect_socket: SocketFactory,
) -> None:
    account = await signup(client)
    reader = limited_token(settings, account.access_token, ["read"])
    resp = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {reader}"})
    assert resp.status == 200, await resp.text()
    resp = await client.get("/v1/conversations", headers={"Authorization": f"Bearer {reader}"})
    assert resp.status == 200, await resp.text()
    resp = await client.patch("/v1/users/me", json={"bio": "x"},
                              headers={"Authorization": f"Bearer {reader}"})
    assert resp.status == 403
    assert (await resp.json())["error"]["details"]["required_scope"] == "write:profile"
    sio = await connect_socket(reader)
    reply = await sio.call("account.password.change", {"current_password": account.password,
                                                 "new_password": "another long one"}, timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["details"]["required_scope"] == "account"


async def test_socket_only_commands_refuse_other_transports(client: TestClient[Any, Any]) -> None:
    from handlers.context import Context
    from handlers.errors import CommandError
    from server.app import DISPATCHER

    account = await signup(client)
    dispatcher = client.app[DISPATCHER]
    cmd = dispatcher.registry.get("presence.subscribe")
    assert cmd is not None and cmd.transports == ("socket",)
    principal = dispatcher.authenticate(account.access_token)
    ctx = Context(services=dispatcher.services, principal=principal, transport="rest",
                  request_id="t")
    with pytest.raises(CommandError) as refused:
        await dispatcher.run(cmd, {"user_ids": [account.id]}, ctx)
    assert refused.value.code == "invalid_input"
    assert refused.value.details == {"transports": ["socket"], "reason": "wrong_transport"}


async def test_documents_show_the_policy(client: TestClient[Any, Any]) -> None:
    spec = await (await client.get("/v1/openapi.json")).json()
    edit = spec["paths"]["/v1/messages/{message_id}"]["patch"]
    assert edit["x-policy"]["scope"] == "write:messages"
    assert edit["x-policy"]["rates"] == [{"name": "message_edit", "per": "user",
                                          "limit": 30, "window_s": 60}]
    campaigns = spec["paths"]["/v1/outreach/campaigns"]["get"]
    assert campaigns["x-policy"]["role"] == "admin"
    assert {row["scope"] for row in spec["x-scopes"]} == {s.value for s in Scope}
    events = await (await client.get("/v1/events.json")).json()
    by_name = {c["name"]: c for c in events["commands"]}
    assert by_name["presence.subscribe"]["policy"]["transports"] == ["socket"]
    assert by_name["auth.signup"]["policy"]["rates"][0]["per"] == "ip"
    assert any(row["scope"] == "account" and not row["grantable"] for row in events["scopes"])


def test_limits_page_documents_every_rate() -> None:
    page = (HANDLERS.parent / "docs" / "limits.md").read_text()
    for name in Rates.model_fields:
        assert f"`HOTSPOT_RATE_{name.upper()}`" in page, f"docs/limits.md lacks the rate {name}"
