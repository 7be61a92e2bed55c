"""Rate limits at the OAuth endpoints (in-memory counters, a fixed clock): /register, /token, /authorize and the
sign-in answer 429 with Retry-After and an OAuth error once the limit is reached, before storing anything; the
client address comes from API Gateway's event, never from X-Forwarded-For."""

from __future__ import annotations

from typing import Any

from mangum import Mangum
from starlette.requests import Request
from starlette.testclient import TestClient

from gateway.crypto.hashing import hash_secret
from gateway.runtime import Runtime
from gateway.storage.records import RegisteredClient
from gateway.web.authorize import app as authorize_app
from gateway.web.common.rate_limiting import client_address
from gateway.web.register import app as register_app
from gateway.web.token import app as token_app
from infra.memory.stores import MemoryClientStore, MemoryGrantStore
from tests.support.runtime import memory_runtime

NOW = 1_800_000_045  # 45 s into a minute: the window ends in 15 s
REGISTRATION = {"client_name": "flood", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}


def _runtime(**settings: Any) -> Runtime:
    return memory_runtime(clock=lambda: NOW, **settings)


def _assert_oauth_429(response: Any) -> None:
    assert response.status_code == 429
    assert response.headers["retry-after"] == "15"
    assert response.json()["error"] == "temporarily_unavailable"
    assert "retry after 15 seconds" in response.json()["error_description"]


def test_a_registration_flood_is_refused_past_the_limit_and_stores_nothing_more() -> None:
    # Given a limit of 3 registrations a minute per address
    runtime = _runtime(rate_limit_register_per_ip=3)
    client = TestClient(register_app.create_app(runtime))

    # When one address registers 5 times
    responses = [client.post("/demo/echo/register", json=REGISTRATION) for _ in range(5)]

    # Then 3 are registered, 2 refused, and the store holds exactly 3 clients
    assert [r.status_code for r in responses] == [201, 201, 201, 429, 429]
    _assert_oauth_429(responses[3])
    assert responses[3].headers["cache-control"] == "no-store"
    store = runtime.clients
    assert isinstance(store, MemoryClientStore)
    assert len(store._items) == 3


def _register_event(source_ip: str, forwarded_for: str) -> dict[str, Any]:
    body = '{"client_name": "x", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}'
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/demo/echo/register", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-forwarded-for": forwarded_for, "host": "gw.example.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "gw.example.com", "stage": "$default",
            "requestId": "r", "routeKey": "$default", "time": "04/Dec/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/demo/echo/register", "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": "test"},
        },
        "body": body, "isBase64Encoded": False,
    }  # fmt: skip


def test_the_address_is_api_gateways_source_ip_not_x_forwarded_for() -> None:
    # Given a limit of 1 registration a minute per address, behind API Gateway (Mangum)
    runtime = _runtime(rate_limit_register_per_ip=1)
    handler = Mangum(register_app.create_app(runtime), lifespan="off")
    context: Any = None  # Mangum reads nothing of it for an HTTP API event

    # When one source address sends two registrations claiming different X-Forwarded-For addresses
    first = handler(_register_event("203.0.113.9", "198.51.100.1"), context)
    second = handler(_register_event("203.0.113.9", "198.51.100.2"), context)
    # and another source address sends one
    other = handler(_register_event("203.0.113.10", "198.51.100.1"), context)

    # Then the second is refused (the claimed addresses do not matter), the other address is not
    assert (first["statusCode"], second["statusCode"], other["statusCode"]) == (201, 429, 201)


def _with_clients(runtime: Runtime) -> Runtime:
    """A public client and a confidential one (secret ``SECRET``) registered at demo/echo."""
    now = runtime.now()
    for client_id, secret_hash in (("public", None), ("confidential", hash_secret(SECRET))):
        client = RegisteredClient(
            client_id=client_id, route_key="demo/echo", client_name=client_id, redirect_uris=("http://127.0.0.1/cb",),
            token_endpoint_auth_method="client_secret_basic" if secret_hash else "none",
            client_secret_hash=secret_hash, created_at=now, last_used_at=now, expires_at=now + 86400,
        )  # fmt: skip
        runtime.clients.create(client)
    return runtime


SECRET = "the-right-secret"
REFRESH = {"grant_type": "refresh_token", "refresh_token": "unknown"}


def _from(runtime: Runtime, address: str) -> TestClient:
    return TestClient(token_app.create_app(runtime), client=(address, 50000))


def test_token_requests_are_limited_per_address_and_per_authenticated_client() -> None:
    # Given limits of 2 token requests a minute per client, and 4 per address
    runtime = _with_clients(_runtime(rate_limit_token_per_client=2, rate_limit_token_per_ip=4))
    client = _from(runtime, "192.0.2.1")

    # When the confidential client asks 3 times with its secret, then the public client twice
    confidential = [client.post("/demo/echo/token", data=REFRESH, auth=("confidential", SECRET)) for _ in range(3)]
    public = [client.post("/demo/echo/token", data={**REFRESH, "client_id": "public"}) for _ in range(2)]

    # Then its third is refused per client, the public client's first goes on, and its second is the address's fifth
    assert [r.status_code for r in confidential] == [400, 400, 429]
    _assert_oauth_429(confidential[2])
    assert public[0].status_code == 400 and public[1].status_code == 429


