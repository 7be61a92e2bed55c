"""template.yaml, transformed offline by aws-sam-translator: routes, IAM scope, tables, keys; and the lint gate."""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

from infra.template import FunctionSpec, functions, load_template, parameter_values, resolve, resolve_environment

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
BASIC_EXECUTION_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"

# Markers for the ARN patterns built from the UpstreamSecretsPrefix parameter.
SECRETS_PREFIX = "secretsmanager:secret:${UpstreamSecretsPrefix}*"
SSM_PREFIX = "ssm:parameter/${UpstreamSecretsPrefix}*"
GRANTS_INDEXES = "GrantsTable/index/*"

METADATA_PATHS = (
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/{proxy+}",
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/{proxy+}",
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/{proxy+}",
    "/{workspace}/{server}/.well-known/openid-configuration",
    "/{workspace}/{server}/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
    "/{workspace}/{server}/oauth-client.json",  # the gateway's client metadata document (upstream OAuth)
)

EXPECTED_ROUTES: dict[str, set[str]] = {
    "MetadataFunction": {f"{method} {path}" for path in METADATA_PATHS for method in ("GET", "OPTIONS")},
    "ProxyFunction": {"ANY /{workspace}/{server}/mcp"},
    "RegisterFunction": {"ANY /{workspace}/{server}/register", "ANY /register"},
    "AuthorizeFunction": {
        "GET /{workspace}/{server}/authorize",
        "GET /authorize",
        "ANY /{workspace}/{server}/consent",
        "ANY /{workspace}/login",
        "ANY /{workspace}/connections",
        "GET /{workspace}/oidc/callback",
        "ANY /{workspace}/{server}/connect",
        "GET /{workspace}/{server}/connect/callback",
        "GET /{workspace}/admin/sign-in",  # the admin console's sign-in: the workspace's own flow
    },
    "AdminFunction": {"ANY /{workspace}/admin", "ANY /{workspace}/admin/{proxy+}"},
    "TokenFunction": {
        "ANY /{workspace}/{server}/token",
        "ANY /{workspace}/{server}/revoke",
        "ANY /token",
        "ANY /revoke",
    },
}

_DYNAMODB_CRUD = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem", "Query")


def _grants(actions: tuple[str, ...], targets: set[str]) -> dict[str, set[str]]:
    return {action: set(targets) for action in actions}


