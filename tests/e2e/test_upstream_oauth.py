"""Acceptance of issue 4's upstream credential vault: an upstream MCP server protected by OAuth, whose authorization
server is a real third-party implementation run locally (panva/oidc-provider, tests/fixtures/upstream-as/server.mjs),
in front of a resource server written with the official ``mcp`` SDK that checks tokens by introspection
(tests/fixtures/upstream-as/upstream_mcp.py).

Through the dev server (in a process of its own, with a config whose route uses ``auth: {type: oauth}``):
/authorize → dev login → the consent page lists the upstream with a Connect button → Connect runs the upstream flow
(dynamic registration at the upstream AS, sign-in there, code + PKCE + resource) → back on the consent page Approve
is enabled → code → token → ``tools/call`` reaches the upstream with the upstream token. Then the stored expiry is
moved into the past and the next call is served after a silent refresh; the grant is revoked at the upstream AS and
the call fails with ``-32042`` carrying a connect URL; following it (sign in as the same user, connect again) makes the
same call work. Another user cannot complete the first user's link.

The browser is played by httpx (form posts, redirects followed by hand so every hop is checked); the consent page is
also rendered in headless Chromium for a screenshot in test-artifacts/.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import boto3
import httpx
import pytest

from gateway.crypto.pkce import s256
from infra.demo_upstream import DemoUpstream
from infra.dev import gateway_environment
from infra.devserver import REPO_ROOT
from infra.local_aws import LOCAL_ACCESS_KEY
from infra.template import LOCAL_REGION
from tests.conftest import LocalAwsStack, pick_free_port
from tests.support.mcp_client import run_async
from tests.support.rate_limits import generous_rate_limits

pytestmark = pytest.mark.e2e

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "upstream-as"
ARTIFACTS = REPO_ROOT / "test-artifacts"
HOST = "127.0.0.1"
CLIENT_REDIRECT = "http://127.0.0.1:53682/callback"
VERIFIER = "e2e-verifier-" + "x" * 40
ROUTE = "acme/notes"


# --- the servers --------------------------------------------------------------------------------------------


def _npm_install() -> None:
    if (FIXTURE / "node_modules" / "oidc-provider").is_dir():
        return
    subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=FIXTURE, check=True, timeout=300)


def _start(
    command: list[str], env: dict[str, str], ready: str, *, timeout: float = 60, cwd: Path = REPO_ROOT
) -> subprocess.Popen[str]:
    """Start a server and wait for its ready line; its later output is drained so it never blocks on a pipe."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(ready):
            threading.Thread(target=_drain, args=(process,), daemon=True).start()
            return process
    process.kill()
    raise AssertionError(f"{command[0]} did not start:\n{''.join(seen)[-3000:]}")


