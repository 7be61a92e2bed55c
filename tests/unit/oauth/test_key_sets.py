"""Key sets at a jwks_uri (a client's, an enterprise IdP's), served by a real HTTPS server on 127.0.0.1: fetched once
and kept as Cache-Control says, fetched again for an unknown kid at most once a minute, bounded in number, and every
failure a KeySetUnavailable that says why."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from gateway.net.ssrf import SafeFetcher
from gateway.oauth.key_sets import REFETCH_INTERVAL_SECONDS, KeySetSource, KeySetUnavailable
from gateway.tokens.foreign_jwts import KeySet
from tests.support.jose_keys import SigningKey
from tests.unit.net.https_server import LocalHttps, Reply, local_https

NOW = 1_800_000_000


@pytest.fixture
def server() -> Iterator[LocalHttps]:
    with local_https() as running:
        yield running


def source(server: LocalHttps, **options: int) -> KeySetSource:
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    fetcher = SafeFetcher(allow_private=True, verify=server.client_context(), resolver=to_loopback)
    return KeySetSource(fetcher, **options)


def get(keys: KeySetSource, url: str, now: int, kid: object = None) -> KeySet:
    return asyncio.run(keys.get(url, now, kid=kid))


def publish(server: LocalHttps, path: str, *signing_keys: SigningKey, cache_control: str | None = None) -> str:
    headers = {"Cache-Control": cache_control} if cache_control else {}
    body = json.dumps({"keys": [key.public_jwk for key in signing_keys]}).encode()
    server.replies[path] = Reply(body=body, headers=headers)
    return server.url(path, host="cimd.test")


def test_a_rotated_key_is_fetched_again_at_most_once_a_minute(server: LocalHttps) -> None:
    # Given a key set with key A, cached for an hour
    old, new = SigningKey(), SigningKey()
    url = publish(server, "/jwks", old, cache_control="max-age=3600")
    keys = source(server)
    assert [key.kid for key in get(keys, url, NOW, kid=old.kid).keys] == [old.kid]

    # When the signer rotates to key B and a JWT names B within the minute, nothing is fetched (a stream of made-up
    # kids cannot make the gateway fetch someone's URL over and over)
    publish(server, "/jwks", old, new, cache_control="max-age=3600")
    get(keys, url, NOW + 10, kid=new.kid)
    get(keys, url, NOW + 20, kid="made-up")
    assert server.hits["/jwks"] == 1

    # Then after the interval the unknown kid fetches the set again, and B is known
    fetched = get(keys, url, NOW + REFETCH_INTERVAL_SECONDS, kid=new.kid)
    assert server.hits["/jwks"] == 2 and new.kid in [key.kid for key in fetched.keys]


def test_a_no_store_key_set_is_kept_for_the_interval_only(server: LocalHttps) -> None:
    url = publish(server, "/nostore", SigningKey(), cache_control="no-store")
    keys = source(server)
    get(keys, url, NOW)
    get(keys, url, NOW + REFETCH_INTERVAL_SECONDS - 1)
    assert server.hits["/nostore"] == 1
    get(keys, url, NOW + REFETCH_INTERVAL_SECONDS)
    assert server.hits["/nostore"] == 2


def test_the_cache_holds_at_most_its_bound(server: LocalHttps) -> None:
    keys = source(server, max_entries=2)
    urls = [publish(server, f"/set{i}", SigningKey(), cache_control="max-age=3600") for i in range(3)]
    for url in urls:
        get(keys, url, NOW)
    get(keys, urls[0], NOW + 1)  # evicted (least recently used): fetched again
    assert server.hits["/set0"] == 2 and server.hits["/set2"] == 1


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(404), "answered HTTP 404"),
        (Reply(body=b"<html>"), "not valid JSON"),
        (Reply(body=b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'), "no asymmetric public signing key"),
        (Reply(body=json.dumps({"keys": [SigningKey().private_jwk]}).encode()), "no asymmetric public signing key"),
        (Reply(301, headers={"Location": "https://cimd.test/elsewhere"}), "answered HTTP 301"),
    ],
    ids=["404", "html", "symmetric", "private", "redirect"],
)
def test_an_unusable_key_set_is_refused_with_the_reason(server: LocalHttps, reply: Reply, reason: str) -> None:
    server.replies["/bad"] = reply
    with pytest.raises(KeySetUnavailable, match=reason):
        get(source(server), server.url("/bad", host="cimd.test"), NOW)


def test_a_key_set_on_a_private_address_is_never_fetched(server: LocalHttps) -> None:
    keys = KeySetSource(SafeFetcher(verify=server.client_context()))  # the deployed default: public addresses only
    publish(server, "/jwks", SigningKey())
    with pytest.raises(KeySetUnavailable, match="non-public address"):
        get(keys, server.url("/jwks", host="127.0.0.1"), NOW)
    assert server.hits.get("/jwks", 0) == 0
