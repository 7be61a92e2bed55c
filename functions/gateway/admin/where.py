"""``mcp-gateway admin``: look at and act on a gateway's state, locally or in an AWS account.

    mcp-gateway admin --local audit --workspace demo --since 1h
    mcp-gateway admin --stack mcp-gateway --region eu-west-1 grants --workspace acme --user alice
    mcp-gateway admin --local revoke-grant GRANT_ID
    mcp-gateway admin --local --json client CLIENT_ID
    mcp-gateway admin routes --config my-gateway.yaml
    mcp-gateway admin --local create-key --workspace demo --user alice --name ci --server echo --expires-in 90d

Where the tables are: ``--local`` reads the running ``make dev``'s ``.dev/state.json``; ``--stack NAME`` reads the
deployed stack's outputs (``--region``, ``--profile``); otherwise the ``GATEWAY_*_TABLE`` and ``AWS_*`` variables of
the environment, as the functions read them. Every revocation bites on the client's next call (the proxy reads the
grant's status per request) and is itself written to the audit trail. Output is a table, or JSON with ``--json``.
Nothing here prints a secret: clients show no secret hash, grants no refresh salt, connections no token, keys no
hash. ``create-key`` prints the new key's value once; it is stored only as a hash and cannot be shown again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.audit import AuditTrail
from gateway.storage.ports import ApiKeyStore, AuditLog, ClientStore, GrantStore, StorageError, UpstreamTokenStore

STATE_FILE = Path(".dev/state.json")
OUTPUTS = {
    "GATEWAY_CLIENTS_TABLE": "ClientsTableName",
    "GATEWAY_GRANTS_TABLE": "GrantsTableName",
    "GATEWAY_UPSTREAM_TOKENS_TABLE": "UpstreamTokensTableName",
    "GATEWAY_AUDIT_TABLE": "AuditTableName",
}
HIDDEN = {"client_secret_hash", "refresh_salt", "ciphertext", "secret_hash"}  # never printed
DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class AdminError(Exception):
    """A problem the operator can fix; the message says how."""


@dataclasses.dataclass
class Stores:
    clients: ClientStore
    grants: GrantStore
    upstream_tokens: UpstreamTokenStore
    audit_log: AuditLog
    api_keys: ApiKeyStore
    retention_days: int = 90
    config_path: str | None = None


# --- where the tables are ---------------------------------------------------------------------------------------


def local_environment(state_file: Path) -> dict[str, str]:
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        env = state["env"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AdminError(
            f"no running 'make dev' found ({state_file} is missing or unreadable): start it first"
        ) from None
    return {str(key): str(value) for key, value in env.items()}


def stack_environment(stack: str, region: str | None, profile: str | None) -> dict[str, str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except (BotoCoreError, ClientError) as problem:
        raise AdminError(f"cannot read stack {stack!r}: {problem}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
    missing = [output for output in OUTPUTS.values() if output not in outputs]
    if missing:
        raise AdminError(f"stack {stack!r} has no output {', '.join(missing)}: deploy the current template.yaml")
    env = {variable: outputs[output] for variable, output in OUTPUTS.items()}
    env["AWS_REGION"] = session.region_name or ""
    if profile:
        env["AWS_PROFILE"] = profile
    return env


def open_stores(env: Mapping[str, str]) -> Stores:
    import boto3

    from gateway.aws.dynamodb_store import (
        DynamoApiKeyStore,
        DynamoAuditLog,
        DynamoClientStore,
        DynamoGrantStore,
        DynamoUpstreamTokenStore,
    )

    missing = [variable for variable in OUTPUTS if not env.get(variable)]
    if missing:
        raise AdminError(f"say where the gateway is: --local, --stack NAME, or set {', '.join(missing)}")
    session = boto3.session.Session(
        profile_name=env.get("AWS_PROFILE") or None,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
    )
    dynamodb: Any = session.client("dynamodb", endpoint_url=env.get("AWS_ENDPOINT_URL") or None)
    return Stores(
        DynamoClientStore(dynamodb, env["GATEWAY_CLIENTS_TABLE"]),
        DynamoGrantStore(dynamodb, env["GATEWAY_GRANTS_TABLE"]),
        DynamoUpstreamTokenStore(dynamodb, env["GATEWAY_UPSTREAM_TOKENS_TABLE"]),
        DynamoAuditLog(dynamodb, env["GATEWAY_AUDIT_TABLE"]),
        DynamoApiKeyStore(dynamodb, env["GATEWAY_GRANTS_TABLE"]),  # keys are items of the grants table
        int(env.get("GATEWAY_AUDIT_RETENTION_DAYS") or 90),
        env.get("GATEWAY_CONFIG") or None,
    )


# --- commands -----------------------------------------------------------------------------------------------


def _row(record: Any) -> dict[str, Any]:
    is_record = dataclasses.is_dataclass(record) and not isinstance(record, type)
    data = dataclasses.asdict(record) if is_record else dict(record)
    return {key: value for key, value in data.items() if key not in HIDDEN}


def _seconds(duration: str, option: str = "--since") -> int:
    match = DURATION.match(duration)
    if match is None:
        raise AdminError(f"{option} takes a duration such as 30m, 24h or 7d, not {duration!r}")
    return int(match[1]) * UNITS[match[2]]


def routes(config_path: str) -> list[dict[str, Any]]:
    """The workspaces' routes as the configuration declares them (no table is read)."""
    from gateway.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as problem:
        raise AdminError(str(problem)) from None
    rows = []
    for workspace_name, workspace in config.workspaces.items():
        for server_name, server in workspace.servers.items():
            upstreams = (
                {name: upstream.url for name, upstream in server.upstreams.items()}
                if server.upstreams is not None
                else {"": str(server.upstream)}
            )
            for name, url in upstreams.items():
                auth = server.upstreams[name].auth if server.upstreams is not None else server.auth
                rows.append(
                    {
                        "workspace": workspace_name,
                        "route": f"{workspace_name}/{server_name}" + (f" [{name}]" if name else ""),
                        "upstream": url,
                        "auth": auth.type,
                        "scopes": " ".join(server.scopes),
                        "identity_provider": workspace.identity_provider.type,
                    }
                )
    return rows


