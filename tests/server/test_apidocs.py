"""GET /v1/openapi.json and /v1/events.json: generated from the command declarations, and true."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from enum import Enum
from typing import Any, get_args

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel, TypeAdapter, create_model

from handlers.commands import Command, CommandRegistry
from handlers.errors import HTTP_STATUS
from server.apidocs import REF, openapi
from server.app import command_registry
from tests.conftest import Account, SocketFactory

REST_COMMANDS = [c for c in command_registry() if c.method is not None and c.rest_path is not None]
PATH_PARAM = re.compile(r"{(\w+)}")
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture
async def spec(client: Any) -> dict[str, Any]:
    resp = await client.get("/v1/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    data: dict[str, Any] = await resp.json()
    return data


@pytest.fixture
async def catalogue(client: Any) -> dict[str, Any]:
    resp = await client.get("/v1/events.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    data: dict[str, Any] = await resp.json()
    return data


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(root: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are expected, got {ref}"
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def operation(spec: dict[str, Any], cmd: Command) -> dict[str, Any]:
    assert cmd.rest_path is not None and cmd.method is not None
    op: dict[str, Any] = spec["paths"][cmd.rest_path][cmd.method.lower()]
    return op


def input_fields(cmd: Command) -> tuple[set[str], set[str]]:
    """The command's input fields and the required ones, from its schema."""
    schema = cmd.input.model_json_schema()
    return set(schema.get("properties", {})), set(schema.get("required", []))


# -- OpenAPI ----------------------------------------------------------------------------------


async def test_openapi_document_shape(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    assert isinstance(spec["info"]["title"], str) and spec["info"]["title"]
    assert isinstance(spec["info"]["version"], str) and spec["info"]["version"]
    assert spec["servers"] and all(s["url"] for s in spec["servers"])
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
    }
    for path, item in spec["paths"].items():
        assert path.startswith("/v1/")
        for method in item:
            assert method in {"get", "post", "put", "patch", "delete"}, (path, method)


async def test_every_rest_command_is_documented_and_nothing_else(spec: dict[str, Any]) -> None:
    assert REST_COMMANDS, "the registry declares REST routes"
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    declared = {(cmd.rest_path, cmd.method) for cmd in REST_COMMANDS}
    assert documented == declared
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for cmd in REST_COMMANDS:
        op = operation(spec, cmd)
        assert op["operationId"] == cmd.name
        assert op["x-socket-event"] == cmd.name
        assert op["summary"] == cmd.summary


@pytest.mark.parametrize("cmd", REST_COMMANDS, ids=lambda c: c.name)
async def test_operation_schemas_match_the_command(spec: dict[str, Any], cmd: Command) -> None:
    op = operation(spec, cmd)
    assert cmd.rest_path is not None
    fields, required = input_fields(cmd)
    path_params = set(PATH_PARAM.findall(cmd.rest_path))
    params = {(p["name"], p["in"]): p for p in op.get("parameters", [])}
    for name in path_params:
        assert params[(name, "path")]["required"] is True
        assert params[(name, "path")]["schema"], f"path parameter {name} has no schema"
    body_fields = fields - path_params
    if cmd.method == "GET":
        assert "requestBody" not in op
        assert {n for n, where in params if where == "query"} == body_fields
        for name in body_fields:
            assert params[(name, "query")]["required"] is (name in required)
    elif body_fields:
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert set(body["properties"]) == body_fields
        assert set(body.get("required", [])) == required - path_params
        assert op["requestBody"]["required"] is bool(required - path_params)
        assert body.get("additionalProperties") is False, "unknown fields are refused, say so"
    else:
        assert "requestBody" not in op

    responses = op["responses"]
    success = responses[str(cmd.status)]
    if cmd.status == 204:
        assert "content" not in success
    elif cmd.output is not None:
        assert success["content"]["application/json"]["schema"]["$ref"] == \
            f"#/components/schemas/{cmd.output.__name__}"
    errors = {code: r for code, r in responses.items() if code != str(cmd.status)}
    assert {"400", "413", "500"} <= set(errors)
    for response in errors.values():
        assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
    if cmd.auth == "required":
        assert op["security"] == [{"bearer": []}]
        assert {"401", "403"} <= set(errors)
        if cmd.scope:
            assert op["x-required-scope"] == cmd.scope
    else:
        assert op["security"] == []


