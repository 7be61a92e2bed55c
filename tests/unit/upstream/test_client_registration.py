"""How the gateway identifies itself upstream: pre-registered, CIMD, or DCR stored encrypted and reused."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from gateway.storage.records import UpstreamToken
from gateway.upstream.cipher import encryption_context
from gateway.upstream.client_metadata import client_metadata_document
from gateway.upstream.client_registration import REGISTRATION_SUBJECT, ClientRegistrar, RegistrationError
from gateway.upstream.metadata_discovery import AuthorizationServer
from infra.memory.cipher import LocalTokenCipher
from infra.memory.stores import MemoryUpstreamTokenStore
from tests.support.hostile_json import DEEP_SMALL
from tests.unit.upstream.fakes import FakeFetcher
from tests.unit.upstream.test_metadata_discovery import route

SERVER = AuthorizationServer(
    issuer="https://as.example.com",
    authorization_endpoint="https://as.example.com/authorize",
    token_endpoint="https://as.example.com/token",
    registration_endpoint="https://as.example.com/register",
    client_id_metadata_document_supported=False,
    token_endpoint_auth_methods=("client_secret_basic", "none"),
    scopes_supported=(),
    iss_parameter_supported=False,
)


def registrar(fetcher: FakeFetcher, store: MemoryUpstreamTokenStore | None = None) -> ClientRegistrar:
    return ClientRegistrar(
        fetcher.as_fetcher(),
        store or MemoryUpstreamTokenStore(),
        LocalTokenCipher(b"k" * 32),
        {"env:S": "s3cret"}.__getitem__,
    )


def test_dynamic_registration_is_stored_encrypted_and_reused() -> None:
    fetcher, store = FakeFetcher(), MemoryUpstreamTokenStore()
    sent: list[dict[str, Any]] = []

    def register(_m: str, _u: str, _h: Any, body: bytes | None) -> tuple[int, Any, dict[str, str]]:
        sent.append(json.loads(body or b"{}"))
        return (
            201,
            {"client_id": "dyn-1", "client_secret": "dyn-secret", "token_endpoint_auth_method": "client_secret_basic"},
            {},
        )

    fetcher.on("POST", SERVER.registration_endpoint or "", register)
    first = asyncio.run(registrar(fetcher, store).client_for(route(), SERVER))
    again = asyncio.run(registrar(fetcher, store).client_for(route(), SERVER))
    assert first == again and first.client_id == "dyn-1" and first.client_secret == "dyn-secret"
    assert len(sent) == 1 and sent[0]["redirect_uris"] == ["https://gw.example.com/acme/notes/connect/callback"]
    row = store.get("acme/notes", REGISTRATION_SUBJECT)
    assert row is not None and b"dyn-secret" not in row.ciphertext
    # a different authorization server means a new registration
    moved = dataclasses.replace(SERVER, issuer="https://as2.example.com")
    asyncio.run(registrar(fetcher, store).client_for(route(), moved))
    assert len(sent) == 2


def test_a_refused_registration_says_why() -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", SERVER.registration_endpoint or "", (400, {"error": "invalid_redirect_uri"}))
    with pytest.raises(RegistrationError, match="invalid_redirect_uri"):
        asyncio.run(registrar(fetcher).client_for(route(), SERVER))


def test_a_registration_answer_nested_too_deep_is_refused() -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", SERVER.registration_endpoint or "", (201, DEEP_SMALL))
    with pytest.raises(RegistrationError, match="was refused"):
        asyncio.run(registrar(fetcher).client_for(route(), SERVER))


def test_preregistered_credentials_come_from_the_config_and_its_secret_reference() -> None:
    configured = route({"type": "oauth", "registration": "preregistered", "client_id": "pre", "client_secret": "env:S"})
    client = asyncio.run(registrar(FakeFetcher()).client_for(configured, SERVER))
    assert (client.client_id, client.client_secret, client.auth_method) == ("pre", "s3cret", "client_secret_basic")


def test_cimd_uses_the_published_document_url_when_the_server_supports_it() -> None:
    configured = route({"type": "oauth", "registration": "cimd"})
    supporting = dataclasses.replace(SERVER, client_id_metadata_document_supported=True)
    client = asyncio.run(registrar(FakeFetcher()).client_for(configured, supporting))
    assert client.client_id == "https://gw.example.com/acme/notes/oauth-client.json" and client.auth_method == "none"
    document = client_metadata_document(configured)
    assert document["client_id"] == client.client_id
    assert document["redirect_uris"] == ["https://gw.example.com/acme/notes/connect/callback"]


def test_no_registration_endpoint_and_no_cimd_is_an_error() -> None:
    bare = dataclasses.replace(SERVER, registration_endpoint=None)
    with pytest.raises(RegistrationError, match="neither"):
        asyncio.run(registrar(FakeFetcher()).client_for(route(), bare))


def test_the_secret_goes_in_the_body_where_the_server_lists_client_secret_post() -> None:
    # Given a server that lists both secret methods, as the official mcp SDK's authorization server does
    both = dataclasses.replace(SERVER, token_endpoint_auth_methods=("client_secret_post", "client_secret_basic"))
    fetcher = FakeFetcher()
    sent: list[dict[str, Any]] = []

    def register(_m: str, _u: str, _h: Any, body: bytes | None) -> tuple[int, Any, dict[str, str]]:
        sent.append(json.loads(body or b"{}"))
        return 201, {**sent[-1], "client_id": "dyn-1", "client_secret": "dyn-secret"}, {}

    fetcher.on("POST", SERVER.registration_endpoint or "", register)
    # When the gateway registers, and when it uses pre-registered credentials
    client = asyncio.run(registrar(fetcher).client_for(route(), both))
    configured = route({"type": "oauth", "registration": "preregistered", "client_id": "pre", "client_secret": "env:S"})
    preregistered = asyncio.run(registrar(FakeFetcher()).client_for(configured, both))
    # Then both present the secret in the body
    assert sent[0]["token_endpoint_auth_method"] == "client_secret_post"
    assert client.auth_method == preregistered.auth_method == "client_secret_post"


class _RacingStore(MemoryUpstreamTokenStore):
    """Another container stores its registration between this one's read and its conditional write."""

    def __init__(self, other: bytes) -> None:
        super().__init__()
        self.other = other

    def put(self, token: UpstreamToken, expected_version: int | None) -> bool:
        if self.other:
            super().put(dataclasses.replace(token, ciphertext=self.other), None)
            self.other = b""
        return super().put(token, expected_version)


def test_two_containers_registering_at_once_both_use_the_one_kept() -> None:
    # Given another container whose registration "dyn-other" lands first
    cipher = LocalTokenCipher(b"k" * 32)
    theirs = {
        "issuer": SERVER.issuer,
        "redirect_uri": "https://gw.example.com/acme/notes/connect/callback",
        "client_id": "dyn-other",
        "client_secret": "other-secret",
        "auth_method": "client_secret_basic",
    }
    store = _RacingStore(
        cipher.encrypt(json.dumps(theirs).encode(), encryption_context("acme/notes", REGISTRATION_SUBJECT))
    )
    fetcher = FakeFetcher()
    fetcher.on("POST", SERVER.registration_endpoint or "", (201, {"client_id": "dyn-mine", "client_secret": "x"}))
    # When this container registers too
    client = asyncio.run(ClientRegistrar(fetcher.as_fetcher(), store, cipher, str).client_for(route(), SERVER))
    # Then it uses the registration that was kept, so a flow it starts matches the client at the callback
    assert client.client_id == "dyn-other"
    again = asyncio.run(ClientRegistrar(fetcher.as_fetcher(), store, cipher, str).client_for(route(), SERVER))
    assert again.client_id == "dyn-other" and len(fetcher.calls) == 1
