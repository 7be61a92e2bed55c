"""The admin CLI takes what it prints (issue "The first hour", item 2): an id that starts with ``-`` is an id, an
option's value is taken as given, ``--json`` and the other global options work anywhere on the line, and a typo in
an option is still reported as one."""

from __future__ import annotations

import pytest

from gateway.admin.arguments import parse

GRANT_ID = "-ciuwJheA0k13zV-GPQXKhXg"  # as secrets.token_urlsafe(18) may mint it


@pytest.mark.parametrize(
    "argv",
    [
        ["grant", GRANT_ID],
        ["grant", GRANT_ID, "--json"],
        ["--json", "grant", GRANT_ID],
        ["grant", "--json", GRANT_ID],
        ["grant", "--", GRANT_ID],
    ],
)
def test_a_grant_id_that_starts_with_a_dash_is_the_grant_id(argv: list[str]) -> None:
    args = parse(argv)
    assert (args.command, args.grant_id) == ("grant", GRANT_ID)
    assert args.json is ("--json" in argv)


def test_every_command_with_an_id_takes_one_that_starts_with_a_dash() -> None:
    assert parse(["revoke-grant", GRANT_ID]).grant_id == GRANT_ID
    assert parse(["client", "-client"]).client_id == "-client"
    assert parse(["revoke-client", "-c1"]).client_id == "-c1"
    assert parse(["revoke-key", "-K3y"]).key_id == "-K3y"
    args = parse(["disconnect", "demo/echo", "-user"])
    assert (args.route_key, args.subject) == ("demo/echo", "-user")
    args = parse(["revoke-user", "--workspace", "demo", "-bob"])
    assert (args.workspace, args.user) == ("demo", "-bob")


def test_an_options_value_is_taken_as_given() -> None:
    args = parse(["grants", "--workspace", "demo", "--user", "-bob"])
    assert args.user == "-bob"
    assert parse(["grants", "--workspace=demo", "--user=-bob"]).user == "-bob"


def test_global_options_are_accepted_anywhere() -> None:
    args = parse(["audit", "--workspace", "demo", "--local", "--json", "--all"])
    assert args.local and args.json and args.all_columns and args.command == "audit"
    args = parse(["keys", "--workspace", "demo", "--stack", "gw", "--region", "eu-west-1", "--profile", "ops"])
    assert (args.stack, args.region, args.profile) == ("gw", "eu-west-1", "ops")
    assert parse(["--json", "routes"]).json and parse(["routes", "--json"]).json


def test_offboard_is_revoke_user_and_can_keep_connections() -> None:
    args = parse(["offboard", "--workspace", "demo", "alice", "--keep-connections"])
    assert (args.command, args.user, args.keep_connections) == ("revoke-user", "alice", True)
    assert parse(["revoke-user", "--workspace", "demo", "alice"]).keep_connections is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["grant", GRANT_ID, "--jsno"], "unrecognized arguments: --jsno"),
        (["grants", "--workspace", "demo"], "the following arguments are required: --user"),
        (["--local", "--stack", "gw", "keys", "--workspace", "demo"], "--local or --stack, not both"),
        (["grant"], "the following arguments are required: grant_id"),
        (["grnt", GRANT_ID], "invalid choice: 'grnt'"),
        (["audit", "--work", "demo"], "required: --workspace"),  # no abbreviations, and --work is no id either
    ],
)
def test_mistakes_are_usage_errors_that_say_what_is_wrong(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
