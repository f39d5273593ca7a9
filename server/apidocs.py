"""OpenAPI and the Socket.IO event catalogue, generated from the command declarations."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from channels.events import server_events
from config.rates import Rates
from handlers.commands import Command, CommandRegistry
from handlers.errors import HTTP_STATUS
from handlers.scopes import describe as describe_scopes

REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"{(\w+)}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": sorted(HTTP_STATUS)},
                "message": {"type": "string"},
                "details": {"description": "per-field problems, retry_after, limits, ..."},
            },
        }
    },
}


# The connect_error data of a refused connection (server/sockets.py on_connect): `data` is
# the usual case, `codes` lists every refusal with the fields its data carries.
CONNECT_REFUSED: dict[str, Any] = {
    "event": "connect_error",
    "data": {"code": "unauthorized", "message": "string",
             "reason": "token_invalid | token_expired | session_revoked"},
    "codes": [
        {"code": "unauthorized",
         "when": "the token is malformed, forged, expired or of an ended session",
         "data": {"code": "unauthorized", "message": "string",
                  "reason": "token_invalid | token_expired | session_revoked "
                            "(absent when the token is not a string)"}},
        {"code": "rate_limited",
         "when": "the user already has the maximum number of connected sockets "
                 "(HOTSPOT_LIMIT_SOCKETS_PER_USER, counted across nodes)",
         "data": {"code": "rate_limited", "message": "string",
                  "limit": "integer: the sockets allowed per user"}},
    ],
}


def _add_definitions(schema: dict[str, Any], components: dict[str, Any]) -> None:
    """Move a generated schema's $defs into components/schemas, refusing a name clash.

    A component is named after its class (pydantic names each definition so), and the
    schemas of many commands share one namespace: two different classes with one name
    would leave one of them described by the other's schema. Such a clash is an error
    here, so a document with one is never served; the fix is to rename a class.
    """
    for name, definition in schema.pop("$defs", {}).items():
        _add_component(name, definition, components)


def _add_component(name: str, definition: dict[str, Any], components: dict[str, Any]) -> None:
    known = components.setdefault(name, definition)
    if known != definition:
        raise ValueError(f"two different schemas are both named {name!r} in the API documents: "
                         "rename one of the classes (component names are class names)")


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    _add_definitions(schema, components)
    # A recursive model (an item quoting an item) comes back as a bare $ref to its own
    # definition, which _add_definitions has already placed; adding the $ref would make
    # the component point at itself.
    if schema != {"$ref": REF.format(model=model.__name__)}:
        _add_component(model.__name__, schema, components)
    return {"$ref": REF.format(model=model.__name__)}


def _operation(cmd: Command, components: dict[str, Any], rates: Rates) -> dict[str, Any]:
    path_params = PATH_PARAM.findall(cmd.path or "")
    input_schema = cmd.input.model_json_schema(ref_template=REF)
    _add_definitions(input_schema, components)
    properties: dict[str, Any] = input_schema.get("properties", {})
    required = set(input_schema.get("required", []))
    op: dict[str, Any] = {
        "operationId": cmd.name,
        "summary": cmd.summary,
        "tags": list(cmd.tags),
        "x-socket-event": cmd.name,
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": properties.get(p, {})}
            for p in path_params
        ],
        "responses": {},
    }
    body_props = {k: v for k, v in properties.items() if k not in path_params}
    if cmd.method == "GET":
        op["parameters"] += [
            {"name": k, "in": "query", "required": k in required, "schema": v}
            for k, v in body_props.items()
        ]
    elif body_props:
        body_schema = {**input_schema, "properties": body_props,
                       "required": sorted(required - set(path_params))}
        op["requestBody"] = {"required": bool(body_schema["required"]),
                             "content": {"application/json": {"schema": body_schema}}}
    op["x-policy"] = policy(cmd, rates)
    if cmd.auth == "required":
        op["security"] = [{"bearer": []}]
        if cmd.scope:
            op["x-required-scope"] = cmd.scope.value
    else:
        op["security"] = []
    success: dict[str, Any] = {"description": "success"}
    if cmd.output is not None and cmd.status != 204:
        success["content"] = {"application/json": {"schema": _schema(cmd.output, components)}}
    op["responses"][str(cmd.status)] = success
    error_ref = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    for status in sorted({400, 413, 429, 500} | ({401, 403} if cmd.auth == "required" else set())):
        op["responses"][str(status)] = {"description": "error", **error_ref}
    # Commands do not declare which refusals they raise (a wrong password is 401 on a route
    # that needs no token, a taken name 409, ...): every other status has the same body.
    op["responses"]["default"] = {"description": "any other error; error.code says which",
                                  **error_ref}
    return op


def policy(cmd: Command, rates: Rates) -> dict[str, Any]:
    """The command's declared policy with each rate's configured limit, for the documents."""
    declared = cmd.policy()
    for row in declared["rates"]:
        spec = rates.spec(row["name"])
        row.update(limit=spec.limit, window_s=spec.window_s)
    return declared


def openapi(registry: CommandRegistry, base_url: str,
            rates: Rates | None = None) -> dict[str, Any]:
    rates = rates or Rates()
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for cmd in registry:
        if cmd.method is None or cmd.rest_path is None:
            continue
        paths.setdefault(cmd.rest_path, {})[cmd.method.lower()] = _operation(cmd, components, rates)
    return {
        "openapi": "3.1.0",
        "info": {"title": "HotSpot API", "version": "1",
                 "description": "Every operation is also a Socket.IO event (x-socket-event)."},
        "servers": [{"url": base_url}],
        "x-scopes": describe_scopes(),
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
    }


def event_catalogue(registry: CommandRegistry, rates: Rates | None = None) -> dict[str, Any]:
    rates = rates or Rates()
    commands = []
    for cmd in registry:
        commands.append({
            "name": cmd.name,
            "summary": cmd.summary,
            "auth": cmd.auth,
            "scope": None if cmd.scope is None else cmd.scope.value,
            "policy": policy(cmd, rates),
            "input": cmd.input.model_json_schema(),
            "output": cmd.output.model_json_schema() if cmd.output else None,
            "rest": None if cmd.method is None else {"method": cmd.method, "path": cmd.rest_path,
                                                     "status": cmd.status},
        })
    return {
        "namespace": "/",
        "connect": {"auth": {"token": "access token (JWT); optional for auth.signup/auth.login"},
                    "refused": CONNECT_REFUSED},
        "ack": {"success": {"ok": True, "data": "..."},
                "failure": {"ok": False, "error": {"code": "...", "message": "...",
                                                   "details": "optional"}}},
        "error_codes": sorted(HTTP_STATUS),
        "scopes": describe_scopes(),
        "commands": commands,
        "server_events": [
            {"name": e.name, "description": e.description, "payload": e.payload.model_json_schema()}
            for e in server_events()
        ],
    }
