"""The register function end to end through its Lambda handler, on the sample events and on hand-made requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from mangum import Mangum
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.crypto.hashing import matches_hash
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.storage.ports import StorageError
from gateway.storage.records import RegisteredClient
from gateway.web.register.app import create_app
from infra.memory.stores import MemoryAuditLog, MemoryClientStore, MemoryRateLimiter
from tests.support.hostile_json import DEEP_SMALL, DEEP_SMALL_OBJECT

EVENTS = Path(__file__).resolve().parents[4] / "events"
CONFIG = {
    "workspaces": {
        "demo": {
            "identity_provider": {"type": "dev", "users": [{"id": "alice", "password": "alice-password"}]},
            "servers": {"echo": {"upstream": "http://127.0.0.1:3001/mcp"}},
        }
    },
    "oauth": {"unused_client_ttl_seconds": 7200},
}


class FailingStore(MemoryClientStore):
    def create(self, client: RegisteredClient) -> None:
        raise StorageError("throttled")


@pytest.fixture
def runtime() -> Runtime:
    settings = Settings(config="unused.yaml", public_base_url="https://gw.example.com")
    runtime = Runtime(settings, parse_config(CONFIG))
    runtime.__dict__["clients"] = MemoryClientStore()
    runtime.__dict__["audit_log"] = MemoryAuditLog()
    runtime.__dict__["rate_limiter"] = MemoryRateLimiter()
    return runtime


@pytest.fixture
def store(runtime: Runtime) -> MemoryClientStore:
    clients = runtime.clients
    assert isinstance(clients, MemoryClientStore)
    return clients


def invoke(runtime: Runtime, name: str) -> dict[str, Any]:
    """The register function's Lambda handler (what functions/register/app.py builds) on a sample event."""
    handler = Mangum(create_app(runtime), lifespan="off")
    event = json.loads((EVENTS / f"{name}.json").read_text())
    result: dict[str, Any] = handler(event, cast(Any, None))
    return result


def body_of(result: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(result["body"])
    return parsed


def test_public_client_event_registers_without_secret(runtime: Runtime, store: MemoryClientStore) -> None:
    # Given the Claude Code-like registration event
    # When the handler runs it
    result = invoke(runtime, "register-public-client")
    # Then the client is created with no secret, for this route, and the answer is never cached
    assert result["statusCode"] == 201
    body = body_of(result)
    assert body["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in body
    assert body["redirect_uris"] == ["http://localhost:54212/callback"]
    assert result["headers"]["cache-control"] == "no-store"
    assert result["headers"]["access-control-allow-origin"] == "*"
    stored = store.get(body["client_id"], body["client_id_issued_at"])
    assert stored is not None
    assert stored.route_key == "demo/echo"
    assert stored.expires_at == body["client_id_issued_at"] + 7200


def test_confidential_client_event_gets_a_secret_stored_as_hash(runtime: Runtime, store: MemoryClientStore) -> None:
    # Given the claude.ai-like registration with client_secret_post
    result = invoke(runtime, "register-confidential-client")
    # Then a secret is returned once, never expires, and only its hash is stored
    assert result["statusCode"] == 201
    body = body_of(result)
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    assert body["client_secret_expires_at"] == 0
    stored = store.get(body["client_id"], body["client_id_issued_at"])
    assert stored is not None
    assert stored.client_secret_hash is not None
    assert stored.client_secret_hash != body["client_secret"]
    assert matches_hash(body["client_secret"], stored.client_secret_hash)
    assert body["scope"] == "mcp offline_access"


def test_plain_http_redirect_event_is_refused(runtime: Runtime, store: MemoryClientStore) -> None:
    result = invoke(runtime, "register-invalid-redirect")
    assert result["statusCode"] == 400
    body = body_of(result)
    assert body["error"] == "invalid_redirect_uri"
    assert "http://app.example.com/callback" in body["error_description"]


def test_malformed_json_event_is_refused(runtime: Runtime, store: MemoryClientStore) -> None:
    result = invoke(runtime, "register-malformed-json")
    assert result["statusCode"] == 400
    assert body_of(result) == {
        "error": "invalid_client_metadata",
        "error_description": "the request body is not valid JSON",
    }


@pytest.mark.parametrize("body", [DEEP_SMALL, DEEP_SMALL_OBJECT], ids=["arrays", "objects"])
def test_json_nested_too_deep_is_invalid_client_metadata_and_stores_nothing(
    runtime: Runtime, store: MemoryClientStore, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[RegisteredClient] = []
    monkeypatch.setattr(store, "create", created.append)
    client = TestClient(create_app(runtime))
    response = client.post("/demo/echo/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_client_metadata",
        "error_description": "the request body is not valid JSON",
    }
    assert created == []


def test_preflight_event_allows_browser_clients(runtime: Runtime, store: MemoryClientStore) -> None:
    result = invoke(runtime, "register-preflight")
    assert result["statusCode"] == 204
    headers = result["headers"]
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"]
    assert "Content-Type" in headers["access-control-allow-headers"]


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), raise_server_exceptions=False)


def test_wrong_content_type_says_to_send_json(client: TestClient) -> None:
    # Given a form-encoded registration
    response = client.post("/demo/echo/register", data={"redirect_uris": "https://a.example/cb"})
    # Then it is refused with a 400 that names the expected content type
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert "application/json" in response.json()["error_description"]


def test_oversized_body_is_refused(client: TestClient) -> None:
    payload = json.dumps({"redirect_uris": ["https://a.example/cb"], "client_name": "x" * 70_000})
    response = client.post("/demo/echo/register", content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_client_metadata"


def test_unknown_route_is_404_json(client: TestClient) -> None:
    response = client.post("/demo/nope/register", json={"redirect_uris": ["https://a.example/cb"]})
    assert response.status_code == 404
    assert "nope" in response.json()["error_description"]


def test_get_is_405_with_cors(client: TestClient) -> None:
    response = client.get("/demo/echo/register")
    assert response.status_code == 405
    assert response.headers["access-control-allow-origin"] == "*"


def test_non_object_json_is_invalid_metadata(client: TestClient) -> None:
    response = client.post("/demo/echo/register", json=["https://a.example/cb"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


def test_deeply_nested_json_is_a_400_not_a_crash(client: TestClient) -> None:
    response = client.post("/demo/echo/register", content="[" * 30_000, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_store_failure_is_503(runtime: Runtime, store: MemoryClientStore) -> None:
    # Given a client store that fails
    runtime.__dict__["clients"] = FailingStore()
    client = TestClient(create_app(runtime), raise_server_exceptions=False)
    # When a valid registration arrives
    response = client.post("/demo/echo/register", json={"redirect_uris": ["https://a.example/cb"]})
    # Then the client is told to retry later, with nothing registered
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
