"""One naming rule for the public surface (docs/README.md, "Naming"), checked over the registry."""

from __future__ import annotations

import re

from pydantic import BaseModel

from handlers.commands import Command
from server.app import command_registry

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# The first word of a command's action: what the command does.
VERBS = frozenset({
    "accept", "add", "approve", "ban", "block", "cancel", "change", "clear", "confirm",
    "count", "create", "decline", "delete", "detach", "duet", "edit", "export", "follow", "get",
    "invite", "join", "leave", "list", "login", "logout", "mark", "mute", "open", "pause",
    "query", "react", "refresh", "reject", "remove", "reply", "request", "resend", "resume",
    "revoke", "rotate", "save", "search", "send", "set", "share", "signup", "start",
    "stitch", "stop", "subscribe", "suspend", "sync", "transfer", "unban", "unblock",
    "unfollow", "unmute", "unreact", "unsave", "unshare", "unsubscribe", "unsuspend",
    "update", "verify", "view",
})
# Resource segments are singular nouns; these end in "s" and are singular.
SINGULAR_ENDING_IN_S = frozenset({"access", "address", "status"})
# A path parameter is `<resource>_id`, or the natural key a route is looked up by.
NATURAL_KEYS = frozenset({"username", "emoji", "tag"})


def commands() -> list[Command]:
    return list(command_registry())


def test_command_names_are_resource_then_verb() -> None:
    for cmd in commands():
        *resources, action = cmd.name.split(".")
        for segment in (*resources, action):
            assert SNAKE.match(segment), f"{cmd.name}: {segment!r} is not snake_case"
        assert action.split("_")[0] in VERBS, f"{cmd.name}: the action {action!r} is no verb"
        for resource in resources:
            assert not resource.endswith("s") or resource in SINGULAR_ENDING_IN_S, (
                f"{cmd.name}: resource {resource!r} is plural")


def test_rest_paths_are_snake_case_with_named_parameters() -> None:
    for cmd in commands():
        if cmd.path is None:
            continue
        for segment in cmd.path.strip("/").split("/"):
            if segment.startswith("{"):
                param = segment.strip("{}")
                assert param.endswith("_id") or param in NATURAL_KEYS, (
                    f"{cmd.name}: path parameter {{{param}}} must be <resource>_id")
                assert param in cmd.input.model_fields, f"{cmd.name}: {param} not in its input"
            else:
                assert SNAKE.match(segment), f"{cmd.name}: path segment {segment!r}"


def _fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[tuple[str, str]]:
    if model in seen:
        return []
    seen.add(model)
    found = [(model.__name__, name) for name in model.model_fields]
    for field in model.model_fields.values():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                found += _fields(arg, seen)
    return found


def test_wire_fields_are_snake_case() -> None:
    seen: set[type[BaseModel]] = set()
    for cmd in commands():
        for model in (cmd.input, cmd.output):
            if model is None:
                continue
            for owner, name in _fields(model, seen):
                assert SNAKE.match(name), f"{cmd.name}: {owner}.{name} is not snake_case"


def test_wire_models_live_in_schema_modules() -> None:
    for cmd in commands():
        for model in (cmd.input, cmd.output):
            if model is None or model.__module__ in ("handlers.commands", "handlers.pagination"):
                continue
            assert model.__module__.endswith("_schemas") or model.__module__.startswith(
                ("storage.views", "channels.events")), (
                f"{cmd.name}: {model.__name__} is defined in {model.__module__}, "
                "not in a handlers/<feature>_schemas.py module")
