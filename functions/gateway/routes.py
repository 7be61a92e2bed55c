"""Routes and their URLs. One issuer per route: ``{base}/{workspace}/{server}`` (see docs/architecture.md).

Every URL the gateway publishes is built here from the configured public base URL, never from a request's
``Host`` header, so tokens' audiences, issuers and metadata cannot be steered by a spoofed header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from gateway.config import AccessPolicy, GatewayConfig, Server, Workspace

OFFLINE_ACCESS = "offline_access"


@dataclass(frozen=True, slots=True)
class Route:
    base_url: str
    workspace_name: str
    server_name: str
    workspace: Workspace
    server: Server
    member: str | None = None
    """For one upstream of a virtual route: its name in ``upstreams`` (``server`` then describes that upstream)."""

    @property
    def key(self) -> str:
        """``workspace/server`` (``workspace/server/upstream`` for one upstream of a virtual route): the identity in
        storage and logs."""
        base = f"{self.workspace_name}/{self.server_name}"
        return base if self.member is None else f"{base}/{self.member}"

    @property
    def route_key(self) -> str:
        """``workspace/server``: the route a client talks to (for one upstream of a virtual route, that route's)."""
        return f"{self.workspace_name}/{self.server_name}"

    def connect_endpoint(self, params: dict[str, str]) -> str:
        """The page where a user connects this upstream's account (``?upstream=`` names one of a virtual route)."""
        query = {"upstream": self.member, **params} if self.member is not None else params
        return f"{self.endpoint('connect')}?{urlencode(query)}"

    @property
    def is_virtual(self) -> bool:
        return self.server.upstreams is not None

    def members(self) -> list[Route]:
        """A virtual route's upstreams, each as a route of its own (its URL, credentials and timeout) that the
        single-upstream proxy's parts (exchange, credential providers, sessions) take as they are."""
        if self.server.upstreams is None:
            return []
        cached = self._members.get((id(self.server), self.base_url))
        if cached is not None and cached[0] is self.server:
            return cached[1]
        found = [
            Route(
                self.base_url,
                self.workspace_name,
                self.server_name,
                self.workspace,
                # Parts of a validated configuration, not validated again (that would first build the models'
                # validators: tens of milliseconds of a virtual route's first request); access: the default.
                Server.model_construct(
                    upstream=upstream.url,
                    title=name,
                    auth=upstream.auth,
                    timeout_seconds=upstream.timeout_seconds or self.server.timeout_seconds,
                    access=AccessPolicy.model_construct(),
                ),
                member=name,
            )
            for name, upstream in self.server.upstreams.items()
        ]
        self._members[(id(self.server), self.base_url)] = (self.server, found)
        return found

    def member_named(self, name: str) -> Route | None:
        """One upstream of a virtual route, by its name in ``upstreams``."""
        return next((member for member in self.members() if member.member == name), None)

    # Built once per route (the configuration is fixed for a container's life); the server object is kept beside
    # its id so that a reused id never returns another configuration's members.
    _members: ClassVar[dict[tuple[int, str], tuple[Server, list[Route]]]] = {}

    @property
    def path(self) -> str:
        return f"/{self.workspace_name}/{self.server_name}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}{self.path}"

    @property
    def resource(self) -> str:
        """The MCP endpoint URL: the protected resource identifier and every access token's ``aud``."""
        return f"{self.issuer}/mcp"

    def is_resource(self, value: str) -> bool:
        """Does ``value`` name this route's resource (RFC 8707)? Scheme and host compare case-insensitively (MCP
        2025-11-25 "Canonical Server URI"), and one trailing slash is tolerated (anthropics/claude-code#52871)."""
        return _canonical_uri(value) == _canonical_uri(self.resource)

    def endpoint(self, name: str) -> str:
        """An authorization-server endpoint of this route, e.g. ``endpoint("token")``."""
        return f"{self.issuer}/{name}"

    @property
    def resource_metadata_url(self) -> str:
        """RFC 9728 §3.1: the well-known segment goes between host and path."""
        return f"{self.base_url}/.well-known/oauth-protected-resource{self.path}/mcp"

    @property
    def scopes_supported(self) -> list[str]:
        scopes = list(self.server.scopes)
        if self.server.refresh_tokens and OFFLINE_ACCESS not in scopes:
            scopes.append(OFFLINE_ACCESS)
        return scopes

    @property
    def default_scopes(self) -> list[str]:
        """Granted when a client sends no ``scope`` (Claude Code omits it)."""
        return list(self.server.scopes)

    @property
    def title(self) -> str:
        return self.server.title or self.server_name

    @property
    def lists_depend_on_caller(self) -> bool:
        """Whether what this route lists may differ between callers, so a list must never be cached across
        authorization contexts (MCP 2026-07-28 §Server "Caching": ``cacheScope: "private"``): an upstream reached
        with each user's own account (a virtual route's: any of them), or an access policy that admits some users
        only. (A key's tool scope refuses calls but never changes a list: docs/non-interactive.md.)"""
        if self.server.access.users or self.server.access.groups:
            return True
        members = self.members() if self.is_virtual else [self]
        return any(getattr(member.server.auth, "mode", None) == "per_user" for member in members)


def _canonical_uri(value: str) -> str:
    parts = urlsplit(value)
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, parts.fragment))


def workspace_callback_url(base_url: str, workspace_name: str) -> str:
    """The one identity-provider redirect URI of a workspace, registered at the IdP by an administrator."""
    return f"{base_url}/{workspace_name}/oidc/callback"


class RouteTable:
    """Looks up configured routes by workspace and server name."""

    def __init__(self, config: GatewayConfig, base_url: str) -> None:
        self.config = config
        self.base_url = base_url.rstrip("/")
        self._routes: dict[tuple[str, str], Route] = {
            (workspace_name, server_name): Route(self.base_url, workspace_name, server_name, workspace, server)
            for workspace_name, workspace in config.workspaces.items()
            for server_name, server in workspace.servers.items()
        }

    def get(self, workspace_name: str, server_name: str) -> Route | None:
        return self._routes.get((workspace_name, server_name))

    def member(self, workspace_name: str, server_name: str, member: str | None) -> Route | None:
        """A route, or with ``member`` one upstream of a virtual route."""
        route = self.get(workspace_name, server_name)
        if route is None or member is None:
            return route
        return route.member_named(member)

    def by_key(self, key: str) -> Route | None:
        """The route (or one upstream of a virtual route) whose :attr:`Route.key` is ``key``."""
        parts = key.split("/")
        if len(parts) not in (2, 3):
            return None
        return self.member(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def workspace(self, workspace_name: str) -> Workspace | None:
        return self.config.workspaces.get(workspace_name)

    @property
    def default_route(self) -> Route | None:
        if self.config.default_route is None:
            return None
        workspace_name, server_name = self.config.default_route.split("/")
        return self.get(workspace_name, server_name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._routes.values())

    def all(self) -> list[Route]:
        return list(self._routes.values())