def run(args: argparse.Namespace, stores: Stores, now: int) -> list[dict[str, Any]]:
    """The rows the command prints; a revocation also writes its audit event."""
    trail = AuditTrail(stores.audit_log, stores.retention_days, clock=lambda: now)
    if args.command == "audit":
        events = stores.audit_log.events(
            args.workspace, since=now - _seconds(args.since), until=now + 1, route_key=args.route,
            user_id=args.user, client_id=args.client, limit=args.limit,
        )  # fmt: skip
        return [_row(event) for event in events]
    if args.command == "grants":
        return [_row(grant) for grant in stores.grants.grants_of_user(args.workspace, args.user)]
    if args.command == "grant":
        grant = stores.grants.get_grant(args.grant_id)
        if grant is None:
            raise AdminError(f"no grant {args.grant_id!r}")
        return [_row(grant)]
    if args.command == "client":
        client = stores.clients.get(args.client_id, now)
        if client is None:
            raise AdminError(f"no client {args.client_id!r} (or its registration expired)")
        return [_row(client)]
    if args.command == "connection":
        token = stores.upstream_tokens.get(args.route_key, args.subject)
        if token is None:
            raise AdminError(f"no upstream connection of {args.subject!r} at {args.route_key!r}")
        return [_row(token)]
    if args.command == "revoke-grant":
        grant = stores.grants.get_grant(args.grant_id)
        if grant is None:
            raise AdminError(f"no grant {args.grant_id!r}")
        return [_revoke(stores, trail, grant, now)]
    if args.command == "revoke-client":
        client = stores.clients.get(args.client_id, now)
        grants = [g for g in stores.grants.grants_of_client(args.client_id) if g.status == "active"]
        if client is None and not grants:
            raise AdminError(f"no client {args.client_id!r} with a registration or an active grant")
        rows = [_revoke(stores, trail, grant, now) for grant in grants]
        if client is not None:
            # its registration ends now: it can neither start a sign-in nor refresh
            stores.clients.touch(args.client_id, now, now)
            workspace = client.route_key.split("/", 1)[0]
            trail.record("client.revoked", workspace=workspace, route_key=client.route_key, client_id=client.client_id)
        return rows or [{"client_id": args.client_id, "revoked": True, "grants": 0}]
    if args.command == "revoke-user":
        grants = [g for g in stores.grants.grants_of_user(args.workspace, args.user) if g.status == "active"]
        return [_revoke(stores, trail, grant, now) for grant in grants]
    if args.command in ("create-key", "keys", "revoke-key"):
        return api_key_command(args, stores, trail, now)
    if args.command == "disconnect":
        if stores.upstream_tokens.get(args.route_key, args.subject) is None:
            raise AdminError(f"no upstream connection of {args.subject!r} at {args.route_key!r}")
        stores.upstream_tokens.delete(args.route_key, args.subject)
        workspace = args.route_key.split("/", 1)[0]
        trail.record(
            "upstream.disconnected", workspace=workspace, route_key=args.route_key, user_id=args.subject, by="admin"
        )
        return [{"route_key": args.route_key, "subject": args.subject, "disconnected": True}]
    raise AdminError(f"unknown command {args.command!r}")


