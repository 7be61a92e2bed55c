"""``mcp-gateway admin``: the entry point. It finds the gateway (:mod:`gateway.admin.where`), builds its stores
with the functions' own settings model and composition root (:class:`gateway.state_runtime.StateRuntime`), makes
one call into the operator service (:mod:`gateway.operations.service`) and prints what it returns
(:mod:`gateway.admin.output`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.admin.arguments import parse
from gateway.admin.output import DEFAULT_COLUMNS, as_json, record, table
from gateway.admin.where import STATE_FILE, WhereError, gateway_environment, local_environment
from gateway.config import ConfigError, DevLoginProvider, GatewayConfig, load_config
from gateway.operations.queries import AuditQuery, OperatorError
from gateway.operations.service import OperatorService
from gateway.operations.views import Ended
from gateway.settings import Settings, SettingsError
from gateway.state_runtime import AwsAccess, StateRuntime
from gateway.storage.ports import StorageError

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
NEEDS_CONFIG = frozenset({"create-key"})
ROUTES_LEGEND = (
    "sign_in: how a caller of the route proves who they are (every route needs a token from this sign-in, or an API "
    "key);\nupstream_auth: the credential the gateway adds when it calls the upstream (none, headers, oauth)."
)


class UsageError(Exception):
    """A value on the command line the CLI cannot use; the message says what it takes."""


@dataclass
class Report:
    """What a command prints: rows (a listing, or one record), notes after a table, warnings on stderr."""

    rows: list[dict[str, Any]]
    listing: str | None = None
    """The kind of listing (its default columns); None: one record, every field."""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    json_value: Any = None
    """What --json prints, when it is not the rows."""
    status: int = 0

    def render(self, *, as_json_output: bool, all_columns: bool) -> str:
        if as_json_output:
            return as_json(self.rows if self.json_value is None else self.json_value)
        if self.listing is None and len(self.rows) == 1:
            text = record(self.rows[0])
        else:
            columns = None if all_columns or self.listing is None else DEFAULT_COLUMNS[self.listing]
            text = table(self.rows, columns)
        return "\n".join([text, *self.notes])


def _seconds(duration: str, option: str) -> int:
    match = DURATION.match(duration)
    if match is None:
        raise UsageError(f"{option} takes a duration such as 30m, 24h or 7d, not {duration!r}")
    return int(match[1]) * UNITS[match[2]]


def _load_config(path: str | None, command: str) -> GatewayConfig:
    if not path:
        raise UsageError(f"name the configuration: {command} --config FILE (or --local, or set GATEWAY_CONFIG)")
    try:
        return load_config(path)
    except ConfigError as problem:
        raise UsageError(str(problem)) from None


def _ended(items: Sequence[Ended]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(item) for item in items]


# --- the commands -------------------------------------------------------------------------------------------


def routes(config: GatewayConfig) -> Report:
    """The workspaces' routes as the configuration declares them (no table is read)."""
    rows = []
    for workspace_name, workspace in config.workspaces.items():
        provider = workspace.identity_provider
        sign_in = "dev login" if isinstance(provider, DevLoginProvider) else f"oidc {provider.issuer}"
        for server_name, server in workspace.servers.items():
            upstreams = (
                {name: (upstream.url, upstream.auth) for name, upstream in server.upstreams.items()}
                if server.upstreams is not None
                else {"": (str(server.upstream), server.auth)}
            )
            for name, (url, auth) in upstreams.items():
                mode = getattr(auth, "mode", None)
                rows.append(
                    {
                        "workspace": workspace_name,
                        "route": f"{workspace_name}/{server_name}" + (f" [{name}]" if name else ""),
                        "upstream": url,
                        "sign_in": sign_in,
                        "upstream_auth": auth.type + (f" ({mode})" if mode else ""),
                        "scopes": " ".join(server.scopes),
                        "identity_provider": provider.type,
                    }
                )
    return Report(rows, "routes", notes=["", ROUTES_LEGEND])


