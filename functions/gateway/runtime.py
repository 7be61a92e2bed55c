"""The composition root: what one Lambda container builds once, at cold start or on first use.

Each function's entry point (``functions/<name>/app.py``) builds a :class:`Runtime` from the environment and hands
it to its app factory (``create_app(runtime)``); the app and every module below it receive what they need as
arguments and never look the runtime up. This is the one module of the shared core that knows every adapter and
every feature service, and the only one that may import them all: dependencies flow app.py → web → domain → ports,
with the adapters (``gateway.aws``) plugged in here (docs/architecture.md, "Dependency direction").

Settings and configuration are read once; AWS clients and the services that need them are created lazily, so a
function that never touches KMS or DynamoDB on a request path never imports boto3 for it (the metadata function
serves PRM and AS metadata without the AWS SDK). Tests pre-seed any lazily built attribute through the instance
``__dict__`` (e.g. in-memory stores) or pass another ``clock``.

Its base, :class:`gateway.state_runtime.StateRuntime`, is the part that needs no gateway configuration (settings,
clock, AWS clients, the stores, the audit trail); the admin CLI builds only that part, from the same settings model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from gateway.config import GatewayConfig, check_stage, check_timeouts, load_config
from gateway.routes import Route, RouteTable
from gateway.settings import Settings
from gateway.state_runtime import StateRuntime

if TYPE_CHECKING:
    from gateway.after_answer import AfterAnswer
    from gateway.api_keys.verifier import ApiKeyVerifier
    from gateway.aws.kms_keys import KmsPublicKeys
    from gateway.config import OidcProvider
    from gateway.identity.oidc import RelyingParty
    from gateway.oauth.authorization import AuthorizationService
    from gateway.oauth.client_assertions import ClientAssertions
    from gateway.oauth.clients import ClientResolver
    from gateway.oauth.id_jag import IdJagVerifier
    from gateway.oauth.key_sets import KeySetSource
    from gateway.oauth.token_grants import TokenGrants
    from gateway.oauth.token_service import TokenService
    from gateway.observability import Spans
    from gateway.proxy.deferred import LaterSessions
    from gateway.proxy.grant_status import GrantStatusCache
    from gateway.proxy.request_state import RequestStateCodec
    from gateway.proxy.session_ids import SessionCodec
    from gateway.proxy.verified_tokens import VerifiedTokens
    from gateway.secrets import SecretResolver
    from gateway.tokens.access_token import AccessTokens
    from gateway.tokens.dpop import DpopProof
    from gateway.tokens.keys import PublicKeySource
    from gateway.upstream.cipher import TokenCipher
    from gateway.upstream.credentials import UpstreamCredentialProvider
    from gateway.upstream.oauth_provider import OAuthCredentialProvider
    from gateway.upstream.services import UpstreamOAuth
    from gateway.upstream.static_headers import StaticHeadersProvider
    from gateway.virtual.server import VirtualServer


class BaseUrlUnknown(RuntimeError):
    """No public base URL is configured and none could be derived from the event yet."""


def default_api_url(event: Mapping[str, Any], region: str | None) -> str | None:
    """The execute-api URL of the API that delivered ``event``: from its ``apiId`` (set by API Gateway, not by the
    client's Host header) and the region; a named stage adds its path prefix."""
    context = event.get("requestContext") or {}
    api_id = context.get("apiId")
    if not api_id or not region:
        return None
    stage = context.get("stage") or "$default"
    suffix = "" if stage == "$default" else f"/{stage}"
    return f"https://{api_id}.execute-api.{region}.amazonaws.com{suffix}"


class Runtime(StateRuntime):
    """One container's settings, configuration, clock, AWS clients, stores and feature services."""

    def __init__(
        self,
        settings: Settings,
        config: GatewayConfig,
        *,
        clock: Callable[[], float] = time.time,
        region: str | None = None,
    ) -> None:
        check_stage(config, settings.stage)  # outside the local stage: refuses dev switches, warns about opt-ins
        check_timeouts(config, streaming=settings.response_streaming)
        super().__init__(settings, clock=clock)
        self.config = config
        self.region = region
        self._base_url = settings.base_url
        self._routes: RouteTable | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Runtime:
        """This container's runtime: settings from the environment, the configuration file they name. Raises
        ``ConfigError`` (``DevSwitchRefused``) for a configuration the stage refuses."""
        environ = os.environ if environ is None else environ
        settings = Settings.from_environ(environ)
        return cls(settings, load_config(settings.config), region=environ.get("AWS_REGION"))

    @cached_property
    def after_answer(self) -> AfterAnswer:
        """This container's work for after the answer (run inline until a runner takes it: gateway.entry)."""
        from gateway.after_answer import AfterAnswer

        return AfterAnswer()

    @property
    def streams_responses(self) -> bool:
        """The streaming deployment: event streams relayed as they arrive, ``GET`` streams served."""
        return self.settings.response_streaming

    # --- URLs and routes ------------------------------------------------------------------------------------

    def observe_event(self, event: Mapping[str, Any] | None) -> None:
        """Learn the base URL from the first event when the deployment did not configure one."""
        if self._base_url is None and event:
            self._base_url = default_api_url(event, self.region)

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise BaseUrlUnknown("GATEWAY_PUBLIC_BASE_URL is not set and no API Gateway event has been seen")
        return self._base_url

    @property
    def routes(self) -> RouteTable:
        if self._routes is None:
            self._routes = RouteTable(self.config, self.base_url)
        return self._routes

    @cached_property
    def shared_secret(self) -> bytes:
        """The deployment-wide symmetric secret (cookies, session ids, refresh-token derivation): one read of
        Secrets Manager per cold start. Raises ``SecretUnavailableError`` (and is read again next time)."""
        from gateway.aws.shared_secret import read_shared_secret

        return read_shared_secret(self.secretsmanager, self.settings.shared_secret_id)

    @cached_property
    def secret_resolver(self) -> SecretResolver:
        """Secret references of the configuration (client secrets, IdP credentials, upstream headers)."""
        return self.secret_resolver_with_max_age(None)

    def secret_resolver_with_max_age(self, max_age_seconds: int | None) -> SecretResolver:
        from gateway.secrets import DEFAULT_MAX_AGE_SECONDS, SecretResolver

        return SecretResolver(
            deployed=self.settings.is_deployed,
            max_age_seconds=DEFAULT_MAX_AGE_SECONDS if max_age_seconds is None else max_age_seconds,
            secretsmanager_client=lambda: self.secretsmanager,
        )

    # --- tokens ---------------------------------------------------------------------------------------------

    @cached_property
    def kms_public_keys(self) -> KmsPublicKeys:
        """The public keys of the signing key and of the keys kept for verification (GetPublicKey, once)."""
        from gateway.aws.kms_keys import KmsPublicKeys

        return KmsPublicKeys(self.kms, self.settings.all_verify_key_ids)

    @cached_property
    def public_keys(self) -> PublicKeySource:
        return self.kms_public_keys

    @cached_property
    def access_tokens(self) -> AccessTokens:
        from gateway.aws.kms_keys import KmsSigner
        from gateway.tokens.access_token import AccessTokens

        signer = KmsSigner(self.kms, self.settings.signing_key_id, self.kms_public_keys)
        return AccessTokens(signer, self.public_keys, self.settings.access_token_ttl_seconds)

    # --- the authorization server ---------------------------------------------------------------------------

    @cached_property
    def client_resolver(self) -> ClientResolver:
        """Every kind of client (pre-registered, metadata document, dynamically registered) for one route."""
        from gateway.net.ssrf import SafeFetcher
        from gateway.oauth.cimd import CimdResolver
        from gateway.oauth.clients import ClientResolver

        fetcher = SafeFetcher(allow_private=self.config.oauth.cimd_allow_private_addresses)
        return ClientResolver(self.clients, self.config, CimdResolver(fetcher), self.secret_resolver)

    @cached_property
    def key_sets(self) -> KeySetSource:
        """Clients' and enterprise identity providers' published keys (jwks_uri), fetched through the SSRF guard;
        the local stage's development switch lets them be on loopback and plain http."""
        from gateway.net.ssrf import SafeFetcher
        from gateway.oauth.key_sets import KeySetSource

        local = self.config.oauth.cimd_allow_private_addresses
        return KeySetSource(SafeFetcher(allow_private=local, allow_http=local))

    @cached_property
    def client_assertions(self) -> ClientAssertions:
        """private_key_jwt: client assertions verified with the client's keys, each jti used once."""
        from gateway.oauth.client_assertions import ClientAssertions

        return ClientAssertions(self.key_sets, self.single_use)

    @cached_property
    def authorization(self) -> AuthorizationService:
        """Pending authorizations, consent, codes and grant revocation (the authorize function, the CLI)."""
        from gateway.oauth.authorization import AuthorizationService

        return AuthorizationService(grants=self.grants, policy=self.config.oauth, audit=self.audit)

    @cached_property
    def token_service(self) -> TokenService:
        from gateway.oauth.token_service import TokenService

        return TokenService(
            grants=self.grants,
            access_tokens=self.access_tokens,
            shared_secret=self.shared_secret,
            policy=self.config.oauth,
            access_token_ttl_seconds=self.settings.access_token_ttl_seconds,
            audit=self.audit,
        )

    @cached_property
    def token_grants(self) -> TokenGrants:
        """The token endpoint's decision after client authentication: DPoP binding, then the grant type."""
        from gateway.oauth.token_dpop import TokenEndpointDpop
        from gateway.oauth.token_grants import TokenGrants

        dpop = TokenEndpointDpop(self.single_use, lambda: self.shared_secret)
        return TokenGrants(lambda: self.token_service, dpop, lambda: self.id_jags)

    @cached_property
    def id_jags(self) -> IdJagVerifier:
        """ID-JAG redemption (enterprise-managed authorization): the workspace's trusted issuers' keys, used jtis."""
        from gateway.oauth.id_jag import IdJagVerifier

        return IdJagVerifier(self.key_sets, self.single_use)

    def relying_party(self, workspace_name: str, provider: OidcProvider) -> RelyingParty:
        """The OpenID Connect relying party of a workspace. Raises ``SecretUnavailableError`` when its client
        secret cannot be read."""
        from gateway.identity.oidc import RelyingParty
        from gateway.routes import workspace_callback_url

        secret = None
        if provider.client_secret is not None:
            secret = self.secret_resolver.resolve(provider.client_secret)
        return RelyingParty(provider, workspace_callback_url(self.base_url, workspace_name), secret, clock=self.clock)

    # --- upstream credentials -------------------------------------------------------------------------------

    @cached_property
    def upstream_token_cipher(self) -> TokenCipher:
        from gateway.aws.kms_cipher import KmsTokenCipher

        return KmsTokenCipher(self.kms, self.settings.upstream_token_key_id)

    @cached_property
    def upstream_oauth(self) -> UpstreamOAuth:
        from gateway.upstream.services import build_upstream_oauth

        return build_upstream_oauth(
            store=self.upstream_tokens,
            cipher=self.upstream_token_cipher,
            secrets=self.secret_resolver.resolve,
            dev_allow_private=self.config.oauth.cimd_allow_private_addresses,
            cache_seconds=self.settings.upstream_token_cache_seconds,
            clock=self.clock,
            audit=self.audit,
        )

    @cached_property
    def oauth_credentials(self) -> OAuthCredentialProvider:
        from gateway.upstream.oauth_provider import OAuthCredentialProvider

        return OAuthCredentialProvider(self.upstream_oauth.vault, lambda: self.shared_secret, clock=self.clock)

    @cached_property
    def static_headers(self) -> StaticHeadersProvider:
        from gateway.upstream.static_headers import StaticHeadersProvider

        return StaticHeadersProvider(self.secret_resolver_with_max_age)

    def credential_provider(self, route: Route) -> UpstreamCredentialProvider:
        """The provider for ``route``'s ``auth`` setting (one instance per container and kind; the OAuth one is
        imported only by routes that use it, it is heavy for the cold start)."""
        kind = route.server.auth.type
        if kind == "headers":
            return self.static_headers
        if kind == "oauth":
            return self.oauth_credentials
        from gateway.upstream.credentials import NO_CREDENTIALS

        return NO_CREDENTIALS

    # --- the proxy ------------------------------------------------------------------------------------------

    @cached_property
    def spans(self) -> Spans:
        """X-Ray subsegments for the gateway's own work and its upstream calls when tracing is on (the template's
        ``Tracing``); otherwise nothing, and no X-Ray import."""
        from gateway.observability import NO_SPANS, XRaySpans

        return XRaySpans() if self.settings.tracing else NO_SPANS

    @cached_property
    def session_codec(self) -> SessionCodec:
        """The key is derived once from the shared secret, when a session id is first sealed or opened (at most one
        Secrets Manager read per cold start, none for a container that never sees a session)."""
        from gateway.proxy.session_ids import SessionCodec

        return SessionCodec.from_shared_secret(
            lambda: self.shared_secret, clock=self.clock, max_age_seconds=self.settings.session_max_age_seconds
        )

    @cached_property
    def request_states(self) -> RequestStateCodec:
        """The ``requestState`` of the gateway's own 2026-07-28 ``input_required`` answers; its key is derived from
        the shared secret when one is first sealed or opened."""
        from gateway.proxy.request_state import RequestStateCodec

        return RequestStateCodec(lambda: self.shared_secret, clock=self.clock)

    @cached_property
    def later_sessions(self) -> LaterSessions:
        """Upstream sessions this container opened for sessions begun before their account was connected."""
        from gateway.proxy.deferred import LaterSessions

        return LaterSessions()

    @cached_property
    def grant_status(self) -> GrantStatusCache:
        from gateway.proxy.grant_status import GrantStatusCache

        return GrantStatusCache(self.grants, self.settings.grant_status_cache_seconds)

    @cached_property
    def virtual_server(self) -> VirtualServer:
        from gateway.virtual.server import VirtualServer

        return VirtualServer(self.session_codec, self.credential_provider, clock=self.clock, states=self.request_states)

    @cached_property
    def api_key_verifier(self) -> ApiKeyVerifier:
        """Keys are read per call, or trusted as long as grants are (``GATEWAY_GRANT_STATUS_CACHE_SECONDS``)."""
        from gateway.api_keys.verifier import ApiKeyVerifier

        return ApiKeyVerifier(self.api_keys, self.settings.grant_status_cache_seconds)

    @cached_property
    def dpop_replay(self) -> Callable[[DpopProof, int], bool]:
        """The proxy's memory of accepted DPoP proofs: this container's (bounded), or the shared store
        (``GATEWAY_DPOP_REPLAY=shared``). True when the proof is new."""
        if self.settings.dpop_replay == "shared":
            return lambda proof, now: self.single_use.use(proof.replay_key(), proof.remember_until, now)
        from gateway.tokens.dpop import ProofReplayCache

        cache = ProofReplayCache()
        return cache.first_use

    @cached_property
    def verified_tokens(self) -> VerifiedTokens:
        from gateway.proxy.verified_tokens import VerifiedTokens

        return VerifiedTokens(self.access_tokens, clock=self.clock)
