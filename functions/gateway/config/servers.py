"""Routes (servers): the upstream they call, how the gateway authenticates there, who may use them, and a virtual
route's upstreams with their tool projections and filters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.config.fields import ConfigModel, HttpUrl, SecretRef, Slug


class NoUpstreamAuth(ConfigModel):
    type: Literal["none"] = "none"


class HeaderUpstreamAuth(ConfigModel):
    """Static headers (API keys, bearer tokens) whose values come from a secret store."""

    type: Literal["headers"]
    headers: dict[str, SecretRef] = Field(min_length=1)


class OAuthUpstreamAuth(ConfigModel):
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


class AccessPolicy(ConfigModel):
    """Who may use a route. Both lists empty (the default) means every signed-in user of the workspace."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)

    def allows(self, user_id: str, groups: list[str] | tuple[str, ...]) -> bool:
        if not self.users and not self.groups:
            return True
        return user_id in self.users or any(group in self.groups for group in groups)


TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # what clients accept (MCP tool names; several clients cap at 64)
PREFIX_PATTERN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_-]{0,30}[A-Za-z0-9])?)?$"  # "" only for a route's only upstream


class ToolProjection(ConfigModel):
    """How one upstream tool appears on a virtual route."""

    name: Annotated[str, Field(pattern=TOOL_NAME_PATTERN)] | None = Field(
        default=None, description="Expose the tool under this name (before the upstream's prefix)."
    )
    description: str | None = Field(default=None, description="Replace the tool's description.")
    annotations: dict[str, bool | str] = Field(
        default_factory=dict, description="Set or override annotations, e.g. readOnlyHint: true."
    )


class ToolFilter(ConfigModel):
    """Which upstream tools a virtual route exposes, by name or glob pattern (``*``, ``?``, ``[...]``)."""

    allow: list[str] = Field(default_factory=list, description="Only these tools (empty: all).")
    deny: list[str] = Field(default_factory=list, description="Never these tools (applied after allow).")


class VirtualUpstream(ConfigModel):
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


class Server(ConfigModel):
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
        model's own check from running (gateway.config.messages)."""
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
