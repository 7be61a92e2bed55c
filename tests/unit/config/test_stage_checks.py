"""Development switches: what the local stage allows and a deployed stage refuses at cold start, or warns about."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from gateway import config as config_module
from gateway.config import (
    DEV_SWITCH,
    ConfigError,
    DevSwitchRefused,
    GatewayConfig,
    check_command,
    development_switches,
    load_config,
    parse_config,
)
from gateway.runtime import Runtime
from tests.support.runtime import EXAMPLE_CONFIG, example_config_data, memory_runtime

ROOT = Path(__file__).resolve().parents[3]
DEPLOYED_STAGES = ["dev", "staging", "prod"]


def _with_private_addresses() -> dict[str, Any]:
    data = example_config_data()
    data["oauth"] = {"cimd_allow_private_addresses": True}
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _environment(config_path: Path, stage: str) -> dict[str, str]:
    return {"GATEWAY_CONFIG": str(config_path), "GATEWAY_STAGE": stage, "AWS_REGION": "eu-west-1"}


# --- cold start -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_a_deployed_stage_refuses_to_start_with_private_address_fetching(tmp_path: Path, stage: str) -> None:
    # Given a configuration that lets CIMD and upstream OAuth fetches reach private addresses
    path = _write(tmp_path, _with_private_addresses())
    # When a container of a deployed stage starts, Then it refuses, naming the key and the stage
    with pytest.raises(DevSwitchRefused) as raised:
        Runtime.from_environment(_environment(path, stage))
    message = str(raised.value)
    assert "oauth.cimd_allow_private_addresses" in message
    assert f"{stage!r} stage" in message
    assert "GATEWAY_STAGE is 'local'" in message
    assert isinstance(raised.value, ConfigError)  # the same family as an invalid file


def test_the_local_stage_starts_with_it_and_its_fetchers_may_reach_private_addresses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, _with_private_addresses())
    with caplog.at_level(logging.WARNING, logger="gateway.config"):
        runtime = Runtime.from_environment(_environment(path, "local"))
    assert runtime.config.oauth.cimd_allow_private_addresses is True
    assert caplog.records == []  # nothing to warn about locally
    local = memory_runtime(parse_config(_with_private_addresses()))
    assert local.upstream_oauth.fetcher.allow_private and local.upstream_oauth.fetcher.allow_http


def test_a_deployed_stage_starts_with_the_opted_in_dev_login_and_warns_naming_the_workspace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the dev login, explicitly enabled for a test deployment
    data = example_config_data()
    data["workspaces"]["demo"]["identity_provider"]["allow_in_deployed_stage"] = True
    # When a prod container starts, Then it runs and its log says the dev login is on
    with caplog.at_level(logging.WARNING, logger="gateway.config"):
        memory_runtime(parse_config(data), stage="prod")
    warnings = [record.getMessage() for record in caplog.records]
    assert any("workspaces.demo.identity_provider" in line and "allow_in_deployed_stage" in line for line in warnings)


def test_a_plain_secret_in_a_deployed_stage_is_named_by_its_key_never_by_its_value() -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["auth"] = {
        "type": "headers",
        "headers": {"Authorization": "plain:Bearer hunter2"},
    }
    found = development_switches(parse_config(data), "prod")
    [plain] = [switch for switch in found if "plain:" in switch.message]
    assert plain.key == "workspaces.demo.servers.echo.auth.headers.Authorization"
    assert not plain.refused
    assert "hunter2" not in str(plain)


def test_every_switch_is_silent_in_the_local_stage() -> None:
    assert development_switches(parse_config(_with_private_addresses()), "local") == []


# --- the example users copy -------------------------------------------------------------------------------------


def _switches_turned_on(model: BaseModel, prefix: str = "") -> list[str]:
    """The dotted keys of every development-switch field (``x-dev-switch``) set to a true value in ``model``."""
    found: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        extra = field.json_schema_extra
        if isinstance(extra, dict) and DEV_SWITCH in extra and value:
            found.append(prefix + name)
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
        for key, child in children:
            if isinstance(child, BaseModel):
                found += _switches_turned_on(child, f"{prefix}{name}.{key}.")
        if isinstance(value, BaseModel):
            found += _switches_turned_on(value, f"{prefix}{name}.")
    return found


def test_the_example_config_turns_on_no_development_switch() -> None:
    config = load_config(EXAMPLE_CONFIG)
    assert _switches_turned_on(config) == []
    assert not any(switch.refused for switch in development_switches(config, "prod"))
    # the walker does find a switch where one is on
    assert _switches_turned_on(parse_config(_with_private_addresses())) == ["oauth.cimd_allow_private_addresses"]


# --- python -m gateway.config check FILE --stage STAGE ---------------------------------------------------------


def test_check_with_a_deployed_stage_refuses_the_switch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _with_private_addresses())
    assert check_command([str(path), "--stage", "prod"]) == 1
    assert "error: oauth.cimd_allow_private_addresses" in capsys.readouterr().err
    # the same file is fine for the local stage and for plain validation
    assert check_command([str(path), "--stage", "local"]) == 0
    assert check_command([str(path)]) == 0


def test_check_of_the_example_for_prod_passes_with_warnings_about_its_demo_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert check_command([str(EXAMPLE_CONFIG), "--stage", "prod"]) == 0
    output = capsys.readouterr()
    assert "warning: workspaces.demo.identity_provider: the built-in development login is disabled" in output.err
    assert "warning: workspaces.demo.servers.echo.upstream: a plain http upstream" in output.err
    assert "ok for the 'prod' stage" in output.out


def test_check_refuses_an_unknown_stage(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command([str(EXAMPLE_CONFIG), "--stage", "qa"]) == 2
    assert "--stage must be one of local, dev, staging, prod" in capsys.readouterr().err


# --- docs/deploy.md ---------------------------------------------------------------------------------------------


def _marked_fields() -> set[str]:
    models = [
        value
        for value in vars(config_module).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__.startswith(config_module.__name__ + ".")
    ]
    return {
        name
        for model in models
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and DEV_SWITCH in field.json_schema_extra
    }


def test_docs_deploy_lists_every_development_switch() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text.split("\n## Development switches\n", 1)[1].split("\n## ", 1)[0]
    first_column = " ".join(re.findall(r"^\| ([^|]+) \|", section, flags=re.MULTILINE))
    assert _marked_fields() >= {"cimd_allow_private_addresses", "allow_in_deployed_stage"}
    for name in _marked_fields():
        assert f"`{name}" in first_column or f".{name}" in first_column, f"docs/deploy.md does not list {name}"
    # and the switches that are not fields of their own
    for switch in ("plain:", "env:", "http://", "GATEWAY_STAGE", "AWS_ENDPOINT_URL"):
        assert switch in first_column, f"docs/deploy.md does not list {switch}"


def test_the_schema_marks_the_switches_for_editors() -> None:
    schema = GatewayConfig.model_json_schema()
    oauth = schema["$defs"]["OAuthPolicy"]["properties"]["cimd_allow_private_addresses"]
    assert oauth[DEV_SWITCH] == "local stage only"


@pytest.mark.parametrize("claim", ["preferred_username", "email", "upn"])
def test_check_warns_about_a_user_id_claim_that_can_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claim: str
) -> None:
    # Given a workspace that names its users by a claim users or administrators can edit
    data = example_config_data()
    data["workspaces"]["demo"]["identity_provider"] = {
        "type": "oidc", "issuer": "https://idp.example.com", "client_id": "gw", "user_id_claim": claim,
    }  # fmt: skip
    # When it is checked, then it passes with a warning that names the key and suggests an immutable claim
    assert check_command([str(_write(tmp_path, data))]) == 0
    err = capsys.readouterr().err
    assert f"warning: workspaces.demo.identity_provider.user_id_claim: {claim!r} can change" in err
    assert "'sub'" in err
    assert ("email_verified" in err) == (claim == "email")
    # and the default claim draws no such warning
    data["workspaces"]["demo"]["identity_provider"]["user_id_claim"] = "sub"
    assert check_command([str(_write(tmp_path, data))]) == 0
    assert "user_id_claim" not in capsys.readouterr().err
