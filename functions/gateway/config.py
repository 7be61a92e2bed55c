"""The gateway configuration file: workspaces, their identity provider, their routes (servers) and policies.

Loaded once per cold start from the YAML file named by ``GATEWAY_CONFIG`` and validated by these models. A bad file
fails with :class:`ConfigError`, whose message names each offending key (``workspaces.demo.servers.echo.upstream``)
and what to do about it (:mod:`gateway.config_messages`: the closest key to a typo, what a route lacks; a YAML syntax
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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.principals import SERVICE_PREFIX, person_id_problem

logger = logging.getLogger("gateway.config")

# Marks a field that is a development switch (json_schema_extra): its value says where it is allowed. A test checks
# that docs/deploy.md lists every marked field.
DEV_SWITCH = "x-dev-switch"

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, description="Lower-case letters, digits and dashes.")]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    return value


# An http(s) URL kept exactly as written (pydantic's HttpUrl would add a trailing slash to a bare host, which breaks
# exact issuer comparison, and importing it costs every cold start an importlib.metadata scan).
HttpUrl = Annotated[str, AfterValidator(_http_url), Field(json_schema_extra={"format": "uri"})]

_SERVICE_IDENTITY = re.compile(rf"^{SERVICE_PREFIX}[A-Za-z0-9][A-Za-z0-9._@:-]{{0,127}}$")

SECRET_REF_PATTERN = r"^(env|ssm|secretsmanager|plain):.+$"
SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF_PATTERN,
        description=(
            "Where a secret value is read: 'secretsmanager:<name or ARN>', 'ssm:<parameter name>', "
            "'env:<VARIABLE>' (local use) or 'plain:<value>' (local use only)."
        ),
    ),
]


class _Model(BaseModel):
    # defer_build: the validators are built on the first validation (a build, the local stack, a test), not when a
    # cold start imports this module to read an already validated configuration.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --- identity providers -------------------------------------------------------------------------------------


class DevUser(_Model):
    id: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1)
    name: str | None = None
    email: str | None = None
    groups: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _a_person(cls, user_id: str) -> str:
        problem = person_id_problem(user_id)  # gateway.principals: no person may look like a service
        if problem is not None:
            raise ValueError(problem)
        return user_id


class DevLoginProvider(_Model):
    """Built-in username/password sign-in for local development. Refused in a deployed stage unless enabled."""

    type: Literal["dev"]
    users: list[DevUser] = Field(min_length=1)
    allow_in_deployed_stage: bool = Field(
        default=False,
        description="Let the dev login sign users in outside the local stage (a test deployment only).",
        json_schema_extra={DEV_SWITCH: "explicit opt-in outside the local stage"},
    )


class OidcProvider(_Model):
    """Any OpenID Connect provider (Cognito, Auth0, Okta, Entra ID, Google, Keycloak, ...)."""

    type: Literal["oidc"]
    issuer: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretRef | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    user_id_claim: str = "sub"
    name_claim: str = "name"
    groups_claim: str = "groups"
    extra_authorize_params: dict[str, str] = Field(default_factory=dict)

    @field_validator("scopes")
    @classmethod
    def _requires_openid(cls, scopes: list[str]) -> list[str]:
        if "openid" not in scopes:
            raise ValueError("must include 'openid'")
        return scopes


IdentityProvider = Annotated[DevLoginProvider | OidcProvider, Field(discriminator="type")]


# --- upstream authentication --------------------------------------------------------------------------------


class NoUpstreamAuth(_Model):
    type: Literal["none"] = "none"


class HeaderUpstreamAuth(_Model):
    """Static headers (API keys, bearer tokens) whose values come from a secret store."""

    type: Literal["headers"]
    headers: dict[str, SecretRef] = Field(min_length=1)


class OAuthUpstreamAuth(_Model):
    """The gateway is an OAuth client of the upstream's authorization server."""

    type: Literal["oauth"]
    mode: Literal["per_user", "shared"] = "per_user"
    registration: Literal["dcr", "cimd", "preregistered"] = "dcr"
    client_id: str | None = None
    client_secret: SecretRef | None = None
    scopes: list[str] = Field(default_factory=list)
    authorization_server: HttpUrl | None = Field(
        default=None, description="Override discovery from the upstream's protected resource metadata."
    )
    issuer: HttpUrl | None = Field(
        default=None,
        description=(
            "The issuer this upstream's authorization server names itself with, when it differs from the URL its "
            "metadata is found at (a known quirk of some providers). The metadata's 'issuer' (RFC 8414 §3.3) and the "
            "'iss' of every answer (RFC 9207) must then equal this value exactly: the checks stay on, against the "
            "issuer you vouch for."
        ),
    )

    @model_validator(mode="after")
    def _preregistered_needs_client_id(self) -> OAuthUpstreamAuth:
        if self.registration == "preregistered" and not self.client_id:
            raise ValueError("client_id is required when registration is 'preregistered'")
        return self


