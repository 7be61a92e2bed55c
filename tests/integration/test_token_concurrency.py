"""The token endpoint against DynamoDB and KMS over real HTTP (moto's server, resources from template.yaml).

Acceptance of issue 3: N parallel exchanges of one code yield exactly one token; N parallel refreshes of one refresh
token never revoke the grant and leave it with a single current refresh token that then works. Also the cost budget
of one exchange and one refresh (DynamoDB round trips and writes, KMS calls), counted with botocore event hooks.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from starlette.testclient import TestClient

from gateway.aws.dynamodb_grants import DynamoGrantStore
from gateway.aws.dynamodb_store import DynamoClientStore
from gateway.aws.kms_keys import KmsPublicKeys, KmsSigner
from gateway.config import parse_config
from gateway.crypto import pkce
from gateway.crypto.hashing import random_token
from gateway.identity.user import SignedInUser
from gateway.oauth import authorization, refresh_tokens
from gateway.oauth.errors import OAuthError
from gateway.oauth.token_parts import TokenResponse
from gateway.oauth.token_requests import AuthorizationCodeRequest, RefreshTokenRequest
from gateway.oauth.token_service import TokenService
from gateway.routes import Route, RouteTable
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.storage.records import AuthorizationCode, RegisteredClient
from gateway.tokens.access_token import AccessTokens
from gateway.web.token.app import create_app
from infra.local_aws import local_environment, provision, start_local_aws
from infra.memory.stores import MemoryAuditLog, MemoryRateLimiter, MemorySingleUseStore
from infra.template import load_template
from tests.support.runtime import BASE_URL, EXAMPLE_CONFIG, example_config_data

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

PARALLEL = 12
CLIENT_ID = "concurrency-client"
REDIRECT = "http://127.0.0.1:45678/callback"
SECRET = b"integration-shared-secret-0123456789abcdef"
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@dataclass
class CallLog:
    """AWS calls seen by the clients' event hooks: (service, operation, items written)."""

    calls: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, service: str) -> Callable[..., None]:
        def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
            operation = event_name.rsplit(".", 1)[-1]
            items = len(params.get("TransactItems", [])) if operation == "TransactWriteItems" else 1
            with self.lock:
                self.calls.append((service, operation, items if operation in WRITE_OPERATIONS else 0))

        return record

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()

    def operations(self, service: str) -> Counter[str]:
        return Counter(operation for svc, operation, _ in self.calls if svc == service)

    def items_written(self) -> int:
        return sum(items for svc, _, items in self.calls if svc == "dynamodb")


@dataclass
class Stack:
    dynamodb: DynamoDBClient
    kms: KMSClient
    refs: dict[str, str]
    log: CallLog
    route: Route
    service: TokenService
    grants: DynamoGrantStore
    clients: DynamoClientStore
    access_tokens: AccessTokens
    public_keys: KmsPublicKeys


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with start_local_aws() as aws:
        refs = provision(aws.endpoint_url, load_template())
        env = local_environment(aws.endpoint_url)
        session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )
        dynamodb: DynamoDBClient = session.client("dynamodb", endpoint_url=aws.endpoint_url)
        kms: KMSClient = session.client("kms", endpoint_url=aws.endpoint_url)
        log = CallLog()
        dynamodb.meta.events.register("provide-client-params.dynamodb.*", log.hook("dynamodb"))
        kms.meta.events.register("provide-client-params.kms.*", log.hook("kms"))

        route = RouteTable(parse_config(example_config_data()), BASE_URL).get("demo", "echo")
        assert route is not None
        public_keys = KmsPublicKeys(kms, (refs["SigningKeyAlias"],))
        public_keys.public_keys()  # once per cold start; not part of any request's budget
        access_tokens = AccessTokens(KmsSigner(kms, refs["SigningKeyAlias"], public_keys), public_keys, 3600)
        grants = DynamoGrantStore(dynamodb, refs["GrantsTable"])
        clients = DynamoClientStore(dynamodb, refs["ClientsTable"])
        now = int(time.time())
        clients.create(
            RegisteredClient(
                client_id=CLIENT_ID,
                route_key=route.key,
                client_name="Concurrency test",
                redirect_uris=(REDIRECT,),
                token_endpoint_auth_method="none",
                client_secret_hash=None,
                created_at=now,
                last_used_at=now,
                expires_at=now + 86400,
            )
        )
        service = TokenService(
            grants=grants,
            access_tokens=access_tokens,
            shared_secret=SECRET,
            policy=parse_config(example_config_data()).oauth,
            access_token_ttl_seconds=3600,
        )
        yield Stack(dynamodb, kms, refs, log, route, service, grants, clients, access_tokens, public_keys)


def new_code(stack: Stack) -> tuple[AuthorizationCode, str, str]:
    """A code stored as /authorize stores it: (record, code, verifier)."""
    verifier, now = random_token(48), int(time.time())
    issued = authorization.new_code(
        route=stack.route, client_id=CLIENT_ID, redirect_uri=REDIRECT, code_challenge=pkce.s256(verifier),
        scopes=("mcp",), user=SignedInUser("alice", "Alice", ("engineering",)), signed_in_at=now, now=now,
        lifetime_seconds=300,
    )  # fmt: skip
    stack.grants.put_code(issued.record)
    return issued.record, issued.value, verifier


