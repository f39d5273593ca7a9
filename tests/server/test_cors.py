"""CORS on the REST API follows HOTSPOT_CORS_ORIGINS."""

from __future__ import annotations

from tests.conftest import AppFactory


async def test_listed_origin_gets_cors_headers_and_preflight(make_client: AppFactory) -> None:
    node = await make_client(cors_origins=["https://app.example"])
    resp = await node.options("/v1/auth/login", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    resp = await node.get("/health", headers={"Origin": "https://app.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "X-Request-Id" in resp.headers["Access-Control-Expose-Headers"]


async def test_unlisted_origin_gets_no_cors_headers(make_client: AppFactory) -> None:
    node = await make_client(cors_origins=["https://app.example"])
    resp = await node.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await node.options("/v1/auth/login", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert resp.status == 403


def test_forwarded_ip_trusts_only_the_configured_hops() -> None:
    from server.rest import forwarded_ip

    assert forwarded_ip("10.0.0.1", "1.2.3.4", 0) == "10.0.0.1"
    assert forwarded_ip("10.0.0.1", "1.2.3.4", 1) == "1.2.3.4"
    # A client-written entry left of the trusted proxy's is ignored.
    assert forwarded_ip("10.0.0.1", "6.6.6.6, 1.2.3.4", 1) == "1.2.3.4"
    assert forwarded_ip("10.0.0.2", "1.2.3.4, 10.0.0.1", 2) == "1.2.3.4"
    assert forwarded_ip("10.0.0.1", None, 1) == "10.0.0.1"


async def test_login_limits_count_the_forwarded_client(make_client: AppFactory) -> None:
    from config import Rates

    node = await make_client(trusted_proxy_hops=1, rates=Rates(login_failures_ip=(2, 900)))
    body = {"login": "nobody", "password": "wrong password"}
    for _ in range(2):
        resp = await node.post("/v1/auth/login", json=body, headers={"X-Forwarded-For": "1.1.1.1"})
        assert resp.status == 401
    resp = await node.post("/v1/auth/login", json=body, headers={"X-Forwarded-For": "1.1.1.1"})
    assert resp.status == 429
    resp = await node.post("/v1/auth/login", json=body, headers={"X-Forwarded-For": "2.2.2.2"})
    assert resp.status == 401
