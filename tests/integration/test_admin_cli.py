"""``mcp-gateway admin`` against the tables of a local stack (moto over HTTP), after a client got a token through the
token function and called a tool through the proxy (simulated Lambda containers, as ``make invoke`` runs them): the
audit trail shows the issuance and the tool call, the grant and the client can be looked at (without secrets), and
revoking the grant with the CLI makes the client's next MCP call 401 and its refresh fail."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.admin import main
from gateway.identity.user import SignedInUser
from gateway.oauth.authorization import new_grant
from gateway.storage.records import RegisteredClient
from infra.invoke import filler_runtime
from infra.placeholders import grant_backed_token
from tests.support.invoke_flows import CLIENT_ID, issued_tokens, mcp_call, refresh_status, with_default_settings


def admin(capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str) -> Any:
    status = main(["admin", "--json", *argv], environ=env)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


@pytest.fixture
def env(gateway_env: dict[str, str]) -> dict[str, str]:
    return with_default_settings(gateway_env)


def test_the_audit_trail_shows_the_issuance_and_the_tool_call_and_a_revocation_bites(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a client that got a token and called a tool
    tokens, _ = issued_tokens()
    assert mcp_call(tokens["access_token"]) == 200

    # When an operator looks at the audit trail
    events = admin(capsys, env, "audit", "--workspace", "demo", "--client", CLIENT_ID, "--since", "1h")

    # Then it shows the token issued for the grant and the tool call under it
    kinds = [event["kind"] for event in events]
    assert "token.issued" in kinds and "tool.called" in kinds
    [issued] = [event for event in events if event["kind"] == "token.issued"][:1]
    grant_id = issued["grant_id"]
    [call] = [event for event in events if event["kind"] == "tool.called" and event["grant_id"] == grant_id][:1]
    assert call["detail"]["tool"] == "echo" and call["detail"]["outcome"] == "ok"
    assert tokens["access_token"] not in json.dumps(events) and tokens["refresh_token"] not in json.dumps(events)

    # And the grant and the client, without their secrets
    [grant] = admin(capsys, env, "grant", grant_id)
    assert grant["status"] == "active" and grant["client_id"] == CLIENT_ID and "refresh_salt" not in grant
    [client] = admin(capsys, env, "client", CLIENT_ID)
    assert client["client_id"] == CLIENT_ID and "client_secret_hash" not in client
    user_grants = admin(capsys, env, "grants", "--workspace", "demo", "--user", grant["user_id"])
    assert grant_id in [row["grant_id"] for row in user_grants]

    # When the operator revokes the grant
    [revoked] = admin(capsys, env, "revoke-grant", grant_id)
    assert (revoked["kind"], revoked["id"], revoked["client_id"]) == ("grant", grant_id, CLIENT_ID)

    # Then the client's next MCP call is 401, its refresh fails, and the revocation is in the trail
    assert mcp_call(tokens["access_token"]) == 401
    assert refresh_status(tokens["refresh_token"]) == 400
    after = admin(capsys, env, "audit", "--workspace", "demo", "--since", "1h", "--limit", "500")
    assert any(
        e["kind"] == "grant.revoked" and e["grant_id"] == grant_id and e["detail"]["reason"] == "admin" for e in after
    )


def test_the_tables_show_the_columns_that_matter_with_readable_times(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given some events
    issued_tokens()

    # When they are listed as a table
    assert main(["admin", "audit", "--workspace", "demo", "--since", "1h", "--limit", "3"], environ=env) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the table, without the note on the next page

    # Then the columns that matter come first, with dates a person reads (UTC), not epoch seconds
    assert lines[0].split() == ["at", "kind", "route_key", "user_id", "client_id", "detail"]
    assert len(lines) == 4
    assert all(re.match(r"^20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC  ", line) for line in lines[1:]), lines

    # And --all (anywhere on the line) shows every field
    assert main(["admin", "audit", "--workspace", "demo", "--limit", "1", "--all"], environ=env) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert {"event_id", "grant_id", "expires_at", "workspace"} <= set(header)


_KEY = ["create-key", "--workspace", "demo", "--user", "alice", "--name", "ci"]


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["audit", "--workspace", "demo"], {}, "say where the gateway is"),
        (["--local", "audit", "--workspace", "demo"], {"DEV_STATE_FILE": "/nonexistent/state.json"}, "no running"),
        (["audit", "--workspace", "demo", "--since", "yesterday"], None, "--since takes a duration"),
        (["grant", "no-such-grant"], None, "no grant 'no-such-grant'"),
        ([*_KEY, "--server", "nowhere"], None, "no server 'nowhere' in workspace 'demo'"),
        ([*_KEY, "--server", "echo", "--expires-in", "soon"], None, "--expires-in takes a duration"),
        (["create-key", "--workspace", "acme", "--user", "a", "--name", "n", "--server", "echo"], None, "no workspace"),
        (["revoke-key", "no-such-key"], None, "no key 'no-such-key'"),
    ],
)
def test_mistakes_are_explained(
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    environ: dict[str, str] | None,
    message: str,
) -> None:
    status = main(["admin", *argv], environ=env if environ is None else environ)
    assert status == 2
    assert message in capsys.readouterr().err


def test_a_local_state_file_names_the_tables(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"pid": 1, "env": env}), encoding="utf-8")
    assert main(["admin", "--local", "--json", "grants", "--workspace", "demo", "--user", "nobody"],
                environ={"DEV_STATE_FILE": str(state)}) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out) == []


def test_routes_lists_every_route_and_every_upstream_of_a_virtual_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "--json", "routes", "--config", "examples/gateway.yaml"], environ={}) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["route"] for row in rows} == {"demo/echo", "demo/toolbox [demo]"}
    assert all(row["sign_in"] == "dev login" and row["upstream_auth"] == "none" for row in rows)
    assert main(["admin", "routes", "--config", "no-such.yaml"], environ={}) == 2
    assert "no-such.yaml" in capsys.readouterr().err


def test_routes_says_what_its_columns_mean(capsys: pytest.CaptureFixture[str]) -> None:
    # "auth none" read as "no sign-in needed": the table names the sign-in and the upstream's credential apart
    assert main(["admin", "routes", "--config", "examples/gateway.yaml"], environ={}) == 0
    output = capsys.readouterr().out
    assert output.splitlines()[0].split() == ["route", "upstream", "sign_in", "upstream_auth", "scopes"]
    assert "sign_in: how a caller of the route proves who they are" in output
    assert "upstream_auth: the credential the gateway adds when it calls the upstream" in output


def test_revoking_a_client_ends_its_registration_and_every_grant(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a client of its own (the sample events' client serves the other tests), with a grant and a token
    runtime = filler_runtime()
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    now = runtime.now()
    client_id = f"revoked-client-{now}"
    runtime.clients.create(
        RegisteredClient(
            client_id=client_id, route_key=route.key, client_name="To revoke", redirect_uris=("http://127.0.0.1/cb",),
            token_endpoint_auth_method="none", client_secret_hash=None, created_at=now, last_used_at=now,
            expires_at=None,
        )
    )  # fmt: skip
    token = grant_backed_token(runtime, route, subject="carol", client_id=client_id)
    assert mcp_call(token, env) == 200

    # When an operator revokes the client
    rows = admin(capsys, env, "revoke-client", client_id)

    # Then its grant is revoked (its next call is 401) and its registration is gone
    assert [row["kind"] for row in rows] == ["grant", "client"] and rows[1]["name"] == "To revoke"
    assert mcp_call(token, env) == 401
    assert main(["admin", "client", client_id], environ=env) == 2
    events = admin(capsys, env, "audit", "--workspace", "demo", "--client", client_id, "--since", "1h")
    assert {"client.revoked", "grant.revoked"} <= {event["kind"] for event in events}


def test_keys_are_listed_without_values_or_hashes_and_a_key_without_expiry_says_so(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a key made to last until revoked
    [made] = admin(capsys, env, *_KEY, "--server", "echo", "--expires-in", "never", "--tool", "echo")
    assert made["key"].startswith("mcpgw_") and made["expires_at"] is None and made["tools"] == ["echo"]

    # When the workspace's keys are listed, as JSON and as a table
    listed = admin(capsys, env, "keys", "--workspace", "demo")
    assert main(["admin", "keys", "--workspace", "demo"], environ=env) == 0
    table = capsys.readouterr().out

    # Then the key is there by id, and neither its value nor its hash is printed
    [row] = [row for row in listed if row["key_id"] == made["key_id"]]
    assert "secret_hash" not in row and "key" not in row
    assert made["key_id"] in table and made["key"] not in table and made["key"] not in json.dumps(listed)


def test_a_key_printed_as_a_table_is_whole_and_works(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # Given a key made with the table output (the form the README shows)
    assert main(["admin", *_KEY, "--server", "echo"], environ=env) == 0
    output = capsys.readouterr().out

    # Then the key as printed works at the proxy: it is printed whole (66 characters), once
    [key] = set(re.findall(r"mcpgw_\S*", output))
    assert mcp_call(key, env) == 200
    assert re.fullmatch(r"mcpgw_[0-9A-Za-z]{16}_[0-9A-Za-z]{43}", key)
    assert "shown this once" in output


def _grant_with_id(grant_id: str, client_id: str = "dash-client") -> None:
    runtime = filler_runtime()
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    now = runtime.now()
    runtime.grants.create_grant(
        new_grant(
            route=route, client_id=client_id, user=SignedInUser("dana"), scopes=("mcp",), now=now,
            absolute_lifetime_seconds=3600, grant_id=grant_id,
        )
    )  # fmt: skip


def test_ids_that_start_with_a_dash_are_taken_as_printed(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a grant whose id starts with "-" (token_urlsafe mints such ids)
    grant_id = f"-ciuwJheA0k13zV-{uuid.uuid4().hex[:8]}"
    _grant_with_id(grant_id)

    # When the operator passes the id as printed, with --json before or after it
    assert main(["admin", "grant", grant_id, "--json"], environ=env) == 0
    [grant] = json.loads(capsys.readouterr().out)
    assert main(["admin", "--json", "revoke-grant", grant_id], environ=env) == 0
    [revoked] = json.loads(capsys.readouterr().out)

    # Then the CLI found that grant, and revoked it
    assert grant["grant_id"] == grant_id and grant["status"] == "active"
    assert revoked["id"] == grant_id
    assert main(["admin", "grant", "--json", grant_id], environ=env) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "revoked"

    # And an unknown id that starts with "-" is reported as an unknown grant, not a usage error
    assert main(["admin", "grant", "-nOSuchGrant0"], environ=env) == 2
    assert "no grant '-nOSuchGrant0'" in capsys.readouterr().err


def test_identifiers_are_never_cut_in_a_table(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # Given a grant of a client whose id is a long URL (a client ID metadata document)
    client_id = "https://client.example.com/oauth/metadata/" + "x" * 40 + ".json"
    grant_id = f"grant-long-{uuid.uuid4().hex}"
    _grant_with_id(grant_id, client_id)

    # When a table lists it
    assert main(["admin", "grants", "--workspace", "demo", "--user", "dana"], environ=env) == 0
    output = capsys.readouterr().out

    # Then the grant id and the client id are printed whole
    [line] = [line for line in output.splitlines() if grant_id in line]
    assert client_id in line.split()


def test_a_key_for_a_user_the_dev_login_does_not_know_is_made_with_a_warning(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "--json", "create-key", "--workspace", "demo", "--user", "mallory", "--name", "typo",
                 "--server", "echo"], environ=env) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "warning: workspace 'demo' signs in with the development login, which has no user 'mallory'" in captured.err
    assert json.loads(captured.out)[0]["user_id"] == "mallory"


def test_audit_events_are_read_page_by_page(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # Given a client that got a token and called a tool (two events, at least)
    tokens, _ = issued_tokens()
    assert mcp_call(tokens["access_token"]) == 200
    base = ["admin", "audit", "--workspace", "demo", "--client", CLIENT_ID, "--since", "1h", "--limit", "1"]

    # When one event is listed, the table says how to read the next page
    assert main(base, environ=env) == 0
    output = capsys.readouterr().out
    [before] = re.findall(r"the same command with --before (\S+)", output)

    # Then that page is older: it starts with another event
    assert main(["admin", "--json", *base[1:]], environ=env) == 0
    [first] = json.loads(capsys.readouterr().out)
    assert main([*base, "--before", before, "--json"], environ=env) == 0
    [second] = json.loads(capsys.readouterr().out)
    assert second["event_id"] != first["event_id"] and (second["at"], second["event_id"]) < (
        first["at"],
        first["event_id"],
    )
