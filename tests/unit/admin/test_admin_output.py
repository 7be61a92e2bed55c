"""The admin CLI's tables: readable times, every identifier and secret whole, only free text shortened (with an
ellipsis), the columns that matter unless every one is asked for (issue 20 item 18, issue 21 item 2)."""

from __future__ import annotations

from gateway.admin.output import FREE_TEXT_WIDTH, cell, record, table

KEY = "mcpgw_" + "A" * 16 + "_" + "b" * 43  # 66 characters: the old tables cut it at 48


def test_a_secret_and_identifiers_are_never_cut() -> None:
    long_client = "https://client.example.com/" + "c" * 80
    rows = [{"key_id": "k" * 16, "key": KEY, "client_id": long_client, "grant_id": "-" + "g" * 60}]
    output = table(rows)
    for value in rows[0].values():
        assert value in output.splitlines()[1].split()
    assert KEY in record({"key": KEY, "name": "ci"}).split()


def test_only_free_text_is_shortened_and_then_with_an_ellipsis() -> None:
    name = "A client with a remarkably long and descriptive display name"
    shown = cell("client_name", name)
    assert len(shown) == FREE_TEXT_WIDTH and shown.endswith("…") and name.startswith(shown[:-1])
    assert cell("client_name", "Claude Code") == "Claude Code"
    assert name in record({"client_name": name})  # one record has room for it


def test_times_are_utc_dates_and_no_expiry_reads_never() -> None:
    assert cell("at", 1_800_000_000) == "2027-01-15 08:00:00 UTC"
    assert cell("created_at", 1_800_000_000) == "2027-01-15 08:00:00 UTC"
    assert cell("expires_at", None) == "never"
    assert cell("revoked_at", None) == ""
    assert cell("version", 3) == "3"


def test_a_table_shows_the_columns_asked_for_in_order() -> None:
    rows = [{"event_id": "e1", "at": 1_800_000_000, "kind": "tool.called", "detail": {"tool": "echo"}}]
    lines = table(rows, ["at", "kind", "detail", "absent"]).splitlines()
    assert lines[0].split() == ["at", "kind", "detail"]
    assert lines[1].split() == ["2027-01-15", "08:00:00", "UTC", "tool.called", "tool=echo"]
    assert table(rows).splitlines()[0].split() == ["event_id", "at", "kind", "detail"]
    assert table([]) == "(nothing)"
