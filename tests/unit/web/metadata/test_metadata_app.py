"""Discovery: PRM and authorization-server metadata at every URL MCP clients try."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.web.metadata.app import create_app
from tests.support.runtime import example_config_data, memory_runtime

ISSUER = "https://gw.example.com/demo/echo"


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(memory_runtime()))


def test_path_scoped_prm_names_the_route_and_its_issuer(client: TestClient) -> None:
    response = client.get("/.well-known/oauth-protected-resource/demo/echo/mcp")
    assert response.status_code == 200
    assert response.json() == {
        "resource": "https://gw.example.com/demo/echo/mcp",
        "authorization_servers": [ISSUER],
        "scopes_supported": ["mcp", "offline_access"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Echo (demo)",
    }
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-authorization-server/demo/echo",
        "/.well-known/openid-configuration/demo/echo",
        "/demo/echo/.well-known/openid-configuration",
        "/demo/echo/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ],
)
def test_authorization_server_metadata_is_served_at_every_discovery_url(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == ISSUER
    assert metadata["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert metadata["token_endpoint"] == f"{ISSUER}/token"
    assert metadata["registration_endpoint"] == f"{ISSUER}/register"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["client_id_metadata_document_supported"] is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]


def test_the_root_prm_answers_for_the_default_route(client: TestClient) -> None:
    assert client.get("/.well-known/oauth-protected-resource").json()["resource"].endswith("/demo/echo/mcp")


def test_without_a_default_route_root_urls_answer_404() -> None:
    data = example_config_data()
    data.pop("default_route")
    client = TestClient(create_app(memory_runtime(parse_config(data))))
    response = client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 404
    assert "no default route" in response.json()["error_description"]


def test_unknown_routes_get_a_clear_json_404(client: TestClient) -> None:
    response = client.get("/.well-known/oauth-protected-resource/demo/nope/mcp")
    assert response.status_code == 404
    assert response.json()["error_description"] == "no MCP server 'nope' in workspace 'demo'"


def test_preflight_is_answered_for_browser_clients(client: TestClient) -> None:
    response = client.options(
        "/.well-known/oauth-protected-resource/demo/echo/mcp",
        headers={"Origin": "http://localhost:6274", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"


def test_the_jwks_lists_the_signing_key(client: TestClient) -> None:
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["use"] == "sig"


def test_the_host_header_does_not_change_any_url(client: TestClient) -> None:
    response = client.get("/.well-known/oauth-protected-resource/demo/echo/mcp", headers={"Host": "evil.example"})
    assert "evil" not in response.text


def test_serving_prm_imports_no_aws_sdk() -> None:
    # Given a fresh interpreter, When the metadata function serves a PRM request, Then the AWS SDK was never loaded:
    # no boto3 and no botocore module (clients, sessions, models). Only the top-level ``botocore`` package, whose
    # __init__ Powertools imports to read the SDK's version for its user agent (well under a millisecond), may be.
    script = (
        "import os, sys;"
        "os.environ.update(GATEWAY_CONFIG='examples/gateway.yaml', GATEWAY_PUBLIC_BASE_URL='https://gw.example.com');"
        "from starlette.testclient import TestClient;"
        "from metadata.app import function; app = function.app;"
        "r = TestClient(app).get('/.well-known/oauth-protected-resource/demo/echo/mcp');"
        "assert r.status_code == 200, r.text;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'boto3' or m.startswith('botocore.')))"
    )
    root = Path(__file__).resolve().parents[4]
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root).stdout
    assert output.strip() == "[]"


def test_serving_as_metadata_imports_no_jose_or_http_client_library() -> None:
    # Given a fresh interpreter, When the metadata function serves AS metadata (private_key_jwt, DPoP and, with an
    # enterprise issuer, the ID-JAG profile advertised), Then neither PyJWT, cryptography nor httpx was imported: the
    # advertised names come from modules that import nothing (gateway.tokens.algorithms, oauth.enterprise_issuers)
    script = (
        "import os, sys;"
        "os.environ.update(GATEWAY_CONFIG='examples/gateway.yaml', GATEWAY_PUBLIC_BASE_URL='https://gw.example.com');"
        "from starlette.testclient import TestClient;"
        "from metadata.app import function; app = function.app;"
        "r = TestClient(app).get('/.well-known/oauth-authorization-server/demo/echo');"
        "assert r.status_code == 200 and 'private_key_jwt' in r.text, r.text;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jwt', 'cryptography', 'httpx', 'httpcore'}))"
    )
    root = Path(__file__).resolve().parents[4]
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root).stdout
    assert output.strip() == "[]"


def test_a_virtual_routes_client_metadata_document_lists_each_oauth_upstreams_callback() -> None:
    # Given a virtual route with two upstreams: one connected with OAuth, one without credentials
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "upstreams": {
            "notes": {"url": "https://notes.example.com/mcp", "auth": {"type": "oauth", "registration": "cimd"}},
            "plain": {"url": "https://plain.example.com/mcp"},
        }
    }
    client = TestClient(create_app(memory_runtime(parse_config(data))))
    # When an upstream's authorization server fetches the gateway's document for that route
    response = client.get("/demo/toolbox/oauth-client.json")
    # Then it is served, and names the OAuth upstream's own callback (RFC 9700 §4.4.2.2: one per upstream)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["client_id"] == "https://gw.example.com/demo/toolbox/oauth-client.json"
    assert document["redirect_uris"] == ["https://gw.example.com/demo/toolbox/connect/callback?upstream=notes"]
    # and a route whose upstream needs no OAuth has no document
    assert client.get("/demo/echo/oauth-client.json").status_code == 404