def run(args: argparse.Namespace, service: OperatorService, now: int) -> Report:
    """One command, as a report to print."""
    command = args.command
    if command == "audit":
        query = AuditQuery(
            args.workspace, since=now - _seconds(args.since, "--since"), until=now + 1, route_key=args.route,
            user_id=args.user, client_id=args.client, limit=args.limit, before=args.before,
        )  # fmt: skip
        page = service.audit_events(query)
        more = (
            [] if page.next_before is None else ["", f"older events: the same command with --before {page.next_before}"]
        )
        return Report([dataclasses.asdict(event) for event in page.events], "audit", notes=more)
    if command == "grants":
        return Report(
            [dataclasses.asdict(grant) for grant in service.grants_of_user(args.workspace, args.user)], "grants"
        )
    if command == "grant":
        return Report([dataclasses.asdict(service.grant(args.grant_id))])
    if command == "client":
        return Report([dataclasses.asdict(service.client(args.client_id))])
    if command == "connection":
        return Report([dataclasses.asdict(service.connection(args.route_key, args.subject))])
    if command == "keys":
        return Report([dataclasses.asdict(key) for key in service.keys(args.workspace, args.user)], "keys")
    if command == "revoke-grant":
        return Report(_ended([service.revoke_grant(args.grant_id)]), "ended")
    if command == "revoke-client":
        return Report(_ended(service.revoke_client(args.client_id)), "ended")
    if command == "revoke-key":
        return Report(_ended([service.revoke_key(args.key_id)]), "ended")
    if command == "disconnect":
        return Report(_ended([service.disconnect(args.route_key, args.subject)]), "ended")
    if command == "revoke-user":
        return offboard(args, service)
    if command == "create-key":
        return create_key(args, service, now)
    raise UsageError(f"unknown command {command!r}")


def offboard(args: argparse.Namespace, service: OperatorService) -> Report:
    result = service.offboard_user(args.workspace, args.user, keep_connections=args.keep_connections)
    done = result.offboarding
    summary = (
        f"ended for {done.user_id!r} in {done.workspace!r}: {done.count('grant')} grant(s), "
        f"{done.count('api_key')} API key(s), {done.count('connection')} upstream connection(s)"
    )
    notes = ["", summary]
    if done.kept_connections:
        notes.append(f"kept connected (--keep-connections or shared accounts): {', '.join(done.kept_connections)}")
    warnings = [f"not ended: {failure}" for failure in result.failures]
    if warnings:
        warnings.append("the tables failed part of the way: run the same command again to end the rest")
    json_value = {**dataclasses.asdict(done), "failures": list(result.failures)}
    return Report(_ended(done.ended), "ended", notes, warnings, json_value, status=1 if result.failures else 0)


def create_key(args: argparse.Namespace, service: OperatorService, now: int) -> Report:
    from gateway.api_keys.issuing import KeyRequest

    expires_at = None if args.expires_in == "never" else now + _seconds(args.expires_in, "--expires-in")
    request = KeyRequest(
        workspace=args.workspace, user_id=args.user, name=args.name, servers=tuple(args.server),
        tools=tuple(args.tool or ()), user_groups=tuple(args.group or ()), expires_at=expires_at, created_by="admin",
    )  # fmt: skip
    created = service.create_key(request)
    row = {**dataclasses.asdict(created.key), "key": created.value}
    notes = ["", "The key is shown this once (the gateway keeps only its hash): store it now."]
    return Report([row], None, notes, [f"warning: {warning}" for warning in created.warnings])


# --- the entry point ----------------------------------------------------------------------------------------


def report_for(args: argparse.Namespace, environ: Mapping[str, str]) -> Report:
    if args.command == "routes":  # the configuration only: no table is read
        config_path = args.config
        if not config_path and args.local:
            config_path = local_environment(Path(environ.get("DEV_STATE_FILE") or STATE_FILE)).get("GATEWAY_CONFIG")
        elif not config_path and not args.stack:
            config_path = environ.get("GATEWAY_CONFIG")
        return routes(_load_config(config_path, "routes"))
    env = gateway_environment(
        local=args.local, stack=args.stack, region=args.region, profile=args.profile, environ=environ
    )
    settings = Settings.from_environ(env, require_config=False)
    runtime = StateRuntime(settings, aws=AwsAccess.from_environ(env))
    config = None
    if args.command in NEEDS_CONFIG:
        config = _load_config(getattr(args, "config", None) or settings.config, args.command)
    return run(args, runtime.operator_service(config), runtime.now())


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["admin"]:
        arguments = arguments[1:]
    args = parse(arguments)
    try:
        report = report_for(args, os.environ if environ is None else environ)
    except (WhereError, UsageError, OperatorError, SettingsError) as problem:
        print(f"mcp-gateway admin: {problem}", file=sys.stderr)
        return 2
    except StorageError as problem:
        print(f"mcp-gateway admin: the tables could not be read or written ({problem})", file=sys.stderr)
        return 1
    for warning in report.warnings:
        print(f"mcp-gateway admin: {warning}", file=sys.stderr)
    print(report.render(as_json_output=args.json, all_columns=args.all_columns))
    return report.status
