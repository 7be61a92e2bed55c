"""The credential provider for OAuth upstreams: Bearer headers, ReconnectRequired with a bound link."""

from __future__ import annotations

import asyncio

import pytest

from gateway.upstream.connect_links import read_link
from gateway.upstream.credentials import ReconnectRequired
from gateway.upstream.oauth_provider import OAuthCredentialProvider
from infra.memory.cipher import LocalTokenCipher
from infra.memory.stores import MemoryUpstreamTokenStore
from tests.unit.upstream.fakes import token_set
from tests.unit.upstream.test_metadata_discovery import route
from tests.unit.upstream.test_upstream_vault import Refresher, vault

SECRET = b"p" * 32


def provider(store: MemoryUpstreamTokenStore) -> OAuthCredentialProvider:
    return OAuthCredentialProvider(
        vault(store, LocalTokenCipher(b"c" * 32), Refresher()), lambda: SECRET, clock=lambda: 1000
    )


def test_a_connected_user_gets_a_bearer_header() -> None:
    store = MemoryUpstreamTokenStore()
    subject = provider(store)
    subject._vault.save("acme/notes", "alice", token_set())
    assert asyncio.run(subject.headers(route(), "alice")) == {"Authorization": "Bearer access-1"}
    renewed = asyncio.run(subject.after_unauthorized(route(), "alice"))
    assert renewed == {"Authorization": "Bearer access-2"}


def test_an_unconnected_user_must_reconnect_through_a_link_bound_to_them() -> None:
    with pytest.raises(ReconnectRequired) as raised:
        asyncio.run(provider(MemoryUpstreamTokenStore()).headers(route(), "alice"))
    assert raised.value.upstream == "acme/notes"
    token = raised.value.connect_url.split("for=", 1)[1]
    link = read_link(token, route(), SECRET, 1001)
    assert link is not None and link.subject == "alice"


def test_a_shared_route_uses_the_shared_account_for_everyone() -> None:
    shared = route({"type": "oauth", "mode": "shared"})
    store = MemoryUpstreamTokenStore()
    subject = provider(store)
    subject._vault.save("acme/notes", "shared", token_set("shared-access"))
    assert asyncio.run(subject.headers(shared, "bob")) == {"Authorization": "Bearer shared-access"}
    with pytest.raises(ReconnectRequired) as raised:
        asyncio.run(provider(MemoryUpstreamTokenStore()).headers(shared, "bob"))
    assert "admin" in raised.value.reason
    link = read_link(raised.value.connect_url.split("for=", 1)[1], shared, SECRET, 1001)
    assert link is not None and link.shared
