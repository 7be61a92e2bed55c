"""The admin console's JSON API, tested through its own OpenAPI document: every operation the document lists has an
example here, which answers as documented (its body valid against the operation's response schema); reads and
changes are an administrator's only; changes need the session's CSRF token and are audited as the admin's; an admin
acts on their own workspace only."""

from __future__ import annotations

import csv
import io
from typing import Any

import jsonschema
import pytest
from starlette.testclient import TestClient

from gateway.runtime import Runtime
from gateway.storage.records import ToolCall, UpstreamToken
from infra.placeholders import create_grant
from tests.unit.web.admin.conftest import WORKSPACE, browser

API = f"/{WORKSPACE}/admin/api"


def _seed(runtime: Runtime) -> dict[str, str]:
    """A grant of bob's (a registered client's), a tool call of it, an issuance and a sign-in in the audit trail."""
    route = runtime.routes.get(WORKSPACE, "echo")
    assert route is not None
    grant_id = create_grant(runtime, route, subject="bob", client_id="client-bob")
    now = runtime.now()
    runtime.audit.record("token.issued", workspace=WORKSPACE, route_key=route.key, user_id="bob",
                         client_id="client-bob", grant_id=grant_id, grant_type="authorization_code", scope="mcp",
                         resource=route.resource, token_type="Bearer", expires_at=now + 3600)  # fmt: skip
    runtime.audit.record("user.signed_in", workspace=WORKSPACE, route_key=route.key, user_id="bob",
                         client_id="client-bob")  # fmt: skip
    runtime.usage.record(ToolCall(WORKSPACE, route.key, "echo", "client-bob", "bob", now, "ok", 12.0, 9.0))
    runtime.upstream_tokens.put(UpstreamToken("demo/notes", "bob", b"sealed", 1, None, now), None)
    return {"grant_id": grant_id, "route_key": route.key}


