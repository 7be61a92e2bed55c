"""The composition root: what one Lambda container builds once, at cold start or on first use.

Settings and configuration are read once; AWS clients and the adapters that need them are created lazily, so a
function that never touches KMS or DynamoDB on a request path never imports boto3 for it (the metadata function
serves PRM and AS metadata without the AWS SDK).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

from gateway.config import GatewayConfig, load_config
from gateway.routes import RouteTable
from gateway.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

    from gateway.aws.kms_keys import KmsPublicKeys
    from gateway.storage.ports import ClientStore, GrantStore, UpstreamTokenStore
    from gateway.tokens.access_token import AccessTokens


T = TypeVar("T")


class BaseUrlUnknown(RuntimeError):
    """No public base URL is configured and none could be derived from the event yet."""


def default_api_url(event: Mapping[str, Any]) -> str | None:
    """The execute-api URL of the API that delivered ``event``: from its ``apiId`` (set by API Gateway, not by the
    client's Host header) and the region; a named stage adds its path prefix."""
    context = event.get("requestContext") or {}
    api_id = context.get("apiId")
    region = os.environ.get("AWS_REGION")
    if not api_id or not region:
        return None
    stage = context.get("stage") or "$default"
    suffix = "" if stage == "$default" else f"/{stage}"
    return f"https://{api_id}.execute-api.{region}.amazonaws.com{suffix}"


class Runtime:
    def __init__(self, settings: Settings, config: GatewayConfig) -> None:
        self.settings = settings
        self.config = config
        self._base_url = settings.base_url
        self._routes: RouteTable | None = None
        self._lock = threading.RLock()
        self.components: dict[str, object] = {}

    # --- URLs and routes ------------------------------------------------------------------------------------

    def observe_event(self, event: Mapping[str, Any] | None) -> None:
        """Learn the base URL from the first event when the deployment did not configure one."""
        if self._base_url is None and event:
            self._base_url = default_api_url(event)

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

    # --- AWS clients (lazy: boto3 is imported on first use) ------------------------------------------------

    @cached_property
    def _botocore_session(self) -> Any:
        """One botocore session per container: clients made from it share the loaded service data and
        credentials (a client on a fresh session costs several times more)."""
        import botocore.session

        return botocore.session.get_session()

    def _client(self, service: str) -> Any:
        from botocore.config import Config

        with self._lock:
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5)
            return self._botocore_session.create_client(service, config=config)

    # --- feature components -----------------------------------------------------------------------------------

    def component(self, name: str, factory: Callable[[Runtime], T]) -> T:
        """A per-container singleton built by ``factory`` on first use.

        Feature modules wire themselves through this (e.g. ``runtime.component("session_codec", build)``), so
        adding a feature does not mean editing this file; tests pre-seed ``runtime.components[name]``.
        """
        existing = self.components.get(name)
        if existing is None:
            with self._lock:
                existing = self.components.get(name)
                if existing is None:
                    existing = factory(self)
                    self.components[name] = existing
        return cast(T, existing)

    @cached_property
    def kms(self) -> KMSClient:
        client: KMSClient = self._client("kms")
        return client

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self._client("dynamodb")
        return client

    @cached_property
    def secretsmanager(self) -> Any:
        return self._client("secretsmanager")

    # --- storage (DynamoDB adapters; tests may install in-memory ones with ``set_runtime``) -------------------

    @cached_property
    def clients(self) -> ClientStore:
        from gateway.aws.dynamodb_store import DynamoClientStore

        return DynamoClientStore(self.dynamodb, self.settings.clients_table)

    @cached_property
    def grants(self) -> GrantStore:
        from gateway.aws.dynamodb_store import DynamoGrantStore

        return DynamoGrantStore(self.dynamodb, self.settings.grants_table)

    @cached_property
    def upstream_tokens(self) -> UpstreamTokenStore:
        from gateway.aws.dynamodb_store import DynamoUpstreamTokenStore

        return DynamoUpstreamTokenStore(self.dynamodb, self.settings.upstream_tokens_table)

    @cached_property
    def shared_secret(self) -> bytes:
        """The deployment-wide symmetric secret (cookies, session ids, refresh-token derivation): one read of
        Secrets Manager per cold start."""
        response = self.secretsmanager.get_secret_value(SecretId=self.settings.shared_secret_id)
        value: str = response["SecretString"]
        return value.encode()

    # --- tokens ---------------------------------------------------------------------------------------------

    @cached_property
    def public_keys(self) -> KmsPublicKeys:
        from gateway.aws.kms_keys import KmsPublicKeys

        return KmsPublicKeys(self.kms, self.settings.all_verify_key_ids)

    @cached_property
    def access_tokens(self) -> AccessTokens:
        from gateway.aws.kms_keys import KmsSigner
        from gateway.tokens.access_token import AccessTokens

        signer = KmsSigner(self.kms, self.settings.signing_key_id, self.public_keys)
        return AccessTokens(signer, self.public_keys, self.settings.access_token_ttl_seconds)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """This container's runtime, built on first use from the environment and the configuration file."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                settings = get_settings()
                _runtime = Runtime(settings, load_config(settings.config))
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime built by hand (tests wiring in-memory adapters)."""
    global _runtime
    _runtime = runtime


def reset_runtime() -> None:
    """Forget the settings, configuration and clients so the next use reads the environment again (tests)."""
    global _runtime
    _runtime = None
    get_settings.cache_clear()
