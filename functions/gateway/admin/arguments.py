"""The admin CLI's command line: its commands and options, and the one rule that makes it take what it prints.

Identifiers the gateway mints may start with ``-`` (a grant id from ``secrets.token_urlsafe``), which argparse
takes for an option ("the following arguments are required: grant_id"). :func:`parse` therefore reads the command
line itself first: a token that is not one of the command's options is an argument, whatever it starts with, and an
option's value is taken as given (``--user -bob``). The global options (``--json``, ``--all``, ``--local``,
``--stack`` ...) are accepted anywhere, before or after the command.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PROG = "mcp-gateway admin"
# What a long option looks like: an unknown token of this shape (a typo such as --jsno) is reported as an unknown
# option, not taken for an id. Any other token is an argument, whatever it starts with: the only short option is -h,
# and a minted id has capitals or digits ("-ciuwJheA0k13zV-GPQXKhXg").
OPTION_SHAPE = re.compile(r"^--[a-z][a-z-]*(=.*)?$")


@dataclass
class OptionNames:
    """The option strings of one parser: those that take a value, and flags."""

    valued: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)

    def add(self, action: argparse.Action) -> None:
        (self.flags if action.nargs == 0 else self.valued).update(action.option_strings)

    def __contains__(self, token: str) -> bool:
        return token in self.valued or token in self.flags


class CommandLine:
    """The parser, and the option names of the top level and of each command."""

    def __init__(self) -> None:
        self.top = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, allow_abbrev=False)
        self.global_options = OptionNames()
        self.commands: dict[str, OptionNames] = {}
        self._subparsers = self.top.add_subparsers(dest="command", required=True, metavar="COMMAND")
        for option, kwargs in GLOBAL_OPTIONS:
            self.global_options.add(self.top.add_argument(option, **kwargs))

    def command(self, name: str, help: str, aliases: Sequence[str] = ()) -> Command:
        parser = self._subparsers.add_parser(
            name, help=help, description=help, aliases=list(aliases), allow_abbrev=False, add_help=False
        )
        names = OptionNames()
        for alias in (name, *aliases):
            self.commands[alias] = names
        return Command(parser, names).option("-h", "--help", action="help", help="show this help and exit")

    def normalize(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with the global options first, then the command and its options, then ``--`` and its
        arguments: argparse then cannot mistake an id for an option."""
        before: list[str] = []
        tokens = list(argv)
        index = 0
        while index < len(tokens) and tokens[index] not in self.commands:
            index = _take(tokens, index, self.global_options, before)
            if index < 0:  # not an option and not a command: let argparse say so
                return list(argv)
        if index >= len(tokens):
            return list(argv)
        command = tokens[index]
        names = self.commands[command]
        options: list[str] = []
        arguments: list[str] = []
        index += 1
        while index < len(tokens):
            token = tokens[index]
            if token == "--":
                arguments += tokens[index + 1 :]
                break
            if _option_name(token) in self.global_options:
                index = _take(tokens, index, self.global_options, before)
            elif _option_name(token) in names or OPTION_SHAPE.match(token):
                index = _take(tokens, index, names, options)
            else:
                arguments.append(token)
                index += 1
        return [*before, command, *options, *(["--", *arguments] if arguments else [])]


@dataclass
class Command:
    parser: argparse.ArgumentParser
    names: OptionNames

    def option(self, *flags: str, **kwargs: Any) -> Command:
        self.names.add(self.parser.add_argument(*flags, **kwargs))
        return self

    def argument(self, name: str, help: str) -> Command:
        self.parser.add_argument(name, help=help)
        return self


def _option_name(token: str) -> str:
    return token.split("=", 1)[0] if token.startswith("--") else token


def _take(tokens: list[str], index: int, names: OptionNames, into: list[str]) -> int:
    """Move the option at ``index`` (and its value, whatever it looks like) to ``into``; the next index, or -1 when
    the token is no option of ``names``."""
    token = tokens[index]
    name = _option_name(token)
    if name in names.valued and name == token and index + 1 < len(tokens):
        into.append(f"{token}={tokens[index + 1]}")  # --user -bob: the value is taken as given
        return index + 2
    if name in names or OPTION_SHAPE.match(token):
        into.append(token)  # argparse reports an unknown option or a missing value itself
        return index + 1
    return -1


