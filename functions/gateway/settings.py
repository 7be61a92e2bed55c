"""Process settings, read once per cold start from the environment (and nowhere else).

Every variable is prefixed ``GATEWAY_``; AWS SDK variables (``AWS_REGION``, ``AWS_ENDPOINT_URL`` for the local
stand-in) are read by boto3 itself.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, HttpUrl, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    config: str = Field(description="Path of the gateway YAML configuration file.")
    public_base_url: HttpUrl | None = Field(
        default=None,
        description=(
            "Public base URL (custom domain, or the API's default URL), never taken from Host. When empty in a "
            "deployment, the API's default execute-api URL is derived from the event's apiId (set by API Gateway)."
        ),
    )
    stage: Literal["local", "dev", "staging", "prod"] = "local"

    clients_table: str = "clients"
    grants_table: str = "grants"
    upstream_tokens_table: str = "upstream_tokens"

    signing_key_id: str = Field(default="alias/mcp-gateway-signing", description="KMS key that signs tokens.")
    verify_key_ids: str = Field(
        default="",
        description="Comma-separated extra KMS keys whose public keys stay in the JWKS (rotation).",
    )
    upstream_token_key_id: str = "alias/mcp-gateway-upstream-tokens"
    shared_secret_id: str = Field(
        default="mcp-gateway/shared-secret",
        description="Secrets Manager secret shared by all functions (cookies, session ids).",
    )

    access_token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    grant_status_cache_seconds: float = Field(default=30.0, ge=0, le=300)

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("public_base_url")
    @classmethod
    def _no_query_or_fragment(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and (value.query or value.fragment):
            raise ValueError("must not have a query or fragment")
        return value

    @property
    def base_url(self) -> str | None:
        """The configured public base URL without a trailing slash, e.g. ``https://gw.example.com``."""
        return None if self.public_base_url is None else str(self.public_base_url).rstrip("/")

    @property
    def all_verify_key_ids(self) -> tuple[str, ...]:
        """The signing key first, then the keys kept for verification only."""
        extra = tuple(part.strip() for part in self.verify_key_ids.split(",") if part.strip())
        return (self.signing_key_id, *(key for key in extra if key != self.signing_key_id))

    @property
    def is_deployed(self) -> bool:
        return self.stage != "local"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (one read of the environment per cold start)."""
    return Settings()  # values come from the environment