UpstreamAuth = Annotated[NoUpstreamAuth | HeaderUpstreamAuth | OAuthUpstreamAuth, Field(discriminator="type")]


# --- routes, clients, workspaces ----------------------------------------------------------------------------


class AccessPolicy(_Model):
    """Who may use a route. Both lists empty (the default) means every signed-in user of the workspace."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)

    def allows(self, user_id: str, groups: list[str] | tuple[str, ...]) -> bool:
        if not self.users and not self.groups:
            return True
        return user_id in self.users or any(group in self.groups for group in groups)


TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # what clients accept (MCP tool names; several clients cap at 64)
PREFIX_PATTERN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_-]{0,30}[A-Za-z0-9])?)?$"  # "" only for a route's only upstream


class ToolProjection(_Model):
    """How one upstream tool appears on a virtual route."""

    name: Annotated[str, Field(pattern=TOOL_NAME_PATTERN)] | None = Field(
        default=None, description="Expose the tool under this name (before the upstream's prefix)."
    )
    description: str | None = Field(default=None, description="Replace the tool's description.")
    annotations: dict[str, bool | str] = Field(
        default_factory=dict, description="Set or override annotations, e.g. readOnlyHint: true."
    )


class ToolFilter(_Model):
    """Which upstream tools a virtual route exposes, by name or glob pattern (``*``, ``?``, ``[...]``)."""

    allow: list[str] = Field(default_factory=list, description="Only these tools (empty: all).")
    deny: list[str] = Field(default_factory=list, description="Never these tools (applied after allow).")


class VirtualUpstream(_Model):
    """One upstream of a virtual route: its tools, prompts and resources are merged with the others'."""

    url: HttpUrl
    prefix: Annotated[str, Field(pattern=PREFIX_PATTERN)] | None = Field(
        default=None,
        description=(
            "Prepended with '_' to its tool and prompt names (default: the upstream's key); '' keeps the upstream's "
            "own names, for a virtual route with this one upstream."
        ),
    )
    auth: UpstreamAuth = Field(default_factory=NoUpstreamAuth)
    tools: ToolFilter = Field(default_factory=ToolFilter)
    projections: dict[str, ToolProjection] = Field(
        default_factory=dict, description="Keyed by the upstream's own tool name."
    )
    timeout_seconds: float | None = Field(default=None, gt=0, le=900, description="Default: the route's.")