def _merge(*parts: dict[str, set[str]]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for part in parts:
        for action, targets in part.items():
            merged.setdefault(action, set()).update(targets)
    return merged


# Every action each function's own policies allow, and on what (logical ids or the prefix markers above).
AUDIT = {"dynamodb:PutItem": {"AuditTable"}}  # every function but metadata appends to the audit trail
# Rate limits (docs/non-interactive.md): one conditional UpdateItem per counted request, nothing else.
RATE_LIMITS = {"dynamodb:UpdateItem": {"RateLimitsTable"}}

EXPECTED_PERMISSIONS: dict[str, dict[str, set[str]]] = {
    "MetadataFunction": {"kms:GetPublicKey": {"SigningKey"}},
    "RegisterFunction": _merge(
        _grants(("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"), {"ClientsTable"}),
        AUDIT,
        RATE_LIMITS,
    ),
    "ProxyFunction": _merge(
        {"kms:GetPublicKey": {"SigningKey"}},
        {"dynamodb:UpdateItem": {"AuditTable"}},  # the usage rollups: ADD beside the tool.called event
        _grants(
            ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"),
            {"GrantsTable", "UpstreamTokensTable"},
        ),
        # A refresh refused with invalid_grant deletes the upstream credential (gateway.upstream.vault).
        _grants(("dynamodb:DeleteItem",), {"UpstreamTokensTable"}),
        _grants(("kms:GenerateDataKey", "kms:Decrypt"), {"UpstreamTokenKey"}),
        {"secretsmanager:GetSecretValue": {"SharedSecret", SECRETS_PREFIX}},
        _grants(("ssm:GetParameter", "ssm:GetParameters"), {SSM_PREFIX}),
        AUDIT,
        RATE_LIMITS,
    ),
    "AuthorizeFunction": _merge(
        _grants(("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"), {"ClientsTable"}),
        _grants(
            tuple(f"dynamodb:{action}" for action in _DYNAMODB_CRUD),
            {"GrantsTable", GRANTS_INDEXES, "UpstreamTokensTable"},
        ),
        _grants(("kms:GenerateDataKey", "kms:Decrypt"), {"UpstreamTokenKey"}),
        {"secretsmanager:GetSecretValue": {"SharedSecret", SECRETS_PREFIX}},
        _grants(("ssm:GetParameter", "ssm:GetParameters"), {SSM_PREFIX}),
        AUDIT,
        RATE_LIMITS,
    ),
    # The admin console: reads by key ranges (never a Scan), the operator service's changes, the session's secret.
    "AdminFunction": _merge(
        _grants(("dynamodb:Query", "dynamodb:PutItem"), {"AuditTable", "AuditTable/index/*"}),
        _grants(
            ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"), {"ClientsTable", "ClientsTable/index/*"}
        ),
        _grants(
            ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
            {"GrantsTable", GRANTS_INDEXES},
        ),
        _grants(("dynamodb:GetItem", "dynamodb:DeleteItem"), {"UpstreamTokensTable"}),
        {"secretsmanager:GetSecretValue": {"SharedSecret"}},
    ),
    "TokenFunction": _merge(
        _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), {"ClientsTable"}),
        _grants(tuple(f"dynamodb:{action}" for action in _DYNAMODB_CRUD), {"GrantsTable", GRANTS_INDEXES}),
        _grants(("kms:Sign", "kms:GetPublicKey"), {"SigningKey"}),
        {"secretsmanager:GetSecretValue": {"SharedSecret", SECRETS_PREFIX}},
        _grants(("ssm:GetParameter", "ssm:GetParameters"), {SSM_PREFIX}),
        AUDIT,
        RATE_LIMITS,
    ),
}


XRAY_WRITE_ONLY = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"


class _FakeManagedPolicyLoader:
    """Stands in for the IAM lookup of AWS managed policy ARNs, which would need credentials and network."""

    def load(self) -> dict[str, str]:
        return {"AWSLambdaBasicExecutionRole": BASIC_EXECUTION_ROLE}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    # `sam package` replaces the local CodeUri with an S3 location before the transform runs in CloudFormation.
    packaged = copy.deepcopy(template)
    packaged["Globals"]["Function"]["CodeUri"] = "s3://example-bucket/functions.zip"
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://example-bucket/layer.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator reads the region from a boto3 session
        yield transform(packaged, {}, _FakeManagedPolicyLoader())


def _resources_of_type(document: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {key: value for key, value in document["Resources"].items() if value["Type"] == resource_type}


def _routes_by_function(transformed: dict[str, Any]) -> dict[str, set[str]]:
    """Route keys per function, read from the OpenAPI body SAM generates for the HTTP API."""
    body = transformed["Resources"]["HttpApi"]["Properties"]["Body"]
    routes: dict[str, set[str]] = {}
    for path, operations in body["paths"].items():
        for method, operation in operations.items():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["payloadFormatVersion"] == "2.0"
            target = re.fullmatch(r".*\$\{(\w+)\.Arn\}/invocations", integration["uri"]["Fn::Sub"])
            assert target is not None, integration["uri"]
            verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            routes.setdefault(target.group(1), set()).add(f"{verb} {path}")
    return routes


def _targets(resource: Any) -> set[str]:
    """What a policy statement's Resource points at: logical ids, or a marker for the prefix ARN patterns."""
    if isinstance(resource, list):
        return set().union(*(_targets(item) for item in resource))
    if isinstance(resource, dict) and "Ref" in resource:
        return {resource["Ref"]}
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn"
        return {logical_id}
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text = resource["Fn::Sub"]
        arn_prefix = "arn:${AWS::Partition}:"
        account = ":${AWS::Region}:${AWS::AccountId}:"
        for service, marker in (("secretsmanager", SECRETS_PREFIX), ("ssm", SSM_PREFIX)):
            if text == f"{arn_prefix}{service}{account}{marker.split(':', 1)[1]}":
                return {marker}
        if text == "${GrantsTable.Arn}/index/*":
            return {GRANTS_INDEXES}
        if text in ("${AuditTable.Arn}/index/*", "${ClientsTable.Arn}/index/*"):
            return {text.split(".", 1)[0].lstrip("${") + "/index/*"}
    raise AssertionError(f"unexpected policy resource {resource!r}")


def _permissions(transformed: dict[str, Any], function_id: str) -> tuple[dict[str, set[str]], list[str]]:
    """(action -> targets from the function role's inline policies, the role's managed policy ARNs)."""
    function = transformed["Resources"][function_id]
    role_id, _ = function["Properties"]["Role"]["Fn::GetAtt"]
    role = transformed["Resources"][role_id]["Properties"]
    permissions: dict[str, set[str]] = {}
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                permissions.setdefault(action, set()).update(_targets(statement["Resource"]))
    return permissions, list(role.get("ManagedPolicyArns", []))


# --- routes --------------------------------------------------------------------------------------------------


def test_each_function_serves_exactly_its_routes(transformed: dict[str, Any]) -> None:
    # Given the template transformed as CloudFormation would
    # When the HTTP API's generated routes are grouped by the function they invoke
    routes = _routes_by_function(transformed)

    # Then each function has exactly the routes of the contract, and no route goes elsewhere
    assert routes == EXPECTED_ROUTES


def test_local_tools_see_the_same_routes_as_api_gateway(template: dict[str, Any], transformed: dict[str, Any]) -> None:
    # Given the routes the dev server reads with infra.template
    local = {spec.logical_id: {route.route_key for route in spec.routes} for spec in functions(template)}

    # Then they are the routes API Gateway will have
    assert local == _routes_by_function(transformed)


def test_http_api_has_default_stage_access_logs_and_no_api_level_cors(transformed: dict[str, Any]) -> None:
    # Given the generated HTTP API and its stage
    api = transformed["Resources"]["HttpApi"]["Properties"]
    (stage,) = _resources_of_type(transformed, "AWS::ApiGatewayV2::Stage").values()

    # Then CORS is left to the functions, the stage is $default, and access logs go to a retained log group
    assert "CorsConfiguration" not in api
    assert "x-amazon-apigateway-cors" not in api["Body"]
    assert stage["Properties"]["StageName"] == "$default"
    assert stage["Properties"]["AccessLogSettings"]["DestinationArn"] == {
        "Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]
    }
    log_group = transformed["Resources"]["HttpApiAccessLogGroup"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_custom_domain_resources_exist_only_with_the_condition(transformed: dict[str, Any]) -> None:
    # Given the custom-domain resources
    resources = transformed["Resources"]

    # Then they are conditional, and the mapping targets the front door of the deployment mode: the HTTP API's
    # $default stage, or the streaming mode's REST API stage
    assert resources["CustomDomain"]["Condition"] == "HasCustomDomain"
    assert resources["CustomDomainMapping"]["Condition"] == "HasCustomDomain"
    mapping = resources["CustomDomainMapping"]["Properties"]
    assert mapping["ApiId"] == {"Fn::If": ["IsStreaming", {"Ref": "StreamApi"}, {"Ref": "HttpApi"}]}
    assert mapping["Stage"] == {
        "Fn::If": ["IsStreaming", {"Ref": "StreamApiliveStage"}, {"Ref": "HttpApiApiGatewayDefaultStage"}]
    }


# --- the streaming deployment (ProxyResponseMode=streaming) ---------------------------------------------------


def _stream_api_routes(transformed: dict[str, Any]) -> dict[str, set[str]]:
    """The REST API's operations grouped by the function they invoke, as ``METHOD /path`` (ANY for any-method)."""
    body = transformed["Resources"]["StreamApi"]["Properties"]["Body"]
    routes: dict[str, set[str]] = {}
    for path, operations in body["paths"].items():
        for key, operation in operations.items():
            method = "ANY" if key == "x-amazon-apigateway-any-method" else key.upper()
            uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            function_id = re.search(r"\$\{(\w+)\.Arn\}", uri)
            assert function_id is not None, uri
            routes.setdefault(function_id.group(1), set()).add(f"{method} {path}")
    return routes


def test_the_streaming_front_door_serves_exactly_the_http_apis_routes(transformed: dict[str, Any]) -> None:
    # Given the REST API of the streaming mode
    api = transformed["Resources"]["StreamApi"]

    # Then it exists only in that mode, and every route goes to the same function as on the HTTP API
    assert api["Condition"] == "IsStreaming"
    assert _stream_api_routes(transformed) == EXPECTED_ROUTES


def test_only_the_mcp_route_streams_for_up_to_fifteen_minutes(transformed: dict[str, Any]) -> None:
    # Given the REST API's integrations
    paths = transformed["Resources"]["StreamApi"]["Properties"]["Body"]["paths"]
    integrations = {
        (path, key): operation["x-amazon-apigateway-integration"]
        for path, operations in paths.items()
        for key, operation in operations.items()
    }

    # Then the MCP route invokes the proxy with response streaming and the front door's longest timeout
    mcp = integrations.pop(("/{workspace}/{server}/mcp", "x-amazon-apigateway-any-method"))
    assert mcp["type"] == "aws_proxy"
    assert mcp["responseTransferMode"] == "STREAM"
    assert mcp["timeoutInMillis"] == 900_000
    assert mcp["uri"]["Fn::Sub"].endswith("/2021-11-15/functions/${ProxyFunction.Arn}/response-streaming-invocations")
    # and every other route is a plain (buffered) Lambda proxy integration
    for integration in integrations.values():
        assert integration["type"] == "aws_proxy"
        assert "responseTransferMode" not in integration
        assert integration["uri"]["Fn::Sub"].endswith("/invocations")


def test_the_streaming_proxy_runs_under_the_web_adapter(template: dict[str, Any]) -> None:
    # Given the proxy function as each mode deploys it
    buffered = {spec.logical_id: spec for spec in functions(template)}["ProxyFunction"]
    streaming = {spec.logical_id: spec for spec in functions(template, {"ProxyResponseMode": "streaming"})}
    proxy = streaming["ProxyFunction"]

    # Then buffered is Mangum's handler within the HTTP API's 30 s, streaming the adapter's script for 15 minutes
    assert (buffered.handler, buffered.timeout, buffered.streams) == ("proxy.app.handler", 29, False)
    assert (proxy.handler, proxy.timeout, proxy.streams) == ("proxy/run.sh", 900, True)
    assert proxy.asgi_app == "proxy.app.asgi_app"
    assert (ROOT / "functions" / proxy.handler).stat().st_mode & 0o111, "run.sh must be executable"
    assert not any(spec.streams for name, spec in streaming.items() if name != "ProxyFunction")
    # and the adapter layer, its wrapper and invoke mode are set only in streaming mode
    props = template["Resources"]["ProxyFunction"]["Properties"]
    assert props["Layers"]["Fn::If"][0] == "IsStreaming"
    env = props["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == {"Fn::If": ["IsStreaming", "/opt/bootstrap", {"Ref": "AWS::NoValue"}]}
    assert env["AWS_LWA_INVOKE_MODE"] == {"Fn::If": ["IsStreaming", "response_stream", {"Ref": "AWS::NoValue"}]}


def test_api_gateway_may_invoke_each_function_only_from_the_streaming_api(transformed: dict[str, Any]) -> None:
    # Given the Lambda permissions of the REST API
    permissions = {
        logical_id: resource
        for logical_id, resource in _resources_of_type(transformed, "AWS::Lambda::Permission").items()
        if "StreamApi" in repr(resource["Properties"]["SourceArn"])
    }

    # Then each function the REST API invokes has one, conditional, scoped to that API
    invoked = {permission["Properties"]["FunctionName"]["Ref"] for permission in permissions.values()}
    assert invoked == set(EXPECTED_ROUTES)
    for permission in permissions.values():
        assert permission["Condition"] == "IsStreaming"
        assert permission["Properties"]["Action"] == "lambda:InvokeFunction"


def test_the_waf_is_optional_and_only_on_the_rest_api(template: dict[str, Any]) -> None:
    # Given the WAF resources
    resources = template["Resources"]

    # Then they exist only with a limit in streaming mode, with rate-based rules, attached to the REST API's stage
    assert resources["StreamApiWebAcl"]["Condition"] == "HasWaf"
    assert resources["StreamApiWebAclAssociation"]["Condition"] == "HasWaf"
    rules = resources["StreamApiWebAcl"]["Properties"]["Rules"]
    assert all("RateBasedStatement" in rule["Statement"] for rule in rules)
    assert "StreamApi" in repr(resources["StreamApiWebAclAssociation"]["Properties"]["ResourceArn"])
    for mode, limit, expected in (("buffered", "1000", False), ("streaming", "0", False), ("streaming", "1000", True)):
        parameters = parameter_values(template, {"ProxyResponseMode": mode, "WafRequestsPerFiveMinutes": limit})
        has_waf = resolve({"Fn::If": ["HasWaf", True, False]}, refs={}, parameters=parameters,
                          conditions=template["Conditions"])  # fmt: skip
        assert has_waf is expected


# --- functions -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function_id", "handler", "memory", "timeout"),
    [
        ("MetadataFunction", "metadata.app.handler", 256, 10),
        ("RegisterFunction", "register.app.handler", 512, 10),
        ("AuthorizeFunction", "authorize.app.handler", 512, 10),
        ("TokenFunction", "oauth_token.app.handler", 512, 10),
        ("AdminFunction", "admin_console.app.handler", 1024, 29),
        (
            "ProxyFunction",
            {"Fn::If": ["IsStreaming", "proxy/run.sh", "proxy.app.handler"]},
            1024,
            {"Fn::If": ["IsStreaming", 900, 29]},
        ),
    ],
)
def test_function_runtime_settings(
    transformed: dict[str, Any], function_id: str, handler: Any, memory: int, timeout: Any
) -> None:
    # Given a generated Lambda function
    props = transformed["Resources"][function_id]["Properties"]

    # Then it runs its entry point on python3.12/arm64 with its memory and timeout
    assert props["Handler"] == handler
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["MemorySize"] == memory
    assert props["Timeout"] == timeout


@pytest.mark.parametrize("function_id", sorted(EXPECTED_ROUTES))
def test_each_function_has_a_log_group_with_retention(transformed: dict[str, Any], function_id: str) -> None:
    # Given the function's log group
    log_group = transformed["Resources"][f"{function_id}LogGroup"]["Properties"]

    # Then it is the one Lambda writes to, with the configured retention
    assert log_group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function_id}}}"}
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_function_environment_names_every_setting_without_a_cycle(transformed: dict[str, Any]) -> None:
    # Given the proxy's environment (the same Globals for every function)
    variables = transformed["Resources"]["ProxyFunction"]["Properties"]["Environment"]["Variables"]

    # Then every setting is there, resources by Ref, and nothing refers to the HTTP API (a circular dependency)
    assert variables["GATEWAY_CONFIG"] == "/var/task/deploy_config/gateway.yaml"
    assert variables["GATEWAY_STAGE"] == {"Ref": "Stage"}
    for name, logical_id in {
        "GATEWAY_CLIENTS_TABLE": "ClientsTable",
        "GATEWAY_GRANTS_TABLE": "GrantsTable",
        "GATEWAY_UPSTREAM_TOKENS_TABLE": "UpstreamTokensTable",
        "GATEWAY_AUDIT_TABLE": "AuditTable",
        "GATEWAY_AUDIT_RETENTION_DAYS": "AuditRetentionDays",
        "GATEWAY_AUDIT_TOOL_CALLS": "AuditToolCalls",
        "GATEWAY_USAGE_ROLLUPS": "UsageRollups",
        "GATEWAY_SIGNING_KEY_ID": "SigningKey",
        "GATEWAY_UPSTREAM_TOKEN_KEY_ID": "UpstreamTokenKey",
        "GATEWAY_SHARED_SECRET_ID": "SharedSecret",
        "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "AccessTokenTtlSeconds",
        "GATEWAY_GRANT_STATUS_CACHE_SECONDS": "GrantStatusCacheSeconds",
        "GATEWAY_UPSTREAM_TOKEN_CACHE_SECONDS": "UpstreamTokenCacheSeconds",
        "GATEWAY_RATE_LIMITS_TABLE": "RateLimitsTable",
        "GATEWAY_API_KEY_HEADER": "ApiKeyHeader",
        "GATEWAY_RATE_LIMIT_REGISTER_PER_IP": "RateLimitRegisterPerIp",
        "GATEWAY_RATE_LIMIT_TOKEN_PER_IP": "RateLimitTokenPerIp",
        "GATEWAY_RATE_LIMIT_TOKEN_PER_CLIENT": "RateLimitTokenPerClient",
        "GATEWAY_RATE_LIMIT_AUTHORIZE_PER_IP": "RateLimitAuthorizePerIp",
        "GATEWAY_RATE_LIMIT_SIGN_IN_PER_IP": "RateLimitSignInPerIp",
        "GATEWAY_RATE_LIMIT_PROXY_PER_CALLER": "RateLimitProxyPerCaller",
    }.items():
        assert variables[name] == {"Ref": logical_id}
    assert "HttpApi" not in repr(variables)
    assert "StreamApi" not in repr(variables)  # the REST API's integrations refer to the functions
    assert variables["GATEWAY_RESPONSE_STREAMING"] == {"Fn::If": ["IsStreaming", "true", "false"]}


# --- IAM -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function_id", sorted(EXPECTED_PERMISSIONS))
def test_each_function_has_exactly_its_permissions(transformed: dict[str, Any], function_id: str) -> None:
    # Given the function role's policies
    permissions, managed = _permissions(transformed, function_id)

    # Then it may do exactly what the contract lists, on exactly those resources, plus writing its own logs
    assert permissions == EXPECTED_PERMISSIONS[function_id]
    # SAM attaches X-Ray's write-only policy whenever Tracing is configured (an opt-in parameter, off by default):
    # it allows writing trace segments and nothing else.
    assert managed == [BASIC_EXECUTION_ROLE, XRAY_WRITE_ONLY]


def test_no_inline_policy_uses_wildcard_actions_or_resources(transformed: dict[str, Any]) -> None:
    # Given every statement of every function role
    statements = [
        statement
        for role in _resources_of_type(transformed, "AWS::IAM::Role").values()
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]

    # Then none allows "*" (the prefix patterns end in * but are scoped ARNs, checked above)
    assert statements
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "*" not in resources, statement


def test_sensitive_permissions_are_where_they_belong(transformed: dict[str, Any]) -> None:
    # Given each function's permissions
    perms = {function_id: _permissions(transformed, function_id)[0] for function_id in EXPECTED_PERMISSIONS}

    # Then only the token function signs, the metadata function touches no table, and no function scans
    assert [fn for fn, actions in perms.items() if "kms:Sign" in actions] == ["TokenFunction"]
    assert not any(action.startswith("dynamodb:") for action in perms["MetadataFunction"])
    assert set(perms["MetadataFunction"]) == {"kms:GetPublicKey"}
    assert "kms:Sign" not in perms["ProxyFunction"]
    assert not any(action in {"dynamodb:Scan", "dynamodb:DeleteTable"} for p in perms.values() for action in p)


# --- state and keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table_id", ["ClientsTable", "GrantsTable", "UpstreamTokensTable"])
def test_tables_are_on_demand_with_ttl_pitr_protection_and_encryption(template: dict[str, Any], table_id: str) -> None:
    # Given a table's definition
    resource = template["Resources"][table_id]
    props = resource["Properties"]

    # Then it has the shared key schema, TTL on expires_at, PITR, deletion protection and SSE, and is retained
    assert resource["Type"] == "AWS::DynamoDB::Table"
    assert resource["DeletionPolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {"AttributeName": "pk", "AttributeType": "S"} in props["AttributeDefinitions"]
    assert {"AttributeName": "sk", "AttributeType": "S"} in props["AttributeDefinitions"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert "TableName" not in props  # CloudFormation names them, so two stacks can share an account


def test_rate_limits_table_is_on_demand_with_ttl_and_disposable(template: dict[str, Any]) -> None:
    # Given the rate limits' counters table
    resource = template["Resources"]["RateLimitsTable"]
    props = resource["Properties"]

    # Then it has the shared key schema, TTL on expires_at (counters outlive their minute by nothing), encryption,
    # and neither retention nor backups: its items are worth nothing after their window
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert "DeletionPolicy" not in resource and "PointInTimeRecoverySpecification" not in props
    assert "TableName" not in props


def _index(name: str, hash_key: str, range_key: str) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"}, {"AttributeName": range_key, "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }


@pytest.mark.parametrize(
    ("table_id", "indexes"),
    [
        ("GrantsTable", [_index("by_user", "gsi1pk", "gsi1sk"), _index("by_workspace", "gsi2pk", "gsi2sk")]),
        ("ClientsTable", [_index("by_workspace", "gsi1pk", "gsi1sk")]),
        (
            "AuditTable",
            [
                _index("by_user", "user_key", "sk"),
                _index("by_client", "client_key", "sk"),
                _index("by_kind", "kind_key", "sk"),
            ],
        ),
    ],
)
def test_tables_have_the_indexes_their_listings_query(
    template: dict[str, Any], table_id: str, indexes: list[dict[str, Any]]
) -> None:
    # Given a table the admin console lists (docs/storage.md), as a new stack gets it (the default parameters; the
    # audit table's upgrade steps are tests/unit/infra/test_template_upgrades.py's)
    props = resolve(
        template["Resources"][table_id]["Properties"],
        refs={},
        parameters=parameter_values(template),
        conditions=template.get("Conditions", {}),
    )

    # Then it has exactly these indexes, projecting everything, with their key attributes defined as strings
    assert props["GlobalSecondaryIndexes"] == indexes
    for index in indexes:
        for key in index["KeySchema"]:
            assert {"AttributeName": key["AttributeName"], "AttributeType": "S"} in props["AttributeDefinitions"]


def test_keys_and_secret(template: dict[str, Any]) -> None:
    # Given the KMS keys, their aliases and the shared secret
    resources = template["Resources"]
    signing = resources["SigningKey"]["Properties"]
    upstream = resources["UpstreamTokenKey"]["Properties"]
    secret = resources["SharedSecret"]["Properties"]

    # Then the signing key is RSA for signatures, the upstream key symmetric with rotation, both administered
    # through IAM by the account, and the secret is 64 generated characters without punctuation
    assert (signing["KeySpec"], signing["KeyUsage"]) == ("RSA_2048", "SIGN_VERIFY")
    assert (upstream["KeySpec"], upstream["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert upstream["EnableKeyRotation"] is True
    for key in (signing, upstream):
        (statement,) = key["KeyPolicy"]["Statement"]
        assert statement["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert resources["SigningKeyAlias"]["Properties"] == {
        "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-signing"},
        "TargetKeyId": {"Ref": "SigningKey"},
    }
    assert resources["UpstreamTokenKeyAlias"]["Properties"]["TargetKeyId"] == {"Ref": "UpstreamTokenKey"}
    assert secret["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}


# --- infra.template: environment resolution ------------------------------------------------------------------


def _proxy(template: dict[str, Any]) -> FunctionSpec:
    (spec,) = (spec for spec in functions(template) if spec.logical_id == "ProxyFunction")
    return spec


def test_public_base_url_follows_parameters(template: dict[str, Any]) -> None:
    # Given placeholder resource refs
    refs = {logical_id: f"{logical_id}-ref" for logical_id in template["Resources"]}

    # When the environment is resolved without, with a custom domain, and with an explicit base URL
    plain = resolve_environment(template, _proxy(template), refs=refs, parameters={})
    domain = {"DomainName": "gw.example.com", "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x"}
    custom = resolve_environment(template, _proxy(template), refs=refs, parameters=domain)
    explicit = resolve_environment(
        template, _proxy(template), refs=refs, parameters={**domain, "PublicBaseUrl": "https://mcp.example.org"}
    )

    # Then the base URL is empty (derived at run time), the domain, then the explicit one
    assert plain["GATEWAY_PUBLIC_BASE_URL"] == ""
    assert custom["GATEWAY_PUBLIC_BASE_URL"] == "https://gw.example.com"
    assert explicit["GATEWAY_PUBLIC_BASE_URL"] == "https://mcp.example.org"
    assert plain["GATEWAY_GRANTS_TABLE"] == "GrantsTable-ref"
    assert plain["GATEWAY_ACCESS_TOKEN_TTL_SECONDS"] == "3600"


def test_outputs_resolve_to_the_example_route_url(template: dict[str, Any]) -> None:
    # Given the HTTP API's id as Ref
    refs = {"HttpApi": "abc123"}

    # When the ExampleRouteUrl output is evaluated with the default parameters
    url = resolve(
        template["Outputs"]["ExampleRouteUrl"]["Value"],
        refs=refs,
        parameters=parameter_values(template),
        conditions=template["Conditions"],
    )

    # Then it is the execute-api route URL pattern
    assert url == "https://abc123.execute-api.us-east-1.amazonaws.com/{workspace}/{server}/mcp"


# --- lint gate -----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_cfn_lint_and_sam_validate_are_clean() -> None:
    # Given the lint script (it installs aws-sam-cli into .venv-sam on first use)
    # When it runs cfn-lint and `sam validate --lint`
    result = subprocess.run(
        ["bash", str(ROOT / "infra/scripts/lint-template.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )

    # Then both are clean
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout
