"""The gateway configuration file: workspaces, their identity provider, their routes (servers) and policies.

Loaded once per cold start from the YAML file named by ``GATEWAY_CONFIG`` and validated by these models. A bad file
fails with :class:`ConfigError`, whose message names each offending key (``workspaces.demo.servers.echo.upstream``)
and what to do about it (:mod:`gateway.config.messages`: the closest key to a typo, what a route lacks; a YAML syntax
error's line and column). ``python -m gateway.config schema`` prints the JSON Schema for editors.

Validating costs a cold start more than anything else it does (importing PyYAML and building the models'
validators), so ``make build`` validates the file once and ships the result beside it (``python -m gateway.config
compile FILE`` writes :func:`validated_path`; the local stack does the same): :func:`load_config` takes that
validated form when it was made from the same file by the same models, and rebuilds the models from it without
validating again; otherwise it validates the file itself.

Some settings exist for local development only (:func:`development_switches`; the table in docs/deploy.md lists
them all): outside the local stage a Runtime refuses to start with one that could open the gateway to its own network,
and warns about the others. ``python -m gateway.config check FILE --stage prod`` applies the same judgement before a
deployment (``make build`` runs it).

The package: :mod:`~gateway.config.fields` (the strict base model and field types), :mod:`~gateway.config.identity`
(identity providers), :mod:`~gateway.config.servers` (routes and their upstreams), :mod:`~gateway.config.workspaces`
(workspaces and the whole file's :class:`GatewayConfig`), :mod:`~gateway.config.loading` (reading, validating, the
validated form), :mod:`~gateway.config.stage_checks` (development switches, identity claims, timeouts),
:mod:`~gateway.config.messages` (errors that point at the fix) and :mod:`~gateway.config.commands` (the command line).
Everything public is importable from ``gateway.config`` itself.
"""

from __future__ import annotations

from gateway.config.commands import check_command, compile_command, json_schema
from gateway.config.fields import (
    DEV_SWITCH,
    SECRET_REF_PATTERN,
    SERVICE_IDENTITY,
    SLUG_PATTERN,
    ConfigModel,
    HttpUrl,
    SecretRef,
    Slug,
    http_url,
)
from gateway.config.identity import DevLoginProvider, DevUser, IdentityProvider, OidcProvider
from gateway.config.loading import (
    VALIDATED_SUFFIX,
    ConfigError,
    compile_config,
    load_config,
    parse_config,
    validated_path,
)
from gateway.config.servers import (
    PREFIX_PATTERN,
    TOOL_NAME_PATTERN,
    AccessPolicy,
    HeaderUpstreamAuth,
    NoUpstreamAuth,
    OAuthUpstreamAuth,
    Server,
    ToolFilter,
    ToolProjection,
    UpstreamAuth,
    VirtualUpstream,
)
from gateway.config.stage_checks import (
    BUFFERED_TIMEOUT_LIMIT_SECONDS,
    MUTABLE_CLAIMS,
    DevSwitch,
    DevSwitchRefused,
    TimeoutTooLong,
    check_stage,
    check_timeouts,
    development_switches,
    identity_warnings,
)
from gateway.config.workspaces import (
    RESERVED_SERVER_NAMES,
    DpopPolicy,
    EnterpriseAuthorization,
    GatewayConfig,
    OAuthPolicy,
    PreRegisteredClient,
    TrustedIssuer,
    Workspace,
)

__all__ = [
    "BUFFERED_TIMEOUT_LIMIT_SECONDS",
    "DEV_SWITCH",
    "MUTABLE_CLAIMS",
    "PREFIX_PATTERN",
    "RESERVED_SERVER_NAMES",
    "SECRET_REF_PATTERN",
    "SERVICE_IDENTITY",
    "SLUG_PATTERN",
    "TOOL_NAME_PATTERN",
    "VALIDATED_SUFFIX",
    "AccessPolicy",
    "ConfigError",
    "ConfigModel",
    "DevLoginProvider",
    "DevSwitch",
    "DevSwitchRefused",
    "DevUser",
    "DpopPolicy",
    "EnterpriseAuthorization",
    "GatewayConfig",
    "HeaderUpstreamAuth",
    "HttpUrl",
    "IdentityProvider",
    "NoUpstreamAuth",
    "OAuthPolicy",
    "OAuthUpstreamAuth",
    "OidcProvider",
    "PreRegisteredClient",
    "SecretRef",
    "Server",
    "Slug",
    "TimeoutTooLong",
    "ToolFilter",
    "ToolProjection",
    "TrustedIssuer",
    "UpstreamAuth",
    "VirtualUpstream",
    "Workspace",
    "check_command",
    "check_stage",
    "check_timeouts",
    "compile_command",
    "compile_config",
    "development_switches",
    "http_url",
    "identity_warnings",
    "json_schema",
    "load_config",
    "parse_config",
    "validated_path",
]
