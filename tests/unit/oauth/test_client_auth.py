"""Client identification (pre-registered, CIMD, DCR) and client authentication at the token endpoint."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from urllib.parse import quote_plus

import pytest

from gateway.config import parse_config
from gateway.net.ssrf import SafeFetcher
from gateway.oauth.cimd import CimdResolver
from gateway.oauth.client_auth import ClientAuthenticationError, authenticate_client
from gateway.oauth.clients import ClientInfo, ClientResolver
from gateway.oauth.errors import OAuthError
from gateway.oauth.registration_endpoint import new_registration, parse_registration
from gateway.routes import Route, RouteTable
from gateway.secrets import SecretResolver
from gateway.storage.ports import StorageError
from gateway.storage.records import RegisteredClient
from infra.memory.stores import MemoryClientStore

NOW = 1_767_225_600
TTL = 7200
CONFIG = parse_config(
    {
        "workspaces": {
            "acme": {
                "identity_provider": {"type": "dev", "users": [{"id": "alice", "password": "pw"}]},
                "servers": {
                    "linear": {"upstream": "https://mcp.linear.app/mcp"},
                    "github": {"upstream": "https://api.githubcopilot.com/mcp/"},
                },
                "clients": [
                    {
                        "client_id": "corp-cli",
                        "client_secret": "plain:corp secret/with+symbols",
                        "client_name": "Corp CLI",
                        "redirect_uris": ["http://127.0.0.1/callback"],
                    },
                    {
                        "client_id": "corp-public",
                        "client_name": "Corp public app",
                        "redirect_uris": ["http://127.0.0.1/callback"],
                        "servers": ["github"],
                    },
                ],
            }
        },
        "oauth": {"unused_client_ttl_seconds": TTL},
    }
)
ROUTES = RouteTable(CONFIG, "https://gw.example.com")


def route(server: str = "linear") -> Route:
    found = ROUTES.get("acme", server)
    assert found is not None
    return found


class CountingStore(MemoryClientStore):
    def __init__(self) -> None:
        super().__init__()
        self.touches = 0

    def touch(self, client_id: str, last_used_at: int, expires_at: int | None) -> None:
        self.touches += 1
        super().touch(client_id, last_used_at, expires_at)


class BrokenStore(MemoryClientStore):
    def get(self, client_id: str, now: int) -> RegisteredClient | None:
        raise StorageError("unreachable")


def resolver(store: MemoryClientStore | None = None) -> ClientResolver:
    return ClientResolver(
        store or MemoryClientStore(), CONFIG, CimdResolver(SafeFetcher()), SecretResolver(deployed=False)
    )


def register(store: MemoryClientStore, method: str, at: Route | None = None) -> tuple[str, str | None]:
    metadata = parse_registration({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": method})
    issued = new_registration(metadata, at or route(), NOW, TTL)
    store.create(issued.client)
    return issued.client.client_id, issued.client_secret


def basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: form-urlencode each part, then Basic-encode.
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def authenticate(
    resolver: ClientResolver, form: Mapping[str, str], authorization: str | None = None, at: Route | None = None
) -> ClientInfo:
    return asyncio.run(authenticate_client(resolver, at or route(), form, authorization, NOW))


# --- identification ---------------------------------------------------------------------------------------


def test_preregistered_client_is_found_in_the_workspace() -> None:
    client = asyncio.run(resolver().resolve(route(), "corp-cli", NOW))
    assert client.source == "preregistered"
    assert client.client_name == "Corp CLI"
    assert client.token_endpoint_auth_method == "client_secret_basic"
    assert client.secret_ref is not None


def test_preregistered_client_is_limited_to_its_servers() -> None:
    with pytest.raises(OAuthError, match="not allowed") as raised:
        asyncio.run(resolver().resolve(route("linear"), "corp-public", NOW))
    assert raised.value.error == "invalid_client"
    assert asyncio.run(resolver().resolve(route("github"), "corp-public", NOW)).token_endpoint_auth_method == "none"


def test_a_registration_belongs_to_its_route() -> None:
    # Given a client registered at acme/linear
    store = MemoryClientStore()
    client_id, _ = register(store, "none")
    # Then acme/github does not know it
    with pytest.raises(OAuthError, match="another server") as raised:
        asyncio.run(resolver(store).resolve(route("github"), client_id, NOW))
    assert raised.value.error == "invalid_client"
    assert asyncio.run(resolver(store).resolve(route("linear"), client_id, NOW)).source == "dcr"


def test_unknown_and_expired_registrations_are_invalid_client() -> None:
    store = MemoryClientStore()
    client_id, _ = register(store, "none")
    with pytest.raises(OAuthError, match="unknown client_id"):
        asyncio.run(resolver(store).resolve(route(), "never-registered", NOW))
    with pytest.raises(OAuthError, match="register again"):
        asyncio.run(resolver(store).resolve(route(), client_id, NOW + TTL))


def test_store_failure_is_temporarily_unavailable() -> None:
    with pytest.raises(OAuthError) as raised:
        asyncio.run(resolver(BrokenStore()).resolve(route(), "some-client", NOW))
    assert raised.value.error == "temporarily_unavailable"
    assert raised.value.status_code == 503


def test_https_client_ids_go_to_cimd() -> None:
    # Given the production fetcher, an https client_id on a loopback address is fetched as CIMD and refused
    with pytest.raises(OAuthError, match="client metadata document") as raised:
        asyncio.run(resolver().resolve(route(), "https://127.0.0.1/client.json", NOW))
    assert raised.value.error == "invalid_client"


def test_use_slides_the_expiry_at_most_once_per_hour() -> None:
    # Given a DCR client registered at NOW
    store = CountingStore()
    client_id, _ = register(store, "none")
    clients = resolver(store)
    client = asyncio.run(clients.resolve(route(), client_id, NOW))
    # When it is used right away, nothing is written
    clients.note_use(client, NOW + 10)
    assert store.touches == 0
    # When it is used after an hour, its expiry moves forward, once
    clients.note_use(client, NOW + 3600)
    clients.note_use(client, NOW + 3700)
    assert store.touches == 1
    stored = store.get(client_id, NOW + 3600 + TTL - 1)
    assert stored is not None
    assert stored.expires_at == NOW + 3600 + TTL


# --- authentication ---------------------------------------------------------------------------------------


def test_public_client_with_client_id_in_the_form() -> None:
    store = MemoryClientStore()
    client_id, _ = register(store, "none")
    assert authenticate(resolver(store), {"client_id": client_id}).client_id == client_id


def test_public_client_sending_basic_with_an_empty_secret_is_accepted() -> None:
    store = MemoryClientStore()
    client_id, _ = register(store, "none")
    assert authenticate(resolver(store), {}, basic(client_id, "")).client_id == client_id


def test_codex_style_basic_with_some_secret_on_a_public_client_is_accepted() -> None:
    # Codex registers `none` but sends Basic; a public client has no secret to check
    store = MemoryClientStore()
    client_id, _ = register(store, "none")
    assert authenticate(resolver(store), {"client_id": client_id}, basic(client_id, "whatever")).source == "dcr"


@pytest.mark.parametrize("registered_method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_authenticates_with_either_secret_method(registered_method: str) -> None:
    store = MemoryClientStore()
    client_id, secret = register(store, registered_method)
    assert secret is not None
    clients = resolver(store)
    assert authenticate(clients, {}, basic(client_id, secret)).client_id == client_id
    assert authenticate(clients, {"client_id": client_id, "client_secret": secret}).client_id == client_id


def test_confidential_client_without_its_secret_is_refused() -> None:
    store = MemoryClientStore()
    client_id, _ = register(store, "client_secret_post")
    with pytest.raises(ClientAuthenticationError, match="client secret") as raised:
        authenticate(resolver(store), {"client_id": client_id})
    assert raised.value.status_code == 401
    assert raised.value.headers == {}


def test_wrong_secret_in_basic_is_401_with_a_basic_challenge() -> None:
    store = MemoryClientStore()
    client_id, _ = register(store, "client_secret_basic")
    with pytest.raises(ClientAuthenticationError, match="failed") as raised:
        authenticate(resolver(store), {}, basic(client_id, "wrong"))
    assert raised.value.error == "invalid_client"
    assert raised.value.headers["WWW-Authenticate"].startswith("Basic")


def test_preregistered_secret_is_checked_after_form_decoding() -> None:
    clients = resolver()
    assert authenticate(clients, {}, basic("corp-cli", "corp secret/with+symbols")).source == "preregistered"
    with pytest.raises(ClientAuthenticationError):
        authenticate(clients, {"client_id": "corp-cli", "client_secret": "corp secret"})


def test_unknown_client_in_basic_gets_the_challenge() -> None:
    with pytest.raises(ClientAuthenticationError) as raised:
        authenticate(resolver(), {}, basic("nobody", "x"))
    assert "WWW-Authenticate" in raised.value.headers


def test_two_methods_at_once_are_refused() -> None:
    store = MemoryClientStore()
    client_id, secret = register(store, "client_secret_basic")
    assert secret is not None
    with pytest.raises(OAuthError) as raised:
        authenticate(resolver(store), {"client_secret": secret}, basic(client_id, secret))
    assert raised.value.error == "invalid_request"


def test_mismatched_client_ids_are_refused() -> None:
    store = MemoryClientStore()
    client_id, _ = register(store, "none")
    with pytest.raises(ClientAuthenticationError, match="differs"):
        authenticate(resolver(store), {"client_id": "other"}, basic(client_id, ""))


@pytest.mark.parametrize("header", ["Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode()])
def test_malformed_basic_is_invalid_client(header: str) -> None:
    with pytest.raises(ClientAuthenticationError) as raised:
        authenticate(resolver(), {}, header)
    assert raised.value.headers["WWW-Authenticate"].startswith("Basic")


def test_no_client_at_all_is_invalid_client() -> None:
    with pytest.raises(ClientAuthenticationError, match="send client_id"):
        authenticate(resolver(), {}, "Bearer something")
