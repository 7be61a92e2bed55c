"""Client quirk profiles: what each major MCP client is publicly documented to send, replayed as raw HTTP against the
dev server (the template's HTTP API, over moto), one test per behaviour.

These are replays, not the real clients: each test sends the requests a client is reported to send (its registration
metadata, which parameters it omits or adds at /authorize and /token, how it authenticates, where it redirects), and
checks that the gateway tolerates it. Every test's docstring names the public thread the behaviour comes from. Where
the flow yields a token, the test ends by calling the MCP endpoint with it (tools/list on the demo route).

A second dev server (:func:`second_gateway`, in a subprocess sharing the session's moto) serves a configuration with
a pre-registered client and without a default route, which the session's ``dev_server`` cannot serve (its
configuration is read once per process).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from infra.demo_upstream import DemoUpstream
from infra.dev import DEMO_UPSTREAM_URL, EXAMPLE_CONFIG
from infra.devserver import REPO_ROOT, DevServer
from tests.support import oauth_http
from tests.support.oauth_http import (
    AuthorizationRefused,
    AuthorizationResponse,
    ClientAuth,
    Discovery,
    OAuthHttpError,
    Pkce,
    Registration,
    TokenSet,
    authorization_params,
    authorize,
    discover,
    exchange_code,
    register,
)
from tests.unit.net.https_server import Reply

if TYPE_CHECKING:  # pytest loads the conftest itself; importing it again would run it twice
    from tests.e2e.conftest import IsolatedGateway

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
WORKSPACE, SERVER = "demo", "echo"
DEMO_TOOL = "echo"  # infra/demo_upstream.py
DEMO_PROMPT = "echo_prompt"
DEMO_RESOURCE = "demo://greeting"

# Redirect URIs as the clients send them (see each test's source).
CLAUDE_AI_CALLBACK = "https://claude.ai/api/mcp/auth_callback"
CURSOR_CALLBACKS = [
    "cursor://anysphere.cursor-mcp/oauth/callback",
    "https://www.cursor.com/agents/mcp/oauth/callback",
    "http://localhost:8787/callback",
]
VSCODE_CALLBACKS = [
    "https://insiders.vscode.dev/redirect",
    "https://vscode.dev/redirect",
    "http://127.0.0.1/",
    "http://127.0.0.1:33418/",
]
PREREGISTERED_ID = "claude-code-corp"
PREREGISTERED_SECRET_VARIABLE = "QUIRKS_PREREGISTERED_SECRET"
PREREGISTERED_CALLBACK = "http://localhost:8080/callback"  # claude mcp add --callback-port 8080


# --- fixtures and helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(dev_server: DevServer) -> Discovery:
    """The demo route's discovery documents, fetched the path-aware way (no proxy call needed)."""
    return discover(route_mcp_url(dev_server.url), use_challenge=False)


def route_mcp_url(base_url: str) -> str:
    return oauth_http.route_url(base_url, WORKSPACE, SERVER)


def random_port(free_port: Callable[[], int]) -> int:
    """A port number for a loopback redirect URI; nothing listens there (the redirect is captured, not followed)."""
    return free_port()


def public_client(name: str, redirect_uris: list[str], **extra: object) -> dict[str, object]:
    """Registration metadata of a public native client as MCP clients send it."""
    return {
        "client_name": name,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **extra,
    }


@dataclass(frozen=True)
class Flow:
    answer: AuthorizationResponse
    tokens: TokenSet
    pkce: Pkce


def authorize_ok(
    found: Discovery,
    client_id: str,
    redirect_uri: str,
    *,
    scope: str | None = None,
    resource: str | None = None,
) -> tuple[AuthorizationResponse, Pkce]:
    """Authorize with exactly these parameters (``scope``/``resource`` only when given) and assert a code came back
    to ``redirect_uri`` with our state and issuer (RFC 9207)."""
    pkce = Pkce.new()
    state = secrets.token_urlsafe(16)
    answer = authorize(
        found.authorization_endpoint,
        authorization_params(client_id, redirect_uri, pkce, state=state, scope=scope, resource=resource),
    )
    assert answer.redirected_to(redirect_uri), answer.location
    assert answer.error is None, answer.params
    assert answer.code is not None and answer.state == state and answer.iss == found.issuer, answer.params
    return answer, pkce


def full_flow(
    found: Discovery,
    registration: Registration,
    redirect_uri: str,
    *,
    auth: ClientAuth | None = None,
    scope: str | None = None,
    resource: str | None = None,
    token_resource: str | None = None,
) -> Flow:
    answer, pkce = authorize_ok(found, registration.client_id, redirect_uri, scope=scope, resource=resource)
    assert answer.code is not None
    tokens = exchange_code(
        found.token_endpoint,
        code=answer.code,
        redirect_uri=redirect_uri,
        code_verifier=pkce.verifier,
        auth=auth or registration.auth(),
        resource=token_resource,
    )
    return Flow(answer, tokens, pkce)


def assert_mcp_works(found: Discovery, tokens: TokenSet) -> None:
    """The token works on the route: tools/list, prompts/list and resources/list reach the demo upstream."""
    assert DEMO_TOOL in oauth_http.tool_names(found.resource, tokens.access_token)
    prompts = oauth_http.mcp_call(found.resource, tokens.access_token, "prompts/list")["prompts"]
    assert DEMO_PROMPT in [prompt["name"] for prompt in prompts]
    resources = oauth_http.mcp_call(found.resource, tokens.access_token, "resources/list")["resources"]
    assert DEMO_RESOURCE in [resource["uri"] for resource in resources]


# --- a second gateway: a pre-registered client, no default route --------------------------------------------------


@dataclass(frozen=True)
class SecondGateway:
    url: str
    secret: str

    @property
    def mcp_url(self) -> str:
        return route_mcp_url(self.url)


