"""Command declarations: a use case's name, input, policy and REST route, in one place.

Policy is declared, never written in a handler body: the scope (handlers.scopes), the role,
the rate limits (handlers.rates) and the transports. server/dispatch.py enforces all four
for both doors, and the API documents show them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from handlers.activity import Activity
from handlers.context import Context
from handlers.rates import Rate
from handlers.roles import Role
from handlers.scopes import Scope

AuthMode = Literal["required", "none"]
Transport = Literal["socket", "rest"]
HandlerFn = Callable[[Context, Any], Awaitable[Any]]
RetryCheck = Callable[[Context, Any], Awaitable[bool]]
F = TypeVar("F", bound=HandlerFn)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class Input(BaseModel):
    """Base of every command input: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL: refuse it at the door, for every command,
        # rather than fail later inside a transaction (or a whole persistence batch).
        if _has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


class Empty(Input):
    """The input of a command that takes no arguments."""


@dataclass(frozen=True)
class Command:
    """A declared command, served as a Socket.IO event and as a REST route."""

    name: str
    input: type[BaseModel]
    handler: HandlerFn
    summary: str
    auth: AuthMode = "required"
    scope: Scope | None = None
    # The role the caller must hold (checked against the database on each call).
    role: Role | None = None
    rates: tuple[Rate, ...] = ()
    transports: tuple[Transport, ...] = ("socket", "rest")
    method: str | None = None
    path: str | None = None
    status: int = 200
    output: type[BaseModel] | None = None
    # After success over a socket, the connection adopts the returned access token.
    binds_session: bool = False
    # The REST route is served by a hand-written aiohttp handler that calls the dispatcher
    # (the unsubscribe link answers HTML forms too); server/rest.py does not add it.
    custom_route: bool = False
    # Tells whether a call repeats an earlier one (its idempotency key made something
    # already): such a retry is answered without counting the command's rates.
    is_retry: RetryCheck | None = None
    tags: tuple[str, ...] = ()
    # The analytics event a success stands for, published after the handler returned.
    activity: Activity | None = None

    @property
    def rest_path(self) -> str | None:
        return None if self.path is None else "/v1" + self.path

    @property
    def writes(self) -> bool:
        """Whether the command changes state: anything but a REST GET (socket-only included)."""
        return self.method != "GET"

    def policy(self) -> dict[str, Any]:
        """The declared policy, as the API documents show it (rates without their numbers)."""
        return {
            "auth": self.auth,
            "scope": None if self.scope is None else self.scope.value,
            "role": self.role,
            "rates": [{"name": rate.name, "per": rate.per} for rate in self.rates],
            "transports": list(self.transports),
        }


def command(
    name: str,
    *,
    input: type[BaseModel] = Empty,
    rest: tuple[str, str] | None = None,
    auth: AuthMode = "required",
    scope: Scope | None = None,
    role: Role | None = None,
    rate: Rate | tuple[Rate, ...],
    socket_only: bool = False,
    status: int = 200,
    output: type[BaseModel] | None = None,
    binds_session: bool = False,
    custom_route: bool = False,
    is_retry: RetryCheck | None = None,
    activity: Activity | None = None,
) -> Callable[[F], F]:
    """Declare the decorated coroutine as a command; collect_commands() finds it.

    `rate` is required: every command is counted against at least one named rate.
    `socket_only` commands act on the calling connection (subscriptions) and have no route.
    """
    if not NAME_PATTERN.match(name):
        raise ValueError(f"bad command name {name!r}")
    if auth == "required" and scope is None:
        raise ValueError(f"{name}: a command that needs a token must declare its scope")
    if auth == "none" and (scope is not None or role is not None):
        raise ValueError(f"{name}: a command open to anyone cannot require a scope or role")
    if socket_only == (rest is not None):
        raise ValueError(f"{name}: declare either a REST route or socket_only=True")
    rates = rate if isinstance(rate, tuple) else (rate,)
    if not rates:
        raise ValueError(f"{name}: declare at least one rate")
    if auth == "none" and any(r.per in ("user", "subject") for r in rates):
        raise ValueError(f"{name}: a command open to anyone is counted per ip or connection")

    def decorate(fn: F) -> F:
        doc = (fn.__doc__ or name).strip().splitlines()[0]
        method, path = rest if rest else (None, None)
        fn.__command__ = Command(  # type: ignore[attr-defined]
            name=name,
            input=input,
            handler=fn,
            summary=doc,
            auth=auth,
            scope=scope,
            role=role,
            rates=rates,
            transports=("socket",) if socket_only else ("socket", "rest"),
            method=method,
            path=path,
            status=status,
            output=output,
            binds_session=binds_session,
            custom_route=custom_route,
            is_retry=is_retry,
            tags=(name.split(".")[0],),
            activity=activity,
        )
        return fn

    return decorate


class CommandRegistry:
    """The commands one app serves, by name."""

    def __init__(self, commands: Iterable[Command]) -> None:
        self._by_name: dict[str, Command] = {}
        for cmd in commands:
            if cmd.name in self._by_name:
                raise ValueError(f"command {cmd.name} declared twice")
            self._by_name[cmd.name] = cmd

    def get(self, name: str) -> Command | None:
        return self._by_name.get(name)

    def __iter__(self) -> Any:
        return iter(sorted(self._by_name.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return len(self._by_name)


def collect_commands(modules: Iterable[ModuleType]) -> CommandRegistry:
    """Build a registry from every @command function in the given handler modules."""
    found: list[Command] = []
    for module in modules:
        for value in vars(module).values():
            cmd = getattr(value, "__command__", None)
            if isinstance(cmd, Command) and getattr(value, "__module__", None) == module.__name__:
                found.append(cmd)
    return CommandRegistry(found)
