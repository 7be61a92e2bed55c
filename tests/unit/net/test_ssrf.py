"""The SSRF-safe fetcher against a real HTTPS server on 127.0.0.1, and its address policy."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator

import pytest

from gateway.net.ssrf import BlockedAddressError, FetchError, Resolver, SafeFetcher, address_is_public
from tests.unit.net.https_server import LocalHttps, Reply, local_https


@pytest.fixture
def server() -> Iterator[LocalHttps]:
    with local_https() as running:
        yield running


def to_loopback(names: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return names[host]

    return resolve


def test_fetches_over_tls_with_the_original_name_as_host_and_sni(server: LocalHttps) -> None:
    # Given a document at a name that resolves (here: by the test's resolver) to 127.0.0.1
    server.replies["/doc"] = Reply(body=b'{"ok":true}', headers={"Content-Type": "application/json"})
    fetcher = SafeFetcher(
        allow_private=True, verify=server.client_context(), resolver=to_loopback({"cimd.test": ["127.0.0.1"]})
    )
    # When it is fetched
    result = asyncio.run(fetcher.get(server.url("/doc", host="cimd.test")))
    # Then the connection went to the resolved address, with the name in Host and SNI (certificate checked for it)
    assert result.status == 200
    assert result.body == b'{"ok":true}'
    assert result.headers["content-type"] == "application/json"
    assert server.seen_hosts == [f"cimd.test:{server.port}"]
    assert server.seen_sni == ["cimd.test"]


def test_redirects_are_returned_not_followed(server: LocalHttps) -> None:
    server.replies["/moved"] = Reply(302, headers={"Location": "https://169.254.169.254/latest/meta-data/"})
    fetcher = SafeFetcher(allow_private=True, verify=server.client_context())
    result = asyncio.run(fetcher.get(server.url("/moved")))
    assert result.status == 302
    assert server.hits == {"/moved": 1}


def test_body_over_the_cap_is_refused_even_without_content_length(server: LocalHttps) -> None:
    # Given a chunked response larger than the cap
    server.replies["/big"] = Reply(body=b"x" * 100_000, chunked=True)
    fetcher = SafeFetcher(allow_private=True, verify=server.client_context(), max_bytes=64 * 1024)
    # Then reading stops with an error
    with pytest.raises(FetchError, match="larger than 65536 bytes"):
        asyncio.run(fetcher.get(server.url("/big")))


def test_declared_length_over_the_cap_is_refused(server: LocalHttps) -> None:
    server.replies["/big"] = Reply(body=b"x" * 70_000)
    fetcher = SafeFetcher(allow_private=True, verify=server.client_context())
    with pytest.raises(FetchError, match="larger than"):
        asyncio.run(fetcher.get(server.url("/big")))


def test_slow_server_hits_the_total_time_limit(server: LocalHttps) -> None:
    server.replies["/slow"] = Reply(body=b"{}", delay_seconds=2)
    fetcher = SafeFetcher(allow_private=True, verify=server.client_context(), timeout_seconds=0.3)
    with pytest.raises(FetchError, match=r"within 0\.3 s"):
        asyncio.run(fetcher.get(server.url("/slow")))


def test_untrusted_certificate_fails(server: LocalHttps) -> None:
    # Given the default trust store, which does not know the test certificate
    fetcher = SafeFetcher(allow_private=True)
    with pytest.raises(FetchError, match="failed"):
        asyncio.run(fetcher.get(server.url("/doc")))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/doc",
        "https://10.1.2.3/doc",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/doc",
        "https://[::ffff:10.0.0.1]/doc",
        "https://100.64.0.1/doc",
        "https://0.0.0.0/doc",
    ],
)
def test_private_addresses_are_refused_by_default(url: str) -> None:
    fetcher = SafeFetcher()
    with pytest.raises(BlockedAddressError, match="non-public address"):
        asyncio.run(fetcher.get(url))


def test_a_name_resolving_to_loopback_is_refused() -> None:
    # Given a public-looking name whose DNS answer is loopback (or mixes a public and an internal address)
    fetcher = SafeFetcher(resolver=to_loopback({"evil.example": ["93.184.215.14", "127.0.0.1"]}))
    # Then nothing is fetched
    with pytest.raises(BlockedAddressError, match=r"evil\.example"):
        asyncio.run(fetcher.get("https://evil.example/doc"))


def test_localhost_is_refused_with_the_real_resolver() -> None:
    with pytest.raises(BlockedAddressError):
        asyncio.run(SafeFetcher().get("https://localhost/doc"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/doc", "only https"),
        ("ftp://example.com/doc", "only https"),
        ("/relative", "only https"),
        ("https://user:pw@example.com/doc", "user information"),
        ("https://[::1/doc", "not a valid URL"),
    ],
)
def test_bad_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(FetchError, match=reason):
        asyncio.run(SafeFetcher().get(url))


def test_unresolvable_host_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="cannot resolve"):
        asyncio.run(SafeFetcher().get("https://no-such-host.invalid/doc"))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("192.168.1.1", False),
        ("172.16.0.1", False),
        ("100.100.100.100", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("::ffff:8.8.8.8", True),
    ],
)
def test_address_policy(address: str, public: bool) -> None:
    assert address_is_public(ipaddress.ip_address(address)) is public