def second_config(upstream_url: str) -> dict[str, object]:
    """examples/gateway.yaml without ``default_route`` and with a confidential pre-registered client (its secret
    read from the environment, as an ``env:`` reference), as an administrator sets one up for
    ``claude mcp add --client-id … --client-secret … --callback-port 8080``."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8").replace(DEMO_UPSTREAM_URL, upstream_url)
    config: dict[str, object] = yaml.safe_load(text)
    config.pop("default_route", None)
    workspaces = config["workspaces"]
    assert isinstance(workspaces, dict)
    workspaces[WORKSPACE]["clients"] = [
        {
            "client_id": PREREGISTERED_ID,
            "client_secret": f"env:{PREREGISTERED_SECRET_VARIABLE}",
            "client_name": "Claude Code (corporate)",
            "redirect_uris": [PREREGISTERED_CALLBACK],
            "servers": [SERVER],
        }
    ]
    return config


SERVE = """
import sys
from infra.dev import TEMPLATE_PATH
from infra.devserver import start_dev_server
from infra.template import load_template

server = start_dev_server(load_template(TEMPLATE_PATH), {}, host="127.0.0.1", port=int(sys.argv[1]))
print("ready", server.url, flush=True)
sys.stdin.read()
server.stop()
"""


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


@pytest.fixture(scope="module")
def second_gateway(
    gateway_env: dict[str, str], demo_upstream: DemoUpstream, free_port: Callable[[], int]
) -> Iterator[SecondGateway]:
    """A dev server in a subprocess serving :func:`second_config` on the session's moto (same tables, keys and
    shared secret: only the configuration and the base URL differ)."""
    upstream_url = demo_upstream.url
    port = free_port()
    secret = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="quirks-gateway-") as directory:
        config_path = Path(directory) / "gateway.yaml"
        config_path.write_text(yaml.safe_dump(second_config(upstream_url)), encoding="utf-8")
        env = {
            **os.environ,
            **gateway_env,
            "GATEWAY_CONFIG": str(config_path),
            "GATEWAY_PUBLIC_BASE_URL": f"http://{HOST}:{port}",
            PREREGISTERED_SECRET_VARIABLE: secret,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "functions"), str(REPO_ROOT)]),
        }
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None and process.stdin is not None
        try:
            lines: list[str] = []
            for line in process.stdout:
                lines.append(line)
                if line.startswith("ready "):
                    break
            else:
                raise RuntimeError("the second dev server did not start:\n" + "".join(lines[-40:]))
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
            yield SecondGateway(line.split()[1], secret)
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- Claude Code ----------------------------------------------------------------------------------------------


def test_claude_code_omits_scope_and_resource_and_gets_the_route_defaults(
    gateway: Discovery, free_port: Callable[[], int]
) -> None:
    """Claude Code sends no ``scope`` (anthropics/claude-code#12077, #4540) and no ``resource`` at /authorize or
    /token (anthropics/claude-code#10572, #90497); it registers a public client with a
    ``http://localhost:<port>/callback`` redirect (elmohq/elmo#684 captured Claude Code 2.1's registration)."""
    # Given Claude Code registered as it does
    redirect_uri = f"http://localhost:{random_port(free_port)}/callback"
    registration = register(gateway.registration_endpoint, public_client("Claude Code (demo)", [redirect_uri]))
    # When it authorizes and exchanges the code with neither scope nor resource
    flow = full_flow(gateway, registration, redirect_uri)
    # Then the route's default scope is granted and the token works on the route
    assert flow.tokens.scope == "mcp"
    assert_mcp_works(gateway, flow.tokens)
    # And it refreshes (again without scope or resource) to a working token
    assert flow.tokens.refresh_token is not None
    renewed = oauth_http.refresh(gateway.token_endpoint, flow.tokens.refresh_token, auth=registration.auth())
    assert renewed.refresh_token is not None and renewed.refresh_token != flow.tokens.refresh_token
    assert_mcp_works(gateway, renewed)


def test_claude_code_trailing_slash_on_resource_is_the_route(gateway: Discovery, free_port: Callable[[], int]) -> None:
    """Claude Code appends a trailing slash to ``resource`` on both /authorize and /token
    (anthropics/claude-code#52871)."""
    # Given a Claude Code registration
    redirect_uri = f"http://localhost:{random_port(free_port)}/callback"
    registration = register(gateway.registration_endpoint, public_client("Claude Code (demo)", [redirect_uri]))
    # When it sends the route URL with a trailing slash as resource at /authorize and /token
    slashed = gateway.resource + "/"
    flow = full_flow(gateway, registration, redirect_uri, resource=slashed, token_resource=slashed)
    # Then it gets a token for the route
    assert_mcp_works(gateway, flow.tokens)


def test_claude_code_fixed_callback_port_is_registered_and_used_exactly(
    gateway: Discovery, free_port: Callable[[], int]
) -> None:
    """``claude mcp add --callback-port PORT`` registers and uses ``http://localhost:PORT/callback`` exactly (Claude
    Code's MCP docs, quoted in labsai/EDDI#805; anthropics/claude-code#55067 on the port being honoured)."""
    # Given Claude Code with --callback-port registered its fixed redirect
    redirect_uri = f"http://localhost:{random_port(free_port)}/callback"
    registration = register(gateway.registration_endpoint, public_client("Claude Code (demo)", [redirect_uri]))
    assert registration.metadata["redirect_uris"] == [redirect_uri]
    # When it authorizes with that exact URI
    flow = full_flow(gateway, registration, redirect_uri)
    # Then the browser is sent back to exactly that URI (same host spelling, port and path)
    assert flow.answer.location.startswith(redirect_uri + "?")
    assert_mcp_works(gateway, flow.tokens)


def test_claude_code_preregistered_client_id_and_secret(second_gateway: SecondGateway) -> None:
    """``claude mcp add --client-id … --client-secret … --callback-port 8080`` for servers without DCR (Claude Code's
    MCP docs as quoted in labsai/EDDI#805; anthropics/claude-code#90190 uses ``--client-id`` with
    ``--callback-port``). Claude Code authenticates with HTTP Basic when it holds a secret
    (kernel/kernel-mcp-server#96)."""
    # Given a client pre-registered by the administrator (no registration request is made)
    found = discover(second_gateway.mcp_url, use_challenge=False)
    registration = Registration(
        PREREGISTERED_ID, second_gateway.secret, {"token_endpoint_auth_method": "client_secret_basic"}
    )
    # When the wrong secret is presented, then the client is refused
    answer, pkce = authorize_ok(found, PREREGISTERED_ID, PREREGISTERED_CALLBACK)
    assert answer.code is not None
    with pytest.raises(OAuthHttpError) as refused:
        exchange_code(
            found.token_endpoint,
            code=answer.code,
            redirect_uri=PREREGISTERED_CALLBACK,
            code_verifier=pkce.verifier,
            auth=ClientAuth(PREREGISTERED_ID, "not-the-secret", "client_secret_basic"),
        )
    assert refused.value.status_code == 401 and refused.value.json()["error"] == "invalid_client"
    # When it authorizes with its fixed callback and exchanges with Basic and its real secret
    flow = full_flow(found, registration, PREREGISTERED_CALLBACK)
    # Then the token works on the route
    assert_mcp_works(found, flow.tokens)


def test_claude_code_root_only_discovery_finds_the_default_route(dev_server: DevServer, gateway: Discovery) -> None:
    """Some Claude Code versions build the AS metadata URL as ``new URL('/.well-known/oauth-authorization-server',
    issuer)``, dropping the issuer's path (anthropics/claude-code#95270), or ignore ``resource_metadata`` and fall
    back to the bare origin (anthropics/claude-code#85563). The root URLs answer for the default route."""
    # When a client reads only the root well-known URLs
    root_prm = oauth_http.fetch_json(f"{dev_server.url}/.well-known/oauth-protected-resource")
    root_as = oauth_http.fetch_json(f"{dev_server.url}/.well-known/oauth-authorization-server")
    # Then they describe the default route (demo/echo), registration endpoint included
    assert root_prm["resource"] == gateway.resource
    assert root_as == gateway.as_metadata
    # And a flow through those endpoints yields a working token
    found = Discovery(f"{dev_server.url}/.well-known/oauth-protected-resource", root_prm, "", root_as)
    redirect_uri = "http://localhost:45678/callback"
    registration = register(found.registration_endpoint, public_client("Claude Code (demo)", [redirect_uri]))
    flow = full_flow(found, registration, redirect_uri)
    assert_mcp_works(gateway, flow.tokens)


def test_without_a_default_route_root_discovery_urls_answer_404(second_gateway: SecondGateway) -> None:
    """The design brief's rule for clients that only try root URLs (anthropics/claude-code#95270): without a
    configured default route the root well-known URLs answer 404 (with a JSON error), never another route's
    metadata; the path-scoped URLs still answer."""
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ):
        # When a client fetches a root URL
        response = httpx.get(f"{second_gateway.url}{path}")
        # Then it is a JSON 404
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
    # And the route's own discovery still works
    assert discover(second_gateway.mcp_url, use_challenge=False).resource == second_gateway.mcp_url


# --- claude.ai ------------------------------------------------------------------------------------------------


def test_claude_ai_path_aware_discovery(dev_server: DevServer, gateway: Discovery) -> None:
    """claude.ai's discovery follows ``resource_metadata`` and, for an issuer with a path, tries only the RFC 8414
    path-aware well-known URLs (anthropics/claude-ai-mcp#82, maintainer's comment; #367)."""
    # When the client starts from the 401 of the MCP endpoint
    found = discover(route_mcp_url(dev_server.url))
    # Then the PRM is the path-scoped one, its issuer has the route's path, and the metadata is at the
    # path-inserted RFC 8414 URL with exactly that issuer
    assert found.prm_url == f"{dev_server.url}/.well-known/oauth-protected-resource/demo/echo/mcp"
    assert found.prm["authorization_servers"] == [f"{dev_server.url}/demo/echo"]
    assert found.as_metadata_url == f"{dev_server.url}/.well-known/oauth-authorization-server/demo/echo"
    assert found.issuer == f"{dev_server.url}/demo/echo"
    assert found.authorization_endpoint.startswith(found.issuer + "/")


def test_claude_ai_registers_client_secret_post_with_its_callback(gateway: Discovery) -> None:
    """claude.ai registers ``{"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
    "token_endpoint_auth_method": "client_secret_post", ...}`` (anthropics/claude-ai-mcp#1043; the body is quoted in
    PostHog/posthog#48397) and authenticates at /token with the secret in the body (anthropics/claude-ai-mcp#667)."""
    # Given claude.ai's registration request
    registration = register(
        gateway.registration_endpoint,
        {
            "redirect_uris": [CLAUDE_AI_CALLBACK],
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "Claude",
        },
    )
    # Then a confidential client was registered as asked
    assert registration.token_endpoint_auth_method == "client_secret_post"
    assert registration.client_secret
    # When it authorizes, the browser goes back to claude.ai's callback with the code
    flow = full_flow(
        gateway, registration, CLAUDE_AI_CALLBACK, resource=gateway.resource, token_resource=gateway.resource
    )
    assert flow.answer.location.startswith(CLAUDE_AI_CALLBACK + "?code=")
    # And it refreshes with client_secret_post too, and the new token works
    assert flow.tokens.refresh_token is not None
    renewed = oauth_http.refresh(gateway.token_endpoint, flow.tokens.refresh_token, auth=registration.auth())
    assert_mcp_works(gateway, renewed)


def test_claude_ai_fallback_to_root_endpoints_reaches_the_default_route(
    dev_server: DevServer, gateway: Discovery
) -> None:
    """When discovery fails, claude.ai falls back to ``/register``, ``/authorize`` and ``/token`` at the server's
    origin (anthropics/claude-ai-mcp#82); the Python SDK refreshes a token restored from storage at
    ``{origin}/token``. The gateway answers these root aliases for its ``default_route`` (demo/echo here)."""
    # Given a client that only knows the origin
    origin = dev_server.url
    registration = register(
        f"{origin}/register",
        {"redirect_uris": [CLAUDE_AI_CALLBACK], "token_endpoint_auth_method": "client_secret_post",
         "client_name": "Claude (fallback)"},
    )  # fmt: skip
    # When it authorizes and exchanges the code at the root endpoints
    answer, pkce = authorize_ok(
        replace(gateway, as_metadata={**gateway.as_metadata, "authorization_endpoint": f"{origin}/authorize"}),
        registration.client_id,
        CLAUDE_AI_CALLBACK,
    )
    assert answer.code is not None
    tokens = exchange_code(
        f"{origin}/token",
        code=answer.code,
        redirect_uri=CLAUDE_AI_CALLBACK,
        code_verifier=pkce.verifier,
        auth=registration.auth(),
    )
    # Then the default route's issuer answered, and the token works on the default route
    assert answer.params["iss"] == gateway.issuer
    assert_mcp_works(gateway, tokens)
    assert tokens.refresh_token is not None
    renewed = oauth_http.refresh(f"{origin}/token", tokens.refresh_token, auth=registration.auth())
    assert_mcp_works(gateway, renewed)


def test_claude_ai_uses_cimd_only_when_cimd_and_none_are_advertised(gateway: Discovery) -> None:
    """claude.ai (and Claude Code, Codex, opencode) choose a Client ID Metadata Document only when the AS metadata
    has ``client_id_metadata_document_supported: true`` AND ``none`` in ``token_endpoint_auth_methods_supported``,
    else they fall back to DCR (brendanlong/lion-reader#1519 and dropseed/plain#108 citing Anthropic's docs;
    anomalyco/opencode#47743). claude.ai's document is at https://claude.ai/oauth/mcp-oauth-client-metadata
    (anthropics/claude-ai-mcp#650). No token here: the CIMD flow itself is covered by the Python SDK test."""
    # When a client reads our authorization-server metadata
    metadata = gateway.as_metadata
    # Then both preconditions of CIMD hold
    assert metadata["client_id_metadata_document_supported"] is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    # And DCR stays available for clients that do not use CIMD
    assert metadata["registration_endpoint"] == gateway.registration_endpoint


# --- Cursor ---------------------------------------------------------------------------------------------------


def test_cursor_custom_scheme_callback_with_application_type_web(gateway: Discovery) -> None:
    """Cursor registers three redirect URIs in one request, ``cursor://anysphere.cursor-mcp/oauth/callback``,
    ``https://www.cursor.com/agents/mcp/oauth/callback`` and ``http://localhost:8787/callback``
    (erp-mafia/accounted#2225, soflyy/agent-connector-for-wp#111), with ``application_type: web``
    (elie222/inbox-zero#3780; better-auth/better-auth#10956 reports newer versions omit it), and the desktop app gets
    the code at the ``cursor://`` callback (makeplane/plane-mcp-server#159)."""
    # Given Cursor's registration request
    registration = register(
        gateway.registration_endpoint, public_client("Cursor", CURSOR_CALLBACKS, application_type="web")
    )
    assert registration.metadata["redirect_uris"] == CURSOR_CALLBACKS
    # When it authorizes with its custom-scheme callback
    flow = full_flow(gateway, registration, CURSOR_CALLBACKS[0], resource=gateway.resource)
    # Then the authorization response redirects to the cursor:// URI, and the token works
    assert flow.answer.location.startswith("cursor://anysphere.cursor-mcp/oauth/callback?code=")
    assert_mcp_works(gateway, flow.tokens)


# --- VS Code --------------------------------------------------------------------------------------------------


def test_vscode_portless_loopback_registration_matches_any_port(
    gateway: Discovery, free_port: Callable[[], int]
) -> None:
    """VS Code registers ``https://insiders.vscode.dev/redirect``, ``https://vscode.dev/redirect``,
    ``http://127.0.0.1/`` and ``http://127.0.0.1:33418/``, then uses ``http://127.0.0.1:<random port>/`` when 33418
    is taken (microsoft/vscode#278512); RFC 8252 §7.3 lets the port vary."""
    # Given VS Code's registration
    registration = register(gateway.registration_endpoint, public_client("Visual Studio Code", VSCODE_CALLBACKS))
    # When it authorizes with a loopback port it never registered
    redirect_uri = f"http://127.0.0.1:{random_port(free_port)}/"
    flow = full_flow(gateway, registration, redirect_uri, resource=gateway.resource, token_resource=gateway.resource)
    # Then the code comes back to that port, and the token works
    assert flow.answer.location.startswith(redirect_uri + "?code=")
    assert_mcp_works(gateway, flow.tokens)


def test_vscode_dev_redirect_is_matched_exactly(gateway: Discovery) -> None:
    """VS Code's web redirect ``https://vscode.dev/redirect`` (microsoft/vscode#278512) works as registered; an
    https redirect is matched exactly, so a look-alike is refused on an error page, not redirected to."""
    # Given VS Code's registration
    registration = register(gateway.registration_endpoint, public_client("Visual Studio Code", VSCODE_CALLBACKS))
    # When it authorizes with https://vscode.dev/redirect, then that is where the code goes
    flow = full_flow(gateway, registration, "https://vscode.dev/redirect", resource=gateway.resource)
    assert flow.answer.location.startswith("https://vscode.dev/redirect?code=")
    assert_mcp_works(gateway, flow.tokens)
    # When it asks for a redirect that differs by one character, then the gateway refuses without redirecting
    with pytest.raises(AuthorizationRefused) as refused:
        authorize(
            gateway.authorization_endpoint,
            authorization_params(registration.client_id, "https://vscode.dev/redirect/", Pkce.new()),
        )
    assert refused.value.status_code == 400
    assert "not one of its registered redirect URIs" in refused.value.html


# --- ChatGPT --------------------------------------------------------------------------------------------------


def test_chatgpt_per_connector_callback(gateway: Discovery) -> None:
    """ChatGPT gives each connector its own callback ``https://chatgpt.com/connector/oauth/<callback_id>``
    (BasedHardware/omi#8824, danielealbano/android-remote-control-mcp#166) and registers with
    ``client_secret_post`` (gts360/django-oauth-toolkit-dcr#1)."""
    # Given ChatGPT registered its connector's callback
    callback = f"https://chatgpt.com/connector/oauth/{secrets.token_urlsafe(9)}"
    registration = register(
        gateway.registration_endpoint,
        {
            "client_name": "ChatGPT",
            "redirect_uris": [callback],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        },
    )
    # When it authorizes, then the code goes to that callback, and the token works
    flow = full_flow(gateway, registration, callback, resource=gateway.resource, token_resource=gateway.resource)
    assert flow.answer.location.startswith(callback + "?code=")
    assert_mcp_works(gateway, flow.tokens)
    # And another connector's callback is not accepted for this client
    with pytest.raises(AuthorizationRefused) as refused:
        authorize(
            gateway.authorization_endpoint,
            authorization_params(registration.client_id, "https://chatgpt.com/connector/oauth/other", Pkce.new()),
        )
    assert refused.value.status_code == 400


# --- Codex ----------------------------------------------------------------------------------------------------


def test_codex_sends_basic_for_a_client_secret_post_registration(
    gateway: Discovery, free_port: Callable[[], int]
) -> None:
    """Codex ignores the registered ``token_endpoint_auth_method``: for a ``client_secret_post`` registration it sends
    HTTP Basic and leaves ``client_id``/``client_secret`` out of the body (openai/codex#40928). It omits ``resource``
    (openai/codex#24890) and redirects to ``http://127.0.0.1:<port>/`` (the authorize URL quoted in #24890)."""
    # Given a confidential registration
    redirect_uri = f"http://127.0.0.1:{random_port(free_port)}/"
    registration = register(
        gateway.registration_endpoint,
        {**public_client("Codex", [redirect_uri]), "token_endpoint_auth_method": "client_secret_post"},
    )
    assert registration.client_secret is not None
    # When it exchanges the code with Basic (id and secret) and nothing of the client in the body, without resource
    flow = full_flow(gateway, registration, redirect_uri, auth=registration.auth("client_secret_basic"))
    # Then the token works, and refreshing the same way works too
    assert flow.tokens.refresh_token is not None
    renewed = oauth_http.refresh(
        gateway.token_endpoint, flow.tokens.refresh_token, auth=registration.auth("client_secret_basic")
    )
    assert_mcp_works(gateway, renewed)


def test_codex_public_client_sending_basic_with_an_empty_secret(
    gateway: Discovery, free_port: Callable[[], int]
) -> None:
    """The design brief's reading of openai/codex#40928: a client registered with ``none`` that still sends Basic,
    with its id and an empty secret, and no ``resource`` (openai/codex#24890). (#40928 itself reports Basic for a
    ``client_secret_post`` registration: see the test above.)"""
    # Given a public registration
    redirect_uri = f"http://127.0.0.1:{random_port(free_port)}/"
    registration = register(gateway.registration_endpoint, public_client("Codex", [redirect_uri]))
    assert registration.client_secret is None
    # When it exchanges the code with "Basic base64(client_id:)"
    flow = full_flow(gateway, registration, redirect_uri, auth=registration.auth("client_secret_basic"))
    # Then the token works
    assert_mcp_works(gateway, flow.tokens)


# --- mcp-remote / Claude Desktop ------------------------------------------------------------------------------


def test_mcp_remote_unauthenticated_get_at_start_gets_the_401_challenge(gateway: Discovery) -> None:
    """mcp-remote (the TypeScript SDK's transport) opens the GET SSE stream at start (punkpeye/mcp-remote#136); an
    unauthenticated GET must get the 401 with ``resource_metadata`` that starts OAuth, not 404/405
    (jentic/jentic-one#1257 shows what goes wrong otherwise). Once authorized, a 405 to the GET is allowed by the
    transport and the client carries on with POST. mcp-remote's callback is
    ``http://localhost:<port>/oauth/callback`` (agentserver/agentserver#270)."""
    # When mcp-remote sends its GET without a token
    found = oauth_http.challenge(gateway.resource, method="GET")
    # Then it is challenged with the route's PRM URL
    assert found.status_code == 401
    assert found.resource_metadata == gateway.prm_url
    # And after the OAuth flow, GET is refused with 405 (no standalone SSE stream) while POST works
    redirect_uri = "http://localhost:3334/oauth/callback"
    registration = register(gateway.registration_endpoint, public_client("MCP CLI Proxy", [redirect_uri]))
    flow = full_flow(gateway, registration, redirect_uri, resource=gateway.resource, token_resource=gateway.resource)
    stream = httpx.get(
        gateway.resource,
        headers={"Accept": "text/event-stream", "Authorization": f"Bearer {flow.tokens.access_token}"},
    )
    assert stream.status_code == 405
    assert_mcp_works(gateway, flow.tokens)


# --- MCP Python SDK -------------------------------------------------------------------------------------------


def test_python_sdk_loopback_callback_on_a_random_port(gateway: Discovery, free_port: Callable[[], int]) -> None:
    """The MCP Python SDK's OAuth examples run a callback server on ``http://127.0.0.1:<port>/callback`` and register
    exactly that URI (design brief §5; the SDK-driven flow itself is tests/e2e/test_python_sdk_oauth.py)."""
    # Given a registration of the exact callback URI
    redirect_uri = f"http://127.0.0.1:{random_port(free_port)}/callback"
    registration = register(gateway.registration_endpoint, public_client("python-sdk", [redirect_uri]))
    # When it authorizes with scope and resource as the SDK sends them
    flow = full_flow(
        gateway, registration, redirect_uri, scope="mcp", resource=gateway.resource, token_resource=gateway.resource
    )
    # Then the token works
    assert flow.answer.location.startswith(redirect_uri + "?code=")
    assert_mcp_works(gateway, flow.tokens)


# --- others ---------------------------------------------------------------------------------------------------


def test_openid_configuration_only_clients_find_the_route(gateway: Discovery, dev_server: DevServer) -> None:
    """Clients built on OIDC libraries fetch only ``/.well-known/openid-configuration``
    (modelcontextprotocol/typescript-sdk#585; PrefectHQ/fastmcp#4166 shows the MCP SDK client trying it); MCP
    2025-11-25 has them try it with the issuer path inserted and appended. Both answer with the route's metadata
    plus the OIDC-required fields."""
    for url in (
        f"{dev_server.url}/.well-known/openid-configuration/demo/echo",
        f"{dev_server.url}/demo/echo/.well-known/openid-configuration",
    ):
        # When such a client fetches the OpenID form
        metadata = oauth_http.fetch_json(url)
        # Then it names the same issuer and endpoints, and what OIDC Discovery §3 requires
        assert metadata["issuer"] == gateway.issuer
        assert metadata["token_endpoint"] == gateway.token_endpoint
        assert metadata["registration_endpoint"] == gateway.registration_endpoint
        assert metadata["subject_types_supported"] and metadata["id_token_signing_alg_values_supported"]
    # And the flow through those endpoints works
    redirect_uri = "http://127.0.0.1:45679/callback"
    registration = register(gateway.registration_endpoint, public_client("oidc-client", [redirect_uri]))
    flow = full_flow(gateway, registration, redirect_uri, scope="mcp", resource=gateway.resource)
    assert_mcp_works(gateway, flow.tokens)


def test_token_request_sent_as_json_is_refused_with_invalid_request(gateway: Discovery) -> None:
    """Clients post JSON to /token (PostHog/posthog#40209: "a lot of people will try to use application/json";
    oauthjs/node-oauth2-server#92). RFC 6749 §4.1.3 requires a form body: the gateway refuses JSON with a clear
    ``invalid_request``, not a 500 and not a misleading ``invalid_grant``."""
    # Given a valid code
    redirect_uri = "http://127.0.0.1:45680/callback"
    registration = register(gateway.registration_endpoint, public_client("json-client", [redirect_uri]))
    answer, pkce = authorize_ok(gateway, registration.client_id, redirect_uri)
    assert answer.code is not None
    form = {
        "grant_type": "authorization_code",
        "code": answer.code,
        "redirect_uri": redirect_uri,
        "code_verifier": pkce.verifier,
    }
    # When the client sends the token request as JSON
    response = oauth_http.token_request(gateway.token_endpoint, form, registration.auth(), as_json=True)
    # Then it is refused with invalid_request naming the required content type, not cacheable
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert "application/x-www-form-urlencoded" in body["error_description"]
    assert response.headers["cache-control"] == "no-store"
    # And the code was not consumed: the same request as a form still succeeds
    tokens = oauth_http.TokenSet.from_response(
        "form retry", oauth_http.token_request(gateway.token_endpoint, form, registration.auth())
    )
    assert_mcp_works(gateway, tokens)


def test_basic_auth_with_client_id_also_in_the_body(gateway: Discovery) -> None:
    """Some clients send ``client_id`` in the body as well as in HTTP Basic (RFC 6749 §3.2.1 allows it;
    epam/ai-dial-core#1609 does this because the MCP Python SDK's server reads the body's client_id)."""
    # Given a client_secret_basic registration
    redirect_uri = "http://127.0.0.1:45681/callback"
    registration = register(
        gateway.registration_endpoint,
        {**public_client("dial", [redirect_uri]), "token_endpoint_auth_method": "client_secret_basic"},
    )
    # When it exchanges the code with Basic and client_id in the body
    auth = ClientAuth(registration.client_id, registration.client_secret, "client_secret_basic", id_in_body=True)
    flow = full_flow(gateway, registration, redirect_uri, auth=auth)
    # Then the token works
    assert_mcp_works(gateway, flow.tokens)


def test_resource_with_uppercase_scheme_and_host_is_the_route(gateway: Discovery, free_port: Callable[[], int]) -> None:
    """MCP 2025-11-25 "Canonical Server URI": the canonical form has a lowercase scheme and host, but
    "implementations SHOULD accept uppercase scheme and host components for robustness" (the passage is quoted in
    modelcontextprotocol/typescript-sdk#829). The gateway's /token already compares them case-insensitively; /authorize
    must agree, or a client that keeps the user's spelling of the URL cannot sign in."""
    # Given a registration
    redirect_uri = f"http://127.0.0.1:{random_port(free_port)}/callback"
    registration = register(gateway.registration_endpoint, public_client("uppercase", [redirect_uri]))
    # When the resource is sent with an uppercase scheme and host at /authorize and /token
    scheme, _, rest = gateway.resource.partition("://")
    host, _, path = rest.partition("/")
    shouting = f"{scheme.upper()}://{host.upper()}/{path}"
    flow = full_flow(gateway, registration, redirect_uri, resource=shouting, token_resource=shouting)
    # Then it is the route's resource
    assert_mcp_works(gateway, flow.tokens)


def test_driver_revocation_ends_the_refresh_family(dev_server: DevServer) -> None:
    """Not a client quirk: the driver's revoke against RFC 7009, which clients call on sign-out. A revoked refresh
    token can no longer be used."""
    # Given a grant from the real flow
    grant = oauth_http.obtain_grant(dev_server.url, WORKSPACE, SERVER)
    refresh_token = grant.tokens.refresh_token
    assert refresh_token is not None
    auth = grant.registration.auth()
    # When the client revokes its refresh token
    oauth_http.revoke(grant.discovery.revocation_endpoint, refresh_token, auth=auth, token_type_hint="refresh_token")
    # Then refreshing fails with invalid_grant
    with pytest.raises(OAuthHttpError) as refused:
        oauth_http.refresh(grant.discovery.token_endpoint, refresh_token, auth=auth)
    assert refused.value.json()["error"] == "invalid_grant"


# --- issue 24 item 9: the replays brought up to date --------------------------------------------------------------


def _public_token(found: Discovery, free_port: Callable[[], int], name: str) -> TokenSet:
    redirect_uri = f"http://127.0.0.1:{random_port(free_port)}/callback"
    registration = register(found.registration_endpoint, public_client(name, [redirect_uri]))
    return full_flow(found, registration, redirect_uri, resource=found.resource).tokens


def _messages(response: httpx.Response) -> list[dict[str, object]]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    return [response.json()]


def test_claude_code_sends_server_discover_then_initialize(gateway: Discovery, free_port: Callable[[], int]) -> None:
    """Claude Code 2.1 probes MCP 2026-07-28 with ``server/discover`` and then, even after a successful answer, sends
    the session era's ``initialize`` on the same URL (anthropics/claude-code#96183, 2.1.280; the CLI itself, run by
    tests/e2e/test_claude_code.py, does the same). Both are answered, and the session the ``initialize`` opened
    works."""
    tokens = _public_token(gateway, free_port, "Claude Code (probe)")
    url, bearer = gateway.resource, {"Authorization": f"Bearer {tokens.access_token}", **oauth_http.MCP_HEADERS}
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "claude-code", "version": "2.1.280"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    discover_headers = {**bearer, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}
    initialize = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"roots": {}},
                   "clientInfo": {"name": "claude-code", "version": "2.1.280"}},
    }  # fmt: skip
    with httpx.Client(timeout=30) as http:
        # When it discovers, then initializes, then calls a tool in the session it opened
        discovered = http.post(
            url, json={"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {"_meta": meta}},
            headers=discover_headers,
        )  # fmt: skip
        initialized = http.post(url, json=initialize, headers=bearer)
        session = (
            {"Mcp-Session-Id": initialized.headers["mcp-session-id"]} if "mcp-session-id" in initialized.headers else {}
        )
        session_headers = {**bearer, **session, "MCP-Protocol-Version": "2025-11-25"}
        http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session_headers)
        called = http.post(
            url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": DEMO_TOOL, "arguments": {"text": "after the probe"}}},
            headers=session_headers,
        )  # fmt: skip
    # Then each got its own revision's answer, and the call works
    (discover_answer,) = _messages(discovered)
    assert discovered.status_code == 200 and "2026-07-28" in discover_answer["result"]["supportedVersions"]  # type: ignore[index]
    (initialize_answer,) = _messages(initialized)
    assert initialized.status_code == 200 and initialize_answer["result"]["protocolVersion"] == "2025-11-25"  # type: ignore[index]
    (call_answer,) = _messages(called)
    assert call_answer["result"]["content"][0]["text"] == "after the probe"  # type: ignore[index]