def api_key_command(args: argparse.Namespace, stores: Stores, trail: AuditTrail, now: int) -> list[dict[str, Any]]:
    from gateway.api_keys.issuing import KeyRefused, KeyRequest, create_key, revoke_key

    if args.command == "keys":
        if args.user:
            keys = stores.api_keys.keys_of_user(args.workspace, args.user)
        else:
            keys = stores.api_keys.keys_of_workspace(args.workspace)
        return [_row(key) for key in sorted(keys, key=lambda key: key.created_at)]
    if args.command == "revoke-key":
        key = stores.api_keys.get_key(args.key_id)
        if key is None:
            raise AdminError(f"no key {args.key_id!r}")
        revoke_key(stores.api_keys, trail, key, now, by="admin")
        return [{"key_id": key.key_id, "workspace": key.workspace, "user_id": key.user_id, "revoked": True}]
    config = _load_config(args.config or stores.config_path)
    request = KeyRequest(
        workspace=args.workspace, user_id=args.user, name=args.name, servers=tuple(args.server),
        tools=tuple(args.tool or ()), user_groups=tuple(args.group or ()),
        expires_at=None if args.expires_in == "never" else now + _seconds(args.expires_in, "--expires-in"),
        created_by="admin",
    )  # fmt: skip
    try:
        key, value = create_key(stores.api_keys, trail, config, request, now)
    except KeyRefused as problem:
        raise AdminError(str(problem)) from None
    return [{**_row(key), "key": value}]


def _load_config(path: str | None) -> Any:
    from gateway.config import ConfigError, load_config

    if not path:
        raise AdminError("name the configuration: --config FILE (or --local, or set GATEWAY_CONFIG)")
    try:
        return load_config(path)
    except ConfigError as problem:
        raise AdminError(str(problem)) from None


def _revoke(stores: Stores, trail: AuditTrail, grant: Any, now: int) -> dict[str, Any]:
    stores.grants.revoke_grant(grant.grant_id, now, "admin")
    trail.record(
        "grant.revoked", workspace=grant.workspace, route_key=grant.route_key, user_id=grant.user_id,
        client_id=grant.client_id, grant_id=grant.grant_id, reason="admin",
    )  # fmt: skip
    return {"grant_id": grant.grant_id, "route_key": grant.route_key, "user_id": grant.user_id, "revoked": True}


