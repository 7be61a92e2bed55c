"""``make dev`` over its life: it stops on SIGTERM to its process group and releases every port (issue 20 item 19);
what a user made survives Ctrl-C and a new start, and ``RESET=1`` starts clean (issue 21 item 5); its own address
answers a start page, not a dead end (issue 21 item 4).

Each test runs ``make dev`` as a user does: in a process group of its own, with ports and a state directory of its
own (:mod:`tests.support.dev_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.devserver import patched_environ
from tests.support.browser import chromium
from tests.support.dev_process import (
    HOST,
    MAKE,
    Running,
    dev_environment,
    kill_group,
    listening,
    read_state,
    start,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOOLS_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": "still here"}},
}
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}


@pytest.fixture
def make_dev() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def run(state_dir: Path, dev_port: int, upstream_port: int, *variables: str) -> Running:
        env = dev_environment(state_dir, dev_port, upstream_port)
        running = start([*MAKE, "dev", f"PY={sys.executable}", *variables], env)
        started.append(running)
        return running

    yield run
    for running in started:
        kill_group(running)


def ready_line(dev_port: int) -> str:
    return f"claude mcp add --transport http echo http://{HOST}:{dev_port}/demo/echo/mcp"


# --- SIGTERM (issue 20 item 19) ------------------------------------------------------------------------------------


def test_make_dev_stops_on_sigterm_to_its_process_group_and_releases_every_port(
    tmp_path: Path, free_port: Callable[[], int], make_dev: Callable[..., Running]
) -> None:
    # Given `make dev` serving, a function container started by a request
    dev_port, upstream_port = free_port(), free_port()
    dev = make_dev(tmp_path, dev_port, upstream_port)
    dev.wait_for(ready_line(dev_port))
    prm = f"http://{HOST}:{dev_port}/.well-known/oauth-protected-resource/demo/echo/mcp"
    assert httpx.get(prm, timeout=60).status_code == 200
    aws_port = int(read_state(tmp_path)["aws_endpoint_url"].rsplit(":", 1)[1])
    ports = [dev_port, upstream_port, aws_port]
    assert all(listening(port) for port in ports)
    assert len(dev.group()) >= 5  # make, the dev server, the store, the demo upstream, a container

    # When its process group gets SIGTERM, and again and again while it stops (a closing terminal; make forwards
    # it to its child on top of the group's own, so the dev server gets one while it handles another)
    bursts_until = time.monotonic() + 3
    with contextlib.suppress(ProcessLookupError):  # the group is gone
        while time.monotonic() < bursts_until:
            for _ in range(200):
                os.killpg(dev.process.pid, signal.SIGTERM)
            time.sleep(0.02)  # the next burst finds the dev server further into its shutdown

    # Then make and every process of the group exit, and no port is held any more
    dev.process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while dev.group() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dev.group() == [], dev.output
    assert not [port for port in ports if listening(port)], dev.output
    assert "Traceback" not in dev.output


# --- state across a restart (issue 21 item 5) ----------------------------------------------------------------------


def admin(state_dir: Path, *argv: str) -> Any:
    from gateway.admin import main

    out = io.StringIO()
    with redirect_stdout(out):
        status = main(["admin", "--local", "--json", *argv], environ={"DEV_STATE_FILE": str(state_dir / "state.json")})
    assert status == 0, out.getvalue()
    return json.loads(out.getvalue())


def tool_call(dev_port: int, headers: dict[str, str]) -> int:
    url = f"http://{HOST}:{dev_port}/demo/echo/mcp"
    return httpx.post(url, json=TOOLS_CALL, headers={**MCP_HEADERS, **headers}, timeout=60).status_code


def make_state(state_dir: Path, dev_port: int) -> dict[str, str]:
    """What a user makes in a session: a registered client, a grant and its token, an API key, an upstream
    connection (its token set sealed under the stand-in's KMS key)."""
    from gateway.runtime import Runtime
    from gateway.upstream.token_set import TokenSet, UpstreamClient
    from infra.placeholders import create_grant

    registered = httpx.post(
        f"http://{HOST}:{dev_port}/demo/echo/register",
        json={"client_name": "kept", "redirect_uris": ["http://127.0.0.1:33418/callback"]},
        timeout=60,
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    [key] = admin(
        state_dir, "create-key", "--workspace", "demo", "--user", "alice", "--name", "kept", "--server", "echo"
    )
    with patched_environ(read_state(state_dir)["env"]):
        runtime = Runtime.from_environment()
        route = runtime.routes.get("demo", "echo")
        assert route is not None
        grant_id = create_grant(runtime, route, subject="alice", client_id=client_id)
        token = runtime.access_tokens.issue(
            route=route, subject="alice", client_id=client_id, scopes=route.default_scopes, grant_id=grant_id
        )
        now = runtime.now()
        runtime.upstream_oauth.vault.save(
            "demo/echo",
            "alice",
            TokenSet(
                access_token="upstream-access",
                token_type="Bearer",
                expires_at=now + 86400,
                refresh_token=None,
                scope=None,
                obtained_at=now,
                issuer="http://127.0.0.1",
                token_endpoint="http://127.0.0.1/token",
                resource="http://127.0.0.1/mcp",
                client=UpstreamClient("gw", None, "none", "dcr"),
            ),
        )
    return {"client_id": client_id, "grant_id": grant_id, "token": token, "key": key["key"]}


def upstream_connection(state_dir: Path) -> str | None:
    """The upstream access token kept for alice, decrypted through the running stand-in (None: not connected)."""
    from gateway.runtime import Runtime
    from gateway.upstream.vault import NotConnected

    with patched_environ(read_state(state_dir)["env"]):
        vault = Runtime.from_environment().upstream_oauth.vault
        try:
            return asyncio.run(vault.current("demo/echo", "alice")).access_token
        except NotConnected:
            return None


def test_what_a_user_made_survives_a_restart_and_reset_starts_clean(
    tmp_path: Path, free_port: Callable[[], int], make_dev: Callable[..., Running]
) -> None:
    # Given `make dev` with a registered client, a grant with its access token, an API key and an upstream
    # connection, each working
    dev_port, upstream_port = free_port(), free_port()
    first = make_dev(tmp_path, dev_port, upstream_port)
    first.wait_for(ready_line(dev_port))
    assert "make dev RESET=1 starts clean" in first.output
    made = make_state(tmp_path, dev_port)
    assert tool_call(dev_port, {"Authorization": f"Bearer {made['token']}"}) == 200
    assert tool_call(dev_port, {"X-Gateway-Key": made["key"]}) == 200
    assert upstream_connection(tmp_path) == "upstream-access"

    # When it is stopped with Ctrl-C and started again
    first.ctrl_c()
    second = make_dev(tmp_path, dev_port, upstream_port)
    second.wait_for(ready_line(dev_port))

    # Then all of it is still there and still works: the token verifies (same signing key) and its grant is
    # active, the key calls tools, the client is known, the connection decrypts (same KMS key material)
    assert tool_call(dev_port, {"Authorization": f"Bearer {made['token']}"}) == 200
    assert tool_call(dev_port, {"X-Gateway-Key": made["key"]}) == 200
    assert admin(tmp_path, "client", made["client_id"])[0]["client_id"] == made["client_id"]
    assert admin(tmp_path, "grant", made["grant_id"])[0]["status"] == "active"
    assert upstream_connection(tmp_path) == "upstream-access"

    # When it is stopped and started with RESET=1
    second.ctrl_c()
    clean = make_dev(tmp_path, dev_port, upstream_port, "RESET=1")
    clean.wait_for(ready_line(dev_port))

    # Then none of it is left: the token's signing key is another, the key and the client are unknown
    assert tool_call(dev_port, {"Authorization": f"Bearer {made['token']}"}) == 401
    assert tool_call(dev_port, {"X-Gateway-Key": made["key"]}) == 401
    assert upstream_connection(tmp_path) is None
    clean.ctrl_c()


# --- the start page (issue 21 item 4) ------------------------------------------------------------------------------


def test_the_dev_servers_own_address_is_a_start_page(
    tmp_path: Path, free_port: Callable[[], int], make_dev: Callable[..., Running], artifacts: Path
) -> None:
    # Given `make dev`
    dev_port, upstream_port = free_port(), free_port()
    base = f"http://{HOST}:{dev_port}"
    dev = make_dev(tmp_path, dev_port, upstream_port)
    dev.wait_for(ready_line(dev_port))

    # Then its banner names the start page and the workspace's My connections
    assert f"Start page: {base}/" in dev.output
    assert f"My connections (demo): {base}/demo/connections" in dev.output

    async def browse() -> dict[str, Any]:
        async with chromium(artifacts) as browser:
            page = await browser.new_page()
            # When a browser opens the banner's first URL
            await page.goto(f"{base}/")
            await browser.screenshot(page, "start-page")
            seen: dict[str, Any] = {
                "title": await page.title(),
                "text": await page.inner_text("body"),
                "links": await page.eval_on_selector_all("a", "links => links.map(link => link.href)"),
            }
            # And a path with a trailing slash, and a sign-in page opened without a sign-in in progress
            answer = await page.goto(f"{base}/demo/connections/")
            assert answer is not None
            seen["slash_status"] = answer.status
            seen["slash_text"] = await page.inner_text("body")
            await browser.screenshot(page, "nothing-here")
            await page.goto(f"{base}/demo/login")
            seen["sign_in_text"] = await page.inner_text("body")
            await browser.screenshot(page, "sign-in-without-a-sign-in")
            return seen

    seen = asyncio.run(browse())

    # Then it shows each route with its `claude mcp add` line, My connections, and the admin CLI's first command
    assert "MCP gateway" in seen["title"]
    assert f"claude mcp add --transport http echo {base}/demo/echo/mcp" in seen["text"]
    assert "alice / alice-password" in seen["text"].replace("\n", " ")
    assert "mcp-gateway admin --local routes" in seen["text"]
    assert f"{base}/demo/connections" in seen["links"]
    # And the mistyped page points at what was meant, still a 404 as on AWS
    assert seen["slash_status"] == 404
    assert "Nothing is served at /demo/connections/" in seen["slash_text"]
    assert "Did you mean" in seen["slash_text"]
    # And the sign-in page says what to do instead
    assert "My connections" in seen["sign_in_text"]
    assert f"{base}/demo/connections" in seen["sign_in_text"]
    # And an API client still gets API Gateway's 404 where no route and no page is
    assert httpx.get(f"{base}/demo/connections/").json() == {"message": "Not Found"}
    assert (artifacts / "01-start-page.png").is_file()
    dev.ctrl_c()
