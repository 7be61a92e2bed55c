"""Creating and revoking gateway API keys (the admin CLI and the "My connections" page call these).

A key belongs to one workspace and one owner, names the routes (servers of that workspace) it may call and,
optionally, the tools it may call there; it expires at a given time or lives until revoked. Its value is returned
once, to be shown to its creator, and never stored or logged.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.api_keys.key_format import new_key
from gateway.audit import AuditTrail
from gateway.config import GatewayConfig
from gateway.principals import SERVICE_PREFIX, is_service, person_id_problem
from gateway.storage.ports import AlreadyExists, ApiKeyStore
from gateway.storage.records import ApiKey

MAX_NAME_LENGTH = 100


class KeyRefused(ValueError):
    """The key cannot be created as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class KeyRequest:
    workspace: str
    user_id: str
    name: str
    servers: tuple[str, ...]
    tools: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    expires_at: int | None = None
    created_by: str | None = None


def _check(config: GatewayConfig, request: KeyRequest, now: int) -> None:
    workspace = config.workspaces.get(request.workspace)
    if workspace is None:
        raise KeyRefused(f"no workspace {request.workspace!r} in the configuration")
    if not is_service(request.user_id) and person_id_problem(request.user_id) is not None:
        raise KeyRefused(
            f"the owner must be a user id of the workspace's identity provider, or a service ({SERVICE_PREFIX}name); "
            f"{person_id_problem(request.user_id)}"
        )
    if not request.name or len(request.name) > MAX_NAME_LENGTH:
        raise KeyRefused(f"give the key a name of 1 to {MAX_NAME_LENGTH} characters")
    if not request.servers:
        raise KeyRefused("name at least one server (route) of the workspace the key may call")
    for server_name in request.servers:
        server = workspace.servers.get(server_name)
        if server is None:
            raise KeyRefused(f"no server {server_name!r} in workspace {request.workspace!r}")
        if not server.access.allows(request.user_id, request.user_groups):
            raise KeyRefused(f"{request.user_id!r} may not use {request.workspace}/{server_name} (its access policy)")
    if request.expires_at is not None and request.expires_at <= now:
        raise KeyRefused("the expiry must be in the future")


def create_key(
    store: ApiKeyStore, audit: AuditTrail, config: GatewayConfig, request: KeyRequest, now: int
) -> tuple[ApiKey, str]:
    """Store a new key; returns its record and its value (shown once). Raises :class:`KeyRefused`."""
    _check(config, request, now)
    for _attempt in range(3):
        drawn = new_key()
        key = ApiKey(
            key_id=drawn.key_id, workspace=request.workspace, user_id=request.user_id, name=request.name,
            secret_hash=drawn.secret_hash, servers=tuple(dict.fromkeys(request.servers)), created_at=now,
            expires_at=request.expires_at, user_groups=request.user_groups, tools=tuple(dict.fromkeys(request.tools)),
            created_by=request.created_by,
        )  # fmt: skip
        try:
            store.create_key(key)
        except AlreadyExists:
            continue  # a 95-bit id collided: practically never; draw again
        audit.record(
            "key.created", workspace=key.workspace, user_id=key.user_id, client_id=key.key_id,
            name=key.name[:200], servers=",".join(key.servers), tools=",".join(key.tools) or None,
            expires_at=key.expires_at, by=request.created_by,
        )  # fmt: skip
        return key, drawn.value
    raise KeyRefused("could not allocate a key id")


def revoke_key(store: ApiKeyStore, audit: AuditTrail, key: ApiKey, now: int, by: str) -> None:
    """Revoke ``key``: the proxy refuses it from its next call on."""
    store.revoke_key(key.key_id, now)
    audit.record("key.revoked", workspace=key.workspace, user_id=key.user_id, client_id=key.key_id, by=by)
