"""``client_credentials`` (RFC 6749 §4.4) for pre-registered confidential clients bound to a service identity: the
token endpoint, the grant behind each token, and the metadata that advertises the grant where it applies."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.config import ConfigError, parse_config
from gateway.oauth.metadata_documents import authorization_server_metadata
from gateway.runtime import Runtime
from gateway.web.proxy.app import create_app as proxy_app
from gateway.web.token.app import create_app as token_app
from tests.support.runtime import example_config_data, memory_runtime

NOW = 1_800_000_000
SERVICE = {"client_id": "ci", "client_name": "CI", "client_secret": "plain:ci-secret", "servers": ["echo"],
           "service_identity": "service:ci"}  # fmt: skip
PLAIN = {"client_id": "web", "client_name": "Web", "client_secret": "plain:web-secret",
         "redirect_uris": ["https://app.example.com/cb"]}  # fmt: skip
RESOURCE = "https://gw.example.com/demo/echo/mcp"


@pytest.fixture
def runtime() -> Runtime:
    data = example_config_data()
    data["workspaces"]["demo"]["clients"] = [SERVICE, PLAIN]
    return memory_runtime(parse_config(data), clock=lambda: NOW)


def _token(runtime: Runtime, auth: tuple[str, str] = ("ci", "ci-secret"), **form: str) -> Any:
    client = TestClient(token_app(runtime))
    return client.post("/demo/echo/token", data={"grant_type": "client_credentials", **form}, auth=auth)


def test_a_bound_client_gets_an_access_token_for_its_route_without_a_refresh_token(runtime: Runtime) -> None:
    # When the bound client asks with its secret and the route as resource
    response = _token(runtime, resource=RESOURCE)

    # Then it gets the route's audience-bound JWT, the default scopes, no refresh token, no caching
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["scope"] == "mcp" and response.headers["cache-control"] == "no-store"
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    claims = runtime.access_tokens.verify(body["access_token"], route=route, now=NOW)
    assert claims.subject == "service:ci" and claims.client_id == "ci" and claims.audience == RESOURCE
    # And a grant of the service identity backs it, ending with the token
    grant = runtime.grants.get_grant(claims.grant_id)
    assert grant is not None and grant.user_id == "service:ci" and grant.client_id == "ci"
    assert grant.absolute_expires_at == NOW + body["expires_in"] and grant.status == "active"


def test_the_token_is_refused_at_the_proxy_once_its_grant_is_revoked(runtime: Runtime) -> None:
    token = _token(runtime).json()["access_token"]
    proxy = TestClient(proxy_app(runtime))
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Authorization": f"Bearer {token}"}
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    grant_id = runtime.access_tokens.verify(token, route=route, now=NOW).grant_id

    runtime.grants.revoke_grant(grant_id, NOW, "admin")

    refused = proxy.post("/demo/echo/mcp", json=ping, headers=headers)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    ("auth", "form", "status", "error"),
    [
        (("web", "web-secret"), {}, 400, "unauthorized_client"),  # confidential, but bound to no identity
        (("ci", "wrong"), {}, 401, "invalid_client"),
        (("ci", "ci-secret"), {"resource": "https://gw.example.com/demo/toolbox/mcp"}, 400, "invalid_target"),
        (("ci", "ci-secret"), {"scope": "mcp admin"}, 400, "invalid_scope"),
        (("ci", "ci-secret"), {"scope": "offline_access"}, 400, "invalid_scope"),
    ],
)
def test_other_clients_wrong_secrets_resources_and_scopes_are_refused(
    runtime: Runtime, auth: tuple[str, str], form: dict[str, str], status: int, error: str
) -> None:
    response = _token(runtime, auth, **form)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_a_bound_client_is_refused_at_a_route_it_may_not_use(runtime: Runtime) -> None:
    client = TestClient(token_app(runtime))
    response = client.post("/demo/toolbox/token", data={"grant_type": "client_credentials"}, auth=("ci", "ci-secret"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_metadata_advertises_client_credentials_only_where_a_bound_client_may_use_the_route(runtime: Runtime) -> None:
    echo, toolbox = runtime.routes.get("demo", "echo"), runtime.routes.get("demo", "toolbox")
    assert echo is not None and toolbox is not None
    assert "client_credentials" in authorization_server_metadata(echo)["grant_types_supported"]
    assert "client_credentials" not in authorization_server_metadata(toolbox)["grant_types_supported"]


def test_a_service_identity_needs_a_client_secret() -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["clients"] = [{**SERVICE, "client_secret": None}]
    with pytest.raises(ConfigError, match="needs a client_secret"):
        parse_config(data)


def test_a_service_identity_takes_the_reserved_prefix_apart_from_the_identity_providers_users() -> None:
    # Given a service identity written like a person's user id
    data = example_config_data()
    data["workspaces"]["demo"]["clients"] = [{**SERVICE, "service_identity": "alice"}]
    # Then the configuration is refused, saying which prefix services take
    with pytest.raises(ConfigError, match="must be 'service:' followed by"):
        parse_config(data)


def test_a_dev_login_user_may_not_take_the_services_prefix() -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["identity_provider"]["users"][0]["id"] = "service:ci"
    with pytest.raises(ConfigError, match="reserved for the gateway's non-human principals"):
        parse_config(data)