async def test_error_schema_lists_every_code(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    body = error["properties"]["error"]
    assert set(body["required"]) == {"code", "message"}
    assert set(body["properties"]["code"]["enum"]) == set(HTTP_STATUS)
    assert "details" in body["properties"]


async def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    found = list(refs(spec))
    assert ERROR_REF in found
    for ref in found:
        target = resolve(spec, ref)
        assert isinstance(target, dict) and target, ref


async def test_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    """What client generators read: checked by a real OpenAPI 3.1 validator, $refs included."""
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
              for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert not errors, "\n".join(errors[:20])


# -- component names --------------------------------------------------------------------------


def component_classes() -> dict[str, set[type]]:
    """The classes the OpenAPI document names as components, by component (= class) name.

    Outputs and every model or enum they hold, and what inputs hold: an input itself is
    inlined into its operation, so only its nested types become components.
    """
    found: dict[str, set[type]] = defaultdict(set)
    seen: set[type] = set()

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel | Enum):
            found[annotation.__name__].add(annotation)
            if annotation in seen:
                return
            seen.add(annotation)
            if issubclass(annotation, BaseModel):
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for arg in get_args(annotation):
            visit(arg)

    for cmd in REST_COMMANDS:
        for field in cmd.input.model_fields.values():
            visit(field.annotation)
        if cmd.output is not None and cmd.status != 204:
            visit(cmd.output)
    return found


def own_schema(cls: type) -> dict[str, Any]:
    """The class's schema as a component: its own definition, references to the others."""
    schema: dict[str, Any] = TypeAdapter(cls).json_schema(ref_template=REF)
    definitions = schema.pop("$defs", {})
    # A recursive model comes back as a $ref to its own definition.
    return definitions[cls.__name__] if "$ref" in schema else schema


def test_component_names_belong_to_one_class_each() -> None:
    """Two wire classes with one name would share one component: a generated client would
    describe one of them with the other's schema (clique members once had the conversation
    member schema). Rename one of the classes."""
    clashes = {name: sorted(f"{c.__module__}.{c.__qualname__}" for c in classes)
               for name, classes in component_classes().items() if len(classes) > 1}
    assert not clashes, clashes


async def test_each_component_is_the_schema_of_its_class(spec: dict[str, Any]) -> None:
    components = spec["components"]["schemas"]
    classes = component_classes()
    assert set(components) == set(classes) | {"Error"}, "a component without a class, or none"
    for name, (cls, *_) in classes.items():
        assert components[name] == own_schema(cls), name
    clique = components["CliqueOut"]["properties"]
    assert clique["viewer"]["$ref"] == REF.format(model="CliqueViewerOut")


def clashing_registry(nested: bool) -> CommandRegistry:
    """Two commands whose outputs hold, or are, two different classes named Thing."""
    first = create_model("Thing", size=int)
    second = create_model("Thing", label=str)
    outputs = [create_model("FirstOut", thing=first), create_model("SecondOut", thing=second)]
    if not nested:
        outputs[1] = second

    async def handler(ctx: Any, data: Any) -> None:
        raise AssertionError("never called")

    return CommandRegistry(
        Command(name=f"thing.{n}", input=create_model(f"In{n}"), handler=handler, summary="x",
                auth="none", method="GET", path=f"/things/{n}", output=out)
        for n, out in enumerate(outputs))


@pytest.mark.parametrize("nested", [True, False], ids=["both nested", "one an output"])
def test_two_classes_with_one_name_are_refused(nested: bool) -> None:
    with pytest.raises(ValueError, match="'Thing'"):
        openapi(clashing_registry(nested), "http://127.0.0.1")


