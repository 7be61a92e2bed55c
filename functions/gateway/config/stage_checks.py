"""Judging a configuration for a stage: development switches (refused or warned outside the local stage), identity
claims that can change, route timeouts the buffered deployment cannot honour."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.config.identity import DevLoginProvider, OidcProvider
from gateway.config.loading import ConfigError
from gateway.config.servers import HeaderUpstreamAuth, OAuthUpstreamAuth, Server, UpstreamAuth
from gateway.config.workspaces import GatewayConfig

logger = logging.getLogger("gateway.config")

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
