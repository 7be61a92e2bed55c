"""The upstream-OAuth collaborators of one container, built once on first use (``Runtime.component``).

The fetcher that calls upstream authorization servers is SSRF-safe; the configuration's development setting
``oauth.cimd_allow_private_addresses`` also lets it reach private addresses and plain ``http`` (a local upstream
and its authorization server on 127.0.0.1). The cipher is KMS envelope encryption under the upstream-token key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from gateway.net.ssrf import SafeFetcher
from gateway.runtime import Runtime
from gateway.upstream import oauth_flow
from gateway.upstream.cipher import TokenCipher
from gateway.upstream.discovery import Discovery
from gateway.upstream.registration import ClientRegistrar
from gateway.upstream.vault import UpstreamVault

COMPONENT = "upstream_oauth"
FETCH_TIMEOUT_SECONDS = 8.0


@dataclass(frozen=True, slots=True)
class UpstreamOAuth:
    fetcher: SafeFetcher
    discovery: Discovery
    registrar: ClientRegistrar
    vault: UpstreamVault


def build(runtime: Runtime, *, cipher: TokenCipher | None = None, fetcher: SafeFetcher | None = None) -> UpstreamOAuth:
    if cipher is None:
        from gateway.aws.kms_cipher import KmsTokenCipher

        cipher = KmsTokenCipher(runtime.kms, runtime.settings.upstream_token_key_id)
    if fetcher is None:
        dev = runtime.config.oauth.cimd_allow_private_addresses
        fetcher = SafeFetcher(allow_private=dev, allow_http=dev, timeout_seconds=FETCH_TIMEOUT_SECONDS)
    store = runtime.upstream_tokens
    vault = UpstreamVault(
        store,
        cipher,
        partial(oauth_flow.refresh, fetcher),
        cache_seconds=runtime.settings.grant_status_cache_seconds,
    )
    return UpstreamOAuth(fetcher, Discovery(fetcher), ClientRegistrar(fetcher, store, cipher, _secrets(runtime)), vault)


def _secrets(runtime: Runtime) -> Callable[[str], str]:
    def resolve(ref: str) -> str:
        from gateway.secrets import SecretResolver

        def make(rt: Runtime) -> SecretResolver:
            return SecretResolver(deployed=rt.settings.is_deployed, secretsmanager_client=lambda: rt.secretsmanager)

        resolver = runtime.component("upstream_secret_resolver", make)
        return resolver.resolve(ref)

    return resolve


def upstream_oauth(runtime: Runtime) -> UpstreamOAuth:
    return runtime.component(COMPONENT, build)
