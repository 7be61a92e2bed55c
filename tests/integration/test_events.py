"""Every sample event in events/ runs through ``make invoke``'s code path and gets the answer its scenario promises.

The table below names, for each event file, the function it is for, the expected status and what a client relies
on in the response. A file missing from the table fails the suite, so no sample event can rot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra import placeholders
from infra.devserver import REPO_ROOT
from infra.invoke import UnknownFunction, discard_containers, function_names, invoke, readable
from infra.lambda_event import HttpApiRoutes
from infra.template import FunctionSpec

EVENTS = REPO_ROOT / "events"
DEMO_ORIGIN = "http://localhost:6274"


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any  # JSON parsed; an SSE stream as the list of its messages
    base: str  # the gateway's public base URL

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


Check = Callable[[Response], None]


def prm_of_demo_route(response: Response) -> None:
    # RFC 9728: `resource` is the route URL exactly; the route's own issuer is its authorization server.
    assert response.body["resource"] == f"{response.base}/demo/echo/mcp"
    assert response.body["authorization_servers"] == [f"{response.base}/demo/echo"]
    assert "mcp" in response.body["scopes_supported"]


def as_metadata_of_demo_route(response: Response) -> None:
    # RFC 8414 §3.3: the issuer matches the discovery URL's issuer exactly (no trailing slash).
    issuer = f"{response.base}/demo/echo"
    assert response.body["issuer"] == issuer
    assert response.body["authorization_endpoint"] == f"{issuer}/authorize"
    assert response.body["token_endpoint"] == f"{issuer}/token"
    assert "S256" in response.body["code_challenge_methods_supported"]


def jwks(response: Response) -> None:
    keys = response.body["keys"]
    assert keys
    assert all(key["kid"] and key["kty"] and "d" not in key for key in keys)


def error_json(response: Response) -> None:
    assert response.body["error"]
    assert response.body["error_description"]


def cors_preflight(response: Response) -> None:
    assert response.header("access-control-allow-origin") in ("*", DEMO_ORIGIN)
    assert "GET" in response.header("access-control-allow-methods")


def challenge(response: Response) -> None:
    # MCP authorization: the 401 points the client at the route's PRM and names the scope to request.
    assert response.header("www-authenticate") == (
        f'Bearer resource_metadata="{response.base}/.well-known/oauth-protected-resource/demo/echo/mcp", scope="mcp"'
    )


def invalid_token(response: Response) -> None:
    value = response.header("www-authenticate")
    assert value.startswith(f'Bearer resource_metadata="{response.base}/.well-known/oauth-protected-resource/')
    assert 'error="invalid_token"' in value


def mcp_preflight(response: Response) -> None:
    assert response.header("access-control-allow-origin") == DEMO_ORIGIN
    assert "authorization" in response.header("access-control-allow-headers").lower()


def only_message(response: Response) -> dict[str, Any]:
    messages = response.body if isinstance(response.body, list) else [response.body]
    assert len(messages) == 1
    message: dict[str, Any] = messages[0]
    return message


def initialized(response: Response) -> None:
    result = only_message(response)["result"]
    assert result["serverInfo"]["name"] == "demo-upstream"
    assert result["protocolVersion"] == "2025-06-18"


def lists_echo(response: Response) -> None:
    tools = only_message(response)["result"]["tools"]
    assert [tool["name"] for tool in tools] == ["echo"]


def echoed(response: Response) -> None:
    result = only_message(response)["result"]
    assert result["isError"] is False
    assert result["content"] == [{"type": "text", "text": "hello from the gateway"}]


def lists_the_virtual_say(response: Response) -> None:
    # A virtual route: the demo upstream's echo, prefixed and renamed by its projection, with its annotations.
    [tool] = only_message(response)["result"]["tools"]
    assert tool["name"] == "demo_say" and tool["description"] == "Say the given text back."
    assert tool["annotations"]["readOnlyHint"] is True


def said_back(response: Response) -> None:
    result = only_message(response)["result"]
    assert result["content"] == [{"type": "text", "text": "hello from a virtual route"}]


def no_body(response: Response) -> None:
    # MCP Streamable HTTP: a notification the server accepts is answered 202 Accepted with no body.
    assert not response.body


def unknown_session(response: Response) -> None:
    # MCP §Session Management: a session id the server does not know gets 404; the body answers the request's id.
    assert response.body["id"] == 3
    assert response.body["error"]["code"] == -32001


def oauth_error(code: str) -> Check:
    """An RFC 6749 §5.2 / RFC 7591 §3.2.2 error response, never cached."""

    def check(response: Response) -> None:
        assert response.body["error"] == code
        assert response.header("cache-control") == "no-store"

    return check


def preflight(response: Response) -> None:
    assert response.header("access-control-allow-origin")


def redirects_to_login(response: Response) -> None:
    assert response.header("location").startswith(f"{response.base}/demo/login?")
    assert response.header("cache-control") == "no-store"


def error_page_with_a_link_to_the_client(response: Response) -> None:
    # RFC 6749 §4.1.2.1 with RFC 9207's iss: the error answer for the client's registered redirect URI; a dynamically
    # registered client's URI is nobody's promise, so it is a link on the gateway's page, not a redirect (RFC 9700
    # §4.11.2).
    assert not response.header("location")
    assert response.header("content-type").startswith("text/html")
    assert 'href="http://127.0.0.1:33418/callback?error=invalid_request' in response.body
    assert "iss=" in response.body


def error_page_without_redirect(response: Response) -> None:
    # RFC 6749 §4.1.2.1: an unverifiable client must not be redirected to.
    assert not response.header("location")
    assert response.header("content-type").startswith("text/html")


def login_form(response: Response) -> None:
    assert response.header("content-type").startswith("text/html")
    assert "<form" in response.body


def registered(confidential: bool) -> Check:
    def check(response: Response) -> None:
        assert response.body["client_id"]
        assert ("client_secret" in response.body) is confidential
        assert response.header("cache-control") == "no-store"

    return check


def tokens(refresh: bool) -> Check:
    def check(response: Response) -> None:
        assert response.body["access_token"]
        assert response.body["token_type"].lower() == "bearer"
        if refresh:
            assert response.body["refresh_token"]
        assert response.header("cache-control") == "no-store"

    return check


@dataclass(frozen=True)
class Expected:
    function: str
    status: int
    check: Check | None = None


EXPECTED: dict[str, Expected] = {
    "metadata-prm.json": Expected("metadata", 200, prm_of_demo_route),
    "metadata-prm-root.json": Expected("metadata", 200, prm_of_demo_route),  # the configured default route
    "metadata-as-path-inserted.json": Expected("metadata", 200, as_metadata_of_demo_route),
    "metadata-oidc-path-inserted.json": Expected("metadata", 200, as_metadata_of_demo_route),
    "metadata-oidc-path-appended.json": Expected("metadata", 200, as_metadata_of_demo_route),
    "metadata-as-root.json": Expected("metadata", 200, as_metadata_of_demo_route),
    "metadata-jwks.json": Expected("metadata", 200, jwks),
    "metadata-unknown-route.json": Expected("metadata", 404, error_json),
    "metadata-preflight.json": Expected("metadata", 204, cors_preflight),
    "proxy-unauthenticated.json": Expected("proxy", 401, challenge),
    "proxy-invalid-token.json": Expected("proxy", 401, invalid_token),
    "proxy-expired-token.json": Expected("proxy", 401, invalid_token),
    "proxy-preflight.json": Expected("proxy", 204, mcp_preflight),
    "proxy-unknown-server.json": Expected("proxy", 404, error_json),
    "proxy-initialize.json": Expected("proxy", 200, initialized),
    "proxy-tools-list.json": Expected("proxy", 200, lists_echo),
    "proxy-tools-call.json": Expected("proxy", 200, echoed),
    "proxy-api-key-tools-call.json": Expected("proxy", 200, echoed),
    "proxy-unknown-api-key.json": Expected("proxy", 401, invalid_token),
    "proxy-notification.json": Expected("proxy", 202, no_body),
    "proxy-virtual-tools-list.json": Expected("proxy", 200, lists_the_virtual_say),
    "proxy-virtual-tools-call.json": Expected("proxy", 200, said_back),
    "proxy-unknown-session.json": Expected("proxy", 404, unknown_session),
    "register-public-client.json": Expected("register", 201, registered(confidential=False)),
    "register-confidential-client.json": Expected("register", 201, registered(confidential=True)),
    "register-invalid-redirect.json": Expected("register", 400, oauth_error("invalid_redirect_uri")),
    "register-malformed-json.json": Expected("register", 400, oauth_error("invalid_client_metadata")),
    "register-preflight.json": Expected("register", 204, preflight),
    "authorize-start.json": Expected("authorize", 303, redirects_to_login),
    "authorize-missing-pkce.json": Expected("authorize", 400, error_page_with_a_link_to_the_client),
    "authorize-unknown-client.json": Expected("authorize", 400, error_page_without_redirect),
    "login-page.json": Expected("authorize", 200, login_form),
    # The demo route `echo` has no upstream OAuth: its connect address is a clear 404 page, link or not.
    "connect-link-unauthenticated.json": Expected("authorize", 404, error_page_without_redirect),
    # A callback whose state this browser never started (no flow cookie): a 400 page, the code is never redeemed.
    "connect-callback-bad-state.json": Expected("authorize", 400, error_page_without_redirect),
    "token-authorization-code.json": Expected("token", 200, tokens(refresh=True)),
    "token-refresh.json": Expected("token", 200, tokens(refresh=True)),
    "token-invalid-grant.json": Expected("token", 400, oauth_error("invalid_grant")),
    "token-unsupported-grant-type.json": Expected("token", 400, oauth_error("unsupported_grant_type")),
    "token-wrong-content-type.json": Expected("token", 400, oauth_error("invalid_request")),
    "token-preflight.json": Expected("token", 204, preflight),
    "revoke-refresh-token.json": Expected("token", 200),  # RFC 7009 §2.2: 200 whether or not the token was valid
}


def assert_answers_as_expected(expected: Expected, result: dict[str, Any], env: dict[str, str]) -> None:
    """The Lambda response ``result`` has the status the table names and passes its check."""
    shown = readable(result)
    response = Response(
        status=result["statusCode"],
        headers={key.lower(): value for key, value in (result.get("headers") or {}).items()},
        body=shown.get("body"),
        base=env["GATEWAY_PUBLIC_BASE_URL"],
    )
    assert response.status == expected.status, shown
    if expected.check is not None:
        expected.check(response)


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


@pytest.fixture(scope="module")
def functions_env(gateway_env: dict[str, str]) -> dict[str, str]:
    discard_containers()  # cold starts: nothing cached from other modules' tests
    return gateway_env


def test_every_event_file_is_in_the_table() -> None:
    on_disk = {path.name for path in EVENTS.glob("*.json")}

    assert on_disk == set(EXPECTED), "add each new event file to EXPECTED (and remove deleted ones)"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_is_a_valid_http_api_event_for_its_function(name: str, template: dict[str, Any]) -> None:
    # Given the event and the function the table names
    event = load(name)
    spec: FunctionSpec = function_names(template)[EXPECTED[name].function]
    routes: HttpApiRoutes[str] = HttpApiRoutes()
    for route in spec.routes:
        routes.add(route.method, route.path, route.route_key)

    # Then it is a payload-2.0 event whose route key is the function's route its path selects, as in AWS
    match = routes.match(event["requestContext"]["http"]["method"], event["rawPath"])
    assert match is not None, f"{event['rawPath']} is not a route of {spec.logical_id}"
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == match.route_key
    assert event.get("pathParameters", {}) == match.path_parameters
    assert event["requestContext"]["http"]["path"] == event["rawPath"]
    assert event["requestContext"]["stage"] == "$default"
    assert isinstance(event["isBase64Encoded"], bool)
    assert all(name == name.lower() for name in event["headers"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_gets_its_expected_response(name: str, functions_env: dict[str, str]) -> None:
    expected = EXPECTED[name]

    # When the event is invoked as `make invoke` does (placeholders filled)
    result = invoke(expected.function, load(name), env=functions_env)

    # Then the function answers as the scenario promises
    assert_answers_as_expected(expected, result, functions_env)


@pytest.mark.parametrize("name", sorted(name for name, expected in EXPECTED.items() if expected.function != "proxy"))
def test_event_gets_the_same_response_through_the_rest_api_front_door(name: str, functions_env: dict[str, str]) -> None:
    # Given the streaming deployment, whose REST API invokes every function but the proxy with Lambda proxy events of
    # payload format 1.0 (the proxy answers through the Lambda Web Adapter instead: tests/e2e/test_streaming.py)
    expected = EXPECTED[name]

    # When the same request arrives in that shape
    result = invoke(expected.function, load(name), env=functions_env, rest_api=True)

    # Then the function answers as it does behind the HTTP API
    assert_answers_as_expected(expected, result, functions_env)


def test_an_unknown_placeholder_is_a_clear_error(functions_env: dict[str, str]) -> None:
    # Given an event naming a placeholder nobody fills
    event = load("proxy-tools-call.json")
    event["headers"]["authorization"] = "Bearer {{NO_SUCH_VALUE}}"

    # Then invoking it fails, naming the unknown placeholder and the known ones
    with pytest.raises(placeholders.UnknownPlaceholder, match=r"\{\{NO_SUCH_VALUE\}\}.*\{\{ACCESS_TOKEN\}\}"):
        invoke("proxy", event, env=functions_env)


def test_an_unknown_function_lists_the_valid_names(functions_env: dict[str, str]) -> None:
    with pytest.raises(UnknownFunction, match="metadata, proxy"):
        invoke("nope", load("metadata-prm.json"), env=functions_env)


def test_make_invoke_prints_the_response_as_json(tmp_path: Path) -> None:
    # Given no running `make dev` (a state file that does not exist)
    env: Mapping[str, str] = {**os.environ, "DEV_STATE_FILE": str(tmp_path / "state.json")}

    # When `python -m infra.invoke metadata events/metadata-prm.json` runs
    completed = subprocess.run(
        [sys.executable, "-m", "infra.invoke", "metadata", "events/metadata-prm.json"],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )

    # Then it starts a temporary stack and prints the Lambda response with its JSON body parsed
    assert completed.returncode == 0, completed.stderr
    printed = json.loads(completed.stdout)
    assert printed["statusCode"] == 200
    assert printed["body"]["resource"] == "http://127.0.0.1:9000/demo/echo/mcp"