async def test_statuses_the_api_answers_are_documented(
    client: Any, spec: dict[str, Any], account: Account
) -> None:
    """Each error a client can really get is in its operation's responses (or the default)."""
    registry = command_registry()
    cases: list[tuple[str, Any]] = [
        ("auth.login", await client.post(
            "/v1/auth/login", json={"login": account.username, "password": "wrong password"})),
        ("auth.signup", await client.post(
            "/v1/auth/signup", json={"username": account.username, "email": account.email,
                                     "password": "another password"})),
        ("user.get", await client.get(
            "/v1/users/00000000-0000-0000-0000-000000000000", headers=account.headers)),
        ("auth.logout", await client.post("/v1/auth/logout", json={"refresh_token": "x" * 43})),
    ]
    for name, resp in cases:
        assert resp.status >= 400, (name, resp.status)
        cmd = registry.get(name)
        assert cmd is not None
        responses = operation(spec, cmd)["responses"]
        assert str(resp.status) in responses or "default" in responses, \
            f"{name} answers {resp.status}, which its operation does not document"
        body = await resp.json()
        assert body["error"]["code"] in resolve(spec, ERROR_REF)["properties"]["error"][
            "properties"]["code"]["enum"]


async def test_docs_are_read_only(client: Any) -> None:
    for path in ("/v1/openapi.json", "/v1/events.json"):
        resp = await client.post(path, json={})
        assert resp.status == 405
        assert resp.headers.get("X-Request-Id")


# -- the Socket.IO event catalogue ------------------------------------------------------------


async def test_catalogue_lists_every_command(catalogue: dict[str, Any]) -> None:
    registry = command_registry()
    listed = {c["name"]: c for c in catalogue["commands"]}
    assert set(listed) == {cmd.name for cmd in registry}
    assert len(listed) == len(catalogue["commands"]), "a command is listed twice"
    for cmd in registry:
        entry = listed[cmd.name]
        assert entry["input"] == cmd.input.model_json_schema()
        assert entry["input"].get("type") == "object"
        assert entry["scope"] == cmd.scope
        assert entry["auth"] == cmd.auth
        assert entry["summary"] == cmd.summary
        if cmd.method is None:
            assert entry["rest"] is None
        else:
            assert entry["rest"] == {"method": cmd.method, "path": cmd.rest_path,
                                     "status": cmd.status}
        if cmd.output is not None:
            assert entry["output"] == cmd.output.model_json_schema()
        for schema in (entry["input"], entry["output"]):
            for ref in refs(schema or {}):
                resolve(schema, ref)


async def test_catalogue_describes_the_protocol(catalogue: dict[str, Any]) -> None:
    assert catalogue["namespace"] == "/"
    assert "token" in catalogue["connect"]["auth"]
    assert catalogue["connect"]["refused"]["event"] == "connect_error"
    assert catalogue["connect"]["refused"]["data"]["code"] == "unauthorized"
    assert catalogue["ack"]["success"]["ok"] is True
    assert catalogue["ack"]["failure"]["ok"] is False
    assert set(catalogue["ack"]["failure"]["error"]) >= {"code", "message"}
    assert catalogue["error_codes"] == sorted(HTTP_STATUS)


async def test_catalogue_lists_the_server_events(catalogue: dict[str, Any]) -> None:
    events = {e["name"]: e for e in catalogue["server_events"]}
    assert {"session.revoked", "server.shutdown"} <= set(events)
    for event in events.values():
        assert event["description"]
        assert event["payload"]["type"] == "object"

    revoked = events["session.revoked"]["payload"]
    assert revoked["required"] == ["reason"]
    assert {"logout", "logout_all", "refresh_token_reuse", "account_deleted", "password_reset",
            "password_changed"} <= set(revoked["properties"]["reason"]["enum"])

    shutdown = events["server.shutdown"]["payload"]
    assert set(shutdown["required"]) == {"reason", "reconnect_after_ms"}
    assert shutdown["properties"]["reconnect_after_ms"]["type"] == "integer"
    assert shutdown["properties"]["reason"]["type"] == "string"


async def test_documented_required_fields_are_enforced(
    catalogue: dict[str, Any], account: Account, connect_socket: SocketFactory
) -> None:
    """The catalogue is the truth: leaving out what it calls required is refused, per field."""
    sio = await connect_socket(account.access_token)
    checked = 0
    for entry in catalogue["commands"]:
        required = set(entry["input"].get("required", []))
        if not required:
            continue  # calling it with {} would run it
        reply = await sio.call(entry["name"], {}, timeout=5)
        assert reply["ok"] is False, (entry["name"], reply)
        assert reply["error"]["code"] == "invalid_input", (entry["name"], reply)
        missing = {f["field"] for f in reply["error"]["details"]["fields"] if f["type"] == "missing"}
        assert missing == required, entry["name"]
        checked += 1
    assert checked >= 5