def _drain(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if os.environ.get("E2E_VERBOSE"):
            print(line, end="")


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@dataclass(frozen=True)
class Stack:
    gateway: str
    upstream: str
    issuer: str
    endpoint_url: str
    upstream_tokens_table: str
    everything: subprocess.Popen[str] | None = None

    @property
    def mcp(self) -> str:
        return f"{self.gateway}/{ROUTE}/mcp"


_GATEWAY_SCRIPT = """
import json, os, signal, sys
from infra.dev import TEMPLATE_PATH
from infra.devserver import start_dev_server
from infra.template import load_template
env = json.loads(os.environ["E2E_GATEWAY_ENV"])
server = start_dev_server(load_template(TEMPLATE_PATH), env, port=int(sys.argv[1]))
print("listening", server.url, flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
server.stop()
"""


def _config(upstream: str, demo: str, everything: str) -> str:
    return f"""
oauth:
  cimd_allow_private_addresses: true   # the upstream and its authorization server run on 127.0.0.1 over http
workspaces:
  acme:
    title: Acme
    identity_provider:
      type: dev
      users:
        - {{id: alice, password: alice-password, name: Alice Example}}
        - {{id: bob, password: bob-password, name: Bob Example}}
    admins: [alice]
    servers:
      notes:
        title: Notes
        upstream: {upstream}
        auth: {{type: oauth}}
      toolbox:                          # a virtual route (issue 10): three upstreams behind one URL
        title: Acme toolbox
        upstreams:
          notes:
            url: {upstream}
            auth: {{type: oauth}}
          demo:
            url: {demo}
            projections:
              echo: {{name: say, description: Say it back., annotations: {{readOnlyHint: true}}}}
          everything:
            url: {everything}
            prefix: ev
            tools: {{allow: [echo, get-sum, get-tiny-image]}}
"""


EVERYTHING = REPO_ROOT / "tests" / "fixtures" / "everything"
EVERYTHING_SCRIPT = EVERYTHING / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


def _start_everything(port: int) -> subprocess.Popen[str]:
    """server-everything in streamable HTTP mode on 127.0.0.1 (the preload keeps it off other interfaces)."""
    if not EVERYTHING_SCRIPT.is_file():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=EVERYTHING, check=True, timeout=300)
    env = {"PATH": os.environ.get("PATH", ""), "PORT": str(port)}
    command = ["node", "-r", "./loopback.cjs", str(EVERYTHING_SCRIPT), "streamableHttp"]
    process = subprocess.Popen(
        command, cwd=EVERYTHING, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://{HOST}:{port}/mcp", timeout=0.5, trust_env=False)
            return process
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server-everything did not start on {HOST}:{port}") from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(
    local_aws: LocalAwsStack,
    template: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    demo_upstream: DemoUpstream,
) -> Iterator[Stack]:
    _npm_install()
    as_port, upstream_port, gateway_port = pick_free_port(), pick_free_port(), pick_free_port()
    everything_port = pick_free_port()
    issuer = f"http://{HOST}:{as_port}"
    upstream = f"http://{HOST}:{upstream_port}/mcp"
    gateway = f"http://{HOST}:{gateway_port}"
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    processes: list[subprocess.Popen[str]] = []
    try:
        as_env = {**base_env, "AS_PORT": str(as_port), "AS_RESOURCE": upstream}
        processes.append(_start(["node", "server.mjs"], as_env, "listening", cwd=FIXTURE))
        upstream_command = [sys.executable, str(FIXTURE / "upstream_mcp.py"), str(upstream_port), issuer]
        processes.append(_start(upstream_command, base_env, "listening"))
        config = tmp_path_factory.mktemp("upstream-oauth") / "gateway.yaml"
        everything = _start_everything(everything_port)
        processes.append(everything)
        config.write_text(
            _config(upstream, demo_upstream.url, f"http://{HOST}:{everything_port}/mcp"), encoding="utf-8"
        )
        env = gateway_environment(
            template,
            endpoint_url=local_aws.endpoint_url,
            refs=local_aws.refs,
            public_base_url=gateway,
            config_path=config,
        )
        env["GATEWAY_UPSTREAM_TOKEN_CACHE_SECONDS"] = "0"  # see stored changes (expiry edits, deletions) at once
        env.update(generous_rate_limits(env))  # the session's earlier sign-ins share the counters
        gateway_env = {**base_env, **env, "E2E_GATEWAY_ENV": json.dumps(env)}
        processes.append(
            _start([sys.executable, "-c", _GATEWAY_SCRIPT, str(gateway_port)], gateway_env, "listening", timeout=90)
        )
        yield Stack(gateway, upstream, issuer, local_aws.endpoint_url, env["GATEWAY_UPSTREAM_TOKENS_TABLE"], everything)
    finally:
        for process in reversed(processes):
            _stop(process)


# --- a browser and an MCP client, by hand ---------------------------------------------------------------------


