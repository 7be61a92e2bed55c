"""Build a gateway runtime wired to in-memory adapters and a local RSA key (no AWS), for unit tests.

The apps take their runtime as an argument (``create_app(runtime)``), so a test builds one here and hands it over;
nothing is installed globally.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gateway.config import GatewayConfig, parse_config
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.tokens.access_token import AccessTokens
from infra.memory.cipher import LocalTokenCipher
from infra.memory.keys import LocalRsaKey
from infra.memory.stores import (
    MemoryApiKeyStore,
    MemoryAuditLog,
    MemoryClientStore,
    MemoryGrantStore,
    MemoryRateLimiter,
    MemorySingleUseStore,
    MemoryUpstreamTokenStore,
    MemoryUsageLog,
)

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "gateway.yaml"
BASE_URL = "https://gw.example.com"


def example_config_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    return data


def memory_runtime(
    config: GatewayConfig | None = None,
    base_url: str = BASE_URL,
    *,
    clock: Callable[[], float] = time.time,
    **settings: Any,
) -> Runtime:
    config = config or parse_config(example_config_data())
    runtime = Runtime(Settings(config=str(EXAMPLE_CONFIG), public_base_url=base_url, **settings), config, clock=clock)
    key = LocalRsaKey.shared()
    runtime.__dict__.update(
        clients=MemoryClientStore(),
        grants=MemoryGrantStore(),
        upstream_tokens=MemoryUpstreamTokenStore(),
        audit_log=MemoryAuditLog(),
        usage_log=MemoryUsageLog(),
        api_keys=MemoryApiKeyStore(),
        rate_limiter=MemoryRateLimiter(),
        single_use=MemorySingleUseStore(),
        shared_secret=b"unit-test-shared-secret-0123456789abcdef",
        public_keys=key,
        access_tokens=AccessTokens(key, key, runtime.settings.access_token_ttl_seconds),
        upstream_token_cipher=LocalTokenCipher(),
        signing_key=key,  # the same key, under the name tests use to make it fail
    )
    return runtime