def exchange(stack: Stack, code: str, verifier: str) -> TokenResponse:
    request = AuthorizationCodeRequest(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    return stack.service.exchange_code(stack.route, CLIENT_ID, request, int(time.time()))


def refresh(stack: Stack, token: str) -> TokenResponse:
    request = RefreshTokenRequest(grant_type="refresh_token", refresh_token=token)
    return stack.service.refresh(stack.route, CLIENT_ID, request, int(time.time()))


def in_parallel(action: Callable[[], TokenResponse], n: int = PARALLEL) -> list[TokenResponse | OAuthError]:
    """Run ``action`` n times at once (released together by a barrier); results and OAuth errors."""
    barrier = threading.Barrier(n)

    def run() -> TokenResponse | OAuthError:
        barrier.wait()
        try:
            return action()
        except OAuthError as problem:
            return problem

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(run) for _ in range(n)]
        return [future.result(timeout=60) for future in futures]


def test_parallel_exchanges_of_one_code_yield_exactly_one_token(stack: Stack) -> None:
    # Given one stored code
    record, code, verifier = new_code(stack)

    # When N requests redeem it at the same moment
    results = in_parallel(lambda: exchange(stack, code, verifier))

    # Then exactly one gets tokens; every other one is invalid_grant
    successes = [result for result in results if isinstance(result, TokenResponse)]
    failures = [result for result in results if isinstance(result, OAuthError)]
    assert len(successes) == 1
    assert len(failures) == PARALLEL - 1
    assert {failure.error for failure in failures} == {"invalid_grant"}
    # and the code is redeemed once, into the one grant the token names
    stored = stack.grants.get_code(record.code_hash, int(time.time()))
    assert stored is not None
    assert stored.redeemed_at is not None
    claims = stack.access_tokens.verify(successes[0].access_token, route=stack.route)
    assert claims.grant_id == record.grant_id
    # A replay seen as such revokes what was issued (RFC 6749 §10.5); a loser that only saw a conflict does not.
    grant = stack.grants.get_grant(record.grant_id)
    assert grant is not None


def test_parallel_refreshes_of_one_token_keep_the_grant_with_one_current_token(stack: Stack) -> None:
    # Given an issued refresh token
    record, code, verifier = new_code(stack)
    issued = exchange(stack, code, verifier)
    assert issued.refresh_token is not None
    token = issued.refresh_token

    # When N clients (or N tabs of one) refresh it at the same moment
    results = in_parallel(lambda: refresh(stack, token))

    # Then every one of them succeeds with the same successor, and the grant is active at the next generation
    problems = [result for result in results if isinstance(result, OAuthError)]
    assert problems == []
    successors = {result.refresh_token for result in results if isinstance(result, TokenResponse)}
    assert len(successors) == 1
    grant = stack.grants.get_grant(record.grant_id)
    assert grant is not None
    assert grant.status == "active"
    assert grant.refresh_generation == 1
    (successor,) = successors
    assert successor == refresh_tokens.derive(SECRET, grant.grant_id, grant.refresh_salt, 1)

    # and that one current token then works
    after = refresh(stack, successor or "")
    assert after.refresh_token is not None
    assert stack.grants.get_grant(record.grant_id).refresh_generation == 2  # type: ignore[union-attr]


def _runtime(stack: Stack) -> Runtime:
    config = parse_config(example_config_data())
    runtime = Runtime(Settings(config=str(EXAMPLE_CONFIG), public_base_url=BASE_URL), config)
    runtime.__dict__.update(
        clients=stack.clients,
        grants=stack.grants,
        shared_secret=SECRET,
        public_keys=stack.public_keys,
        access_tokens=stack.access_tokens,
        audit_log=MemoryAuditLog(),  # the grants and clients tables are what this test counts
        rate_limiter=MemoryRateLimiter(),  # (the rate limits' counters are docs/non-interactive.md's)
        single_use=MemorySingleUseStore(),  # (used jtis and DPoP proofs: none in these requests)
    )
    return runtime


def test_round_trips_per_exchange_and_refresh_through_the_endpoint(stack: Stack) -> None:
    # Given the token endpoint wired to DynamoDB and KMS, and a warm container (client known, keys fetched)
    runtime = _runtime(stack)
    http = TestClient(create_app(runtime))
    _, warm_code, warm_verifier = new_code(stack)
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "client_id": CLIENT_ID}
    assert http.post("/demo/echo/token", data=form | {"code": warm_code, "code_verifier": warm_verifier}).is_success
    _, code, verifier = new_code(stack)

    # When one code is exchanged
    stack.log.reset()
    response = http.post("/demo/echo/token", data=form | {"code": code, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    exchange_dynamodb = stack.log.operations("dynamodb")
    exchange_kms = stack.log.operations("kms")
    exchange_items = stack.log.items_written()

    # And its refresh token is used once
    stack.log.reset()
    refreshed = http.post(
        "/demo/echo/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": response.json()["refresh_token"],
            "client_id": CLIENT_ID,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    refresh_dynamodb = stack.log.operations("dynamodb")
    refresh_kms = stack.log.operations("kms")
    refresh_items = stack.log.items_written()

    # Then: one KMS Sign per access token and nothing else from KMS
    assert exchange_kms == Counter({"Sign": 1})
    assert refresh_kms == Counter({"Sign": 1})
    # an exchange reads the client and the code, and writes once: a transaction of code, grant and consent
    assert exchange_dynamodb == Counter({"GetItem": 2, "TransactWriteItems": 1})
    assert exchange_items == 3
    # a refresh reads the client and the grant, and makes one conditional update
    assert refresh_dynamodb == Counter({"GetItem": 2, "UpdateItem": 1})
    assert refresh_items == 1
    print(  # recorded in docs/performance.md
        f"\nexchange: dynamodb={dict(exchange_dynamodb)} items_written={exchange_items} kms={dict(exchange_kms)}"
        f"\nrefresh: dynamodb={dict(refresh_dynamodb)} items_written={refresh_items} kms={dict(refresh_kms)}"
    )