def test_cursor_registers_dynamically_where_metadata_documents_are_advertised(gateway: Discovery) -> None:
    """Cursor registers with DCR (RFC 7591) even where the authorization server advertises client ID metadata
    documents: it has no document of its own, and a server that turned DCR off cannot be connected from Cursor
    (Altinity/altinity-mcp#169). The gateway advertises both and keeps DCR for such clients."""
    # Given the gateway's metadata advertises CIMD and a registration endpoint
    assert gateway.as_metadata["client_id_metadata_document_supported"] is True
    assert gateway.as_metadata["registration_endpoint"] == gateway.registration_endpoint
    # When Cursor registers and authorizes as it does
    registration = register(gateway.registration_endpoint, public_client("Cursor", CURSOR_CALLBACKS))
    flow = full_flow(gateway, registration, CURSOR_CALLBACKS[2], resource=gateway.resource)
    # Then its token works
    assert flow.answer.location.startswith("http://localhost:8787/callback?code=")
    assert_mcp_works(gateway, flow.tokens)


def test_codex_and_gemini_cli_compare_the_issuer_byte_for_byte(
    dev_server: DevServer, gateway: Discovery, free_port: Callable[[], int]
) -> None:
    """Codex and Gemini CLI compare identifiers as strings: the issuer the protected resource metadata names with
    the ``issuer`` of the authorization server metadata (RFC 8414 §3.3: a trailing slash is a mismatch, openai/codex
    #37373), the authorization response's ``iss`` with that issuer (RFC 9207; Codex fails when the metadata
    advertises ``iss`` and the response lacks it, cloudflare/mcp-server-cloudflare#449, and when it names another
    host, openai/codex#38944; Gemini CLI enforces it too, google-gemini/gemini-cli#29117), and the metadata's
    ``resource`` with the URL it was given (Gemini CLI, google-gemini/gemini-cli#20017 as quoted in
    amekala/ads-mcp#11)."""
    route = route_mcp_url(dev_server.url)
    # The resource is the URL the client was given, exactly
    assert gateway.prm["resource"] == route
    issuer = gateway.prm["authorization_servers"][0]
    assert issuer == route.removesuffix("/mcp") and not issuer.endswith("/")
    # Every discovery URL of that issuer names it exactly
    for url in oauth_http.as_metadata_urls(issuer):
        assert oauth_http.fetch_json(url)["issuer"] == issuer, url
    assert gateway.as_metadata["authorization_response_iss_parameter_supported"] is True
    # The authorization response carries it exactly, on success and on error (RFC 9207 §2)
    redirect_uri = f"http://127.0.0.1:{random_port(free_port)}/"
    registration = register(gateway.registration_endpoint, public_client("Codex", [redirect_uri]))
    answer, _ = authorize_ok(gateway, registration.client_id, redirect_uri)
    assert answer.params["iss"] == issuer
    denied = authorize(
        gateway.authorization_endpoint,
        authorization_params(registration.client_id, redirect_uri, Pkce.new(), state="s"),
        decision="deny",
    )
    assert denied.error == "access_denied" and denied.params["iss"] == issuer