# --- output -------------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return "" if value is None else str(value)


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(nothing)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [min(48, max(len(column), *(len(line[i]) for line in cells))) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(value[:48].ljust(width) for value, width in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mcp-gateway admin", description=__doc__.split("\n\n")[0])
    where = top.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="the running 'make dev' (.dev/state.json)")
    where.add_argument("--stack", help="a deployed stack's name (its outputs name the tables)")
    top.add_argument("--region")
    top.add_argument("--profile")
    top.add_argument("--json", action="store_true", help="JSON instead of a table")
    commands = top.add_subparsers(dest="command", required=True)
    listed = commands.add_parser("routes", help="the workspaces and routes of a configuration file")
    listed.add_argument("--config", help="the gateway YAML (default: the running make dev's, or GATEWAY_CONFIG)")
    audit = commands.add_parser("audit", help="audit events, newest first")
    audit.add_argument("--workspace", required=True)
    audit.add_argument("--user")
    audit.add_argument("--client")
    audit.add_argument("--route", help="workspace/server")
    audit.add_argument("--since", default="24h", help="how far back (30m, 24h, 7d; default 24h)")
    audit.add_argument("--limit", type=int, default=100)
    grants = commands.add_parser("grants", help="a user's grants (clients they authorized)")
    grants.add_argument("--workspace", required=True)
    grants.add_argument("--user", required=True)
    commands.add_parser("grant", help="one grant").add_argument("grant_id")
    commands.add_parser("client", help="one registered client").add_argument("client_id")
    connection = commands.add_parser("connection", help="one upstream connection (no token is shown)")
    connection.add_argument("route_key", help="workspace/server, or workspace/server/upstream")
    connection.add_argument("subject", help="the user id, or 'shared'")
    commands.add_parser("revoke-grant", help="revoke one grant").add_argument("grant_id")
    commands.add_parser(
        "revoke-client", help="end a client's registration and revoke every grant it holds"
    ).add_argument("client_id")
    revoke_user = commands.add_parser("revoke-user", help="revoke every active grant of a user")
    revoke_user.add_argument("--workspace", required=True)
    revoke_user.add_argument("user")
    create_key = commands.add_parser(
        "create-key", help="a gateway API key for a user or service identity (its value is printed once)"
    )
    create_key.add_argument("--workspace", required=True)
    create_key.add_argument("--user", required=True, help="the owner: a user id, or a service identity")
    create_key.add_argument("--name", required=True, help="a label, e.g. the CI job that uses it")
    create_key.add_argument("--server", action="append", required=True, help="a route it may call (repeat)")
    create_key.add_argument("--tool", action="append", help="a tool it may call (repeat; default: every tool)")
    create_key.add_argument("--group", action="append", help="a group of the owner, for access policies (repeat)")
    create_key.add_argument("--expires-in", default="90d", help="30m, 24h, 90d, or 'never' (default 90d)")
    create_key.add_argument("--config", help="the gateway YAML (default: the running make dev's, or GATEWAY_CONFIG)")
    keys = commands.add_parser("keys", help="the API keys of a workspace, or of one user (never their values)")
    keys.add_argument("--workspace", required=True)
    keys.add_argument("--user")
    commands.add_parser("revoke-key", help="revoke an API key: its next call is 401").add_argument("key_id")
    disconnect = commands.add_parser("disconnect", help="forget an upstream connection (the user connects again)")
    disconnect.add_argument("route_key")
    disconnect.add_argument("subject")
    return top


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["admin"]:
        arguments = arguments[1:]
    args = parser().parse_args(arguments)
    environ = os.environ if environ is None else environ
    try:
        if args.local:
            env = local_environment(Path(environ.get("DEV_STATE_FILE") or STATE_FILE))
        elif args.stack and args.command != "routes":
            env = stack_environment(args.stack, args.region, args.profile)
        else:
            env = dict(environ)
        if args.command == "routes":
            config_path = args.config or env.get("GATEWAY_CONFIG")
            if not config_path:
                raise AdminError("name the configuration: routes --config FILE (or --local, or set GATEWAY_CONFIG)")
            rows = routes(config_path)
        else:
            rows = run(args, open_stores(env), int(time.time()))
    except AdminError as problem:
        print(f"mcp-gateway admin: {problem}", file=sys.stderr)
        return 2
    except StorageError as problem:
        print(f"mcp-gateway admin: the tables could not be read or written ({problem})", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=2, default=str) if args.json else table(rows))
    return 0


if __name__ == "__main__":  # pragma: no cover - python -m gateway.admin
    sys.exit(main())
