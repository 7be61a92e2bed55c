"""The part of the composition root that needs no gateway configuration: settings, clock, AWS clients, the stores
and the audit trail (:class:`StateRuntime`). :class:`gateway.runtime.Runtime` is this and the rest; the admin CLI
(``mcp-gateway admin``, an entry point too) builds only this, from the same settings model, pointed at the tables
of a local or a deployed stack (:class:`AwsAccess`): there is one construction of the stores.

Like the runtime, it builds every AWS client and store lazily (boto3 is imported on first use), and tests pre-seed
any of them through the instance ``__dict__``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from gateway.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

    from gateway.audit import AuditTrail
    from gateway.config import GatewayConfig
    from gateway.operations.service import OperatorService
    from gateway.rate_limits import RateLimits
    from gateway.storage.ports import (
        ApiKeyStore,
        AuditLog,
        ClientStore,
        GrantStore,
        RateLimiter,
        SingleUseStore,
        UpstreamTokenStore,
        UsageLog,
    )
    from gateway.usage import UsageRecorder


@dataclass(frozen=True, slots=True)
class AwsAccess:
    """Where and as whom the AWS clients call, when that is not the process's own environment (the admin CLI
    pointed at a local stack or at a named profile). None for a field: the SDK's own default."""

    profile: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AwsAccess:
        """The SDK's variables (``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``...) of an
        environment that is not this process's (e.g. the one ``make dev`` describes in ``.dev/state.json``)."""
        return cls(
            profile=environ.get("AWS_PROFILE") or None,
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=environ.get("AWS_SESSION_TOKEN") or None,
            endpoint_url=environ.get("AWS_ENDPOINT_URL") or None,
        )


class StateRuntime:
    """Settings, clock, AWS clients, the stores and the audit trail: what acting on a gateway's state needs, without
    its configuration (the admin CLI builds only this; :class:`Runtime` is this and the rest)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        aws: AwsAccess | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        """Wall-clock seconds for every expiry decision of this container (tests pass another one)."""
        self._aws = aws
        self._lock = threading.RLock()

    def now(self) -> int:
        return int(self.clock())

    # --- AWS clients (lazy: boto3 is imported on first use) ------------------------------------------------

    @cached_property
    def _botocore_session(self) -> Any:
        """One botocore session per container: clients made from it share the loaded service data and
        credentials (a client on a fresh session costs several times more)."""
        import botocore.session

        if self._aws is None:
            return botocore.session.get_session()
        session = botocore.session.Session(profile=self._aws.profile)
        if self._aws.region:
            session.set_config_variable("region", self._aws.region)
        if self._aws.access_key_id and self._aws.secret_access_key:
            session.set_credentials(self._aws.access_key_id, self._aws.secret_access_key, self._aws.session_token)
        return session

    def _client(self, service: str) -> Any:
        from botocore.config import Config

        with self._lock:
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5)
            endpoint_url = self._aws.endpoint_url if self._aws is not None else None
            return self._botocore_session.create_client(service, config=config, endpoint_url=endpoint_url)

    @cached_property
    def kms(self) -> KMSClient:
        client: KMSClient = self._client("kms")
        return client

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        """botocore's client, whose per-request operations are served directly (:mod:`gateway.aws.dynamodb_direct`)
        unless ``GATEWAY_DYNAMODB_CLIENT`` says ``botocore`` or tracing is on (X-Ray records the AWS SDK's calls)."""
        client: DynamoDBClient = self._client("dynamodb")
        if self.settings.dynamodb_client == "botocore" or self.settings.tracing:
            return client
        from gateway.aws.dynamodb_direct import direct_client

        direct: DynamoDBClient = direct_client(client, self._botocore_session)
        return direct

    @cached_property
    def secretsmanager(self) -> Any:
        return self._client("secretsmanager")

    # --- storage (DynamoDB adapters; tests pre-seed in-memory ones) -----------------------------------------

    @cached_property
    def clients(self) -> ClientStore:
        from gateway.aws.dynamodb_store import DynamoClientStore

        return DynamoClientStore(self.dynamodb, self.settings.clients_table)

    @cached_property
    def grants(self) -> GrantStore:
        from gateway.aws.dynamodb_grants import DynamoGrantStore

        return DynamoGrantStore(self.dynamodb, self.settings.grants_table)

    @cached_property
    def upstream_tokens(self) -> UpstreamTokenStore:
        from gateway.aws.dynamodb_store import DynamoUpstreamTokenStore

        return DynamoUpstreamTokenStore(self.dynamodb, self.settings.upstream_tokens_table)

    @cached_property
    def audit_log(self) -> AuditLog:
        from gateway.aws.dynamodb_audit import DynamoAuditLog

        return DynamoAuditLog(self.dynamodb, self.settings.audit_table)

    @cached_property
    def usage_log(self) -> UsageLog:
        """The usage rollups: items of the audit table (docs/storage.md, "Usage rollups")."""
        from gateway.aws.dynamodb_audit import DynamoUsageLog

        return DynamoUsageLog(self.dynamodb, self.settings.audit_table)

    @cached_property
    def usage(self) -> UsageRecorder:
        """Counts each proxied tool call into the rollups the admin console's Overview reads; never fails a call."""
        from gateway.usage import UsageRecorder

        return UsageRecorder(self.usage_log, self.settings.audit_retention_days, enabled=self.settings.usage_rollups)

    @cached_property
    def api_keys(self) -> ApiKeyStore:
        """Gateway API keys: items of the grants table (docs/storage.md)."""
        from gateway.aws.dynamodb_store import DynamoApiKeyStore

        return DynamoApiKeyStore(self.dynamodb, self.settings.grants_table)

    @cached_property
    def single_use(self) -> SingleUseStore:
        """Used ``jti`` values (client assertions, ID-JAGs, DPoP proofs): grants-table items (docs/storage.md)."""
        from gateway.aws.dynamodb_store import DynamoSingleUseStore

        return DynamoSingleUseStore(self.dynamodb, self.settings.grants_table)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        from gateway.aws.dynamodb_store import DynamoRateLimiter

        return DynamoRateLimiter(self.dynamodb, self.settings.rate_limits_table)

    @cached_property
    def rate_limits(self) -> RateLimits:
        """The public endpoints' rate limits (counters in the rate_limits table; fail open)."""
        from gateway.rate_limits import RateLimits

        return RateLimits(self.rate_limiter, self.clock)

    @cached_property
    def audit(self) -> AuditTrail:
        """The audit trail of this container: events to the audit table, a failed write never fails a request."""
        from gateway.audit import AuditTrail

        return AuditTrail(
            self.audit_log,
            self.settings.audit_retention_days,
            clock=self.clock,
            tool_calls=self.settings.audit_tool_calls,
        )

    def operator_service(self, config: GatewayConfig | None = None) -> OperatorService:
        """What an operator looks at and does (the admin CLI, and the admin console to come): over this runtime's
        stores and audit trail; ``config`` for the actions that need the configuration (creating an API key)."""
        from gateway.operations.service import OperatorService

        return OperatorService(
            clients=self.clients,
            grants=self.grants,
            upstream_tokens=self.upstream_tokens,
            api_keys=self.api_keys,
            audit_log=self.audit_log,
            usage_log=self.usage_log,
            audit=self.audit,
            clock=self.clock,
            config=config,
        )