def _examples(seed: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """One call per operation of the document: (method, path template) -> the request (path, params, json)."""
    return {
        ("get", "/{workspace}/admin/api/session"): {},
        ("get", "/{workspace}/admin/api/overview"): {"params": {"window": "week"}},
        ("get", "/{workspace}/admin/api/clients"): {"params": {"limit": 10}},
        ("get", "/{workspace}/admin/api/grants"): {"params": {"client_id": "client-bob"}},
        ("get", "/{workspace}/admin/api/issuances"): {"params": {"user_id": "bob"}},
        ("get", "/{workspace}/admin/api/audit"): {"params": {"kind": ["user.signed_in"], "user_id": "bob"}},
        ("get", "/{workspace}/admin/api/audit/export"): {"params": {"format": "json"}},
        ("get", "/{workspace}/admin/api/funnel"): {"params": {"client_id": "client-bob"}},
        ("get", "/{workspace}/admin/api/keys"): {},
        ("get", "/{workspace}/admin/api/users/{user_id}"): {"path": {"user_id": "bob"}},
        ("post", "/{workspace}/admin/api/grants/revoke"): {"json": {"grant_id": seed["grant_id"]}},
        ("post", "/{workspace}/admin/api/clients/revoke"): {"json": {"client_id": "client-bob"}},
        ("post", "/{workspace}/admin/api/keys"): {"json": {"user_id": "bob", "name": "ci", "servers": ["echo"]}},
        ("post", "/{workspace}/admin/api/keys/revoke"): {"json": {"key_id": "<made by the example above>"}},
        ("post", "/{workspace}/admin/api/connections/disconnect"): {
            "json": {"route_key": "demo/notes", "user_id": "bob"}
        },
        ("post", "/{workspace}/admin/api/users/offboard"): {"json": {"user_id": "bob"}},
    }


def _document(admin: TestClient) -> dict[str, Any]:
    response = admin.get(f"/{WORKSPACE}/admin/api/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method, path) for path, item in document["paths"].items() for method in item]


def _url(template: str, path_values: dict[str, str]) -> str:
    url = template.replace("{workspace}", WORKSPACE)
    for name, value in path_values.items():
        url = url.replace("{" + name + "}", value)
    return url


def _validate(document: dict[str, Any], method: str, path: str, status: int, body: Any) -> None:
    responses = document["paths"][path][method]["responses"]
    content = responses[str(status)].get("content", {}).get("application/json", {})
    schema = content.get("schema")
    if schema:
        jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(body)


def test_every_operation_of_the_openapi_document_answers_as_documented(
    runtime: Runtime, admin: TestClient, csrf: str
) -> None:
    # Given a workspace with a grant, a call and audit events, and an administrator's session
    seed = _seed(runtime)
    document = _document(admin)
    examples = _examples(seed)

    # Then every operation of the document has an example (a new operation needs one here) and nothing else does
    operations = _operations(document)
    assert sorted(operations) == sorted(examples)

    # When each is called as its example says (reads first; a key revoked after it was made, offboarding last)
    created_key = None
    order = ("get", "/keys", "/keys/revoke", "/clients/revoke", "/grants/revoke", "/disconnect", "/offboard")
    for method, path in sorted(
        operations, key=lambda op: next(i for i, end in enumerate(order) if op[0] == end or op[1].endswith(end))
    ):
        example = dict(examples[(method, path)])
        if path.endswith("/keys/revoke"):
            example["json"] = {"key_id": created_key}
        response = admin.request(
            method.upper(), _url(path, example.get("path", {})), params=example.get("params"),
            json=example.get("json"), headers={"x-csrf-token": csrf},
        )  # fmt: skip

        # Then it answers its documented success, with a body its schema accepts
        assert response.status_code in (200, 201), (method, path, response.text)
        assert response.headers["cache-control"] == "no-store"
        if response.headers["content-type"].startswith("application/json"):
            _validate(document, method, path, response.status_code, response.json())
        if path.endswith("/admin/api/keys") and method == "post":
            created_key = response.json()["key"]["key_id"]


def test_the_document_is_openapi_3_with_every_path_under_the_workspaces_api(admin: TestClient) -> None:
    document = _document(admin)
    assert document["openapi"].startswith("3.")
    assert all(path.startswith("/{workspace}/admin/api/") for path in document["paths"])
    # the changes document the CSRF header nowhere as a parameter: it is checked by the dependency, so say it here
    assert "X-CSRF-Token" in document["info"]["description"]


@pytest.mark.parametrize("user", [None, "bob"])
def test_only_an_administrator_of_the_workspace_reads_or_acts(runtime: Runtime, user: str | None) -> None:
    # Given a grant, and a browser signed out (None) or signed in as bob, who is not one of the workspace's admins
    seed = _seed(runtime)
    with browser(runtime, user) as client:
        # When it reads or acts through the API
        read = client.get(f"{API}/grants")
        act = client.post(f"{API}/grants/revoke", json={"grant_id": seed["grant_id"]}, headers={"x-csrf-token": "x"})

    # Then it is refused (401 signed out, 403 not an admin) with a JSON error, and nothing changed
    expected = 401 if user is None else 403
    assert read.status_code == act.status_code == expected
    assert read.json()["error"] in ("unauthorized", "forbidden")
    grant = runtime.grants.get_grant(seed["grant_id"])
    assert grant is not None and grant.status == "active"


def test_a_change_without_the_sessions_csrf_token_is_refused(runtime: Runtime, admin: TestClient) -> None:
    seed = _seed(runtime)
    for headers in ({}, {"x-csrf-token": "not-the-token"}):
        response = admin.post(f"{API}/grants/revoke", json={"grant_id": seed["grant_id"]}, headers=headers)
        assert response.status_code == 403
    grant = runtime.grants.get_grant(seed["grant_id"])
    assert grant is not None and grant.status == "active"


def test_revoking_a_grant_ends_it_and_is_audited_as_the_admin(runtime: Runtime, admin: TestClient, csrf: str) -> None:
    # Given bob's grant
    seed = _seed(runtime)

    # When alice revokes it through the API
    response = admin.post(f"{API}/grants/revoke", json={"grant_id": seed["grant_id"]}, headers={"x-csrf-token": csrf})

    # Then it is revoked (the proxy refuses its tokens from the next call) and the audit names alice's console
    assert response.status_code == 200 and response.json()["kind"] == "grant"
    grant = runtime.grants.get_grant(seed["grant_id"])
    assert grant is not None and grant.status == "revoked"
    events = admin.get(f"{API}/audit", params={"kind": "grant.revoked"}).json()["items"]
    assert events[0]["detail"]["by"] == "console:alice" and events[0]["grant_id"] == seed["grant_id"]


def test_an_admin_acts_on_their_own_workspace_only(runtime: Runtime, admin: TestClient, csrf: str) -> None:
    # Given a grant in another workspace (same stores)
    from gateway.config import parse_config
    from tests.support.runtime import example_config_data

    data = example_config_data()
    data["workspaces"]["other"] = data["workspaces"]["demo"]
    runtime.config = parse_config(data)
    runtime._routes = None  # the route table follows the new configuration
    route = runtime.routes.get("other", "echo")
    assert route is not None
    foreign = create_grant(runtime, route, subject="carol", client_id="client-carol")

    # When demo's admin tries to revoke it, or the client that holds it, or to read it
    revoke = admin.post(f"{API}/grants/revoke", json={"grant_id": foreign}, headers={"x-csrf-token": csrf})
    client = admin.post(f"{API}/clients/revoke", json={"client_id": "client-carol"}, headers={"x-csrf-token": csrf})
    listed = admin.get(f"{API}/grants", params={"client_id": "client-carol"}).json()["items"]

    # Then nothing of the other workspace is touched or shown
    assert revoke.status_code == 404 and client.status_code == 404 and listed == []
    grant = runtime.grants.get_grant(foreign)
    assert grant is not None and grant.status == "active"


def test_a_created_key_is_shown_once_whole_and_never_listed_with_its_value(admin: TestClient, csrf: str) -> None:
    created = admin.post(
        f"{API}/keys", json={"user_id": "bob", "name": "nightly", "servers": ["echo"]}, headers={"x-csrf-token": csrf}
    ).json()
    assert created["value"].startswith("mcpgw_") and len(created["value"]) >= 60
    assert created["key"]["created_by"] == "console:alice"
    listed = admin.get(f"{API}/keys").text
    assert created["value"] not in listed and created["key"]["key_id"] in listed


def test_the_overview_shows_calls_errors_and_latency_split_per_route_and_tool(
    runtime: Runtime, admin: TestClient
) -> None:
    # Given three calls of echo (one failed upstream, one needed the user's upstream account) and one of another tool
    now = runtime.now()
    for outcome, total, upstream in (("ok", 10.0, 8.0), ("http_502", 30.0, 29.0), ("auth_required", 5.0, 4.0)):
        runtime.usage.record(ToolCall(WORKSPACE, "demo/echo", "echo", "c1", "alice", now, outcome, total, upstream))
    runtime.usage.record(ToolCall(WORKSPACE, "demo/echo", "add", "c2", "bob", now, "ok", 3.0, 2.0))

    # When the admin reads the last hour
    seen = admin.get(f"{API}/overview", params={"window": "hour"}).json()

    # Then the totals, failures by origin and percentiles add up, per route and per tool, with the top callers
    assert seen["total"]["calls"] == 4 and seen["total"]["errors_upstream"] == 1 and seen["total"]["errors_auth"] == 1
    tools = {row["name"]: row for row in seen["tools"]}
    assert tools["demo/echo echo"]["calls"] == 3 and tools["demo/echo add"]["calls"] == 1
    assert 1.8 <= tools["demo/echo add"]["upstream_p50_ms"] <= 2.2  # a histogram bucket's middle: within ~9 %
    assert seen["routes"][0]["name"] == "demo/echo" and seen["routes"][0]["calls"] == 4
    assert seen["top_clients"][0] == {"id": "c1", "calls": 3, "errors": 2}
    assert [user["id"] for user in seen["top_users"]] == ["alice", "bob"]


def test_the_audit_export_is_csv_with_formulas_defused(runtime: Runtime, admin: TestClient) -> None:
    runtime.audit.record("client.registered", workspace=WORKSPACE, client_id="c9", client_name="=HYPERLINK(1)")
    response = admin.get(f"{API}/audit/export", params={"format": "csv", "kind": "client.registered"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["client_id"] == "c9" and rows[0]["detail"].startswith('{"client_name":"=HYPERLINK(1)"')
    runtime.audit.record("client.registered", workspace=WORKSPACE, client_id="=cmd", client_name="x")
    rows = list(
        csv.DictReader(io.StringIO(admin.get(f"{API}/audit/export", params={"kind": "client.registered"}).text))
    )
    assert rows[0]["client_id"] == "'=cmd"


def test_the_funnel_shows_where_a_clients_users_stopped(runtime: Runtime, admin: TestClient) -> None:
    # Given two sign-ins started for a client, both users signed in, one consented and exchanged a code, none called
    for user in ("alice", "bob"):
        runtime.audit.record("authorize.started", workspace=WORKSPACE, client_id="c5")
        runtime.audit.record("user.signed_in", workspace=WORKSPACE, client_id="c5", user_id=user)
    runtime.audit.record("consent.granted", workspace=WORKSPACE, client_id="c5", user_id="alice")
    runtime.audit.record("token.issued", workspace=WORKSPACE, client_id="c5", user_id="alice",
                         grant_type="authorization_code")  # fmt: skip

    funnel = admin.get(f"{API}/funnel", params={"client_id": "c5"}).json()

    assert [(s["stage"], s["count"]) for s in funnel["stages"]] == [
        ("authorize started", 2), ("signed in", 2), ("consented", 1), ("code exchanged", 1), ("called a tool", 0)
    ]  # fmt: skip
    assert funnel["stopped_at"] == "consented"


def test_invalid_parameters_are_a_clear_422_not_a_500(admin: TestClient) -> None:
    for params in ({"window": "year"}, {"limit": 0}, {"limit": "x"}):
        path = f"{API}/overview" if "window" in params else f"{API}/grants"
        response = admin.get(path, params=params)
        assert response.status_code == 422 and response.json()["error"] == "invalid_request"
    assert admin.get(f"{API}/audit", params={"kind": "no.such"}).status_code == 422