DESCRIPTION = "Look at and act on a gateway's state (audit events, grants, clients, keys, upstream connections)."
GLOBAL_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--local", {"action": "store_true", "help": "the running 'make dev' (.dev/state.json)"}),
    ("--stack", {"help": "a deployed stack's name (its outputs name the tables)"}),
    ("--region", {"help": "the stack's region"}),
    ("--profile", {"help": "the AWS profile to use"}),
    ("--json", {"action": "store_true", "help": "JSON instead of a table (accepted anywhere)"}),
    ("--all", {"action": "store_true", "dest": "all_columns", "help": "every column, not only those that matter"}),
]


def command_line() -> CommandLine:
    cli = CommandLine()
    config_help = "the gateway YAML (default: the running make dev's, or GATEWAY_CONFIG)"
    cli.command("routes", "the workspaces and routes of a configuration file").option("--config", help=config_help)
    audit = cli.command("audit", "audit events, newest first").option("--workspace", required=True)
    audit.option("--user").option("--client").option("--route", help="workspace/server")
    audit.option("--since", default="24h", help="how far back (30m, 24h, 7d; default 24h)")
    audit.option("--limit", type=int, default=100)
    audit.option("--before", help="the next page: the position the previous page printed")
    grants = cli.command("grants", "a user's grants (the clients they authorized)")
    grants.option("--workspace", required=True).option("--user", required=True)
    cli.command("grant", "one grant").argument("grant_id", "the grant's id (as printed, even if it starts with -)")
    cli.command("client", "one registered client").argument("client_id", "the client's id")
    connection = cli.command("connection", "one upstream connection (no token is shown)")
    connection.argument("route_key", "workspace/server, or workspace/server/upstream")
    connection.argument("subject", "the user id, or 'shared'")
    cli.command("revoke-grant", "revoke one grant: its next call is 401").argument("grant_id", "the grant's id")
    cli.command("revoke-client", "end a client's registration and revoke every grant it holds").argument(
        "client_id", "the client's id"
    )
    offboard = cli.command(
        "revoke-user",
        "end all of a user's access: grants, API keys and upstream connections",
        aliases=["offboard"],
    )
    offboard.option("--workspace", required=True)
    offboard.option(
        "--keep-connections", action="store_true", help="leave the user's upstream accounts connected"
    ).argument("user", "the user id (or service identity)")
    key = cli.command("create-key", "a gateway API key for a user or service identity (its value is printed once)")
    key.option("--workspace", required=True)
    key.option("--user", required=True, help="the owner: a user id, or a service identity")
    key.option("--name", required=True, help="a label, e.g. the CI job that uses it")
    key.option("--server", action="append", required=True, help="a route it may call (repeat)")
    key.option("--tool", action="append", help="a tool it may call (repeat; default: every tool)")
    key.option("--group", action="append", help="a group of the owner, for access policies (repeat)")
    key.option("--expires-in", default="90d", help="30m, 24h, 90d, or 'never' (default 90d)")
    key.option("--config", help=config_help)
    keys = cli.command("keys", "the API keys of a workspace, or of one user (never their values)")
    keys.option("--workspace", required=True).option("--user")
    cli.command("revoke-key", "revoke an API key: its next call is 401").argument("key_id", "the key's id")
    disconnect = cli.command("disconnect", "forget an upstream connection (the user connects again)")
    disconnect.argument("route_key", "workspace/server, or workspace/server/upstream")
    disconnect.argument("subject", "the user id, or 'shared'")
    return cli


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as a namespace (argparse exits with status 2 and a usage line on a mistake)."""
    cli = command_line()
    args = cli.top.parse_args(cli.normalize(argv))
    if args.local and args.stack:
        cli.top.error("say where the gateway is with --local or --stack, not both")
    if args.command == "offboard":
        args.command = "revoke-user"
    return args
