"""Run a command for either transport: authenticate, authorize, validate, call, map errors."""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, ValidationError

from handlers.activity import ip_hash, server_event
from handlers.commands import Command, CommandRegistry
from handlers.context import Context, Principal, Services
from handlers.errors import CommandError
from handlers.rates import charge
from handlers.roles import require_role
from handlers.scopes import covers
from server.metrics import Metrics

log = logging.getLogger(__name__)


def validation_details(exc: ValidationError) -> dict[str, Any]:
    fields = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in error["loc"]) or "(body)"
        fields.append({"field": loc, "message": error["msg"], "type": error["type"]})
    return {"fields": fields}


class Dispatcher:
    def __init__(self, registry: CommandRegistry, metrics: Metrics) -> None:
        self.registry = registry
        self.metrics = metrics
        self._services: Services | None = None

    def bind(self, services: Services) -> None:
        """Routes exist before start-up; the services they use are opened at start-up."""
        self._services = services

    @property
    def services(self) -> Services:
        if self._services is None:
            raise CommandError("unavailable", "the server is starting")
        return self._services

    def authenticate(self, token: str) -> Principal:
        """Verify an access token and check it is not revoked; no database round trip."""
        principal = self.services.tokens.verify(token)
        if self.services.revocations.is_revoked(principal.session_id):
            raise CommandError("unauthorized", "session revoked", {"reason": "session_revoked"})
        return principal

    def authorize(self, cmd: Command, principal: Principal | None) -> None:
        if cmd.auth == "none":
            return
        if principal is None:
            raise CommandError("unauthorized", "authentication required",
                               {"reason": "token_missing"})
        if principal.expired():
            raise CommandError("unauthorized", "access token expired", {"reason": "token_expired"})
        if self.services.revocations.is_revoked(principal.session_id):
            raise CommandError("unauthorized", "session revoked", {"reason": "session_revoked"})
        if cmd.scope is not None and not covers(principal.scopes, cmd.scope):
            raise CommandError("forbidden", f"the token lacks the scope {cmd.scope.value!r}",
                               {"required_scope": cmd.scope.value})

    @staticmethod
    def check_transport(cmd: Command, ctx: Context) -> None:
        if ctx.transport not in cmd.transports:
            raise CommandError("invalid_input", f"{cmd.name} is served over "
                               + " and ".join(cmd.transports) + " only",
                               {"transports": list(cmd.transports), "reason": "wrong_transport"})

    @staticmethod
    async def apply_policy(cmd: Command, ctx: Context, data: BaseModel) -> None:
        """The declared role, then every declared rate (after the input proved valid)."""
        if cmd.role is not None:
            await require_role(ctx, cmd.role)
        if cmd.is_retry is not None and await cmd.is_retry(ctx, data):
            return
        for rate in cmd.rates:
            await charge(ctx, rate)

    def record_activity(self, cmd: Command, ctx: Context, data: BaseModel, result: Any) -> None:
        """Offer the command's analytics event to the publisher; never fails the command."""
        publisher = ctx.services.analytics
        if cmd.activity is None or publisher is None:
            return
        try:
            now = ctx.services.clock()
            event = server_event(
                cmd.activity, data, result,
                user_id=None if ctx.principal is None else ctx.principal.user_id, now=now,
                ip_hash_value=ip_hash(publisher.ip_secret, ctx.ip, now),
                platform=ctx.transport)
            if event is not None:
                publisher.offer([event])
        except Exception:
            # The command succeeded and committed: a bad declaration costs its event only.
            log.exception("analytics event not built", extra={"command": cmd.name})

    async def run(self, cmd: Command, raw: Any, ctx: Context) -> Any:
        """The command's JSON-ready result; raises CommandError for every refusal."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            self.authorize(cmd, ctx.principal)
            self.check_transport(cmd, ctx)
            if not isinstance(raw, dict):
                raise CommandError("invalid_input", "the payload must be a JSON object",
                                   {"fields": [{"field": "(body)", "message": "not an object",
                                                "type": "object_type"}]})
            try:
                data = cmd.input.model_validate(raw)
            except ValidationError as exc:
                raise CommandError("invalid_input", "the input is not valid",
                                   validation_details(exc)) from None
            await self.apply_policy(cmd, ctx, data)
            result = await cmd.handler(ctx, data)
            self.record_activity(cmd, ctx, data, result)
            return result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        except CommandError as exc:
            outcome = exc.code
            raise
        except Exception as exc:
            outcome = "internal"
            log.exception("command failed", extra={"command": cmd.name})
            raise CommandError("internal", "internal error") from exc
        finally:
            self.metrics.commands.labels(cmd.name, ctx.transport, outcome).inc()
            self.metrics.latency.labels(cmd.name, ctx.transport).observe(
                time.perf_counter() - started
            )
