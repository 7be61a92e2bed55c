"""The token function over HTTP: methods, content types, size cap, CORS, no-store, client authentication errors, and
503 (never 500, nothing consumed) when the store or the signer fails. In-memory runtime, real client authentication."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from mangum import Mangum
from starlette.testclient import TestClient

from gateway.aws.kms_keys import KmsPublicKeys, KmsSigner
from gateway.crypto import pkce
from gateway.crypto.hashing import hash_secret
from gateway.identity.user import SignedInUser
from gateway.oauth.authorization import new_code
from gateway.runtime import Runtime
from gateway.storage.ports import StorageError
from gateway.storage.records import RegisteredClient
from gateway.tokens.access_token import AccessTokens
from gateway.web.token.app import MAX_BODY_BYTES, create_app
from infra.memory.keys import LocalRsaKey
from tests.support.runtime import memory_runtime

TOKEN = "/demo/echo/token"
REVOKE = "/demo/echo/revoke"
PUBLIC = "public-client"
CONFIDENTIAL = "confidential-client"
SECRET = "s3cret-value"
REDIRECT = "http://127.0.0.1:40000/callback"
VERIFIER = "k" * 50
FORM = {"content-type": "application/x-www-form-urlencoded"}
EVENTS = Path(__file__).resolve().parents[4] / "events"


def _registered(client_id: str, secret_hash: str | None, now: int) -> RegisteredClient:
    return RegisteredClient(
        client_id=client_id, route_key="demo/echo", client_name=client_id, redirect_uris=(REDIRECT,),
        token_endpoint_auth_method="client_secret_basic" if secret_hash else "none",
        client_secret_hash=secret_hash, created_at=now, last_used_at=now, expires_at=now + 86400,
    )  # fmt: skip


@pytest.fixture
def runtime() -> Runtime:
    runtime = memory_runtime()
    runtime.clients.create(_registered(PUBLIC, None, runtime.now()))
    runtime.clients.create(_registered(CONFIDENTIAL, hash_secret(SECRET), runtime.now()))
    return runtime


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), raise_server_exceptions=False)


GRANT_ID = "grant-the-code"


def put_code(runtime: Runtime, client_id: str = PUBLIC) -> str:
    """A code as /authorize stores it (its grant to be ``GRANT_ID``); returns its value."""
    now = runtime.now()  # the codes' lifetime starts when the test runs, not when this module was imported
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    issued = new_code(
        route=route, client_id=client_id, redirect_uri=REDIRECT, code_challenge=pkce.s256(VERIFIER), scopes=("mcp",),
        user=SignedInUser("alice", "Alice"), signed_in_at=now, now=now, lifetime_seconds=300,
    )  # fmt: skip
    runtime.grants.put_code(dataclasses.replace(issued.record, grant_id=GRANT_ID))
    return issued.value


def code_form(code: str, client_id: str | None = PUBLIC) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    return form | ({"client_id": client_id} if client_id else {})


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def assert_no_store_and_cors(response: Any) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["access-control-allow-origin"] == "*"


def test_code_exchange_then_refresh_then_revoke(client: TestClient, runtime: Runtime) -> None:
    # Given a code issued to a public client
    code = put_code(runtime)

    # When it is exchanged
    response = client.post(TOKEN, data=code_form(code))

    # Then the token response is JSON, not cacheable, and readable cross-origin
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert_no_store_and_cors(response)
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "Bearer"

    # When the refresh token is used
    refreshed = client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": PUBLIC}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != body["refresh_token"]

    # When the client revokes it (RFC 7009)
    revoked = client.post(REVOKE, data={"token": refreshed.json()["refresh_token"], "client_id": PUBLIC})

    # Then 200, and the grant is gone
    assert revoked.status_code == 200
    assert_no_store_and_cors(revoked)
    grant = runtime.grants.get_grant(GRANT_ID)
    assert grant is not None
    assert grant.status == "revoked"


def test_confidential_client_with_basic(client: TestClient, runtime: Runtime) -> None:
    code = put_code(runtime, client_id=CONFIDENTIAL)

    response = client.post(TOKEN, data=code_form(code, client_id=None), headers=basic(CONFIDENTIAL, SECRET))

    assert response.status_code == 200, response.text


def test_wrong_secret_with_basic_is_401_with_a_basic_challenge(client: TestClient, runtime: Runtime) -> None:
    code = put_code(runtime, client_id=CONFIDENTIAL)

    response = client.post(TOKEN, data=code_form(code, client_id=None), headers=basic(CONFIDENTIAL, "wrong"))

    # RFC 6749 §5.2: invalid_client is 401 with WWW-Authenticate matching the scheme the client used
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert_no_store_and_cors(response)


def test_unknown_client_in_the_body_is_401_without_a_challenge(client: TestClient, runtime: Runtime) -> None:
    response = client.post(TOKEN, data=code_form(put_code(runtime), client_id="nobody"))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers


def test_revoke_with_an_unknown_token_is_200(client: TestClient) -> None:
    response = client.post(REVOKE, data={"token": "not-a-token", "client_id": PUBLIC})

    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "multipart/form-data; boundary=x", ""])
def test_other_content_types_are_invalid_request(client: TestClient, content_type: str) -> None:
    response = client.post(TOKEN, content=b"grant_type=refresh_token", headers={"content-type": content_type})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "application/x-www-form-urlencoded" in response.json()["error_description"]
    assert_no_store_and_cors(response)


def test_content_type_with_charset_is_accepted(client: TestClient) -> None:
    response = client.post(
        TOKEN,
        content=b"grant_type=password",
        headers={"content-type": "Application/X-WWW-Form-URLEncoded; charset=UTF-8"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_oversized_body_is_400(client: TestClient) -> None:
    response = client.post(TOKEN, content=b"a=" + b"x" * MAX_BODY_BYTES, headers=FORM)

    assert response.status_code == 400
    assert "exceeds" in response.json()["error_description"]


def test_repeated_parameter_is_invalid_request(client: TestClient) -> None:
    response = client.post(TOKEN, content=b"grant_type=refresh_token&grant_type=refresh_token", headers=FORM)

    assert response.status_code == 400
    assert response.json()["error_description"].endswith("grant_type")


@pytest.mark.parametrize("path", [TOKEN, REVOKE])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_only_post_is_allowed(client: TestClient, path: str, method: str) -> None:
    response = client.request(method, path)

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response.headers["allow"] == "POST, OPTIONS"
    assert_no_store_and_cors(response)


@pytest.mark.parametrize("path", [TOKEN, REVOKE])
def test_cors_preflight(client: TestClient, path: str) -> None:
    response = client.options(
        path, headers={"origin": "http://localhost:6274", "access-control-request-method": "POST"}
    )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_unknown_route_is_404(client: TestClient) -> None:
    response = client.post("/demo/nope/token", data={"grant_type": "refresh_token"})

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_failing_store_is_503_and_consumes_nothing(client: TestClient, runtime: Runtime) -> None:
    # Given a store whose redemption transaction fails (a fault no real request can cause here)
    code = put_code(runtime)
    store: Any = runtime.grants
    real_redeem = store.redeem_code

    def failing(*args: Any) -> None:
        raise StorageError("DynamoDB transaction failed: ProvisionedThroughputExceededException")

    store.redeem_code = failing

    # When the code is exchanged
    response = client.post(TOKEN, data=code_form(code))

    # Then 503 temporarily_unavailable, without internals, and the code can still be redeemed afterwards
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "Throughput" not in response.text
    assert_no_store_and_cors(response)
    store.redeem_code = real_redeem
    assert client.post(TOKEN, data=code_form(code)).status_code == 200


class FaultyKms:
    """A KMS client whose Sign fails as KMS can (the public key is the test key's, so the signer knows its kid)."""

    def __init__(self, key: LocalRsaKey, fault: Exception) -> None:
        self._public = key.public_keys()[key.kid].public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self._fault = fault

    def get_public_key(self, **_: Any) -> dict[str, Any]:
        return {"PublicKey": self._public}

    def sign(self, **_: Any) -> dict[str, Any]:
        raise self._fault


@pytest.mark.parametrize(
    "fault",
    [
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Sign"),
        EndpointConnectionError(endpoint_url="https://kms.us-east-1.amazonaws.com"),
    ],
    ids=["throttled", "unreachable"],
)
def test_a_failing_signer_is_503_and_consumes_nothing(client: TestClient, runtime: Runtime, fault: Exception) -> None:
    # Given the KMS signer adapter over a KMS that fails (it translates the SDK's error into the port's)
    code = put_code(runtime)
    key: Any = runtime.__dict__["signing_key"]
    real_tokens = runtime.__dict__["access_tokens"]
    kms: Any = FaultyKms(key, fault)
    signer = KmsSigner(kms, "signing-key", KmsPublicKeys(kms, ("signing-key",)))
    runtime.__dict__["access_tokens"] = AccessTokens(signer, key, 3600)
    runtime.__dict__.pop("token_service", None)
    try:
        response = client.post(TOKEN, data=code_form(code))
    finally:
        runtime.__dict__["access_tokens"] = real_tokens
        runtime.__dict__.pop("token_service", None)

    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert runtime.grants.get_grant(GRANT_ID) is None
    assert client.post(TOKEN, data=code_form(code)).status_code == 200


def test_an_unreadable_shared_secret_is_503(runtime: Runtime) -> None:
    # Given a container whose Secrets Manager read fails (the adapter translates it into the port's error)
    class Unreachable:
        def get_secret_value(self, **_: Any) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com")

    del runtime.__dict__["shared_secret"]
    runtime.__dict__["secretsmanager"] = Unreachable()
    client = TestClient(create_app(runtime), raise_server_exceptions=False)
    # When a refresh needs the secret, then 503 temporarily_unavailable, not a 500
    response = client.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": "x" * 40, "client_id": PUBLIC})
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"


def test_an_unexpected_bug_is_a_json_500_without_a_trace(client: TestClient, runtime: Runtime) -> None:
    store: Any = runtime.grants

    def broken(*args: Any) -> None:
        raise ZeroDivisionError("secret detail")

    store.get_code = broken

    response = client.post(TOKEN, data=code_form("x"))

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert "secret detail" not in response.text
    assert "Traceback" not in response.text


# --- sample events through the Lambda handler ----------------------------------------------------------------


class _Context:
    function_name = "TokenFunction"
    aws_request_id = "test"


@pytest.mark.parametrize(
    ("name", "status", "error"),
    [
        ("token-unsupported-grant-type.json", 400, "unsupported_grant_type"),
        ("token-wrong-content-type.json", 400, "invalid_request"),
        ("token-invalid-grant.json", 400, "invalid_grant"),
        ("token-preflight.json", 204, None),
    ],
)
def test_static_sample_events(runtime: Runtime, name: str, status: int, error: str | None) -> None:
    handler = Mangum(create_app(runtime), lifespan="off")  # what functions/oauth_token/app.py builds
    runtime.clients.create(dataclasses.replace(_registered("local-invoke", None, runtime.now())))
    event = json.loads((EVENTS / name).read_text())

    context: Any = _Context()  # the attributes Mangum reads
    result = handler(event, context)

    assert result["statusCode"] == status, result
    if error is not None:
        assert json.loads(result["body"])["error"] == error
    assert result["headers"]["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    ("name", "status"),
    [("token-authorization-code.json", 200), ("token-refresh.json", 200), ("revoke-refresh-token.json", 200)],
)
def test_sample_events_with_placeholders(runtime: Runtime, name: str, status: int) -> None:
    # Given an event whose live values are filled in as `make invoke` does
    import infra.placeholders_oauth  # noqa: F401 - registers the token fillers
    from infra import placeholders

    handler = Mangum(create_app(runtime), lifespan="off")  # what functions/oauth_token/app.py builds
    event = placeholders.fill(json.loads((EVENTS / name).read_text()), function="token", runtime=runtime)

    # When the token function handles it
    context: Any = _Context()  # the attributes Mangum reads
    result = handler(event, context)

    # Then it succeeds; a token response carries both tokens
    assert result["statusCode"] == status, result
    if name.startswith("token-"):
        body = json.loads(result["body"])
        assert body["token_type"] == "Bearer"
        assert body["refresh_token"]
