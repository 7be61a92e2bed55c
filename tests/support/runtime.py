"""Build a gateway runtime wired to in-memory adapters and a local RSA key (no AWS), for unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from gateway.config import GatewayConfig, parse_config
from gateway.runtime import Runtime, set_runtime
from gateway.settings import Settings
from gateway.storage.memory import MemoryClientStore, MemoryGrantStore, MemoryUpstreamTokenStore
from gateway.tokens.access_token import AccessTokens
from gateway.tokens.local_keys import LocalRsaKey

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "gateway.yaml"
BASE_URL = "https://gw.example.com"


def example_config_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    return data


def memory_runtime(config: GatewayConfig | None = None, base_url: str = BASE_URL, **settings: Any) -> Runtime:
    config = config or parse_config(example_config_data())
    runtime = Runtime(
        Settings(config=str(EXAMPLE_CONFIG), public_base_url=base_url, **settings),
        config,
    )
    key = LocalRsaKey()
    runtime.__dict__.update(
        clients=MemoryClientStore(),
        grants=MemoryGrantStore(),
        upstream_tokens=MemoryUpstreamTokenStore(),
        shared_secret=b"unit-test-shared-secret-0123456789abcdef",
        public_keys=key,
        access_tokens=AccessTokens(key, key, runtime.settings.access_token_ttl_seconds),
        signing_key=key,
    )
    return runtime


@contextmanager
def installed(runtime: Runtime) -> Iterator[Runtime]:
    set_runtime(runtime)
    try:
        yield runtime
    finally:
        set_runtime(None)
