"""The proxy fails closed, through the real app (Starlette TestClient) to a scripted upstream on 127.0.0.1: a key
service that cannot decrypt an upstream credential is a clear 503, sealed session ids expire, and the synchronous
credential stores are read off the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.storage.records import UpstreamToken
from gateway.upstream.cipher import CipherUnavailable
from gateway.upstream.token_set import TokenSet, UpstreamClient
from gateway.upstream.vault import UpstreamVault
from gateway.web.proxy.app import create_app
from infra.memory.cipher import LocalTokenCipher
from infra.memory.stores import MemoryUpstreamTokenStore
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

ACCEPT = "application/json, text/event-stream"
TOOLS_CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}},
}
OAUTH = {
    "type": "oauth",
    "authorization_server": "https://as.example.com",
    "client_id": "gw",
    "registration": "preregistered",
}


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


def _runtime(upstream: ScriptedUpstream, *, clock: Any = None) -> Runtime:
    data = example_config_data()
    servers = data["workspaces"]["demo"]["servers"]
    servers["echo"]["upstream"] = upstream.url
    servers["linear"] = {"upstream": upstream.url, "auth": OAUTH}
    servers["toolbox"] = {"upstreams": {"linear": {"url": upstream.url, "auth": OAUTH}}}
    return memory_runtime(parse_config(data)) if clock is None else memory_runtime(parse_config(data), clock=clock)


def _tokens(now: int) -> TokenSet:
    client = UpstreamClient(client_id="gw", client_secret=None, auth_method="none", source="preregistered")
    return TokenSet(
        access_token="upstream-access", token_type="Bearer", expires_at=now + 3600, refresh_token=None, scope=None,
        obtained_at=now, issuer="https://as.example.com", token_endpoint="https://as.example.com/token",
        resource="https://up.example.com/mcp", client=client,
    )  # fmt: skip


def _connect(runtime: Runtime, route_key: str, user: str = "alice") -> None:
    """Alice's upstream credential as the connect flow stores it (written by another container's vault)."""

    async def no_refresh(tokens: TokenSet) -> TokenSet:
        raise AssertionError("not refreshed")

    other_container = UpstreamVault(runtime.upstream_tokens, runtime.upstream_token_cipher, no_refresh)
    other_container.save(route_key, user, _tokens(runtime.now()))


def _post(runtime: Runtime, server: str, message: Any, **headers: str) -> Any:
    route = runtime.routes.get("demo", server)
    assert route is not None
    token = grant_backed_token(runtime, route, subject="alice", lifetime_seconds=3 * 86400)
    client = TestClient(create_app(runtime))
    sent = {"Authorization": f"Bearer {token}", "Accept": ACCEPT, **headers}
    return client.post(f"/demo/{server}/mcp", json=message, headers=sent)


# --- item 17: a key service that fails is a 503, not a 500 -------------------------------------------------------


def _fail_decryption(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault: KMS refuses to decrypt (throttled, unreachable), as the adapter reports it."""

    def unavailable(ciphertext: bytes, context: Any) -> bytes:
        raise CipherUnavailable("KMS Decrypt failed: ThrottlingException")

    monkeypatch.setattr(runtime.upstream_token_cipher, "decrypt", unavailable)


def test_a_key_service_failure_decrypting_the_upstream_credential_is_a_503(
    upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given alice's stored upstream credential, and a key service (KMS) that fails when asked to decrypt it
    runtime = _runtime(upstream)
    _connect(runtime, "demo/linear")
    _fail_decryption(runtime, monkeypatch)

    # When she calls a tool of the route
    response = _post(runtime, "linear", TOOLS_CALL)

    # Then she gets a 503 with a JSON-RPC error saying why, to retry later; nothing reached the upstream
    assert response.status_code == 503
    error = response.json()
    assert error["id"] == 7 and error["error"]["code"] == -32603
    assert "decrypt" in error["error"]["message"] and "retry later" in error["error"]["message"]
    assert response.headers["retry-after"] == "1"
    assert upstream.seen == []


def test_on_a_virtual_route_the_same_failure_names_the_upstream(
    upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _runtime(upstream)
    _connect(runtime, "demo/toolbox/linear")
    _fail_decryption(runtime, monkeypatch)

    response = _post(runtime, "toolbox", {**TOOLS_CALL, "params": {"name": "linear_echo", "arguments": {}}})

    assert response.status_code == 200
    error = response.json()["error"]
    assert error["code"] == -32603 and error["data"]["upstream"] == "linear"
    assert "decrypt" in error["data"]["cause"]


# --- item 17: sealed session ids have a lifetime -------------------------------------------------------------------


def test_a_session_id_older_than_its_lifetime_is_unknown(upstream: ScriptedUpstream) -> None:
    # Given an upstream with sessions, and a gateway whose clock the test moves
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    async def with_session(request: Request, body: bytes) -> Response:
        import json

        message = json.loads(body)
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {}}, headers={"Mcp-Session-Id": "u-1"})

    upstream.answer = with_session
    now = [time.time()]  # tokens are issued at the real time; the test moves this clock from there
    runtime = _runtime(upstream, clock=lambda: now[0])
    session_id = _post(runtime, "echo", INITIALIZE).headers["mcp-session-id"]

    # When the client uses its session id within the default lifetime (a day), and after it
    within = _post(runtime, "echo", TOOLS_CALL, **{"Mcp-Session-Id": session_id})
    now[0] += runtime.settings.session_max_age_seconds + 1
    after = _post(runtime, "echo", TOOLS_CALL, **{"Mcp-Session-Id": session_id})

    # Then the expired id is unknown (404: the client initializes again), and the upstream never saw that call
    assert within.status_code == 200
    assert after.status_code == 404 and after.json()["error"]["code"] == -32001
    assert len(upstream.seen) == 2


# --- issue 22 item 3: credential reads never block the event loop -------------------------------------------------


class ThreadRecordingStore(MemoryUpstreamTokenStore):
    def __init__(self) -> None:
        super().__init__()
        self.read_on: list[int] = []

    def get(self, route_key: str, subject: str) -> UpstreamToken | None:
        self.read_on.append(threading.get_ident())
        return super().get(route_key, subject)


def test_a_credential_cache_miss_reads_the_store_and_key_service_off_the_event_loop() -> None:
    # Given a vault with a stored credential it has not cached yet (synchronous store and cipher: DynamoDB, KMS)
    store, cipher = ThreadRecordingStore(), LocalTokenCipher()

    async def no_refresh(tokens: TokenSet) -> TokenSet:
        raise AssertionError("not refreshed")

    UpstreamVault(store, cipher, no_refresh).save("demo/linear", "alice", _tokens(1_800_000_000))
    vault = UpstreamVault(store, cipher, no_refresh, clock=lambda: 1_800_000_000)
    decrypted_on: list[int] = []
    decrypt = cipher.decrypt

    def recording_decrypt(ciphertext: bytes, context: Any) -> bytes:
        decrypted_on.append(threading.get_ident())
        return decrypt(ciphertext, context)

    cipher.decrypt = recording_decrypt  # type: ignore[method-assign]
    store.read_on.clear()

    # When the proxy asks for it from its event loop
    async def current() -> tuple[int, TokenSet]:
        return threading.get_ident(), await vault.current("demo/linear", "alice")

    loop_thread, tokens = asyncio.run(current())

    # Then the read and the decryption ran in another thread, and the loop stayed free
    assert tokens.access_token == "upstream-access"
    assert store.read_on and loop_thread not in store.read_on
    assert decrypted_on and loop_thread not in decrypted_on