# --- client ID metadata documents (a gateway that may fetch them from this machine) ------------------------------


def _cimd_route(isolated: IsolatedGateway) -> Discovery:
    return discover(route_mcp_url(isolated.url), use_challenge=False)


def test_vscode_identifies_itself_with_its_client_metadata_document(
    isolated_gateway: IsolatedGateway, free_port: Callable[[], int]
) -> None:
    """VS Code uses its client ID metadata document (``https://vscode.dev/oauth/client-metadata.json``) as its
    ``client_id`` when the authorization server advertises CIMD (microsoft/vscode#270811, #271403; the URL as quoted
    in anomalyco/opencode#25961 and apify/mcpc#187), with the redirect URIs it registers by DCR
    (microsoft/vscode#278512) and a public client's ``none``. Here the document is a local https copy at the same
    path (the real one cannot be fetched from this machine)."""
    found = _cimd_route(isolated_gateway)
    document_url = isolated_gateway.cimd.url("/oauth/client-metadata.json")
    document = {
        "client_id": document_url,
        "client_name": "Visual Studio Code",
        "redirect_uris": VSCODE_CALLBACKS,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    isolated_gateway.cimd.https.replies["/oauth/client-metadata.json"] = Reply(
        200, json.dumps(document).encode(), {"Content-Type": "application/json"}
    )
    # When VS Code authorizes with the document's URL as client_id, on a loopback port it did not list
    redirect_uri = f"http://127.0.0.1:{random_port(free_port)}/"
    answer, pkce = authorize_ok(found, document_url, redirect_uri, resource=found.resource)
    assert answer.code is not None
    tokens = exchange_code(
        found.token_endpoint, code=answer.code, redirect_uri=redirect_uri, code_verifier=pkce.verifier,
        auth=ClientAuth(document_url, None, "none"), resource=found.resource,
    )  # fmt: skip
    # Then the gateway fetched the document, and the token works on the route
    assert isolated_gateway.cimd.https.hits.get("/oauth/client-metadata.json", 0) >= 1
    assert DEMO_TOOL in oauth_http.tool_names(found.resource, tokens.access_token)


def _client_assertion(key: rsa.RSAPrivateKey, kid: str, client_id: str, audience: str) -> str:
    """An RFC 7523 §2.2 client assertion (RS256), as ChatGPT signs one."""

    def part(value: object) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 120,
              "jti": secrets.token_urlsafe(16)}  # fmt: skip
    signing_input = f"{part({'alg': 'RS256', 'typ': 'JWT', 'kid': kid})}.{part(claims)}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(numbers.n), "e": b64(numbers.e)}


