"""Workspaces (their identity provider, routes, admins, pre-registered clients, trusted issuers, DPoP policy) and
the whole file's model, :class:`GatewayConfig`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from gateway.config.fields import DEV_SWITCH, SERVICE_IDENTITY, ConfigModel, HttpUrl, SecretRef, Slug
from gateway.config.identity import IdentityProvider
from gateway.config.servers import Server
from gateway.principals import SERVICE_PREFIX

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


class PreRegisteredClient(ConfigModel):
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
        if identity is not None and not SERVICE_IDENTITY.match(identity):
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


class TrustedIssuer(ConfigModel):
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


class EnterpriseAuthorization(ConfigModel):
    """Enterprise-managed authorization: the workspace's identity provider decides which clients reach which
    routes, by ID-JAG (docs/enterprise.md)."""

    issuers: list[TrustedIssuer] = Field(min_length=1)


class DpopPolicy(ConfigModel):
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


class Workspace(ConfigModel):
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


class OAuthPolicy(ConfigModel):
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


class GatewayConfig(ConfigModel):
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
