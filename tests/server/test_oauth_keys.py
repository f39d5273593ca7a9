"""The OAuth signing keys: /oauth/jwks, discovery, third-party tokens, rotation, forgeries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from aiohttp.test_utils import TestClient
from joserfc import jwk
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from config import Settings
from handlers.errors import CommandError
from handlers.oauth_keys import JWKS_MAX_AGE_S, KeyCipher, KeyRing
from handlers.oidc import issue_id_token
from handlers.scopes import grantable
from storage import users as user_store
from tests.conftest import Account, AppFactory, SocketFactory, process_env
from tests.server.oidc_helpers import (
    CLIENT_ID,
    app_token,
    b64,
    issuer,
    services,
    verify_with_joserfc,
    verify_with_pyjwt,
)

ME = "/v1/users/me"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused(client: TestClient[Any, Any], token: str) -> None:
    resp = await client.get(ME, headers=bearer(token))
    assert resp.status == 401, await resp.text()
    assert (await resp.json())["error"]["details"]["reason"] == "token_invalid"


async def test_jwks_publishes_public_keys(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/oauth/jwks")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert resp.headers["Cache-Control"] == f"public, max-age={JWKS_MAX_AGE_S}"
    keys = (await resp.json())["keys"]
    ring = services(client).oauth_keys
    signing = {ring.signing_key("ES256").kid, ring.signing_key("RS256").kid}
    assert signing <= {k["kid"] for k in keys}
    for key in keys:
        assert key["use"] == "sig"
        assert key["alg"] in ("ES256", "RS256")
        assert key["kty"] == ("EC" if key["alg"] == "ES256" else "RSA")
        # Public halves only: no private EC or RSA parameter ever leaves the server.
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), key
        # The kid is the RFC 7638 thumbprint of the published key.
        assert jwk.import_key(key).thumbprint() == key["kid"]


async def test_discovery_documents(client: TestClient[Any, Any], settings: Settings) -> None:
    openid = await client.get("/.well-known/openid-configuration")
    oauth = await client.get("/.well-known/oauth-authorization-server")
    assert openid.status == oauth.status == 200
    assert "max-age" in openid.headers["Cache-Control"]
    doc = await openid.json()
    assert doc == await oauth.json()
    # RFC 8414 §3.3 / Discovery §4.3: the issuer is exactly the configured one.
    assert doc["issuer"] == settings.public_base_url.rstrip("/")
    required = {  # RFC 8414 §2 and OIDC Discovery §3 REQUIRED members
        "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri",
        "response_types_supported", "subject_types_supported",
        "id_token_signing_alg_values_supported"}
    assert required <= set(doc)
    for name, value in doc.items():
        if name.endswith("_endpoint") or name == "jwks_uri":
            parts = urlsplit(value)
            assert value.startswith(doc["issuer"] + "/oauth/"), (name, value)
            assert not parts.query and not parts.fragment
    assert doc["jwks_uri"].endswith("/oauth/jwks")
    assert doc["scopes_supported"] == [s.value for s in grantable()]
    assert "account" not in doc["scopes_supported"] and "admin" not in doc["scopes_supported"]
    assert "openid" in doc["scopes_supported"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    # Exactly the grants /oauth/token serves.
    assert doc["grant_types_supported"] == [
        "authorization_code", "refresh_token", "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code"]
    assert doc["device_authorization_endpoint"].endswith("/oauth/device_authorization")
    assert doc["subject_types_supported"] == ["public"]
    # OIDC Discovery: RS256 MUST be listed; the configured ES256 comes first.
    assert doc["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert {"sub", "email", "email_verified", "preferred_username", "nonce",
            "at_hash"} <= set(doc["claims_supported"])
    # The jwks_uri it names is the document served here.
    jwks = await client.get(urlsplit(doc["jwks_uri"]).path)
    assert jwks.status == 200


async def test_a_third_party_token_validates_against_jwks_and_is_accepted(
    client: TestClient[Any, Any], account: Account, connect_socket: SocketFactory,
) -> None:
    token = app_token(client, account, ["read:profile"])
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
    assert header["kid"] == services(client).oauth_keys.signing_key().kid
    for claims in (
        await verify_with_joserfc(client, token, iss=issuer(client), aud=issuer(client)),
        await verify_with_pyjwt(client, token, audience=issuer(client)),
    ):
        assert claims["sub"] == account.id
        assert claims["client_id"] == CLIENT_ID
        assert claims["scope"] == "read:profile"
        assert {"iat", "exp", "jti", "sid"} <= set(claims)

    principal = services(client).tokens.verify(token)
    assert principal.client_id == CLIENT_ID and principal.audience == (issuer(client),)
    assert services(client).tokens.verify(account.access_token).client_id is None

    # The app token reaches exactly its scopes, over REST and on a socket.
    resp = await client.get(ME, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    resp = await client.delete("/v1/users/me/email", headers=bearer(token))
    assert resp.status == 403
    assert (await resp.json())["error"]["details"]["required_scope"] == "account"
    sio = await connect_socket(token)
    ack = await sio.call("account.get", {}, timeout=5)
    assert ack["ok"] is True and ack["data"]["id"] == account.id


async def test_an_id_token_validates_against_jwks(
    client: TestClient[Any, Any], account: Account,
) -> None:
    user = await user_store.get_user(services(client).db, uuid.UUID(account.id))
    assert user is not None
    for alg in ("ES256", "RS256"):
        token = issue_id_token(services(client).oauth_keys, issuer=issuer(client), user=user,
                               client_id=CLIENT_ID, scopes=["openid"], auth_time=int(time.time()),
                               ttl_s=600, base_url=issuer(client), nonce="n-0S6", alg=alg)
        assert jwt.get_unverified_header(token)["alg"] == alg
        claims = await verify_with_pyjwt(client, token, audience=CLIENT_ID)
        assert claims["sub"] == account.id and claims["nonce"] == "n-0S6"
        await verify_with_joserfc(client, token, iss=issuer(client), aud=CLIENT_ID)
        # An id_token is not an access token, though the same key signed it.
        await refused(client, token)


async def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    client: TestClient[Any, Any], account: Account,
) -> None:
    ring = services(client).oauth_keys
    old_kid = ring.signing_key().kid
    old = app_token(client, account, ["read:profile"])

    # A default rotation publishes the new key first and signs with it only later.
    pending = {row.alg: row for row in await ring.rotate()}
    assert ring.signing_key().kid == old_kid
    assert pending["ES256"].kid in {k["kid"] for k in ring.jwks()["keys"]}

    fresh = {row.alg: row for row in await ring.rotate(activate_in_s=0)}
    new_kid = ring.signing_key().kid
    assert new_kid == fresh["ES256"].kid != old_kid
    assert ring.signing_key("RS256").kid == fresh["RS256"].kid
    new = app_token(client, account, ["read:profile"])
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    published = {k["kid"] for k in (await (await client.get("/oauth/jwks")).json())["keys"]}
    assert {old_kid, new_kid} <= published
    # The never-used pending key was retired before it signed; it is still published a while.
    assert pending["ES256"].kid in published
    for token in (old, new):
        await verify_with_pyjwt(client, token, audience=issuer(client))
        resp = await client.get(ME, headers=bearer(token))
        assert resp.status == 200, await resp.text()


async def test_a_retired_key_leaves_the_set_after_the_longest_token_lifetime(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    now = services(client).clock()
    clock = [now]
    ring = KeyRing(services(client).db, KeyCipher(settings.resolved_oauth_key_secret()),
                   alg="ES256", token_lifetime_s=600, refresh_s=60, production=False,
                   clock=lambda: clock[0])
    await ring.ensure_signing_key()
    old = ring.signing_key().kid
    await ring.rotate(activate_in_s=0)
    clock[0] = now + timedelta(seconds=600)
    await ring.refresh()
    assert ring.verification_key(old) is not None
    clock[0] = now + timedelta(seconds=600 + 61)
    await ring.refresh()
    assert ring.verification_key(old) is None
    assert old not in {k["kid"] for k in ring.jwks()["keys"]}
    assert ring.signing_key().kid != old


async def test_forged_and_confused_tokens_are_refused(
    client: TestClient[Any, Any], account: Account,
) -> None:
    ring = services(client).oauth_keys
    genuine = app_token(client, account, ["read:profile"])
    _, payload, _ = genuine.split(".")
    key = ring.signing_key()

    def hs256(header: dict[str, Any], secret: bytes) -> str:
        signing_input = f"{b64(header)}.{payload}".encode()
        return f"{signing_input.decode()}.{b64(hmac.new(secret, signing_input, hashlib.sha256).digest())}"

    assert isinstance(key.public, ECKey)
    public_pem = key.public.as_pem(private=False)
    attacks = [
        # HS256 keyed with the public key (PEM and JWK text), with and without its kid.
        hs256({"alg": "HS256", "kid": key.kid, "typ": "at+jwt"}, public_pem),
        hs256({"alg": "HS256", "kid": key.kid, "typ": "at+jwt"},
              b64(key.public_jwk).encode()),
        hs256({"alg": "HS256", "typ": "at+jwt"}, public_pem),
        # alg none, with the real kid and without one.
        f"{b64({'alg': 'none', 'kid': key.kid, 'typ': 'at+jwt'})}.{payload}.",
        f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        # The right header over a payload it did not sign.
        f"{genuine.split('.')[0]}.{b64({'sub': account.id})}.{genuine.split('.')[2]}",
    ]
    # A well-formed ES256 token from a key the server never published.
    stranger = ECKey.generate_key("P-256", auto_kid=True)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    attacks.append(jose_jwt.encode({"alg": "ES256", "kid": stranger.kid, "typ": "at+jwt"},
                                   claims, stranger, algorithms=["ES256"]))
    # Our key's kid on a stranger's signature.
    attacks.append(jose_jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"},
                                   claims, stranger, algorithms=["ES256"]))
    # A genuine signature over a token for another audience.
    attacks.append(app_token(client, account, ["read:profile"], aud="https://elsewhere.example"))
    for forged in attacks:
        with pytest.raises(CommandError) as caught:
            services(client).tokens.verify(forged)
        assert caught.value.details == {"reason": "token_invalid"}, forged
        await refused(client, forged)


async def test_expired_app_token_is_refused(client: TestClient[Any, Any], account: Account) -> None:
    expired = app_token(client, account, ["read:profile"], now=time.time() - 3600, ttl_s=60)
    resp = await client.get(ME, headers=bearer(expired))
    assert resp.status == 401
    assert (await resp.json())["error"]["details"]["reason"] == "token_expired"


async def test_production_needs_the_encryption_secret(make_client: AppFactory) -> None:
    from server.resources import StartupError

    with pytest.raises(StartupError, match="HOTSPOT_OAUTH_KEY_ENCRYPTION_SECRET"):
        await make_client(env="production")


async def test_another_secret_cannot_sign_with_the_stored_keys(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    """Production refuses to start rather than fork the keys; dev makes its own key."""
    db = services(client).db
    other = KeyCipher(b"another-secret-" + b"z" * 40)
    prod = KeyRing(db, other, alg="ES256", token_lifetime_s=900, refresh_s=60, production=True)
    with pytest.raises(Exception, match="does not open the signing key"):
        await prod.ensure_signing_key()
    dev = KeyRing(db, other, alg="ES256", token_lifetime_s=900, refresh_s=60, production=False)
    await dev.ensure_signing_key()
    assert dev.signing_key().private is not None


async def hotspot(settings: Settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "hotspot"), *args, env=process_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_rotate_key_command_reaches_a_running_node(
    client: TestClient[Any, Any], settings: Settings, account: Account,
) -> None:
    ring = services(client).oauth_keys
    old = ring.signing_key().kid
    code, out, err = await hotspot(settings, "oauth", "rotate-key", "--now")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and {line.split()[1] for line in lines} == {"ES256", "RS256"}
    new = next(line.split()[3] for line in lines if " ES256 " in line)
    # The node picks the key up on its next refresh (every HOTSPOT_OAUTH_KEY_REFRESH_S).
    await ring.refresh()
    assert ring.signing_key().kid == new != old
    code, out, err = await hotspot(settings, "oauth", "keys")
    assert code == 0, err
    states = {line.split()[0]: line for line in out.splitlines()}
    assert "signing" in states[new] and "retired (published)" in states[old]
    token = app_token(client, account, ["read:profile"])
    await verify_with_pyjwt(client, token, audience=issuer(client))