class Server(_Model):
    """One route: ``/{workspace}/{server}/mcp`` in front of one upstream MCP server (``upstream``), or a virtual
    route combining several (``upstreams``)."""

    upstream: HttpUrl | None = None
    upstreams: dict[Slug, VirtualUpstream] | None = Field(
        default=None,
        description="A virtual route: several upstreams behind one URL, tools merged with prefixes.",
    )
    title: str | None = None
    description: str | None = None
    scopes: list[str] = Field(default_factory=lambda: ["mcp"], min_length=1)
    refresh_tokens: bool = True
    auth: UpstreamAuth = Field(default_factory=NoUpstreamAuth)
    access: AccessPolicy = Field(default_factory=AccessPolicy)
    timeout_seconds: float = Field(
        default=25.0,
        gt=0,
        le=900,
        description=(
            "How long a call may take. At most 29 in the buffered deployment (the HTTP API's 30 s limit); up to 900 "
            "(15 minutes) in the streaming deployment."
        ),
    )
    list_cache_seconds: float = Field(
        default=0,
        ge=0,
        le=300,
        description="Virtual routes: how long a warm container reuses a user's merged tools/list (0: never).",
    )

    @staticmethod
    def missing_keys(data: Mapping[str, object]) -> str | None:
        """What a route written as ``data`` lacks, said even when an unknown key (a typo of one of these) kept the
        model's own check from running (gateway.config_messages)."""
        if "upstream" not in data and "upstreams" not in data:
            return (
                "a route needs 'upstream' (the URL of one MCP server) or 'upstreams' (several, for a virtual route); "
                "it has neither"
            )
        return None

    @model_validator(mode="after")
    def _one_kind_of_route(self) -> Server:
        if self.upstream is None and self.upstreams is None:
            raise ValueError(self.missing_keys({}) or "")
        if self.upstream is not None and self.upstreams is not None:
            raise ValueError("set either 'upstream' (one MCP server) or 'upstreams' (a virtual route), not both")
        if self.upstreams is not None:
            if not self.upstreams:
                raise ValueError("upstreams: a virtual route needs at least one upstream")
            if not isinstance(self.auth, NoUpstreamAuth):
                raise ValueError("auth: a virtual route sets 'auth' on each of its upstreams, not on the route")
            prefixes: dict[str, str] = {}
            for name, upstream in self.upstreams.items():
                prefix = name if upstream.prefix is None else upstream.prefix
                if not prefix and len(self.upstreams) > 1:
                    raise ValueError(f"upstreams.{name}.prefix: only a virtual route's one upstream may have none")
                for other, other_name in prefixes.items():
                    # "gh" and "gh_x" would make gh_x_tool ambiguous: a name's prefix must be unambiguous.
                    if prefix == other or f"{prefix}_".startswith(f"{other}_") or f"{other}_".startswith(f"{prefix}_"):
                        raise ValueError(
                            f"upstreams: the prefixes of {other_name!r} ({other!r}) and {name!r} ({prefix!r}) "
                            "would make tool names ambiguous"
                        )
                prefixes[prefix] = name
                exposed: dict[str, str] = {}
                for tool, projection in upstream.projections.items():
                    if projection.name is None:
                        continue
                    full = f"{prefix}_{projection.name}" if prefix else projection.name
                    if len(full) > 64:
                        raise ValueError(
                            f"upstreams.{name}.projections.{tool}.name: {full!r} is longer than the 64 characters "
                            "clients accept; choose a shorter name or prefix"
                        )
                    if projection.name in exposed:
                        raise ValueError(
                            f"upstreams.{name}.projections: {exposed[projection.name]!r} and {tool!r} are both "
                            f"renamed {projection.name!r}"
                        )
                    exposed[projection.name] = tool
        return self

    @property
    def is_virtual(self) -> bool:
        return self.upstreams is not None


