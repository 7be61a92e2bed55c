"""The authorization service (gateway.oauth.authorization): pending authorizations answered once, remembered
consent, codes and grants made by one factory, revocation audited; and the rule that the web layer reaches the grant
store only through it."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from gateway.audit import AuditTrail
from gateway.config import OAuthPolicy, parse_config
from gateway.crypto.hashing import hash_secret
from gateway.identity.user import SignedInUser
from gateway.oauth.authorization import AlreadyAnswered, AuthorizationService, grant_from_code, new_code
from gateway.routes import Route, RouteTable
from gateway.storage.records import Consent, PendingAuthorization
from infra.memory.stores import MemoryAuditLog, MemoryGrantStore
from tests.support.runtime import BASE_URL, example_config_data

NOW = 1_800_000_000
POLICY = OAuthPolicy()
ALICE = SignedInUser("alice", "Alice", ("engineering",))
WEB = Path(__file__).resolve().parents[3] / "functions" / "gateway" / "web"


def _route() -> Route:
    route = RouteTable(parse_config(example_config_data()), BASE_URL).get("demo", "echo")
    assert route is not None
    return route


class Harness:
    def __init__(self) -> None:
        self.route = _route()
        self.store = MemoryGrantStore()
        self.log = MemoryAuditLog()
        self.service = AuthorizationService(
            grants=self.store, policy=POLICY, audit=AuditTrail(self.log, 30, clock=lambda: NOW)
        )

    def signed_in_pending(self) -> PendingAuthorization:
        pending = self.service.start_stand_in(self.route, "client-1", "http://127.0.0.1:1/cb", "st", NOW)
        pending = self.service.signed_in(pending, ALICE, NOW + 5)
        self.service.hold(pending)
        return pending

    def kinds(self) -> list[str]:
        return [event.kind for event in self.log.events("demo", since=0, until=NOW + 10**6)]


def test_a_pending_authorization_yields_one_code_and_the_code_carries_the_sign_in() -> None:
    # Given alice signed in and approving
    h = Harness()
    pending = h.signed_in_pending()
    # When the code is issued, then issued again for the same pending authorization (a second submit)
    value = h.service.issue_code(h.route, pending, NOW + 10, approved=True)
    with pytest.raises(AlreadyAnswered):
        h.service.issue_code(h.route, pending, NOW + 11, approved=True)
    # Then one code exists, for alice, her groups and the time she signed in, and one consent.granted event
    code = h.store.get_code(hash_secret(value), NOW + 10)
    assert code is not None and (code.user_id, code.user_groups, code.signed_in_at) == ("alice", ALICE.groups, NOW + 5)
    assert code.expires_at == NOW + 10 + POLICY.authorization_code_ttl_seconds and len(h.store._codes) == 1
    assert h.kinds() == ["consent.granted"]
    assert h.service.held(pending.pending_id, NOW + 12) is None


def test_a_denial_consumes_the_pending_authorization_and_is_audited() -> None:
    h = Harness()
    pending = h.signed_in_pending()
    h.service.deny(h.route, pending, NOW + 10)
    with pytest.raises(AlreadyAnswered):  # approving after denying issues nothing
        h.service.issue_code(h.route, pending, NOW + 11, approved=True)
    assert h.store._codes == {} and h.kinds() == ["consent.denied"]


def test_a_pending_authorization_signed_in_as_someone_else_meanwhile_is_not_answered() -> None:
    # Given the consent page of alice, while the same pending authorization was signed in again as bob
    h = Harness()
    pending = h.signed_in_pending()
    h.service.hold(h.service.signed_in(pending, SignedInUser("bob"), NOW + 6))
    # Then alice's approval issues nothing
    with pytest.raises(AlreadyAnswered):
        h.service.issue_code(h.route, pending, NOW + 10, approved=True)
    assert h.store._codes == {}


def test_a_remembered_consent_holds_while_its_grant_is_usable_and_covers_the_scopes() -> None:
    h = Harness()
    pending = h.signed_in_pending()
    assert not h.service.remembered(h.route, pending, NOW)
    issued = new_code(
        route=h.route, client_id="client-1", redirect_uri="x", code_challenge="c", scopes=("mcp",), user=ALICE,
        signed_in_at=NOW, now=NOW, lifetime_seconds=60,
    )  # fmt: skip
    grant = grant_from_code(issued.record, h.route, POLICY, NOW)
    h.store.put_code(issued.record)
    consent = Consent(h.route.key, "client-1", "alice", ("mcp",), grant.grant_id, NOW)
    h.store.redeem_code(issued.record.code_hash, grant, consent, NOW)
    asking_for_mcp = dataclasses.replace(pending, scopes=("mcp",))
    assert h.service.remembered(h.route, asking_for_mcp, NOW + 1)
    # a request for more than was approved asks again
    assert not h.service.remembered(h.route, dataclasses.replace(pending, scopes=("mcp", "offline_access")), NOW + 1)
    h.service.revoke_grant(grant, NOW + 2, reason="user")
    assert not h.service.remembered(h.route, asking_for_mcp, NOW + 3)
    assert h.kinds() == ["grant.revoked"]


def test_a_grant_from_a_code_keeps_its_promised_id_and_never_idles_past_its_end() -> None:
    route = _route()
    issued = new_code(
        route=route, client_id="c", redirect_uri="x", code_challenge="c", scopes=("mcp",), user=ALICE,
        signed_in_at=None, now=NOW, lifetime_seconds=60,
    )  # fmt: skip
    short = OAuthPolicy(refresh_token_absolute_ttl_seconds=600, refresh_token_idle_ttl_seconds=3600)
    grant = grant_from_code(issued.record, route, short, NOW + 1)
    assert grant.grant_id == issued.record.grant_id and grant.user_groups == ALICE.groups
    assert grant.absolute_expires_at == NOW + 601 and grant.idle_expires_at == NOW + 601
    assert grant.signed_in_at == NOW  # an older code without a sign-in time: its own creation stands in


def test_the_web_layer_reaches_the_grant_store_only_through_the_authorization_service() -> None:
    # Every module of gateway/web: no GrantStore import and no `.grants` attribute (a store) anywhere
    offenders = []
    for path in sorted(WEB.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "grants":
                offenders.append(f"{path.name}:{node.lineno} .grants")
            if isinstance(node, ast.ImportFrom) and any(alias.name == "GrantStore" for alias in node.names):
                offenders.append(f"{path.name}:{node.lineno} imports GrantStore")
    assert offenders == []