def test_naming_a_confidential_client_without_its_secret_does_not_spend_its_limit() -> None:
    # Given a limit of 2 token requests a minute per client
    runtime = _with_clients(_runtime(rate_limit_token_per_client=2, rate_limit_token_per_ip=100))

    # When a stranger sends 5 requests naming the confidential client with wrong secrets (and none at all)
    stranger = _from(runtime, "198.51.100.66")
    tries = [stranger.post("/demo/echo/token", data=REFRESH, auth=("confidential", "guess")) for _ in range(3)]
    tries += [stranger.post("/demo/echo/token", data={**REFRESH, "client_id": "confidential"}) for _ in range(2)]

    # Then each is refused as invalid_client, and the client itself, with its secret, is not locked out
    assert [r.status_code for r in tries] == [401] * 5
    owner = _from(runtime, "192.0.2.1")
    assert owner.post("/demo/echo/token", data=REFRESH, auth=("confidential", SECRET)).status_code == 400


def test_a_public_client_is_counted_per_address_so_a_stranger_cannot_lock_out_its_users() -> None:
    # Given a limit of 2 token requests a minute per client
    runtime = _with_clients(_runtime(rate_limit_token_per_client=2, rate_limit_token_per_ip=100))
    form = {**REFRESH, "client_id": "public"}

    # When a stranger sends 3 requests naming the public client
    stranger = _from(runtime, "198.51.100.66")
    flood = [stranger.post("/demo/echo/token", data=form) for _ in range(3)]

    # Then the stranger's third is refused, and a user of the client at another address is not
    assert [r.status_code for r in flood] == [400, 400, 429]
    user = _from(runtime, "192.0.2.1")
    assert user.post("/demo/echo/token", data=form).status_code == 400


def test_authorize_requests_naming_a_client_do_not_lock_out_its_users_elsewhere() -> None:
    # Given a limit of 2 authorization requests a minute
    runtime = _runtime(rate_limit_authorize_per_ip=2)
    params = {"client_id": "someone-elses-client"}

    # When a stranger sends 3 naming one client
    stranger = TestClient(authorize_app.create_app(runtime), follow_redirects=False, client=("198.51.100.66", 1))
    flood = [stranger.get("/demo/echo/authorize", params=params) for _ in range(3)]

    # Then the stranger is refused, and a user of that client at another address is not
    assert [r.status_code == 429 for r in flood] == [False, False, True]
    user = TestClient(authorize_app.create_app(runtime), follow_redirects=False, client=("192.0.2.1", 1))
    assert user.get("/demo/echo/authorize", params=params).status_code != 429


def test_authorize_and_sign_in_are_limited_per_address() -> None:
    # Given limits of 2 authorization requests and 1 sign-in a minute
    runtime = _runtime(rate_limit_authorize_per_ip=2, rate_limit_sign_in_per_ip=1)
    browser = TestClient(authorize_app.create_app(runtime), follow_redirects=False)

    # When one address sends 3 authorization requests and 2 dev-login attempts
    authorize = [browser.get("/demo/echo/authorize", params={"client_id": f"c{i}"}) for i in range(3)]
    logins = [browser.post("/demo/login", data={"username": "alice", "password": "wrong"}) for _ in range(2)]

    # Then the third authorization and the second login get 429 (an OAuth error, no page)
    assert authorize[0].status_code != 429 and authorize[1].status_code != 429
    _assert_oauth_429(authorize[2])
    assert logins[0].status_code != 429
    _assert_oauth_429(logins[1])


def test_a_rest_api_event_names_the_address_in_its_identity() -> None:
    # Given a request whose event is a REST API one (payload 1.0), and one with no event (the dev server's peer)
    rest = Request({"type": "http", "aws.event": {"requestContext": {"identity": {"sourceIp": "192.0.2.8"}}}})
    peer = Request({"type": "http", "client": ("127.0.0.1", 5000)})

    # Then the address is API Gateway's, or else the peer's
    assert client_address(rest) == "192.0.2.8"
    assert client_address(peer) == "127.0.0.1"


def test_signed_out_visits_to_my_connections_are_limited_before_they_store_anything() -> None:
    # Given a limit of 2 sign-in starts a minute per address
    runtime = _runtime(rate_limit_authorize_per_ip=2)
    browser = TestClient(authorize_app.create_app(runtime), follow_redirects=False)
    # When a signed-out browser opens My connections 4 times
    visits = [browser.get("/demo/connections") for _ in range(4)]
    # Then 2 start a sign-in and the rest are refused: 2 pending authorizations were written, not 4
    assert [r.status_code for r in visits] == [303, 303, 429, 429]
    _assert_oauth_429(visits[2])
    store = runtime.grants
    assert isinstance(store, MemoryGrantStore)
    assert len(store._pending) == 2
