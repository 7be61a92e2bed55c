"""The configuration file: what an operator writes, and what they are told when it is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import (
    ConfigError,
    TimeoutTooLong,
    check_timeouts,
    compile_config,
    json_schema,
    load_config,
    parse_config,
    validated_path,
)
from tests.support.runtime import EXAMPLE_CONFIG, example_config_data

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_config_declares_the_demo_echo_route() -> None:
    config = load_config(EXAMPLE_CONFIG)
    assert "echo" in config.workspaces["demo"].servers
    assert config.default_route == "demo/echo"


def _with(data: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["workspaces", "demo", "servers", "echo", "upstream"], "not a url", "workspaces.demo.servers.echo.upstream"),
        (["workspaces", "demo", "servers", "echo", "timeout_seconds"], 1000, "less than or equal to 900"),
        (["workspaces", "demo", "identity_provider", "type"], "saml", "identity_provider"),
        (["default_route"], "demo/nope", "default_route 'demo/nope' names no configured server"),
        (["workspaces", "demo", "servers", "echo", "colour"], "blue", "workspaces.demo.servers.echo.colour"),
    ],
)
def test_a_bad_config_names_the_key_and_the_problem(path: list[str], value: Any, expected: str) -> None:
    # Given the example config with one bad value
    data = _with(example_config_data(), path, value)
    # When it is validated, Then the error names where and what
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "gateway.yaml")
    assert expected in str(raised.value)
    assert "gateway.yaml" in str(raised.value)


def test_workspace_and_server_names_must_be_url_safe_slugs() -> None:
    data = example_config_data()
    data["workspaces"]["Demo Space"] = data["workspaces"].pop("demo")
    data.pop("default_route")
    with pytest.raises(ConfigError, match=r"workspaces\.Demo Space"):
        parse_config(data)


def test_an_oidc_provider_must_request_the_openid_scope() -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["identity_provider"] = {
        "type": "oidc",
        "issuer": "https://idp.example.com",
        "client_id": "gw",
        "scopes": ["profile"],
    }
    with pytest.raises(ConfigError, match="must include 'openid'"):
        parse_config(data)


def test_a_missing_or_unparsable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("workspaces: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


# --- messages that point at the fix (issue "The first hour", item 3) --------------------------------------------


def _message(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "my-gateway.yaml")
    return str(raised.value)


def test_a_route_without_an_upstream_says_which_keys_to_add() -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"].pop("upstream")
    message = _message(data)
    assert (
        "workspaces.demo.servers.echo: a route needs 'upstream' (the URL of one MCP server) or 'upstreams' "
        "(several, for a virtual route); it has neither"
    ) in message
    assert "not both" not in message


def test_a_typo_suggests_the_closest_key_and_reports_the_missing_one() -> None:
    data = example_config_data()
    echo = data["workspaces"]["demo"]["servers"]["echo"]
    echo["upstraem"] = echo.pop("upstream")
    message = _message(data)
    assert (
        "workspaces.demo.servers.echo.upstraem: unknown key 'upstraem': did you mean 'upstream'? "
        "('upstream' is not set)"
    ) in message
    assert "workspaces.demo.servers.echo: a route needs 'upstream'" in message
    assert "Extra inputs are not permitted" not in message


def test_an_unknown_key_without_a_close_one_lists_the_keys_there_as_the_file_writes_them() -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["identity_provider"]["users"][0]["colour"] = "blue"
    message = _message(data)
    # the location is the file's (no pydantic union tag such as identity_provider.dev.users)
    assert "workspaces.demo.identity_provider.users.0.colour: unknown key 'colour'; the keys here are id, password" in (
        message
    )


def test_the_gateways_own_checks_read_without_pydantics_prefix() -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["auth"] = {"type": "oauth", "registration": "preregistered"}
    message = _message(data)
    assert "workspaces.demo.servers.echo.auth: client_id is required when registration is 'preregistered'" in message
    assert "Value error" not in message


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    broken = tmp_path / "my-gateway.yaml"
    broken.write_text("workspaces:\n  demo:\n    servers: [echo\n    title: x\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(broken)
    message = str(raised.value)
    assert f"gateway configuration {broken} is not valid YAML: line 4, column 10:" in message
    assert "<unicode string>" not in message


def test_the_committed_json_schema_matches_the_models() -> None:
    committed = json.loads((ROOT / "schema" / "gateway-config.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema()))


# --- virtual routes -----------------------------------------------------------------------------------------


def _virtual(**server: Any) -> dict[str, Any]:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["toolbox"] = server
    return data


VIRTUAL_OK = {
    "upstreams": {
        "linear": {"url": "https://linear.example.com/mcp"},
        "github": {"url": "https://gh.example.com/mcp", "prefix": "gh", "tools": {"allow": ["get_*"]}},
    }
}


def test_a_virtual_route_lists_upstreams_each_with_its_prefix() -> None:
    config = parse_config(_virtual(**VIRTUAL_OK))
    server = config.workspaces["demo"].servers["toolbox"]
    assert server.is_virtual and server.upstream is None
    assert server.upstreams is not None and server.upstreams["github"].prefix == "gh"


A, B = "https://a.example.com/mcp", "https://b.example.com/mcp"


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({"upstream": A, **VIRTUAL_OK}, "either 'upstream'"),
        ({"title": "nothing"}, "a route needs 'upstream' (the URL of one MCP server) or 'upstreams'"),
        ({"upstreams": {}}, "at least one upstream"),
        (
            {"upstreams": {"a": {"url": A, "prefix": "x"}, "b": {"url": B, "prefix": "x"}}},
            "would make tool names ambiguous",
        ),
        ({"upstreams": {"gh": {"url": A}, "b": {"url": B, "prefix": "gh_x"}}}, "would make tool names ambiguous"),
        ({"upstreams": {"a": {"url": A, "prefix": ""}, "b": {"url": B}}}, "only a virtual route's one upstream"),
        ({"upstreams": {"a": {"url": A, "projections": {"t": {"name": "n" * 64}}}}}, "longer than the 64 characters"),
        (
            {"upstreams": {"a": {"url": A, "projections": {"t": {"name": "x"}, "u": {"name": "x"}}}}},
            "both renamed 'x'",
        ),
        ({"upstreams": {"a": {"url": A, "projections": {"t": {"name": "has space"}}}}}, "pattern"),
        ({**VIRTUAL_OK, "auth": {"type": "headers", "headers": {"X": "env:X"}}}, "on each of its upstreams"),
    ],
)
def test_a_bad_virtual_route_is_refused_with_a_message(server: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=r"workspaces\.demo\.servers\.toolbox") as raised:
        parse_config(_virtual(**server))
    assert expected in str(raised.value)


def test_a_timeout_beyond_the_http_apis_limit_needs_the_streaming_deployment() -> None:
    data = _with(example_config_data(), ["workspaces", "demo", "servers", "echo", "timeout_seconds"], 120)
    config = parse_config(data)
    with pytest.raises(TimeoutTooLong) as refused:
        check_timeouts(config, streaming=False)
    assert "demo/echo: timeout_seconds 120" in str(refused.value)
    assert "ProxyResponseMode=streaming" in str(refused.value)
    check_timeouts(config, streaming=True)  # 15 minutes is the streaming front door's limit: accepted
    check_timeouts(parse_config(example_config_data()), streaming=False)  # the example's 25 s fits both


# --- the validated form (make build ships it beside the file; load_config rebuilds the models from it) -----------

RICH_CONFIG = """
workspaces:
  corp:
    identity_provider:
      type: oidc
      issuer: https://idp.example.com
      client_id: gw
      client_secret: secretsmanager:idp
      extra_authorize_params: {prompt: login}
    clients:
      - client_id: desktop
        client_name: Desktop
        redirect_uris: [http://127.0.0.1:5000/callback]
        servers: [github]
      - client_id: agent
        client_name: Agent with keys
        redirect_uris: [https://agent.example/cb]
        dpop_bound_access_tokens: true
        jwks: {keys: [{kty: EC, crv: P-256, x: f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU,
                       y: x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0, kid: k1, use: sig}]}
    access_token_ttl_seconds: 28800
    dpop: {required: true, nonce: true}
    enterprise_authorization:
      issuers:
        - {issuer: https://acme.okta.example, jwks_uri: https://acme.okta.example/keys, clients: [agent],
           servers: [github], groups_claim: roles}
    servers:
      github:
        upstream: https://mcp.github.example/mcp
        auth: {type: oauth, registration: preregistered, client_id: gh, client_secret: "env:GH_SECRET"}
        access: {groups: [eng]}
      search:
        upstream: https://search.example/mcp
        auth: {type: headers, headers: {X-Api-Key: "ssm:/search/key"}}
        timeout_seconds: 10
      combined:
        upstreams:
          one:
            url: https://one.example/mcp
            auth: {type: none}
            tools: {allow: ["list_*"], deny: [list_secrets]}
            projections: {list_items: {name: items, annotations: {readOnlyHint: true}}}
          two: {url: https://two.example/mcp, prefix: second, timeout_seconds: 5}
        list_cache_seconds: 30
oauth:
  authorization_code_ttl_seconds: 120
"""


@pytest.mark.parametrize("text", [EXAMPLE_CONFIG.read_text(encoding="utf-8"), RICH_CONFIG], ids=["example", "rich"])
def test_the_validated_form_rebuilds_the_same_configuration(tmp_path: Path, text: str) -> None:
    # Given a configuration file and its validated form beside it
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    validated = load_config(path)
    assert compile_config(path) == validated_path(path) == tmp_path / "gateway.yaml.validated.json"
    # When it is loaded again, Then the same models come back, with the same fields set
    rebuilt = load_config(path)
    assert json.loads(validated_path(path).read_text(encoding="utf-8"))["config"] == validated.model_dump(
        mode="json", exclude_unset=True
    )
    assert rebuilt == validated
    assert rebuilt.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert repr(rebuilt) == repr(validated)


def test_a_validated_form_of_another_text_is_ignored(tmp_path: Path) -> None:
    # Given a validated form, and the file edited afterwards
    path = tmp_path / "gateway.yaml"
    path.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    compile_config(path)
    path.write_text(path.read_text(encoding="utf-8").replace("title: Demo workspace", "title: Edited"))
    # When it is loaded, Then the file as it is now counts
    assert load_config(path).workspaces["demo"].title == "Edited"
    # And a file broken since is still refused, validated form or not
    path.write_text(path.read_text(encoding="utf-8").replace("http://127.0.0.1:9001/mcp", "not a url"))
    with pytest.raises(ConfigError, match="upstream"):
        load_config(path)


def test_a_bad_file_gets_no_validated_form(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("workspaces: {}")
    with pytest.raises(ConfigError, match="workspaces"):
        compile_config(broken)
    assert not validated_path(broken).exists()


def test_loading_the_validated_form_needs_no_yaml_and_builds_no_validator(tmp_path: Path) -> None:
    # Given the example's validated form, When a fresh interpreter loads the configuration (as a cold start does),
    # Then PyYAML was not imported and no model built its validator.
    path = tmp_path / "gateway.yaml"
    path.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    compile_config(path)
    script = (
        "import sys;"
        "from gateway.config import GatewayConfig, load_config;"
        f"config = load_config({str(path)!r});"
        "assert 'demo' in config.workspaces;"
        "print('yaml' in sys.modules, GatewayConfig.__pydantic_complete__)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert output.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("jwks", "reason"),
    [
        ({"keys": []}, "non-empty list"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "kty must be RSA, EC or OKP"),
        ({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "secret"}]}, "a private key"),
    ],
    ids=["empty", "symmetric", "private"],
)
def test_a_pre_registered_clients_inline_keys_must_be_public_asymmetric_keys(jwks: object, reason: str) -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["clients"] = [
        {"client_id": "agent", "client_name": "Agent", "redirect_uris": ["https://a.example/cb"], "jwks": jwks}
    ]
    with pytest.raises(ConfigError, match=reason):
        parse_config(data)
