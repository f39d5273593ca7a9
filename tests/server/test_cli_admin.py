"""The `hotspot users` command as a real process: show a user, grant roles that apply at once."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from config import Settings
from tests.conftest import Account, process_env

HOTSPOT = str(Path(sys.executable).parent / "hotspot")
ADMIN_ONLY = "/v1/outreach/campaigns"


async def hotspot(settings: Settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        HOTSPOT, *args, env=process_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_grant_role_gives_and_takes_admin_commands_without_a_new_login(
    client: TestClient[Any, Any], settings: Settings, account: Account
) -> None:
    assert (await client.get(ADMIN_ONLY, headers=account.headers)).status == 403
    code, out, err = await hotspot(settings, "users", "show", account.username)
    assert code == 0, err
    assert f"id:       {account.id}" in out and "role:     user" in out
    assert f"email:    {account.email} (unverified)" in out

    code, out, err = await hotspot(settings, "users", "grant-role", account.username.upper(), "admin")
    assert code == 0, err
    assert out.strip() == f"{account.username}: role user -> admin"
    # The same access token: the role is read from the database, not from a token claim.
    resp = await client.get(ADMIN_ONLY, headers=account.headers)
    assert resp.status == 200, await resp.text()

    code, out, _ = await hotspot(settings, "users", "grant-role", account.username, "moderator")
    assert code == 0 and out.strip() == f"{account.username}: role admin -> moderator"
    assert (await client.get(ADMIN_ONLY, headers=account.headers)).status == 403
    code, out, _ = await hotspot(settings, "users", "show", account.username)
    assert "role:     moderator" in out


async def test_users_command_refuses_unknown_users_and_roles(
    client: TestClient[Any, Any], settings: Settings, account: Account
) -> None:
    code, _, err = await hotspot(settings, "users", "grant-role", "nobody_here_at_all", "admin")
    assert code == 1 and "no user 'nobody_here_at_all'" in err
    code, _, err = await hotspot(settings, "users", "show", "nobody_here_at_all")
    assert code == 1 and "no user" in err
    code, _, err = await hotspot(settings, "users", "grant-role", account.username, "root")
    assert code == 2 and "invalid choice: 'root'" in err
    code, out, _ = await hotspot(settings, "users", "show", account.username)
    assert "role:     user" in out
