"""What the operator service returns: typed views of the stored records that cannot carry a secret (a view simply
has no field for a client's secret hash, a grant's refresh salt, a key's hash or an upstream token's ciphertext),
and the outcome of each action. The CLI prints them; a JSON API can serialize them as they are."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from gateway.storage.records import ApiKey, Grant, GrantOrigin, RegisteredClient, UpstreamToken

V = TypeVar("V")


def view_of(cls: type[V], record: Any, **extra: Any) -> V:
    """``record`` as the view ``cls``: the fields both have (the view's fields are a subset), plus ``extra``."""
    names = {item.name for item in dataclasses.fields(cls)} - set(extra)  # type: ignore[arg-type]
    return cls(**{name: getattr(record, name) for name in names}, **extra)


@dataclass(frozen=True, slots=True)
class GrantView:
    """A user's authorization of a client on a route (no refresh salt: the refresh tokens cannot be derived)."""

    grant_id: str
    workspace: str
    route_key: str
    user_id: str
    user_name: str | None
    user_groups: tuple[str, ...]
    client_id: str
    scopes: tuple[str, ...]
    status: str
    created_at: int
    rotated_at: int | None
    absolute_expires_at: int
    idle_expires_at: int
    refresh_generation: int
    revoked_at: int | None
    revoked_reason: str | None
    obtained_by: GrantOrigin
    """consent, client_credentials or id_jag (an enterprise identity provider's assertion, no consent page)."""

    @classmethod
    def of(cls, grant: Grant) -> GrantView:
        return view_of(cls, grant)


@dataclass(frozen=True, slots=True)
class ClientView:
    """A registered client (no secret hash; ``confidential`` says whether it authenticates: a secret or keys)."""

    client_id: str
    route_key: str
    client_name: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    confidential: bool
    grant_types: tuple[str, ...]
    scope: str | None
    application_type: str
    client_uri: str | None
    logo_uri: str | None
    software_id: str | None
    software_version: str | None
    created_at: int
    last_used_at: int
    expires_at: int | None

    @classmethod
    def of(cls, client: RegisteredClient) -> ClientView:
        confidential = client.client_secret_hash is not None or client.token_endpoint_auth_method == "private_key_jwt"
        return view_of(cls, client, confidential=confidential)


@dataclass(frozen=True, slots=True)
class KeyView:
    """A gateway API key (never its value or hash)."""

    key_id: str
    workspace: str
    user_id: str
    name: str
    servers: tuple[str, ...]
    tools: tuple[str, ...]
    user_groups: tuple[str, ...]
    status: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    created_by: str | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyView:
        return view_of(cls, key)


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """An upstream account connected for a user, or a route's shared one (never the token)."""

    route_key: str
    subject: str
    version: int
    access_expires_at: int | None
    updated_at: int
    metadata: dict[str, str]

    @classmethod
    def of(cls, token: UpstreamToken) -> ConnectionView:
        return view_of(cls, token)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new API key: its record, and its value, shown this once (only its hash is stored)."""

    key: KeyView
    value: str
    warnings: tuple[str, ...] = ()
    """Things the operator should know (e.g. the owner is no user the workspace's sign-in knows)."""


EndedKind = Literal["grant", "api_key", "connection", "client"]


@dataclass(frozen=True, slots=True)
class Ended:
    """One piece of access an action ended: a grant revoked, a key revoked, an upstream account disconnected, a
    client's registration ended."""

    kind: EndedKind
    id: str
    """The grant id, key id, client id, or the route key of a connection."""
    workspace: str
    route_key: str | None = None
    user_id: str | None = None
    client_id: str | None = None
    name: str | None = None
    """What an operator recognises it by: a key's name, a client's name."""


@dataclass(frozen=True, slots=True)
class Offboarding:
    """Everything of one user's access that an offboarding ended, and what it deliberately left."""

    workspace: str
    user_id: str
    ended: tuple[Ended, ...]
    kept_connections: tuple[str, ...] = field(default=())
    """Route keys of upstream accounts left connected (asked to keep them, or the route's shared account)."""

    def count(self, kind: EndedKind) -> int:
        return sum(1 for item in self.ended if item.kind == kind)
