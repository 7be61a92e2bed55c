"""The upstream credential vault against the local AWS stand-in over HTTP (moto): KMS envelope encryption bound to
{workspace, server, subject}, and the refresh lease under concurrency — N containers that find one token about to
expire at the same moment make exactly one refresh call to the upstream's authorization server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest

from gateway.aws.dynamodb_store import DynamoUpstreamTokenStore
from gateway.aws.kms_cipher import KmsTokenCipher
from gateway.net.ssrf import SafeFetcher
from gateway.upstream import oauth_flow
from gateway.upstream.cipher import DecryptionFailed, encryption_context
from gateway.upstream.token_set import TokenSet, UpstreamClient
from gateway.upstream.vault import NotConnected, UpstreamVault
from infra.local_aws import local_environment
from tests.conftest import LocalAwsStack

# A route key no other test uses: the session's moto tables are shared with the e2e tier, whose stacks configure
# acme/notes and expect alice to have no stored credential there.
ROUTE = "vault-test/notes"
CONTAINERS = 8


def _session(local_aws: LocalAwsStack) -> boto3.session.Session:
    env = local_environment(local_aws.endpoint_url)
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )


def _cipher(local_aws: LocalAwsStack) -> KmsTokenCipher:
    kms = _session(local_aws).client("kms", endpoint_url=local_aws.endpoint_url)
    return KmsTokenCipher(kms, local_aws.refs["UpstreamTokenKey"])


def _store(local_aws: LocalAwsStack) -> DynamoUpstreamTokenStore:
    dynamodb = _session(local_aws).client("dynamodb", endpoint_url=local_aws.endpoint_url)
    return DynamoUpstreamTokenStore(dynamodb, local_aws.refs["UpstreamTokensTable"])


def test_kms_envelope_decrypts_only_under_the_same_context(local_aws: LocalAwsStack) -> None:
    cipher = _cipher(local_aws)
    plaintext = b'{"access_token": "' + b"x" * 6000 + b'"}'  # larger than KMS Encrypt's 4 KB limit
    blob = cipher.encrypt(plaintext, encryption_context(ROUTE, "alice"))
    assert plaintext not in blob
    assert cipher.decrypt(blob, {"subject": "alice", "server": "notes", "workspace": "vault-test"}) == plaintext
    for other in (encryption_context(ROUTE, "bob"), encryption_context("vault-test/other", "alice")):
        with pytest.raises(DecryptionFailed):
            cipher.decrypt(blob, other)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), encryption_context(ROUTE, "alice"))


def _tokens(token_endpoint: str, *, access: str = "access-1", obtained_at: int, expires_in: int) -> TokenSet:
    return TokenSet(
        access_token=access,
        token_type="Bearer",
        expires_at=obtained_at + expires_in,
        refresh_token="refresh-1",
        scope="mcp",
        obtained_at=obtained_at,
        issuer="http://127.0.0.1",
        token_endpoint=token_endpoint,
        resource="http://127.0.0.1/mcp",
        client=UpstreamClient("gw", "gw-secret", "client_secret_basic", "dcr"),
    )


def test_a_row_copied_to_another_user_fails_to_decrypt(local_aws: LocalAwsStack) -> None:
    store, cipher = _store(local_aws), _cipher(local_aws)
    vault = UpstreamVault(store, cipher, partial(oauth_flow.refresh, SafeFetcher()))
    vault.save(
        "vault-test/copy", "alice", _tokens("http://127.0.0.1/token", obtained_at=int(time.time()), expires_in=3600)
    )
    row = store.get("vault-test/copy", "alice")
    assert row is not None
    assert store.put(dataclasses.replace(row, subject="bob", version=1), None)
    with pytest.raises(NotConnected):
        asyncio.run(
            UpstreamVault(store, cipher, partial(oauth_flow.refresh, SafeFetcher())).current("vault-test/copy", "bob")
        )
    assert asyncio.run(vault.current("vault-test/copy", "alice")).access_token == "access-1"


class _TokenEndpoint:
    """A token endpoint that counts refresh requests and answers slowly (a refresh takes time upstream)."""

    def __init__(self) -> None:
        self.refreshes: list[str] = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                with endpoint.lock:
                    endpoint.refreshes.append(form["refresh_token"][0])
                    number = len(endpoint.refreshes)
                time.sleep(0.3)
                body = json.dumps(
                    {
                        "access_token": f"access-{number + 1}",
                        "refresh_token": f"refresh-{number + 1}",
                        "expires_in": 3600,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def token_endpoint() -> Iterator[_TokenEndpoint]:
    endpoint = _TokenEndpoint()
    yield endpoint
    endpoint.server.shutdown()


def test_concurrent_containers_refresh_a_token_exactly_once(
    local_aws: LocalAwsStack, token_endpoint: _TokenEndpoint
) -> None:
    # Given a stored token that expires in 30 s (inside the refresh window)
    cipher = _cipher(local_aws)
    now = int(time.time())
    UpstreamVault(_store(local_aws), cipher, partial(oauth_flow.refresh, SafeFetcher())).save(
        ROUTE, "alice", _tokens(token_endpoint.url, obtained_at=now - 3570, expires_in=3600)
    )
    fetcher = SafeFetcher(allow_private=True, allow_http=True)
    barrier = threading.Barrier(CONTAINERS)
    results: list[str] = []
    errors: list[BaseException] = []

    def container() -> None:
        # Each container has its own clients and vault (its own warm cache), as separate Lambda containers do.
        vault = UpstreamVault(
            _store(local_aws), _cipher(local_aws), partial(oauth_flow.refresh, fetcher), poll_seconds=0.05
        )
        barrier.wait()
        try:
            results.append(asyncio.run(vault.current(ROUTE, "alice")).access_token)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=container) for _ in range(CONTAINERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Then exactly one refresh reached the authorization server, and every container uses its result
    assert not errors, errors
    assert token_endpoint.refreshes == ["refresh-1"]
    assert results == ["access-2"] * CONTAINERS
    row = _store(local_aws).get(ROUTE, "alice")
    # (a container that got the lease just after the refresh landed released it by rewriting the row: version >= 2)
    assert row is not None and row.version >= 2 and row.lease_owner is None
