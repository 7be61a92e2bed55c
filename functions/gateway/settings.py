"""Process settings, read once per cold start from the environment (and nowhere else).

Every variable is prefixed ``GATEWAY_``; AWS SDK variables (``AWS_REGION``, ``AWS_ENDPOINT_URL`` for the local
stand-in) are read by the SDK itself. A plain dataclass rather than pydantic-settings: importing that package cost
more than a tenth of the metadata function's cold start to read a dozen strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal
from urllib.parse import urlsplit

Stage = Literal["local", "dev", "staging", "prod"]
STAGES: tuple[Stage, ...] = ("local", "dev", "staging", "prod")
PREFIX = "GATEWAY_"
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
RESERVED_HEADERS = frozenset({"authorization", "cookie", "content-type", "accept", "mcp-session-id", "host"})


class SettingsError(ValueError):
    """An environment variable is missing or invalid; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    config: str
    """Path of the gateway YAML configuration file (``GATEWAY_CONFIG``); every function needs one, the admin CLI
    only for the commands that read the configuration (``""``: none named)."""
    public_base_url: str | None = None
    """Public base URL (custom domain, or the API's default URL), never taken from Host. When empty in a deployment,
    the API's default execute-api URL is derived from the event's apiId (set by API Gateway, not the client)."""
    stage: Stage = "local"
    clients_table: str = "clients"
    grants_table: str = "grants"
    upstream_tokens_table: str = "upstream_tokens"
    audit_table: str = "audit"
    rate_limits_table: str = "rate_limits"
    audit_retention_days: int = 90
    log_level: str = "INFO"
    log_format: str = "json"
    """``json`` (one JSON line per record, for CloudWatch) or ``text`` (the process's own format: ``make dev``)."""
    tracing: bool = False
    """X-Ray tracing through the Powertools Tracer (template ``Tracing``): off by default, for the cold start."""
    metrics: bool = True
    """Write each request's CloudWatch EMF metrics to standard output (``make dev`` turns them off)."""
    audit_tool_calls: bool = True
    """Record every ``tools/call`` in the audit trail (one DynamoDB write after the upstream answered)."""
    defer_after_answer: bool = True
    """Work the client does not wait for (the ``tool.called`` audit event) runs after the answer has left, where the
    deployment allows it: on Lambda's buffered deployment an internal extension keeps the invocation open for it
    (:mod:`gateway.after_answer`). False: before the answer, as the streaming deployment always does."""
    usage_rollups: bool = True
    """Count every ``tools/call`` into the usage rollups the admin console's Overview reads (two ``UpdateItem``s)."""
    signing_key_id: str = "alias/mcp-gateway-signing"
    verify_key_ids: str = ""
    """Comma-separated extra KMS keys whose public keys stay in the JWKS and the verifier during a rotation."""
    upstream_token_key_id: str = "alias/mcp-gateway-upstream-tokens"
    shared_secret_id: str = "mcp-gateway/shared-secret"
    """Secrets Manager secret shared by all functions (cookies, session ids, refresh-token derivation)."""
    access_token_ttl_seconds: int = 3600
    grant_status_cache_seconds: float = 0.0
    """How long a warm proxy trusts a grant's "active" status without reading it again. 0 (the default): every
    request reads it, so a revocation bites on the next call; more is an opt-in that lets a revoked token work that
    much longer (docs/deploy.md)."""
    session_max_age_seconds: int = 86400
    """How long a sealed ``Mcp-Session-Id`` opens after the gateway issued it (at ``initialize``); later it is
    unknown (404) and the client starts a new session, as MCP §Session Management has it."""
    response_streaming: bool = False
    """The streaming deployment (template ``ProxyResponseMode=streaming``): the proxy runs under an ASGI server
    behind the Lambda Web Adapter and relays event streams as they arrive, and serves ``GET`` streams. Off: every
    answer is whole (Mangum behind the HTTP API)."""
    upstream_token_cache_seconds: float = 30.0
    """How long a warm container uses a decrypted upstream credential without reading its row again. It bounds how
    soon a change made elsewhere (another container's refresh, a disconnect) is seen, not revocation: a request
    whose grant is revoked never reaches the upstream credential."""
    dpop_replay: str = "container"
    """Where the proxy remembers accepted DPoP proofs (RFC 9449 §11.1): ``container`` (each warm container, bounded;
    no AWS call) or ``shared`` (the grants table: one conditional write per DPoP call, replays refused everywhere)."""
    api_key_header: str = "X-Gateway-Key"
    """The header that carries a gateway API key besides ``Authorization: Bearer`` (template ``ApiKeyHeader``), so
    ``Authorization`` can carry something else. Never forwarded upstream."""
    rate_limit_register_per_ip: int = 20
    """Requests per minute; 0 turns a limit off (docs/non-interactive.md, "Rate limits")."""
    rate_limit_token_per_ip: int = 60
    rate_limit_token_per_client: int = 60
    rate_limit_authorize_per_ip: int = 60
    rate_limit_sign_in_per_ip: int = 30
    dynamodb_client: str = "direct"
    """``direct`` (the default): the stores' per-request DynamoDB calls are SigV4-signed requests on a kept connection
    (:mod:`gateway.aws.dynamodb_direct`, a fifth of botocore's CPU per call); ``botocore``: every call through the
    AWS SDK (for comparison, or where a proxy must be used)."""
    rate_limit_proxy_per_caller: int = 0
    """MCP requests per minute and API key or user; 0 (the default) = none. An opt-in: each counted request is a
    DynamoDB write on the proxy's hot path, which otherwise makes one read per call."""

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise SettingsError(f"GATEWAY_STAGE must be one of {', '.join(STAGES)}, not {self.stage!r}")
        if self.public_base_url == "":
            object.__setattr__(self, "public_base_url", None)
        if self.public_base_url is not None:
            parts = urlsplit(self.public_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise SettingsError(
                    "GATEWAY_PUBLIC_BASE_URL must be an http(s) URL without query or fragment, "
                    f"not {self.public_base_url!r}"
                )
        if not 60 <= self.access_token_ttl_seconds <= 86400:
            raise SettingsError("GATEWAY_ACCESS_TOKEN_TTL_SECONDS must be between 60 and 86400")
        if not 0 <= self.grant_status_cache_seconds <= 300:
            raise SettingsError("GATEWAY_GRANT_STATUS_CACHE_SECONDS must be between 0 and 300")
        if self.dpop_replay not in ("container", "shared"):
            raise SettingsError(f"GATEWAY_DPOP_REPLAY must be container or shared, not {self.dpop_replay!r}")
        if not 300 <= self.session_max_age_seconds <= 30 * 86400:
            raise SettingsError("GATEWAY_SESSION_MAX_AGE_SECONDS must be between 300 and 2592000 (30 days)")
        if self.log_format not in ("json", "text"):
            raise SettingsError(f"GATEWAY_LOG_FORMAT must be json or text, not {self.log_format!r}")
        if not 1 <= self.audit_retention_days <= 3650:
            raise SettingsError("GATEWAY_AUDIT_RETENTION_DAYS must be between 1 and 3650")
        if self.dynamodb_client not in ("direct", "botocore"):
            raise SettingsError(f"GATEWAY_DYNAMODB_CLIENT must be direct or botocore, not {self.dynamodb_client!r}")
        if not 0 <= self.upstream_token_cache_seconds <= 300:
            raise SettingsError("GATEWAY_UPSTREAM_TOKEN_CACHE_SECONDS must be between 0 and 300")
        if not HEADER_NAME.match(self.api_key_header) or self.api_key_header.lower() in RESERVED_HEADERS:
            raise SettingsError(
                f"GATEWAY_API_KEY_HEADER must be a header name other than {', '.join(sorted(RESERVED_HEADERS))}, "
                f"not {self.api_key_header!r}"
            )
        for field in fields(self):
            if field.name.startswith("rate_limit_") and not 0 <= getattr(self, field.name) <= 1_000_000:
                raise SettingsError(f"{PREFIX}{field.name.upper()} must be between 0 (off) and 1000000 per minute")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, require_config: bool = True) -> Settings:
        """The settings of ``environ``; ``require_config=False`` for a caller that may do without the configuration
        file (the admin CLI's commands that only read and write the tables)."""
        values: dict[str, object] = {"config": ""}
        for field in fields(cls):
            raw = environ.get(PREFIX + field.name.upper())
            if raw is None:
                continue
            if field.type == "bool":
                if raw.strip().lower() not in ("true", "false", "1", "0"):
                    raise SettingsError(f"{PREFIX}{field.name.upper()} must be true or false, not {raw!r}")
                values[field.name] = raw.strip().lower() in ("true", "1")
            elif field.type in ("int", "float"):
                try:
                    values[field.name] = int(raw) if field.type == "int" else float(raw)
                except ValueError:
                    raise SettingsError(f"{PREFIX}{field.name.upper()} must be a number, not {raw!r}") from None
            else:
                values[field.name] = raw
        if require_config and not values["config"]:
            raise SettingsError("GATEWAY_CONFIG must name the gateway configuration file")
        return cls(**values)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str | None:
        """The configured public base URL without a trailing slash, e.g. ``https://gw.example.com``."""
        return None if self.public_base_url is None else self.public_base_url.rstrip("/")

    @property
    def all_verify_key_ids(self) -> tuple[str, ...]:
        """The signing key first, then the keys kept for verification only."""
        extra = tuple(part.strip() for part in self.verify_key_ids.split(",") if part.strip())
        return (self.signing_key_id, *(key for key in extra if key != self.signing_key_id))

    @property
    def is_deployed(self) -> bool:
        return self.stage != "local"
