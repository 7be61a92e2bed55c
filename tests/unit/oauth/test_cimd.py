"""Client ID Metadata Documents served by a real HTTPS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.net.ssrf import SafeFetcher
from gateway.oauth.cimd import CimdResolver, ClientMetadataDocument, cache_ttl
from gateway.oauth.errors import OAuthError
from tests.support.hostile_json import DEEP_SMALL_OBJECT
from tests.unit.net.https_server import LocalHttps, Reply, local_https

NOW = 1_767_225_600


@pytest.fixture
def server() -> Iterator[LocalHttps]:
    with local_https() as running:
        yield running


def cimd_for(server: LocalHttps, **options: Any) -> CimdResolver:
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    fetcher = SafeFetcher(allow_private=True, verify=server.client_context(), resolver=to_loopback)
    return CimdResolver(fetcher, **options)


def publish(
    server: LocalHttps, path: str, document: dict[str, Any] | None = None, cache_control: str | None = None
) -> str:
    url = server.url(path, host="cimd.test")
    body = {
        "client_id": url,
        "client_name": "Claude",
        "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
        "token_endpoint_auth_method": "none",
        "logo_uri": "https://claude.ai/logo.png",
    }
    body.update(document or {})
    headers = {"Content-Type": "application/json"}
    if cache_control is not None:
        headers["Cache-Control"] = cache_control
    server.replies[path] = Reply(body=json.dumps(body).encode(), headers=headers)
    return url


def resolve(cimd: CimdResolver, client_id: str, now: int = NOW) -> ClientMetadataDocument:
    return asyncio.run(cimd.resolve(client_id, now))


def test_a_valid_document_identifies_the_client(server: LocalHttps) -> None:
    # Given a client publishing its metadata at its client_id URL
    url = publish(server, "/oauth/client.json")
    # When the gateway resolves that client_id
    document = resolve(cimd_for(server), url)
    # Then it knows the client's name and redirect URIs
    assert document.client_id == url
    assert document.client_name == "Claude"
    assert document.redirect_uris == ("https://claude.ai/api/mcp/auth_callback",)
    assert document.logo_uri == "https://claude.ai/logo.png"


def test_documents_are_cached_per_cache_control(server: LocalHttps) -> None:
    url = publish(server, "/cached.json", cache_control="max-age=60")
    cimd = cimd_for(server)
    resolve(cimd, url)
    resolve(cimd, url, NOW + 59)
    assert server.hits["/cached.json"] == 1
    resolve(cimd, url, NOW + 60)
    assert server.hits["/cached.json"] == 2


def test_no_store_documents_are_fetched_every_time(server: LocalHttps) -> None:
    url = publish(server, "/fresh.json", cache_control="no-store")
    cimd = cimd_for(server)
    resolve(cimd, url)
    resolve(cimd, url)
    assert server.hits["/fresh.json"] == 2


def test_cache_is_bounded(server: LocalHttps) -> None:
    urls = [publish(server, f"/c{index}.json") for index in range(3)]
    cimd = cimd_for(server, max_entries=2)
    for url in urls:
        resolve(cimd, url)
    resolve(cimd, urls[0])
    assert server.hits["/c0.json"] == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, 300), ("max-age=60", 60), ("public, max-age=999999", 86400), ("no-cache", 0), ("private", 300)],
)
def test_cache_ttl(header: str | None, expected: int) -> None:
    assert cache_ttl(header, 300, 86400) == expected


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"client_id": "https://other.example/client.json"}, "not exactly the URL"),
        ({"client_name": ""}, "client_name"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "plain http"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "publishes no keys"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://cimd.test/jwks"}, "not an https URL"),
        (
            {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
            "no asymmetric public signing key",
        ),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "shared secret"),
        ({"client_secret": "abc"}, "must not contain a client secret"),
    ],
)
def test_invalid_documents_are_invalid_client_with_a_reason(
    server: LocalHttps, document: dict[str, Any], reason: str
) -> None:
    url = publish(server, "/bad.json", document)
    with pytest.raises(OAuthError, match=reason) as raised:
        resolve(cimd_for(server), url)
    assert raised.value.error == "invalid_client"


def test_non_json_and_http_errors_are_explained(server: LocalHttps) -> None:
    server.replies["/html"] = Reply(body=b"<html></html>")
    server.replies["/deep"] = Reply(body=DEEP_SMALL_OBJECT)
    server.replies["/moved"] = Reply(301, headers={"Location": "https://cimd.test/elsewhere"})
    cimd = cimd_for(server)
    with pytest.raises(OAuthError, match="not valid JSON"):
        resolve(cimd, server.url("/html", host="cimd.test"))
    with pytest.raises(OAuthError, match="not valid JSON"):  # nested past any parser's recursion: refused, not a 500
        resolve(cimd, server.url("/deep", host="cimd.test"))
    with pytest.raises(OAuthError, match="redirects are not followed"):
        resolve(cimd, server.url("/moved", host="cimd.test"))
    with pytest.raises(OAuthError, match="HTTP 404"):
        resolve(cimd, server.url("/missing", host="cimd.test"))


def test_a_huge_document_is_refused(server: LocalHttps) -> None:
    url = publish(server, "/huge.json", {"padding": "x" * 100_000})
    with pytest.raises(OAuthError, match="larger than"):
        resolve(cimd_for(server), url)


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("https://cimd.test", "must contain a path"),
        ("https://cimd.test/", "must contain a path"),
        ("https://cimd.test/a/../client.json", "'..' path segments"),
        ("https://cimd.test/client.json#x", "fragment"),
        ("https://u:p@cimd.test/client.json", "user information"),
    ],
)
def test_client_id_urls_must_follow_the_rules(server: LocalHttps, client_id: str, reason: str) -> None:
    with pytest.raises(OAuthError, match=reason):
        resolve(cimd_for(server), client_id)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "[::1]"])
def test_private_hosts_are_refused_without_the_dev_setting(host: str) -> None:
    # Given the production fetcher (private addresses refused)
    cimd = CimdResolver(SafeFetcher(allow_private=False))
    # Then a client_id on an internal address is not fetched
    with pytest.raises(OAuthError, match="non-public address") as raised:
        resolve(cimd, f"https://{host}/client.json")
    assert raised.value.error == "invalid_client"


def test_a_name_resolving_to_loopback_is_refused_without_the_dev_setting() -> None:
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    cimd = CimdResolver(SafeFetcher(resolver=to_loopback))
    with pytest.raises(OAuthError, match="non-public address"):
        resolve(cimd, "https://client.example.com/client.json")


def test_a_documents_name_loses_its_bidi_and_zero_width_characters(server: LocalHttps) -> None:
    url = publish(server, "/oauth/bidi.json", {"client_name": "Claude\u2066\u200d Desktop\u202c"})
    assert resolve(cimd_for(server), url).client_name == "Claude Desktop"
