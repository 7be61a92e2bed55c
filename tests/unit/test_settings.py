"""Settings come from GATEWAY_* environment variables, and a bad value names its variable."""

from __future__ import annotations

import pytest

from gateway.settings import Settings, SettingsError


def test_values_are_read_and_typed_from_the_environment() -> None:
    settings = Settings.from_environ(
        {
            "GATEWAY_CONFIG": "gateway.yaml",
            "GATEWAY_PUBLIC_BASE_URL": "https://gw.example.com/",
            "GATEWAY_STAGE": "prod",
            "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "900",
            "GATEWAY_GRANT_STATUS_CACHE_SECONDS": "5",
            "GATEWAY_UPSTREAM_TOKEN_CACHE_SECONDS": "0",
            "GATEWAY_VERIFY_KEY_IDS": "old-key, key",
            "GATEWAY_SIGNING_KEY_ID": "key",
            "UNRELATED": "ignored",
        }
    )
    assert settings.base_url == "https://gw.example.com"
    assert settings.is_deployed
    assert settings.access_token_ttl_seconds == 900
    assert settings.grant_status_cache_seconds == 5.0
    assert settings.upstream_token_cache_seconds == 0.0
    assert settings.all_verify_key_ids == ("key", "old-key")


def test_by_default_every_request_reads_the_grant_status_and_credentials_are_cached_briefly() -> None:
    # Revocation bites on the next call unless an operator opts into a grant-status cache (issue: revoke means now)
    settings = Settings.from_environ({"GATEWAY_CONFIG": "x"})
    assert settings.grant_status_cache_seconds == 0.0
    assert settings.upstream_token_cache_seconds == 30.0


def test_an_empty_base_url_means_derive_it_from_the_event() -> None:
    settings = Settings.from_environ({"GATEWAY_CONFIG": "x", "GATEWAY_PUBLIC_BASE_URL": ""})
    assert settings.base_url is None


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, "GATEWAY_CONFIG"),
        ({"GATEWAY_CONFIG": "x", "GATEWAY_STAGE": "qa"}, "GATEWAY_STAGE"),
        ({"GATEWAY_CONFIG": "x", "GATEWAY_PUBLIC_BASE_URL": "gw.example.com"}, "GATEWAY_PUBLIC_BASE_URL"),
        ({"GATEWAY_CONFIG": "x", "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "an hour"}, "GATEWAY_ACCESS_TOKEN_TTL_SECONDS"),
        ({"GATEWAY_CONFIG": "x", "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "10"}, "GATEWAY_ACCESS_TOKEN_TTL_SECONDS"),
        ({"GATEWAY_CONFIG": "x", "GATEWAY_UPSTREAM_TOKEN_CACHE_SECONDS": "-1"}, "GATEWAY_UPSTREAM_TOKEN_CACHE_SECONDS"),
    ],
)
def test_a_bad_value_names_its_variable(environ: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_environ(environ)


def test_api_keys_and_rate_limits_have_their_defaults_and_are_read_from_the_environment() -> None:
    # Given no setting, Then the key header and the limits are the documented defaults (docs/non-interactive.md)
    default = Settings.from_environ({"GATEWAY_CONFIG": "c.yaml"})
    assert default.api_key_header == "X-Gateway-Key"
    assert (default.rate_limit_register_per_ip, default.rate_limit_proxy_per_caller) == (20, 0)
    assert default.rate_limits_table == "rate_limits"

    # Given the template's variables, Then they are read and typed
    changed = Settings.from_environ(
        {"GATEWAY_CONFIG": "c.yaml", "GATEWAY_API_KEY_HEADER": "X-Ci-Key", "GATEWAY_RATE_LIMIT_TOKEN_PER_IP": "0"}
    )
    assert changed.api_key_header == "X-Ci-Key" and changed.rate_limit_token_per_ip == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_API_KEY_HEADER", "Authorization"),  # the key header must leave Authorization to something else
        ("GATEWAY_API_KEY_HEADER", "X Key"),
        ("GATEWAY_RATE_LIMIT_REGISTER_PER_IP", "-1"),
    ],
)
def test_a_reserved_key_header_or_a_negative_limit_is_refused(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_environ({"GATEWAY_CONFIG": "c.yaml", variable: value})
