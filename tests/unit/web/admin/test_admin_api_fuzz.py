"""A schema-driven fuzz of the admin API: for every operation of its OpenAPI document, hypothesis draws parameters and
bodies from the operation's own schema (and values that break it: wrong types, out-of-range numbers, credential-
shaped and control-character strings, arbitrary JSON), sent by a signed-in administrator with the CSRF token. No
answer is a 5xx, and every answer is JSON with the API's headers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.runtime import Runtime
from gateway.storage.records import ToolCall
from infra.placeholders import create_grant
from tests.unit.web.admin.conftest import WORKSPACE, browser

HOSTILE = st.sampled_from(
    ["", " ", "eyJhbGciOiJub25lIn0.e30.", "mcpgw_" + "A" * 60, "\u202egnp.exe", "a\x00b", "../../etc", "%00", "🙂" * 50,
     "=cmd|' /C calc'!A0", "x" * 5000, "demo/echo", "service:bot", "1e400", "NaN"]
)  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | HOSTILE,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _value(schema: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of ``schema``, and some that break it."""
    schema = _resolve(schema, document)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return st.one_of([_value(option, document) for option in options])
    kind = schema.get("type")
    wrong = st.one_of(HOSTILE, st.integers(-(2**70), 2**70), st.booleans())
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | wrong
    if kind == "integer":
        low, high = schema.get("minimum", -(2**31)), schema.get("maximum", 2**31)
        return st.integers(low, high) | st.integers(-(2**64), 2**64) | wrong
    if kind == "boolean":
        return st.booleans() | wrong
    if kind == "array":
        return st.lists(_value(schema.get("items", {}), document), max_size=4) | wrong
    if kind == "object":
        properties = schema.get("properties", {})
        fixed = {name: _value(sub, document) for name, sub in properties.items()}
        return st.fixed_dictionaries({}, optional=fixed) | JSON
    if kind == "null":
        return st.none()
    return st.text(max_size=40) | HOSTILE | wrong


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in document["paths"].items() for method, op in item.items()]


def _request(document: dict[str, Any], operation: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    parameters: dict[str, st.SearchStrategy[Any]] = {}
    path_values: dict[str, st.SearchStrategy[Any]] = {}
    for parameter in operation.get("parameters", []):
        strategy = _value(parameter.get("schema", {}), document)
        if parameter["in"] == "path":
            path_values[parameter["name"]] = (
                st.just(WORKSPACE) | st.sampled_from(["other", "nope"]) if parameter["name"] == "workspace"
                else st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and s not in (".", ".."))
            )  # fmt: skip
        elif parameter["in"] == "query":
            parameters[parameter["name"]] = strategy
    body_schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    body = _value(body_schema, document) if body_schema else st.none()
    return st.fixed_dictionaries(
        {"path": st.fixed_dictionaries(path_values), "query": st.fixed_dictionaries({}, optional=parameters),
         "json": body}
    )  # fmt: skip


def _seed(runtime: Runtime) -> None:
    route = runtime.routes.get(WORKSPACE, "echo")
    assert route is not None
    create_grant(runtime, route, subject="bob", client_id="client-bob")
    runtime.usage.record(ToolCall(WORKSPACE, route.key, "echo", "client-bob", "bob", runtime.now(), "ok", 3.0, 2.0))
    runtime.audit.record("token.issued", workspace=WORKSPACE, client_id="client-bob", user_id="bob", scope="mcp")


@pytest.fixture
def admin_client(runtime: Runtime) -> Any:
    _seed(runtime)
    with browser(runtime, "alice") as client:
        yield client


def test_no_operation_of_the_admin_api_answers_5xx_to_anything_its_schema_draws(admin_client: TestClient) -> None:
    document = admin_client.get(f"/{WORKSPACE}/admin/api/openapi.json").json()
    csrf = admin_client.get(f"/{WORKSPACE}/admin/api/session").json()["csrf_token"]
    operations = _operations(document)
    assert len(operations) >= 16

    for method, path, operation in operations:
        _fuzz(admin_client, csrf, method, path, _request(document, operation))


def _fuzz(client: TestClient, csrf: str, method: str, path: str, strategy: st.SearchStrategy[dict[str, Any]]) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(request=strategy)
    def answers_without_a_server_error(request: dict[str, Any]) -> None:
        url = path
        for name, value in request["path"].items():
            url = url.replace("{" + name + "}", quote(str(value), safe=""))
        query = {name: (value if isinstance(value, list) else str(value)) for name, value in request["query"].items()}
        kwargs: dict[str, Any] = {"params": query, "headers": {"x-csrf-token": csrf}}
        if method == "post":
            kwargs["json"] = request["json"]
        response = client.request(method.upper(), url, **kwargs)
        assert response.status_code < 500, (method, url, query, request["json"], response.text[:300])
        if "/admin/api/" in url and response.headers.get("content-type", "").startswith("application/json"):
            assert response.headers["cache-control"] == "no-store"

    answers_without_a_server_error()