class Browser:
    """Cookies and manual redirects: every hop stays visible to the test."""

    def __init__(self) -> None:
        self.http = httpx.Client(trust_env=False, timeout=20, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def follow(self, response: httpx.Response, *, stop_at: str | None = None, login: str = "alice") -> httpx.Response:
        """Follow redirects (and the upstream AS's login form) until a page, or a redirect to ``stop_at``."""
        for _ in range(20):
            if response.status_code in (301, 302, 303, 307):
                location = urljoin(str(response.url), response.headers["location"])
                if stop_at is not None and location.startswith(stop_at):
                    return response
                response = self.http.get(location)
                continue
            if response.status_code == 200 and 'name="login"' in response.text:
                action = re.search(r'action="([^"]+)"', response.text)
                assert action, response.text
                response = self.http.post(
                    urljoin(str(response.url), action.group(1)),
                    data={"prompt": "login", "login": login, "password": "any"},
                )
                continue
            return response
        raise AssertionError("too many redirects")

    def debug(self, response: httpx.Response) -> str:
        body = re.sub(r"<style>.*?</style>", "", response.text, flags=re.S)
        return f"{response.url} {response.status_code}\n{body[:3000]}"

    def dev_login(self, page: httpx.Response, username: str) -> httpx.Response:
        form = _form(page.text)
        assert "username" in page.text, page.text[:500]
        return self.http.post(
            urljoin(str(page.url), form["action"]),
            data={"p": form["p"], "csrf": form["csrf"], "username": username, "password": f"{username}-password"},
        )


def _form(text: str) -> dict[str, str]:
    fields = {name: html.unescape(value) for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', text)}
    action = re.search(r'<form method="post" action="([^"]+)"', text)
    assert action, text[:1000]
    fields["action"] = html.unescape(action.group(1))
    return fields


def _connect_href(text: str) -> str | None:
    match = re.search(r'<a class="button primary" href="([^"]+)">(?:Connect|Continue)</a>', text)
    return html.unescape(match.group(1)) if match else None


def _approve_disabled(text: str) -> bool:
    return bool(re.search(r'value="approve"\s+disabled', text))


@dataclass
class McpSession:
    url: str
    token: str
    session_id: str | None = None
    next_id: int = 1

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": "2025-11-25",
        }
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        return headers

    def request(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        response = httpx.post(self.url, json=message, headers=self._headers(), timeout=30, trust_env=False)
        if "mcp-session-id" in response.headers:
            self.session_id = response.headers["mcp-session-id"]
        return response.status_code, _jsonrpc_body(response)

    def notify(self, method: str) -> int:
        message = {"jsonrpc": "2.0", "method": method}
        return httpx.post(self.url, json=message, headers=self._headers(), timeout=30, trust_env=False).status_code

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        return self.request("tools/call", {"name": tool, "arguments": arguments or {}})


def _jsonrpc_body(response: httpx.Response) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message = json.loads(line[5:])
                if "id" in message:
                    return dict(message)
        raise AssertionError(f"no response in the event stream: {response.text[:500]}")
    return dict(response.json())


def _whoami(result: dict[str, Any]) -> dict[str, Any]:
    assert "result" in result, result
    content = result["result"]
    if content.get("structuredContent"):
        structured = content["structuredContent"]
        return dict(structured.get("result", structured))
    return dict(json.loads(content["content"][0]["text"]))


def _as_stats(stack: Stack) -> dict[str, int]:
    return dict(httpx.get(f"{stack.issuer}/admin/stats", trust_env=False).json())


def _dynamodb(stack: Stack) -> Any:
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=stack.endpoint_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_ACCESS_KEY,
    )


def _stored(stack: Stack, subject: str) -> dict[str, Any] | None:
    item = (
        _dynamodb(stack)
        .get_item(
            TableName=stack.upstream_tokens_table,
            Key={"pk": {"S": f"UPSTREAM#{ROUTE}"}, "sk": {"S": f"SUBJECT#{subject}"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return None if item is None else dict(item)


def _expire_stored_token(stack: Stack, subject: str) -> None:
    _dynamodb(stack).update_item(
        TableName=stack.upstream_tokens_table,
        Key={"pk": {"S": f"UPSTREAM#{ROUTE}"}, "sk": {"S": f"SUBJECT#{subject}"}},
        UpdateExpression="SET access_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}},
    )


def _screenshot(url_html: str, name: str) -> None:
    """Render a page's HTML in headless Chromium (best effort: the assertions never depend on it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page(viewport={"width": 820, "height": 1100})
            page.set_content(url_html)
            page.screenshot(path=str(ARTIFACTS / name), full_page=True)
            browser.close()
    except Exception as error:
        print(f"screenshot skipped: {error}")


# --- the acceptance ---------------------------------------------------------------------------------------------


def _register_client(stack: Stack, route: str = ROUTE) -> str:
    response = httpx.post(
        f"{stack.gateway}/{route}/register",
        json={
            "client_name": "Upstream OAuth e2e",
            "redirect_uris": [CLIENT_REDIRECT],
            "token_endpoint_auth_method": "none",
        },
        trust_env=False,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


def _authorize_url(stack: Stack, client_id: str, route: str = ROUTE) -> str:
    resource = f"{stack.gateway}/{route}/mcp"
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CLIENT_REDIRECT,
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "state": "client-state",
        "resource": resource,
    }
    return f"{stack.gateway}/{route}/authorize?{urlencode(query)}"


def _token(stack: Stack, client_id: str, code: str, route: str = ROUTE) -> str:
    response = httpx.post(
        f"{stack.gateway}/{route}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CLIENT_REDIRECT,
            "client_id": client_id,
            "code_verifier": VERIFIER,
            "resource": f"{stack.gateway}/{route}/mcp",
        },
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_connect_during_consent_refresh_silently_and_reconnect_after_revocation(stack: Stack) -> None:
    client_id = _register_client(stack)
    browser = Browser()
    try:
        # Given alice signs in at the gateway for an MCP client
        login_page = browser.follow(browser.http.get(_authorize_url(stack, client_id)))
        consent = browser.follow(browser.dev_login(login_page, "alice"))
        # Then the consent page lists the upstream with a Connect button, and Approve is disabled
        assert consent.status_code == 200, consent.text[:500]
        assert "Accounts to connect" in consent.text and _approve_disabled(consent.text)
        connect = _connect_href(consent.text)
        assert connect is not None and connect.startswith(f"{stack.gateway}/{ROUTE}/connect?p=")
        _screenshot(consent.text, "upstream-oauth-consent-connect.png")
        assert _stored(stack, "alice") is None

        # When she connects: the gateway registers at the upstream AS (DCR) and sends her there with PKCE + resource
        to_as = browser.http.get(connect)
        assert to_as.status_code == 303, to_as.text[:500]
        authorization = urlsplit(to_as.headers["location"])
        assert f"{authorization.scheme}://{authorization.netloc}" == stack.issuer
        params = parse_qs(authorization.query)
        assert params["resource"] == [stack.upstream] and params["code_challenge_method"] == ["S256"]
        assert params["redirect_uri"] == [f"{stack.gateway}/{ROUTE}/connect/callback"]
        # (she signs in at the upstream AS, which redirects to the gateway's callback, which returns to consent)
        back = browser.follow(to_as, stop_at=f"{stack.gateway}/{ROUTE}/consent")
        assert back.status_code == 303 and "/consent?p=" in back.headers["location"], browser.debug(back)
        consent = browser.http.get(urljoin(stack.gateway, back.headers["location"]))
        # Then the account is connected and stored encrypted, and Approve is enabled
        assert "Accounts to connect" not in consent.text and not _approve_disabled(consent.text)
        stored = _stored(stack, "alice")
        assert stored is not None and "B" in stored["ciphertext"]
        assert b"access_token" not in stored["ciphertext"]["B"]

        # When she approves, the MCP client gets a code and a token
        form = _form(consent.text)
        approved = browser.http.post(form["action"], data={"p": form["p"], "csrf": form["csrf"], "decision": "approve"})
        assert approved.status_code == 303, approved.text[:500]
        code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
        token = _token(stack, client_id, code)
    finally:
        browser.close()

    # Then tools/call reaches the upstream with alice's upstream token (never the gateway token)
    mcp = McpSession(stack.mcp, token)
    status, initialized = mcp.request(
        "initialize",
        {
            "protocolVersion": "2025-11-25",
            "capabilities": {"elicitation": {"url": {}}},
            "clientInfo": {"name": "upstream-oauth-e2e", "version": "1.0"},
        },
    )
    assert status == 200 and "result" in initialized, initialized
    assert mcp.notify("notifications/initialized") == 202
    status, result = mcp.call("whoami")
    assert status == 200, result
    first = _whoami(result)
    assert first["subject"] == "alice"
    refreshes_before = _as_stats(stack)["refresh"]

    # When the stored upstream token expires, the next call is served after a silent refresh
    _expire_stored_token(stack, "alice")
    status, result = mcp.call("whoami")
    assert status == 200, result
    second = _whoami(result)
    assert second["subject"] == "alice" and second["token"] != first["token"]
    assert _as_stats(stack)["refresh"] == refreshes_before + 1

    # When the grant is revoked at the upstream AS, the call fails with -32042 and a connect URL
    revoked = httpx.post(f"{stack.issuer}/admin/revoke?account=alice", trust_env=False).json()
    assert revoked["revoked"] >= 1
    status, result = mcp.call("whoami")
    assert "error" in result, result
    assert result["error"]["code"] == -32042, result
    urls = re.findall(r"https?://[^\s\"']+/connect\?for=[A-Za-z0-9._%\-]+", json.dumps(result["error"]))
    assert urls, result
    link = urls[0]
    assert _stored(stack, "alice") is None  # the refused credential was deleted

    # And bob cannot complete alice's link
    intruder = Browser()
    try:
        page = intruder.follow(intruder.http.get(link))
        refused = intruder.follow(intruder.dev_login(page, "bob"))
        assert refused.status_code == 403 and "someone else" in refused.text
    finally:
        intruder.close()

    # When alice follows the link in a fresh browser: she signs in at the gateway, then reconnects upstream
    browser = Browser()
    try:
        page = browser.follow(browser.http.get(link))
        start = browser.follow(browser.dev_login(page, "alice"))
        assert start.status_code == 200 and "Continue" in start.text, start.text[:500]
        proceed = _connect_href(start.text)
        assert proceed is not None
        done = browser.follow(browser.http.get(proceed))
        assert done.status_code == 200 and "Connected" in done.text, done.text[:800]
    finally:
        browser.close()
    assert _stored(stack, "alice") is not None

    # Then the same call works again, in the same MCP session
    status, result = mcp.call("whoami")
    assert status == 200, result
    assert _whoami(result)["subject"] == "alice"


# --- a virtual route (issue 10) ---------------------------------------------------------------------------------

TOOLBOX = "acme/toolbox"


def _toolbox_token(stack: Stack) -> str:
    """alice authorizes an MCP client for the toolbox; its consent page asks her to connect the notes upstream."""
    client_id = _register_client(stack, TOOLBOX)
    browser = Browser()
    try:
        login_page = browser.follow(browser.http.get(_authorize_url(stack, client_id, TOOLBOX)))
        consent = browser.follow(browser.dev_login(login_page, "alice"))
        assert consent.status_code == 200, consent.text[:500]
        connect = _connect_href(consent.text)
        assert connect is not None and connect.startswith(f"{stack.gateway}/{TOOLBOX}/connect?upstream=notes&p=")
        assert _approve_disabled(consent.text)
        back = browser.follow(browser.http.get(connect), stop_at=f"{stack.gateway}/{TOOLBOX}/consent")
        assert back.status_code == 303, browser.debug(back)
        consent = browser.http.get(urljoin(stack.gateway, back.headers["location"]))
        assert "Accounts to connect" not in consent.text and not _approve_disabled(consent.text)
        form = _form(consent.text)
        approved = browser.http.post(form["action"], data={"p": form["p"], "csrf": form["csrf"], "decision": "approve"})
        assert approved.status_code == 303, approved.text[:500]
        code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
        return _token(stack, client_id, code, TOOLBOX)
    finally:
        browser.close()


async def _use_toolbox(url: str, token: str, calls: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The official SDK client lists the toolbox's tools and calls some (an error is kept, not raised)."""
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client,
    ):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        results: dict[str, Any] = {}
        for name, arguments in calls.items():
            try:
                results[name] = (await client.call_tool(name, arguments)).model_dump(mode="json", exclude_none=True)
            except Exception as error:  # the SDK raises for a JSON-RPC error: keep it to assert on
                results[name] = {"raised": str(error)}
        return {"tools": tools, "results": results}


def test_a_virtual_route_combines_everything_the_demo_and_an_oauth_upstream(stack: Stack) -> None:
    # Given alice's token for the toolbox, whose notes upstream she connected on the consent page
    token = _toolbox_token(stack)
    url = f"{stack.gateway}/{TOOLBOX}/mcp"
    calls: dict[str, dict[str, Any]] = {
        "notes_whoami": {},
        "demo_say": {"text": "hello"},
        "ev_get-sum": {"a": 2, "b": 40},
    }

    # When the official SDK client lists the tools and calls one of each upstream
    seen = run_async(lambda: _use_toolbox(url, token, calls))

    # Then the tools are merged, prefixed, filtered and projected, and each call reached its upstream
    names = set(seen["tools"])
    assert {"notes_whoami", "notes_echo", "demo_say", "ev_echo", "ev_get-sum", "ev_get-tiny-image"} <= names
    assert not any(name.startswith("ev_") for name in names - {"ev_echo", "ev_get-sum", "ev_get-tiny-image"})
    assert "demo_echo" not in names  # renamed
    say = seen["tools"]["demo_say"]
    assert say.description == "Say it back." and say.annotations is not None and say.annotations.read_only_hint
    results = seen["results"]
    assert _whoami({"result": results["notes_whoami"]})["subject"] == "alice"  # with alice's upstream token
    assert results["demo_say"]["content"][0]["text"] == "hello"
    assert "42" in json.dumps(results["ev_get-sum"]["content"])

    # When server-everything stops
    assert stack.everything is not None
    _stop(stack.everything)
    calls["ev_echo"] = {"message": "anyone?"}
    degraded = run_async(lambda: _use_toolbox(url, token, calls))

    # Then the route still lists and calls the others, and a call to it names it
    names = set(degraded["tools"])
    assert {"notes_whoami", "demo_say"} <= names and not any(name.startswith("ev_") for name in names)
    assert degraded["results"]["demo_say"]["content"][0]["text"] == "hello"
    assert _whoami({"result": degraded["results"]["notes_whoami"]})["subject"] == "alice"
    assert "everything" in json.dumps(degraded["results"]["ev_echo"])


# --- the end user's "My connections" page (issue 11) ------------------------------------------------------------


async def _connections_in_chromium(stack: Stack) -> dict[str, Any]:
    from tests.support.browser import artifact_dir, chromium

    async with chromium(artifact_dir("my-connections")) as browser:
        page = await browser.new_page()
        await page.goto(f"{stack.gateway}/acme/connections")
        await page.fill('input[name="username"]', "alice")
        await page.fill('input[name="password"]', "alice-password")
        await page.click('button[type="submit"]')
        await page.wait_for_selector("text=Your connections")
        await browser.screenshot(page, "connections")
        before = await page.content()
        # Revoke… and Disconnect… ask first; the confirmation's button acts, and the page says what it did
        await page.locator('a[href*="?revoke="]').first.click()
        confirm = page.locator('button[name="revoke"]')
        grant_id = await confirm.get_attribute("value")
        await browser.screenshot(page, "revoke-question")
        await confirm.click()
        await page.wait_for_selector("text=Revoked:")
        await page.locator('a[href$="?disconnect=acme%2Ftoolbox%2Fnotes"]').click()
        await page.locator('button[name="disconnect"][value="acme/toolbox/notes"]').click()
        await page.wait_for_selector("text=Disconnected:")
        await browser.screenshot(page, "after-revoke-and-disconnect")
        return {"before": before, "after": await page.content(), "grant_id": grant_id}


def test_my_connections_lists_and_revokes_in_chromium(stack: Stack) -> None:
    # Given alice authorized clients and connected Notes and the toolbox's notes upstream (the tests above)
    # When she opens her connections page in a browser, signs in, revokes an application and disconnects an account
    seen = run_async(lambda: _connections_in_chromium(stack))

    # Then the page listed her applications and accounts, and they are gone after the clicks
    assert "Applications you authorized" in seen["before"] and "Upstream OAuth e2e" in seen["before"]
    assert "?disconnect=acme%2Fnotes" in seen["before"] and "?disconnect=acme%2Ftoolbox%2Fnotes" in seen["before"]
    assert seen["grant_id"] and f"?revoke={seen['grant_id']}" not in seen["after"]
    assert "?disconnect=acme%2Ftoolbox%2Fnotes" not in seen["after"] and "?disconnect=acme%2Fnotes" in seen["after"]
    assert _stored(stack, "alice") is not None  # the other account stays connected
