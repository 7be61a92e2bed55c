"""The records the gateway stores. Secrets are never stored in clear: codes, client secrets and refresh tokens are
kept as SHA-256 hashes (or, for refresh tokens, derived from a per-grant salt and the shared secret)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ClientSource = Literal["dcr", "cimd", "preregistered"]
AuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
GrantOrigin = Literal["consent", "client_credentials", "id_jag"]
"""How a grant came to be: a user's consent at /authorize, a service's client credentials, or an enterprise
identity provider's ID-JAG redeemed at /token (the admin views show it)."""


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A client registered at one route's authorization server (RFC 7591)."""

    client_id: str
    route_key: str
    client_name: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: AuthMethod
    client_secret_hash: str | None
    created_at: int
    last_used_at: int
    expires_at: int | None  # unused registrations expire (sliding on use); None never
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    response_types: tuple[str, ...] = ("code",)
    scope: str | None = None
    application_type: str = "native"
    client_uri: str | None = None
    logo_uri: str | None = None
    software_id: str | None = None
    software_version: str | None = None
    jwks_uri: str | None = None  # private_key_jwt (RFC 7523): where the client's public keys are published
    jwks: dict[str, object] | None = None  # ... or the keys themselves (RFC 7591 §2: one or the other)
    dpop_bound_access_tokens: bool = False  # RFC 9449 §5.2: every token request must carry a DPoP proof


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """An /authorize request in flight: survives the round trip through the identity provider and consent."""

    pending_id: str
    route_key: str
    client_id: str
    client_source: ClientSource
    redirect_uri: str
    state: str | None
    code_challenge: str
    scopes: tuple[str, ...]
    resource: str
    created_at: int
    expires_at: int
    csrf_token: str
    # Filled in by the identity-provider step:
    idp_state: str | None = None
    idp_nonce: str | None = None
    idp_code_verifier: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    user_groups: tuple[str, ...] = ()
    signed_in_at: int | None = None  # when the identity provider vouched for the user and their groups


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """A code issued by /authorize. Stored under the SHA-256 of the code; redeemed at most once."""

    code_hash: str
    grant_id: str
    route_key: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    scopes: tuple[str, ...]
    resource: str
    user_id: str
    user_name: str | None
    user_groups: tuple[str, ...]
    created_at: int
    expires_at: int
    redeemed_at: int | None = None
    signed_in_at: int | None = None  # the sign-in behind ``user_groups`` (None: codes issued before it was kept)


GrantStatus = Literal["active", "revoked"]


@dataclass(frozen=True, slots=True)
class Grant:
    """What a user allowed a client to do on a route; the family of its refresh tokens.

    Refresh token ``n`` of a grant is derived (HMAC of the shared secret over the grant's salt and ``n``), so the
    grant stores only the current generation: presenting ``n - 1`` within the grace period returns ``n`` again, and
    any older generation is reuse, which revokes the grant (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
    """

    grant_id: str
    route_key: str
    workspace: str
    user_id: str
    user_name: str | None
    user_groups: tuple[str, ...]
    client_id: str
    scopes: tuple[str, ...]
    created_at: int
    absolute_expires_at: int
    idle_expires_at: int
    refresh_salt: str
    refresh_generation: int = 0
    rotated_at: int | None = None
    status: GrantStatus = "active"
    revoked_at: int | None = None
    revoked_reason: str | None = None
    signed_in_at: int | None = None
    """When the identity provider last vouched for the user and ``user_groups`` (None: grants made before this was
    kept, whose ``created_at`` stands in)."""
    obtained_by: GrantOrigin = "consent"
    dpop_jkt: str | None = None
    """RFC 9449 §5: the thumbprint of the key a public client's refresh tokens are bound to (None: unbound)."""

    @property
    def groups_as_of(self) -> int:
        return self.signed_in_at if self.signed_in_at is not None else self.created_at

    def is_usable(self, now: int) -> bool:
        return self.status == "active" and now < self.absolute_expires_at and now < self.idle_expires_at


@dataclass(frozen=True, slots=True)
class Consent:
    """A remembered approval of (user, client, route): a returning client is not asked again while it stands."""

    route_key: str
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    grant_id: str
    created_at: int


