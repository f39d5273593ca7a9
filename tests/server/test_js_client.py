"""The official JavaScript socket.io-client (npm) against a running server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import Account
from tests.server.js_helpers import JS_DIR, node_binary

SCRIPT = JS_DIR / "client_roundtrip.mjs"


async def run_script(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        node_binary(), str(SCRIPT), *args, cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{SCRIPT.name} did not finish within {timeout}s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_js_client_connects_with_token_and_reads_acks(client: Any, account: Account) -> None:
    code, out, err = await run_script(str(client.make_url("/")), account.access_token)
    assert code == 0, f"exit {code}\nstdout: {out}\nstderr: {err}"
    result = json.loads(out)
    assert result["client_version"].startswith("4.")

    ack = result["ack"]
    assert ack["ok"] is True, ack
    assert ack["data"]["id"] == account.id
    assert ack["data"]["username"] == account.username
    assert ack["data"]["email"] == account.email

    assert result["unknown_ack"]["ok"] is False
    assert result["unknown_ack"]["error"]["code"] == "unknown_command"

    refused = result["bad_token_error"]
    assert refused is not None, "a connect with a bad token was accepted"
    assert refused["data"]["code"] == "unauthorized", refused
    assert refused["data"]["reason"] == "token_invalid"


async def test_js_client_script_fails_when_the_server_refuses_the_token(client: Any) -> None:
    """The script's own failure path works, so a green run above means the steps really ran."""
    code, out, err = await run_script(str(client.make_url("/")), "forged.token.value")
    assert code == 1, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert out == ""
    assert "unauthorized" in err
