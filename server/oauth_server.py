"""Authlib's OAuth 2.0 core on aiohttp: request adapter, client model, grants, endpoints.

Authlib is synchronous and framework-agnostic, our storage is asyncpg on the event loop.
Each protocol call runs in a worker thread (`OAuthServer.call`); whenever Authlib asks for
storage (a client, a code, a refresh token) the grant hands a coroutine back to the loop
with `run_coroutine_threadsafe(...).result(timeout)`, so the loop is never blocked.
What HotSpot changes in Authlib's defaults: S256 PKCE only, required for public clients;
no implicit or password grant; our own tokens and lifetimes (handlers/oauth_flows.py);
client authentication by handlers/oauth_clients (constant time, refuses suspended apps).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    AuthorizationServer,
    ClientMixin,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    AuthorizationPendingError,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    ExpiredTokenError,
    SlowDownError,
)

from handlers import oauth_device as device
from handlers import oauth_flows as flows
from handlers.context import Services
from handlers.errors import CommandError
from handlers.oauth_clients import authenticate_client
from handlers.scopes import CATALOGUE, Scope
from storage import oauth_apps as app_store
from storage.oauth_apps import OAuthApp
from storage.oauth_codes import AuthorizationCode

T = TypeVar("T")
# How long a thread waits for the loop to answer one storage call.
BRIDGE_TIMEOUT_S = 10.0
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


class Client(ClientMixin):  # type: ignore[misc]
    """An OAuthApp as Authlib sees it."""

    def __init__(self, app: OAuthApp) -> None:
        self.app = app

    def get_client_id(self) -> str:
        return self.app.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an app with one registered URI may leave redirect_uri out.
        return self.app.redirect_uris[0] if len(self.app.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The requested scopes, if the app may ask for every one; None: invalid_scope."""
        requested = scope_to_list(scope) or []
        known = {s.value for s in CATALOGUE}
        if not requested or not set(requested) <= set(self.app.allowed_scopes) & known:
            return None
        return " ".join(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.app.redirect_uris  # exact strings, never patterns

    def check_client_secret(self, client_secret: str) -> bool:
        raise NotImplementedError("client authentication is OAuthServer.authenticate_client")

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return (method == "none") == (self.app.client_type == "public")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":
            return self.app.client_type == "confidential"
        # Every app may use the device grant: a CLI is a public client, a TV app may not be.
        return grant_type in ("authorization_code", "refresh_token", DEVICE_CODE_GRANT_TYPE)


class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    """A stored authorization code as Authlib sees it."""

    def __init__(self, record: AuthorizationCode) -> None:
        self.record = record

    def get_redirect_uri(self) -> str:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return " ".join(self.record.scopes)


class Request(OAuth2Request):  # type: ignore[misc]
    """An aiohttp request read up front (query and form), so Authlib can use it in a thread."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 query: list[tuple[str, str]], form: list[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=dict(headers))
        self._args = dict(query)
        self._form = dict(form)
        self._form_list = form
        merged = {**self._args, **self._form}
        self.payload = BasicOAuth2Payload(merged)
        # Authlib refuses repeated parameters by looking at every value given.
        datalist: dict[str, list[str]] = {}
        for key, value in [*query, *form]:
            datalist.setdefault(key, []).append(value)
        self.payload._datalist = datalist
        self.ip: str | None = None
        self.user_agent: str | None = headers.get("User-Agent")

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form

    def form_list(self, name: str) -> list[str]:
        """Every value of a repeated form field (the consent page's scope checkboxes)."""
        return [value for key, value in self._form_list if key == name]


def parse_form(body: str) -> list[tuple[str, str]]:
    return parse_qsl(body, keep_blank_values=True)


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only (no `plain`); public clients must use it (RFC 9700 2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        request = grant.request
        if request.payload.data.get("code_challenge_method") == "plain":
            raise InvalidRequestError("code_challenge_method 'plain' is not supported; use S256")
        if (grant.request.client.app.client_type == "public"
                and not request.payload.data.get("code_challenge")):
            raise InvalidRequestError("a public client must send a PKCE code_challenge (S256)")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, code: Code) -> str | None:
        return code.record.code_challenge

    def get_authorization_code_challenge_method(self, code: Code) -> str | None:
        return code.record.code_challenge_method


_FLOW_ERRORS: dict[str, type[OAuth2Error]] = {
    "invalid_scope": InvalidScopeError,
    # RFC 8628 3.5, all HTTP 400 like invalid_grant.
    "authorization_pending": AuthorizationPendingError,
    "slow_down": SlowDownError,
    "access_denied": AccessDeniedError,
    "expired_token": ExpiredTokenError,
}


def _flow_error(exc: flows.FlowError) -> OAuth2Error:
    return _FLOW_ERRORS.get(exc.error, InvalidGrantError)(description=exc.description)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    server: OAuthServer

    def save_authorization_code(self, code: str, request: Request) -> None:
        data = request.payload.data
        self.server.run(flows.issue_code(
            self.server.services, request.client.app, code, user_id=request.user.id,
            redirect_uri=request.payload.redirect_uri or request.client.app.redirect_uris[0],
            scopes=scope_to_list(request.scope), code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method") or "S256",
            nonce=data.get("nonce"), auth_time=request.user.auth_time))

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found = self.server.run(flows.find_code(self.server.services, code, client.app))
        return None if found is None else Code(found)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request = self.request
        try:
            body = self.server.run(flows.exchange_code(
                self.server.services, request.client.app, request.authorization_code.record,
                ip=request.ip, user_agent=request.user_agent))
        except flows.FlowError as exc:
            raise _flow_error(exc) from None
        return 200, body, self.TOKEN_RESPONSE_HEADER


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    server: OAuthServer

    def authenticate_refresh_token(self, refresh_token: str) -> Any:
        # Checked for real (rotation, reuse, grace) in create_token_response.
        return _RefreshCredential(refresh_token)

    def _validate_token_scope(self, token: Any) -> None:
        pass  # flows.refresh narrows the scopes and refuses widening with invalid_scope

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request = self.request
        scope = request.payload.scope
        try:
            body = self.server.run(flows.refresh(
                self.server.services, request.client.app, request.refresh_token.token,
                scope_to_list(scope) if scope else None))
        except flows.FlowError as exc:
            raise _flow_error(exc) from None
        return 200, body, self.TOKEN_RESPONSE_HEADER


class _RefreshCredential:
    def __init__(self, token: str) -> None:
        self.token = token

    def check_client(self, client: Client) -> bool:
        return True  # flows.refresh compares the family's app with the client


class AppGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    server: OAuthServer

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        scope = self.request.payload.scope
        try:
            body = flows.client_credentials(self.server.services, self.request.client.app,
                                            scope_to_list(scope) if scope else None)
        except flows.FlowError as exc:
            raise _flow_error(exc) from None
        return 200, body, self.TOKEN_RESPONSE_HEADER


class DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
    """grant_type urn:ietf:params:oauth:grant-type:device_code: one poll of a device.

    Authlib's validate_token_request is replaced: it answers an unknown or foreign
    device_code with invalid_request / unauthorized_client, where RFC 6749 5.2 says
    invalid_grant, and it would judge a poll in several storage calls where
    handlers/oauth_device.poll judges it in one locked transaction.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    server: OAuthServer

    def validate_token_request(self) -> None:
        device_code = self.request.payload.data.get("device_code")
        if not device_code:
            raise InvalidRequestError("missing 'device_code'")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"this client may not use {self.GRANT_TYPE}")
        try:
            record = self.server.run(device.poll(self.server.services, client.app, device_code))
        except flows.FlowError as exc:
            raise _flow_error(exc) from None
        self.request.client = client
        self.request.credential = record

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request = self.request
        try:
            body = self.server.run(device.exchange(
                self.server.services, request.client.app, request.credential,
                ip=request.ip, user_agent=request.user_agent))
        except flows.FlowError as exc:
            raise _flow_error(exc) from None
        return 200, body, self.TOKEN_RESPONSE_HEADER


class DeviceAuthorization(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    """POST /oauth/device_authorization (RFC 8628 3.1-3.2).

    Authlib's response is kept, but the scopes are checked against the app's allowed
    scopes (Authlib checks only the server's list) and the codes are HotSpot's
    (handlers/oauth_device.start: user code alphabet, lifetime, storage).
    """

    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: OAuthServer

    def create_endpoint_response(self, request: Request) -> tuple[int, dict[str, Any],
                                                                   list[tuple[str, str]]]:
        client = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError(f"this client may not use {DEVICE_CODE_GRANT_TYPE}")
        scope = client.get_allowed_scope(request.payload.scope)
        if scope is None:
            raise InvalidScopeError(description="scope must be one or more of the app's "
                                    "allowed scopes")
        body = self.server.run(device.start(self.server.services, client.app, scope.split()))
        return 200, body, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: OAuthServer

    def authenticate_token(self, request: Request, client: Client) -> str | None:
        self.check_params(request, client)
        return request.form["token"]

    def revoke_token(self, token: str, request: Request) -> None:
        self.server.run(flows.revoke_token(self.server.services, request.client.app, token))


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: OAuthServer

    def authenticate_token(self, request: Request, client: Client) -> str:
        self.check_params(request, client)
        return request.form["token"]

    def create_introspection_payload(self, token: str) -> dict[str, Any]:
        return self.introspect_token(token)

    def introspect_token(self, token: str) -> dict[str, Any]:
        request = self._request
        body: dict[str, Any] = self.server.run(
            flows.introspect(self.server.services, request.client.app, token))
        return body

    def create_endpoint_response(self, request: Request) -> Any:
        self._request = request
        return super().create_endpoint_response(request)


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """One per application (made by server/oauth_routes.py), bound to its loop and services."""

    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(scopes_supported=[s.value for s in Scope])
        self.services = services
        self.loop = loop
        self.register_grant(CodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshGrant)
        self.register_grant(AppGrant)
        self.register_grant(DeviceGrant)
        self.register_endpoint(DeviceAuthorization)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the event loop from Authlib's thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(BRIDGE_TIMEOUT_S)

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run an Authlib entry point off the event loop."""
        return await asyncio.to_thread(func, *args)

    def query_client(self, client_id: str) -> Client | None:
        app = flows.live_app(self.run(app_store.get_app_by_client_id(self.services.db, client_id)))
        return None if app is None else Client(app)

    def authenticate_client(self, request: Request, methods: list[str],
                            endpoint: str = "token") -> Client:
        """handlers.oauth_clients.authenticate_client for every endpoint (constant time)."""
        basic_id, basic_secret = extract_basic_authorization(request.headers)
        if basic_id and "client_secret_basic" in methods:
            client_id, secret, method = basic_id, basic_secret, "client_secret_basic"
        else:
            client_id = request.form.get("client_id") or ""
            secret = request.form.get("client_secret")
            method = "client_secret_post" if secret else "none"
        try:
            app = self.run(authenticate_client(self.services.db, client_id, secret))
        except CommandError as exc:
            raise InvalidClientError(status_code=401, description=exc.message) from None
        if method not in methods:
            raise InvalidClientError(status_code=401,
                                     description=f"{method} is not allowed here")
        client = Client(app)
        request.auth_method = method
        request.client = client
        return client

    def create_oauth2_request(self, request: Any) -> Request:
        assert isinstance(request, Request)
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Any:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass  # no listeners: revocation announces itself in handlers/oauth_flows.py
