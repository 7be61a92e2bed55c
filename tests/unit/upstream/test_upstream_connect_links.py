"""Connect links are bound to a route and a subject, expire, and cannot be forged."""

from __future__ import annotations

from gateway.upstream.connect_links import connect_url, link_token, read_link
from tests.unit.upstream.test_metadata_discovery import route

SECRET = b"k" * 32


def test_a_link_names_its_subject_for_its_route_only() -> None:
    notes = route()
    url = connect_url(notes, "alice", SECRET, now=1000)
    assert url.startswith("https://gw.example.com/acme/notes/connect?for=v1.")
    token = link_token(notes, "alice", SECRET, now=1000)
    link = read_link(token, notes, SECRET, now=2000)
    assert link is not None and link.subject == "alice" and not link.shared
    other_config_route = route({"type": "oauth", "mode": "shared"})
    assert (
        read_link(link_token(other_config_route, "shared", SECRET, now=1000), notes, SECRET, 2000) is not None
    )  # same key


def test_expired_forged_or_foreign_links_are_refused() -> None:
    notes = route()
    token = link_token(notes, "alice", SECRET, now=1000, ttl_seconds=60)
    assert read_link(token, notes, SECRET, now=1061) is None
    assert read_link(token, notes, b"other-secret" * 3, now=1001) is None
    version, _subject, expires, mac = token.split(".")
    assert (
        read_link(".".join([version, "Ym9i", expires, mac]), notes, SECRET, now=1001) is None
    )  # bob's name, alice's mac
    assert read_link("garbage", notes, SECRET, now=1001) is None