@dataclass(frozen=True, slots=True)
class UpstreamToken:
    """An upstream credential kept for a user (or the route's shared account), encrypted at rest.

    ``ciphertext`` is the KMS-encrypted token set under an encryption context binding workspace, server and
    ``subject``; ``version`` increases on every write (optimistic concurrency); the refresh lease lets one
    container at a time refresh it.
    """

    route_key: str
    subject: str  # user id, or "shared" for the route's shared account
    ciphertext: bytes
    version: int
    access_expires_at: int | None
    updated_at: int
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)


KeyStatus = Literal["active", "revoked"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A gateway API key (docs/non-interactive.md): a non-interactive caller acting as its owner on some routes.

    Only the SHA-256 of the key's secret part is stored. ``user_id`` is the owner (a user of the workspace's
    identity provider, or a service identity), whose access policy, upstream credentials and audit trail the key
    shares; ``user_groups`` are the groups the administrator vouched for (the routes' access policies read them).
    ``tools`` empty means every tool of the allowed routes.
    """

    key_id: str
    workspace: str
    user_id: str
    name: str
    secret_hash: str
    servers: tuple[str, ...]
    created_at: int
    expires_at: int | None  # None: until revoked
    user_groups: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    status: KeyStatus = "active"
    revoked_at: int | None = None
    created_by: str | None = None

    def is_usable(self, now: int) -> bool:
        return self.status == "active" and (self.expires_at is None or now < self.expires_at)


AuditKind = Literal[
    "authorize.started",
    "client.registered",
    "client.revoked",
    "user.signed_in",
    "consent.granted",
    "consent.denied",
    "token.issued",
    "token.refreshed",
    "token.revoked",
    "grant.revoked",
    "refresh.reuse_detected",
    "upstream.connected",
    "upstream.refreshed",
    "upstream.failed",
    "upstream.disconnected",
    "tool.called",
    "key.created",
    "key.revoked",
    "user.offboarded",
]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit trail: who did what, with which client, on which route, when.

    ``detail`` holds the kind's own facts (a tool's name, an outcome, a duration); never a token, code, secret or
    cookie. ``expires_at`` is the retention (a TTL attribute: DynamoDB deletes the item some time after it).
    """

    event_id: str
    at: int
    kind: AuditKind
    workspace: str
    expires_at: int
    route_key: str | None = None
    user_id: str | None = None
    client_id: str | None = None
    grant_id: str | None = None
    detail: dict[str, str | int | bool] = field(default_factory=dict)

    @property
    def position(self) -> str:
        """Where the event sorts in the trail (its time, then its id): the cursor of the page after it."""
        return f"{self.at:012d}#{self.event_id}"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One proxied ``tools/call`` as the usage rollups count it (``docs/storage.md``, "Usage rollups"): who called
    which tool on which route, when, how it ended (:func:`gateway.usage.failure_origin` classifies ``outcome``) and
    how long the whole request and the upstream's part of it took."""

    workspace: str
    route_key: str
    tool: str
    client_id: str
    user_id: str
    at: int
    outcome: str
    total_ms: float
    upstream_ms: float


@dataclass(frozen=True, slots=True)
class ToolRollup:
    """The calls of one tool on one route in one hour (``hour`` = Unix seconds // 3600).

    ``errors`` counts failures by origin (``gateway``, ``upstream``, ``auth``); the histograms count calls per
    latency bucket (:mod:`gateway.usage`), the gateway's own share (the request less the upstream's part) and the
    upstream's apart.
    """

    workspace: str
    hour: int
    route_key: str
    tool: str
    calls: int
    errors: dict[str, int]
    gateway_histogram: dict[int, int]
    upstream_histogram: dict[int, int]
    gateway_ms: float = 0.0
    upstream_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class CallerRollup:
    """The calls of one (client, user) pair in one UTC day (``day`` = Unix seconds // 86400), per hour of the day."""

    workspace: str
    day: int
    client_id: str
    user_id: str
    calls: int
    errors: int
    hours: dict[int, int]
    last_at: int
    error_hours: dict[int, int] = field(default_factory=dict)
    """Failed calls per hour of the day."""
