"""Command declarations: a use case's name, input schema, scope and REST route, in one place."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from handlers.context import Context

AuthMode = Literal["required", "none"]
HandlerFn = Callable[[Context, Any], Awaitable[Any]]
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
    scope: str | None = None
    method: str | None = None
    path: str | None = None
    status: int = 200
    output: type[BaseModel] | None = None
    # After success over a socket, the connection adopts the returned access token.
    binds_session: bool = False
    tags: tuple[str, ...] = ()

    @property
    def rest_path(self) -> str | None:
        return None if self.path is None else "/v1" + self.path


def command(
    name: str,
    *,
    input: type[BaseModel] = Empty,
    rest: tuple[str, str] | None = None,
    auth: AuthMode = "required",
    scope: str | None = None,
    status: int = 200,
    output: type[BaseModel] | None = None,
    binds_session: bool = False,
) -> Callable[[F], F]:
    """Declare the decorated coroutine as a command; collect_commands() finds it."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"bad command name {name!r}")

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
            method=method,
            path=path,
            status=status,
            output=output,
            binds_session=binds_session,
            tags=(name.split(".")[0],),
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
