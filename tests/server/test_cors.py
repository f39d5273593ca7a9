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
