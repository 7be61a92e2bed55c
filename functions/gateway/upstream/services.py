"""The upstream-OAuth collaborators of one container (built once by the composition root, ``runtime.py``).

The fetcher that calls upstream authorization servers is SSRF-safe; the configuration's development setting
``oauth.cimd_allow_private_addresses`` (local stage only) also lets it reach private addresses and plain ``http``
(a local upstream and its authorization server on 127.0.0.1). The cipher is KMS envelope encryption under the
upstream-token key in a deployment, an in-process one in unit tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from gateway.audit import AuditTrail
from gateway.net.ssrf import SafeFetcher
from gateway.storage.ports import UpstreamTokenStore
from gateway.upstream import oauth_flow
from gateway.upstream.cipher import TokenCipher
from gateway.upstream.client_registration import ClientRegistrar
from gateway.upstream.metadata_discovery import Discovery
from gateway.upstream.vault import UpstreamVault

FETCH_TIMEOUT_SECONDS = 8.0


@dataclass(frozen=True, slots=True)
class UpstreamOAuth:
    fetcher: SafeFetcher
    discovery: Discovery
    registrar: ClientRegistrar
    vault: UpstreamVault


def build_upstream_oauth(
    *,
    store: UpstreamTokenStore,
    cipher: TokenCipher,
    secrets: Callable[[str], str],
    dev_allow_private: bool,
    cache_seconds: float,
    clock: Callable[[], float] = time.time,
    fetcher: SafeFetcher | None = None,
    audit: AuditTrail | None = None,
) -> UpstreamOAuth:
    if fetcher is None:
        fetcher = SafeFetcher(
            allow_private=dev_allow_private, allow_http=dev_allow_private, timeout_seconds=FETCH_TIMEOUT_SECONDS
        )
    vault = UpstreamVault(
        store,
        cipher,
        partial(oauth_flow.refresh, fetcher, clock=clock),
        cache_seconds=cache_seconds,
        clock=clock,
        audit=audit,
        revoker=partial(oauth_flow.revoke, fetcher),
    )
    registrar = ClientRegistrar(fetcher, store, cipher, secrets, clock=clock)
    return UpstreamOAuth(fetcher, Discovery(fetcher, clock=clock), registrar, vault)