_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _key_set(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A JWK Set given inline (RFC 7517 §5) must hold public keys of an asymmetric type: a private or symmetric key
    here would be a secret in the configuration. (The keys themselves are parsed where they are used:
    gateway.tokens.foreign_jwts, a layer above this one.)"""
    if value is None:
        return value
    keys = value.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(key, dict) for key in keys):
        raise ValueError("must be a JWK Set: an object whose 'keys' is a non-empty list of keys")
    for index, key in enumerate(keys):
        if key.get("kty") not in ("RSA", "EC", "OKP"):
            raise ValueError(f"keys.{index}: kty must be RSA, EC or OKP (an asymmetric signing key)")
        if _PRIVATE_JWK_MEMBERS & set(key):
            raise ValueError(f"keys.{index}: a private key; publish only the public key here")
    return value


class PreRegisteredClient(_Model):
    """A client registered by an administrator (for organisations that forbid dynamic registration)."""

    client_id: str = Field(min_length=1, max_length=255)
    client_secret: SecretRef | None = Field(default=None, description="None for a public client.")
    jwks_uri: HttpUrl | None = Field(
        default=None,
        description=(
            "private_key_jwt (RFC 7523): where the client publishes its public keys; it authenticates at /token "
            "and /revoke with a JWT signed by one of them (fetched through the SSRF guard: https, public address)."
        ),
    )
    jwks: Annotated[dict[str, Any] | None, AfterValidator(_key_set)] = Field(
        default=None, description="private_key_jwt with the client's public keys given here (a JWK Set)."
    )
    dpop_bound_access_tokens: bool = Field(
        default=False, description="RFC 9449 §5.2: every token request of this client must carry a DPoP proof."
    )
    client_name: str = Field(min_length=1)
    redirect_uris: list[str] = Field(
        default_factory=list, description="Required, unless the client only uses client_credentials."
    )
    servers: list[Slug] = Field(default_factory=list, description="Routes it may use; empty means all.")
    service_identity: str | None = Field(
        default=None,
        description=(
            "Lets this confidential client use grant_type=client_credentials (docs/non-interactive.md): its tokens "
            "act as this identity (the user id the routes' access policies, upstream credentials and audit see). "
            f"Starts with {SERVICE_PREFIX!r}, the prefix reserved for non-human principals: 'service:nightly-ci'."
        ),
    )

    @field_validator("service_identity")
    @classmethod
    def _a_service(cls, identity: str | None) -> str | None:
        if identity is not None and not _SERVICE_IDENTITY.match(identity):
            raise ValueError(
                f"must be {SERVICE_PREFIX!r} followed by 1 to 128 letters, digits or ._@:- (e.g. "
                f"'{SERVICE_PREFIX}nightly-ci'): the prefix keeps services apart from the identity provider's users"
            )
        return identity

    @model_validator(mode="after")
    def _service_identity_needs_a_secret(self) -> PreRegisteredClient:
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError(f"client {self.client_id!r}: give jwks_uri or jwks, not both (RFC 7591 §2)")
        keys = self.jwks is not None or self.jwks_uri is not None
        if self.service_identity is not None and self.client_secret is None and not keys:
            raise ValueError(
                f"client {self.client_id!r}: a service_identity needs a client_secret or keys (jwks_uri, jwks): "
                "only a confidential client may use client_credentials"
            )
        if self.service_identity is None and not self.redirect_uris:
            raise ValueError(f"client {self.client_id!r}: redirect_uris needs at least one URI")
        return self


class TrustedIssuer(_Model):
    """An enterprise identity provider whose Identity Assertion JWT Authorization Grants (ID-JAGs) the workspace
    redeems at /token (MCP extension io.modelcontextprotocol/enterprise-managed-authorization)."""

    issuer: HttpUrl = Field(description="The IdP's issuer identifier, compared exactly with the ID-JAG's 'iss'.")
    jwks_uri: HttpUrl = Field(description="Where the IdP publishes the keys that sign its ID-JAGs.")
    clients: list[str] = Field(
        min_length=1,
        description=(
            "The client_ids that may redeem this IdP's ID-JAGs (pre-registered clients or metadata-document URLs; "
            "the IdP names the client in each assertion)."
        ),
    )
    servers: list[Slug] = Field(default_factory=list, description="Routes it grants access to; empty means all.")
    user_id_claim: str = Field(default="sub", description="The claim that is the user id (as at sign-in).")
    name_claim: str = "name"
    groups_claim: str = Field(default="groups", description="The claim with the user's groups (access policies).")
    max_lifetime_seconds: int = Field(
        default=600, ge=60, le=3600, description="How far ahead an ID-JAG's 'exp' may be (they are short-lived)."
    )


class EnterpriseAuthorization(_Model):
    """Enterprise-managed authorization: the workspace's identity provider decides which clients reach which
    routes, by ID-JAG (docs/enterprise.md)."""

    issuers: list[TrustedIssuer] = Field(min_length=1)


class DpopPolicy(_Model):
    """Sender-constrained tokens (RFC 9449, docs/clients.md "DPoP")."""

    required: bool = Field(
        default=False,
        description="Every token request of every client must carry a DPoP proof (Bearer tokens are not issued).",
    )
    nonce: bool = Field(
        default=False,
        description="The token endpoint requires a server-provided nonce in each proof (RFC 9449 §8).",
    )


RESERVED_SERVER_NAMES = frozenset({"admin"})


class Workspace(_Model):
    title: str | None = None
    identity_provider: IdentityProvider
    servers: dict[Slug, Server] = Field(min_length=1)
    allowed_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the MCP routes (exact match)."
    )
    admins: list[str] = Field(default_factory=list, description="User ids who may connect shared accounts.")
    clients: list[PreRegisteredClient] = Field(default_factory=list)
    access_token_ttl_seconds: int | None = Field(
        default=None,
        ge=60,
        le=86400,
        description=(
            "Lifetime of the access tokens of this workspace's routes (default: the deployment's "
            "GATEWAY_ACCESS_TOKEN_TTL_SECONDS, one hour); longer suits clients that never refresh after a 401."
        ),
    )
    dpop: DpopPolicy = Field(default_factory=DpopPolicy)
    enterprise_authorization: EnterpriseAuthorization | None = Field(
        default=None, description="Redeem ID-JAGs of these enterprise identity providers at /token."
    )

    @field_validator("servers")
    @classmethod
    def _no_reserved_names(cls, servers: dict[str, Server]) -> dict[str, Server]:
        # /{workspace}/admin/... is the admin console's (docs/operations.md): a route there would be unreachable.
        if RESERVED_SERVER_NAMES & set(servers):
            names = ", ".join(sorted(RESERVED_SERVER_NAMES & set(servers)))
            raise ValueError(f"the server name {names} is reserved for the admin console (/<workspace>/admin)")
        return servers

    @model_validator(mode="after")
    def _client_servers_exist(self) -> Workspace:
        for client in self.clients:
            unknown = [name for name in client.servers if name not in self.servers]
            if unknown:
                raise ValueError(f"client {client.client_id!r} names unknown servers: {', '.join(unknown)}")
        for index, issuer in enumerate(self.enterprise_authorization.issuers if self.enterprise_authorization else []):
            unknown = [name for name in issuer.servers if name not in self.servers]
            if unknown:
                raise ValueError(
                    f"enterprise_authorization.issuers.{index} names unknown servers: {', '.join(unknown)}"
                )
        return self


class OAuthPolicy(_Model):
    """Lifetimes of the authorization server's artefacts."""

    authorization_code_ttl_seconds: int = Field(default=300, ge=30, le=600)
    pending_authorization_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_token_idle_ttl_seconds: int = Field(default=30 * 86400, ge=300)
    refresh_token_absolute_ttl_seconds: int = Field(default=90 * 86400, ge=300)
    refresh_token_reuse_grace_seconds: int = Field(default=30, ge=0, le=300)
    unused_client_ttl_seconds: int = Field(default=30 * 86400, ge=3600)
    group_membership_max_age_seconds: int = Field(
        default=12 * 3600,
        ge=300,
        le=90 * 86400,
        description=(
            "On routes whose access policy lets a user in by group: how old the groups a refresh relies on may be "
            "(from the sign-in that reported them). Past it the refresh answers invalid_grant and the client signs "
            "the user in again, so a user removed from a group loses access within this time."
        ),
    )
    cimd_allow_private_addresses: bool = Field(
        default=False,
        description=(
            "Local stage only (a deployed stage refuses to start with it): let the gateway fetch client metadata "
            "documents, clients' and enterprise identity providers' key sets (jwks_uri), and upstream OAuth metadata "
            "and tokens from loopback and private addresses (127.0.0.1, [::1], localhost, 10.0.0.0/8, ...), and "
            "key sets and upstream OAuth over plain http."
        ),
        json_schema_extra={DEV_SWITCH: "local stage only"},
    )


class GatewayConfig(_Model):
    workspaces: dict[Slug, Workspace] = Field(min_length=1)
    default_route: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+/[a-z0-9-]+$",
        description="'workspace/server' answered at the root well-known URLs; none means they answer 404.",
    )
    oauth: OAuthPolicy = Field(default_factory=OAuthPolicy)

    @model_validator(mode="after")
    def _default_route_exists(self) -> GatewayConfig:
        if self.default_route is not None:
            workspace, server = self.default_route.split("/")
            if workspace not in self.workspaces or server not in self.workspaces[workspace].servers:
                raise ValueError(f"default_route {self.default_route!r} names no configured server")
        return self


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message says where and why."""


def parse_config(data: object, source: str = "<config>") -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as error:
        from gateway.config_messages import describe  # only a bad file pays for it

        lines = "\n".join(describe(error, GatewayConfig, data))
        raise ConfigError(f"invalid gateway configuration {source}:\n{lines}") from None


def load_config(path: str | Path) -> GatewayConfig:
    """The configuration in the YAML file at ``path``: from its validated form (:func:`validated_path`) when that
    was made from this very file by these models, else validated here."""
    path = Path(path)
    text = _read(path)
    return _validated_form(path, _fingerprint(text)) or _validate_yaml(text, path)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read gateway configuration {path}: {error.strerror}") from None


def _validate_yaml(text: str, path: Path) -> GatewayConfig:
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise ConfigError(f"gateway configuration {path} is not valid YAML: {_yaml_problem(error)}") from None
    return parse_config(data, str(path))


def _yaml_problem(error: Exception) -> str:
    """The YAML error with the line and column of the file (PyYAML names a string it parsed "<unicode string>")."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return problem
    context = getattr(error, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    snippet = mark.get_snippet() if hasattr(mark, "get_snippet") else None
    text = f"{where}: {problem}" + (f" ({context})" if context else "")
    return f"{text}\n{snippet}" if snippet else text


# --- the validated form shipped beside the file -------------------------------------------------------------

VALIDATED_SUFFIX = ".validated.json"


def validated_path(path: str | Path) -> Path:
    """Where the validated form of the configuration file ``path`` is kept: ``gateway.yaml.validated.json``."""
    path = Path(path)
    return path.with_name(path.name + VALIDATED_SUFFIX)


def _fingerprint(text: str) -> str | None:
    """What a validated form must have been made from: this text and this module's source (the models). None when
    the source cannot be read (then nothing validated earlier is trusted)."""
    try:
        models = Path(__file__).read_bytes()
    except OSError:
        return None
    return hashlib.sha256(models + b"\0" + text.encode()).hexdigest()


def compile_config(path: str | Path) -> Path:
    """Validate the file at ``path`` and write its validated form beside it (:func:`validated_path`, replaced
    atomically); returns where. Raises :class:`ConfigError` for a bad file."""
    path = Path(path)
    text = _read(path)
    config = _validate_yaml(text, path)
    document = {"fingerprint": _fingerprint(text), "config": config.model_dump(mode="json", exclude_unset=True)}
    target = validated_path(path)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    temporary.replace(target)
    return target


def _validated_form(path: Path, fingerprint: str | None) -> GatewayConfig | None:
    if fingerprint is None:
        return None
    try:
        document = json.loads(validated_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("fingerprint") != fingerprint:
        return None
    config: GatewayConfig = _rebuild(GatewayConfig, document["config"])
    return config


def _rebuild(annotation: Any, value: Any) -> Any:
    """``value`` (a part of ``model_dump(mode="json", exclude_unset=True)`` of a valid configuration) as the
    ``annotation`` it was dumped from: the same models with the same fields set, built without validating."""
    if not isinstance(value, (dict, list)) or annotation is Any:
        return value  # a scalar, or free-form JSON (an inline JWK Set) kept as it was dumped
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _rebuild(arguments[0], value)
    if origin is Union or origin is types.UnionType:
        return _rebuild(_member_for(arguments, value), value)
    if origin is list and isinstance(value, list):
        return [_rebuild(arguments[0], item) for item in value]
    if origin is dict and isinstance(value, dict):
        return {key: _rebuild(arguments[1], item) for key, item in value.items()}
    if isinstance(annotation, type) and issubclass(annotation, _Model) and isinstance(value, dict):
        fields = annotation.model_fields
        values = {name: _rebuild(fields[name].annotation, item) for name, item in value.items()}
        for name, field in fields.items():
            factory = field.default_factory
            if name not in values and isinstance(factory, type) and issubclass(factory, _Model):
                values[name] = _rebuild(factory, {})  # calling the factory would validate (and build a validator)
        return annotation.model_construct(set(value), **values)
    raise TypeError(f"cannot rebuild {annotation!r} from {type(value).__name__}")


def _member_for(members: tuple[Any, ...], value: dict[str, Any] | list[Any]) -> Any:
    """The member of a union that ``value`` was dumped from: the one that is not None, or among models the one
    whose ``type`` (the discriminator of every union of models here) is ``value``'s."""
    options = [member for member in members if member is not type(None)]
    if len(options) == 1:
        return options[0]
    for option in options:
        if isinstance(value, dict) and value.get("type") in get_args(option.model_fields["type"].annotation):
            return option
    raise TypeError(f"no member of {members!r} fits the value")


# --- development switches -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DevSwitch:
    """A development setting a configuration uses, judged for a stage other than local."""

    key: str
    """Where it is, e.g. ``oauth.cimd_allow_private_addresses`` or ``workspaces.demo.identity_provider``."""
    message: str
    refused: bool
    """True: the gateway does not start with it in this stage; False: it runs, with a warning."""

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class DevSwitchRefused(ConfigError):
    """The configuration turns on a development switch that the stage refuses; the message names each one."""


def _upstreams_of(server: Server, key: str) -> list[tuple[str, str, UpstreamAuth]]:
    """(key, URL, auth) of each upstream a route calls: its one upstream, or each of a virtual route's."""
    if server.upstreams is None:
        return [(key, str(server.upstream), server.auth)]
    return [(f"{key}.upstreams.{name}", upstream.url, upstream.auth) for name, upstream in server.upstreams.items()]


def _secret_refs(config: GatewayConfig) -> list[tuple[str, str]]:
    """Every secret reference of the configuration with its key."""
    refs: list[tuple[str, str]] = []
    for name, workspace in config.workspaces.items():
        provider = workspace.identity_provider
        if isinstance(provider, OidcProvider) and provider.client_secret:
            refs.append((f"workspaces.{name}.identity_provider.client_secret", provider.client_secret))
        for server_name, server in workspace.servers.items():
            for key_prefix, _, auth in _upstreams_of(server, f"workspaces.{name}.servers.{server_name}"):
                key = f"{key_prefix}.auth"
                if isinstance(auth, HeaderUpstreamAuth):
                    refs += [(f"{key}.headers.{header}", ref) for header, ref in auth.headers.items()]
                elif isinstance(auth, OAuthUpstreamAuth) and auth.client_secret:
                    refs.append((f"{key}.client_secret", auth.client_secret))
        for index, client in enumerate(workspace.clients):
            if client.client_secret:
                refs.append((f"workspaces.{name}.clients.{index}.client_secret", client.client_secret))
    return refs


def development_switches(config: GatewayConfig, stage: str) -> list[DevSwitch]:
    """The development settings ``config`` uses that matter in ``stage`` (none in the local stage), refused ones
    first. docs/deploy.md ("Development switches") lists them all."""
    if stage == "local":
        return []
    where = f"the {stage!r} stage"
    found: list[DevSwitch] = []
    if config.oauth.cimd_allow_private_addresses:
        found.append(
            DevSwitch(
                "oauth.cimd_allow_private_addresses",
                f"a development switch, refused in {where} (it is allowed only when GATEWAY_STAGE is 'local'): it "
                "would let a client's metadata document URL or an upstream's OAuth metadata make the gateway call "
                "loopback and private addresses (the instance metadata service, internal services). Remove it.",
                refused=True,
            )
        )
    for name, workspace in config.workspaces.items():
        provider = workspace.identity_provider
        if isinstance(provider, DevLoginProvider):
            if provider.allow_in_deployed_stage:
                message = (
                    f"the built-in development login (users and passwords in the configuration file) is enabled "
                    f"in {where} by allow_in_deployed_stage: true; for a test deployment only"
                )
            else:
                message = (
                    f"the built-in development login is disabled in {where}: sign-in to this workspace is refused; "
                    "configure an OpenID Connect identity provider (or set allow_in_deployed_stage: true, for a "
                    "test deployment only)"
                )
            found.append(DevSwitch(f"workspaces.{name}.identity_provider", message, refused=False))
        elif provider.issuer.startswith("http:"):
            found.append(
                DevSwitch(
                    f"workspaces.{name}.identity_provider.issuer",
                    f"a plain http identity provider in {where}: sign-in codes and tokens travel unencrypted",
                    refused=False,
                )
            )
        for server_name, server in workspace.servers.items():
            for key_prefix, url, _ in _upstreams_of(server, f"workspaces.{name}.servers.{server_name}"):
                if url.startswith("http:"):
                    found.append(
                        DevSwitch(
                            key_prefix if server.upstreams else f"{key_prefix}.upstream",
                            f"a plain http upstream in {where}: its requests and any upstream credential travel "
                            "unencrypted (and upstream OAuth over http is refused outside the local stage)",
                            refused=False,
                        )
                    )
    for key, ref in _secret_refs(config):
        kind = ref.partition(":")[0]
        if kind == "plain":
            message = (
                f"a 'plain:' secret in {where}: the value ships inside the function package; "
                "use secretsmanager: or ssm:"
            )
        elif kind == "env":
            message = (
                f"an 'env:' secret in {where}: read from the function's environment, which the template does not "
                "set; use secretsmanager: or ssm:"
            )
        else:
            continue
        found.append(DevSwitch(key, message, refused=False))
    return sorted(found, key=lambda switch: not switch.refused)


def check_stage(config: GatewayConfig, stage: str) -> list[DevSwitch]:
    """What a Runtime checks at cold start: raises :class:`DevSwitchRefused` naming every switch ``stage``
    refuses, else logs and returns the ones it allows with a warning."""
    found = development_switches(config, stage)
    refused = [switch for switch in found if switch.refused]
    if refused:
        lines = "\n".join(f"  {switch}" for switch in refused)
        raise DevSwitchRefused(f"gateway configuration refused in the {stage!r} stage:\n{lines}")
    for switch in found:
        logger.warning("development setting in the %r stage: %s", stage, switch)
    return found


# Claims a user or an administrator can change at common providers (Entra ID's preferred_username and upn, Okta's
# login, Keycloak's username, anyone's email and name): a changed value signs in as a new user, and a value given to
# someone else later signs them in as the old one, grants and upstream accounts included.
MUTABLE_CLAIMS = frozenset(
    {"preferred_username", "email", "upn", "unique_name", "nickname", "name", "username", "login", "given_name"}
)


def identity_warnings(config: GatewayConfig) -> list[str]:
    """Identity-provider settings that work but deserve a second look (``config check`` prints each)."""
    warnings = []
    for name, workspace in config.workspaces.items():
        provider = workspace.identity_provider
        if isinstance(provider, OidcProvider) and provider.user_id_claim in MUTABLE_CLAIMS:
            message = (
                f"workspaces.{name}.identity_provider.user_id_claim: {provider.user_id_claim!r} can change (users "
                "or administrators edit it, and a freed value can be given to someone else), so a user can lose "
                "their grants or take over another's; prefer an immutable claim such as 'sub' (or Entra ID's 'oid')"
            )
            if provider.user_id_claim == "email":
                message += "; sign-in is refused unless the provider sends email_verified: true"
            warnings.append(message)
    return warnings


BUFFERED_TIMEOUT_LIMIT_SECONDS = 29.0  # the HTTP API's integration timeout is 30 s


class TimeoutTooLong(ConfigError):
    """A route's timeout exceeds what the deployment's front door allows."""


def check_timeouts(config: GatewayConfig, *, streaming: bool) -> None:
    """What a Runtime checks at cold start: in the buffered deployment no route or upstream may take longer than
    the HTTP API waits (its 504 would reach the client instead of the gateway's own error). Raises
    :class:`TimeoutTooLong` naming each one."""
    if streaming:
        return
    limit = BUFFERED_TIMEOUT_LIMIT_SECONDS
    too_long = []
    for workspace_name, workspace in config.workspaces.items():
        for server_name, server in workspace.servers.items():
            key = f"{workspace_name}/{server_name}"
            if server.timeout_seconds > limit:
                too_long.append(f"{key}: timeout_seconds {server.timeout_seconds:g}")
            for upstream_name, upstream in (server.upstreams or {}).items():
                if upstream.timeout_seconds is not None and upstream.timeout_seconds > limit:
                    too_long.append(f"{key} upstream {upstream_name}: timeout_seconds {upstream.timeout_seconds:g}")
    if too_long:
        lines = "\n".join(f"  {line}" for line in too_long)
        raise TimeoutTooLong(
            f"timeouts above {limit:g} s need the streaming deployment (template parameter "
            f"ProxyResponseMode=streaming); the buffered HTTP API stops waiting at 30 s:\n{lines}"
        )


def json_schema() -> dict[str, object]:
    schema = GatewayConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "MCP gateway configuration"
    return schema


def check_command(arguments: list[str]) -> int:
    """``check FILE [--stage STAGE]``: validate the file and, given a stage, judge its development switches as a
    Runtime of that stage would (refused: exit 1; allowed ones: a warning each). Returns the exit status."""
    stage = None
    if len(arguments) == 3 and arguments[1] == "--stage":
        stage = arguments[2]
    elif len(arguments) != 1:
        print("usage: python -m gateway.config check FILE [--stage local|dev|staging|prod]", file=sys.stderr)
        return 2
    from gateway.settings import STAGES

    if stage is not None and stage not in STAGES:
        print(f"--stage must be one of {', '.join(STAGES)}, not {stage!r}", file=sys.stderr)
        return 2
    path = arguments[0]
    try:
        config = load_config(path)
        found = [] if stage is None else development_switches(config, stage)
    except ConfigError as problem:
        print(problem, file=sys.stderr)
        return 1
    for switch in found:
        print(f"{path}: {'error' if switch.refused else 'warning'}: {switch}", file=sys.stderr)
    for warning in identity_warnings(config):
        print(f"{path}: warning: {warning}", file=sys.stderr)
    if any(switch.refused for switch in found):
        return 1
    print(f"{path}: ok" + ("" if stage is None else f" for the {stage!r} stage"))
    return 0


def compile_command(arguments: list[str]) -> int:
    """``compile FILE``: validate the file and write its validated form beside it. Returns the exit status."""
    if len(arguments) != 1:
        print("usage: python -m gateway.config compile FILE", file=sys.stderr)
        return 2
    try:
        target = compile_config(arguments[0])
    except ConfigError as problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"{arguments[0]}: ok, validated form in {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover - command-line helper
    if sys.argv[1:] == ["schema"]:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
    elif sys.argv[1:2] == ["check"]:
        sys.exit(check_command(sys.argv[2:]))
    elif sys.argv[1:2] == ["compile"]:
        sys.exit(compile_command(sys.argv[2:]))
    else:
        print("usage: python -m gateway.config schema | check FILE [--stage STAGE] | compile FILE", file=sys.stderr)
        sys.exit(2)