def test_chatgpt_identifies_itself_with_a_metadata_document_that_prefers_private_key_jwt(
    isolated_gateway: IsolatedGateway,
) -> None:
    """ChatGPT's client ID metadata document (``https://chatgpt.com/oauth/<id>/client.json``) declares
    ``token_endpoint_auth_method: private_key_jwt`` with ``token_endpoint_auth_methods_supported: ["none",
    "private_key_jwt"]``, ``token_endpoint_auth_signing_alg: RS256`` and ``jwks_uri: https://chatgpt.com/oauth/
    jwks.json``, and a callback per connector (the document as published, quoted in Altinity/altinity-mcp#118 and
    django-oauth/django-oauth-toolkit#1845; engram-app/Engram#1633 reports zero ChatGPT grants until the document was
    accepted). It authenticates at /token with a ``client_assertion`` signed by a key of that set (RFC 7523 §2.2)."""
    found = _cimd_route(isolated_gateway)
    connector = secrets.token_urlsafe(9)
    document_path, jwks_path = f"/oauth/{connector}/client.json", "/oauth/jwks.json"
    document_url = isolated_gateway.cimd.url(document_path)
    callback = f"https://chatgpt.com/connector/oauth/{connector}"
    key, kid = rsa.generate_private_key(public_exponent=65537, key_size=2048), f"cimd-{connector}"
    document = {
        "client_id": document_url, "client_uri": "https://chatgpt.com/", "client_name": "ChatGPT",
        "redirect_uris": [callback], "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"], "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg": "RS256", "jwks_uri": isolated_gateway.cimd.url(jwks_path),
    }  # fmt: skip
    replies = isolated_gateway.cimd.https.replies
    replies[document_path] = Reply(200, json.dumps(document).encode(), {"Content-Type": "application/json"})
    replies[jwks_path] = Reply(
        200, json.dumps({"keys": [_jwk(key, kid)]}).encode(), {"Content-Type": "application/json"}
    )

    # When ChatGPT authorizes with its document and exchanges the code with a signed client assertion
    answer, pkce = authorize_ok(found, document_url, callback, resource=found.resource)
    assert answer.code is not None
    form = {
        "grant_type": "authorization_code", "code": answer.code, "redirect_uri": callback,
        "code_verifier": pkce.verifier, "resource": found.resource, "client_id": document_url,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": _client_assertion(key, kid, document_url, found.token_endpoint),
    }  # fmt: skip
    tokens = TokenSet.from_response("token", httpx.post(found.token_endpoint, data=form, timeout=30))
    # Then its token works on the route
    assert DEMO_TOOL in oauth_http.tool_names(found.resource, tokens.access_token)
