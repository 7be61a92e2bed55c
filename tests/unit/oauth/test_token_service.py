"""The token endpoint's domain logic: code exchange, refresh rotation with grace and reuse detection, revocation.

In-memory grant store, a local RSA key as signer and public keys, a fixed clock."""

from __future__ import annotations

import dataclasses
from typing import Any

import jwt
import pytest

from gateway.audit import AuditTrail
from gateway.config import GatewayConfig, OAuthPolicy, parse_config
from gateway.crypto import pkce
from gateway.identity.user import SignedInUser
from gateway.oauth import refresh_tokens
from gateway.oauth.authorization import new_code
from gateway.oauth.errors import OAuthError
from gateway.oauth.token_parts import TokenResponse
from gateway.oauth.token_requests import AuthorizationCodeRequest, RefreshTokenRequest
from gateway.oauth.token_service import TokenService
from gateway.routes import Route, RouteTable
from gateway.storage.records import AuthorizationCode
from gateway.tokens.access_token import AccessTokens
from infra.memory.keys import LocalRsaKey
from infra.memory.stores import MemoryAuditLog, MemoryGrantStore
from tests.support.runtime import BASE_URL, example_config_data

NOW = 1_800_000_000  # a fixed clock: codes, grants and access tokens are all judged at NOW
CLIENT = "client-1"
OTHER_CLIENT = "client-2"
REDIRECT = "http://127.0.0.1:33418/callback"
VERIFIER = "v" * 43 + "-._~0123456789"
SECRET = b"unit-test-shared-secret-0123456789abcdef"
POLICY = OAuthPolicy()
GRACE = POLICY.refresh_token_reuse_grace_seconds
KEY = LocalRsaKey()


def config(**server_changes: Any) -> GatewayConfig:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"].update(server_changes)
    return parse_config(data)


def route_of(cfg: GatewayConfig | None = None) -> Route:
    route = RouteTable(cfg or config(), BASE_URL).get("demo", "echo")
    assert route is not None
    return route


class Harness:
    def __init__(self, route: Route | None = None) -> None:
        self.route = route or route_of()
        self.grants = MemoryGrantStore()
        self.access_tokens = AccessTokens(KEY, KEY, 3600)
        self.service = TokenService(
            grants=self.grants,
            access_tokens=self.access_tokens,
            shared_secret=SECRET,
            policy=POLICY,
            access_token_ttl_seconds=1800,
        )
        self._codes = 0

    def code(self, **changes: Any) -> str:
        """Store an authorization code as /authorize would, and return the code."""
        self._codes += 1
        issued = new_code(
            route=self.route, client_id=CLIENT, redirect_uri=REDIRECT, code_challenge=pkce.s256(VERIFIER),
            scopes=("mcp", "offline_access"), user=SignedInUser("alice", "Alice", ("engineering",)), signed_in_at=NOW,
            now=NOW, lifetime_seconds=300,
        )  # fmt: skip
        self.grants.put_code(dataclasses.replace(issued.record, grant_id=f"grant-{self._codes}", **changes))
        return issued.value

    def exchange(self, code: str, client: str = CLIENT, now: int = NOW, **fields: Any) -> TokenResponse:
        request = AuthorizationCodeRequest.model_validate(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
            | fields
        )
        return self.service.exchange_code(self.route, client, request, now)

    def refresh(self, token: str, client: str = CLIENT, now: int = NOW, **fields: Any) -> TokenResponse:
        request = RefreshTokenRequest.model_validate({"grant_type": "refresh_token", "refresh_token": token} | fields)
        return self.service.refresh(self.route, client, request, now)

    def issued(self) -> tuple[TokenResponse, str]:
        """A completed exchange: the response and its grant id."""
        response = self.exchange(self.code())
        assert response.refresh_token is not None
        return response, refresh_tokens.parse(response.refresh_token).grant_id

    def status(self, grant_id: str) -> str:
        grant = self.grants.get_grant(grant_id)
        assert grant is not None
        return grant.status


def error_of(excinfo: pytest.ExceptionInfo[OAuthError]) -> str:
    return excinfo.value.error


# --- authorization_code -------------------------------------------------------------------------------------


def test_exchange_issues_an_access_token_for_the_route_and_a_refresh_token() -> None:
    # Given a code issued to CLIENT
    h = Harness()
    code = h.code()

    # When CLIENT redeems it with the right verifier and redirect URI
    response = h.exchange(code, resource=h.route.resource)

    # Then the RFC 6749 §5.1 response carries a Bearer token for the route and a refresh token
    body = response.body()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert body["scope"] == "mcp"  # offline_access is not an access-token scope
    claims = h.access_tokens.verify(response.access_token, route=h.route, now=NOW)
    assert claims.audience == h.route.resource
    assert claims.client_id == CLIENT
    assert claims.scopes == ("mcp",)
    assert claims.expires_at - claims.issued_at == 1800
    assert body["refresh_token"].startswith("grant-1.0.")
    # and the consent is remembered for (user, client, route), bound to the new grant
    consent = h.grants.get_consent(h.route.key, CLIENT, "alice")
    assert consent is not None
    assert consent.grant_id == "grant-1"


def test_exchange_tolerates_one_trailing_slash_and_upper_case_host_in_resource() -> None:
    h = Harness()
    upper = h.route.resource.replace("gw.example.com", "GW.Example.com") + "/"

    response = h.exchange(h.code(), resource=upper)

    assert response.access_token


def test_exchange_of_another_resource_is_invalid_target_and_consumes_nothing() -> None:
    h = Harness()
    code = h.code()

    with pytest.raises(OAuthError) as excinfo:
        h.exchange(code, resource="https://gw.example.com/demo/other/mcp")

    assert error_of(excinfo) == "invalid_target"
    assert h.exchange(code).access_token  # the code was not consumed


@pytest.mark.parametrize(
    ("changes", "fields", "client", "fragment"),
    [
        ({"expires_at": NOW}, {}, CLIENT, "expired"),
        ({}, {"redirect_uri": "http://127.0.0.1:33419/callback"}, CLIENT, "redirect_uri"),
        ({}, {"code_verifier": "w" * 43}, CLIENT, "code_verifier"),
        ({}, {}, OTHER_CLIENT, "another client"),
        ({"route_key": "demo/other"}, {}, CLIENT, "unknown"),
    ],
    ids=["expired", "wrong-redirect", "wrong-verifier", "wrong-client", "other-route"],
)
def test_bad_exchanges_are_invalid_grant_and_issue_nothing(
    changes: dict[str, Any], fields: dict[str, Any], client: str, fragment: str
) -> None:
    # Given a code, and a redemption that gets one thing wrong
    h = Harness()
    code = h.code(**changes)
    signed_before = KEY.sign_calls

    # When it is redeemed
    with pytest.raises(OAuthError) as excinfo:
        h.exchange(code, client=client, **fields)

    # Then it is invalid_grant saying what is wrong, nothing was signed and no grant exists
    assert error_of(excinfo) == "invalid_grant"
    assert fragment in excinfo.value.description
    assert KEY.sign_calls == signed_before
    assert h.grants.get_grant("grant-1") is None


def test_unknown_code_is_invalid_grant() -> None:
    h = Harness()

    with pytest.raises(OAuthError) as excinfo:
        h.exchange("made-up-code")

    assert error_of(excinfo) == "invalid_grant"


def test_replayed_code_is_refused_and_revokes_what_was_issued_from_it() -> None:
    # Given a code that was redeemed once
    h = Harness()
    code = h.code()
    first = h.exchange(code)
    assert first.refresh_token is not None

    # When it is presented again (RFC 6749 §4.1.2, §10.5)
    with pytest.raises(OAuthError) as excinfo:
        h.exchange(code, now=NOW + 1)

    # Then the replay is invalid_grant and the grant from the first redemption is revoked
    assert error_of(excinfo) == "invalid_grant"
    assert h.status("grant-1") == "revoked"
    with pytest.raises(OAuthError):
        h.refresh(first.refresh_token, now=NOW + 2)
    assert h.grants.get_consent(h.route.key, CLIENT, "alice") is None


@pytest.mark.parametrize(
    ("client", "verifier"), [(OTHER_CLIENT, VERIFIER), (CLIENT, "w" * 43), (OTHER_CLIENT, "w" * 43)]
)
def test_a_used_code_presented_by_another_client_or_without_its_verifier_revokes_nothing(
    client: str, verifier: str
) -> None:
    # Given alice's code, redeemed by her client
    h = Harness()
    code = h.code()
    first = h.exchange(code)

    # When someone else presents it: another (authenticated) client, or her client's id without the PKCE verifier
    with pytest.raises(OAuthError) as excinfo:
        h.exchange(code, client=client, now=NOW + 1, code_verifier=verifier)

    # Then it is refused, and her grant lives on: only the code's own client can prove a replay
    assert error_of(excinfo) == "invalid_grant"
    assert h.status("grant-1") == "active"
    assert h.refresh(first.refresh_token or "", now=NOW + 2).access_token


def test_a_lost_redemption_race_counts_as_a_replay() -> None:
    # Given a code that another container redeems between our read and our transaction
    h = Harness()
    code = h.code()
    real_get_code = h.grants.get_code

    def stale_read(code_hash: str, now: int) -> AuthorizationCode | None:
        stale = real_get_code(code_hash, now)
        h.grants.get_code = real_get_code  # type: ignore[method-assign]
        h.exchange(code)  # the other container wins
        return stale

    h.grants.get_code = stale_read  # type: ignore[method-assign]

    # When our redemption's transaction fails with the code already redeemed
    with pytest.raises(OAuthError) as excinfo:
        h.exchange(code)

    # Then it is invalid_grant and the winner's grant is revoked
    assert error_of(excinfo) == "invalid_grant"
    assert h.status("grant-1") == "revoked"


def test_no_refresh_token_when_the_route_disallows_them() -> None:
    h = Harness(route_of(config(refresh_tokens=False)))

    response = h.exchange(h.code())

    assert response.refresh_token is None
    assert "refresh_token" not in response.body()


def test_refresh_token_when_offline_access_was_granted_even_if_client_lacks_the_grant_type() -> None:
    h = Harness()
    request = AuthorizationCodeRequest(
        grant_type="authorization_code", code=h.code(), redirect_uri=REDIRECT, code_verifier=VERIFIER
    )
    response = h.service.exchange_code(h.route, CLIENT, request, NOW, client_supports_refresh=False)
    assert response.refresh_token is not None

    request = request.model_copy(update={"code": h.code(scopes=("mcp",))})
    response = h.service.exchange_code(h.route, CLIENT, request, NOW, client_supports_refresh=False)
    assert response.refresh_token is None


def test_exchange_signs_once() -> None:
    h = Harness()
    before = KEY.sign_calls

    h.exchange(h.code())

    assert KEY.sign_calls == before + 1


# --- refresh_token ------------------------------------------------------------------------------------------


def test_refresh_rotates_and_returns_a_new_access_token() -> None:
    # Given an issued refresh token
    h = Harness()
    first, grant_id = h.issued()
    assert first.refresh_token is not None

    # When it is used
    second = h.refresh(first.refresh_token, now=NOW + 60)

    # Then a new access token and the next generation come back, and the grant moved on
    assert second.refresh_token == refresh_tokens.derive(
        SECRET, grant_id, h.grants.get_grant(grant_id).refresh_salt,  # type: ignore[union-attr]
        1,
    )  # fmt: skip
    assert second.access_token != first.access_token
    grant = h.grants.get_grant(grant_id)
    assert grant is not None
    assert grant.refresh_generation == 1
    assert grant.rotated_at == NOW + 60
    assert grant.idle_expires_at == NOW + 60 + POLICY.refresh_token_idle_ttl_seconds


def test_the_replaced_token_within_grace_returns_the_same_successor_without_a_write() -> None:
    # Given a token that was just rotated
    h = Harness()
    first, grant_id = h.issued()
    assert first.refresh_token is not None
    second = h.refresh(first.refresh_token, now=NOW + 60)

    # When the replaced token is presented again within the grace period
    again = h.refresh(first.refresh_token, now=NOW + 60 + GRACE)

    # Then the same successor comes back, the grant is untouched and still active
    assert again.refresh_token == second.refresh_token
    grant = h.grants.get_grant(grant_id)
    assert grant is not None
    assert (grant.refresh_generation, grant.rotated_at, grant.status) == (1, NOW + 60, "active")
    # and the successor still works
    assert h.refresh(second.refresh_token or "", now=NOW + 61 + GRACE).refresh_token


def test_the_replaced_token_after_grace_is_reuse_and_revokes_the_family() -> None:
    h = Harness()
    first, grant_id = h.issued()
    assert first.refresh_token is not None
    second = h.refresh(first.refresh_token, now=NOW + 60)

    with pytest.raises(OAuthError) as excinfo:
        h.refresh(first.refresh_token, now=NOW + 61 + GRACE)

    assert error_of(excinfo) == "invalid_grant"
    assert h.status(grant_id) == "revoked"
    with pytest.raises(OAuthError):  # the whole family: the successor too
        h.refresh(second.refresh_token or "", now=NOW + 62 + GRACE)


def test_an_older_generation_is_reuse_even_within_grace() -> None:
    h = Harness()
    first, grant_id = h.issued()
    second = h.refresh(first.refresh_token or "", now=NOW + 1)
    h.refresh(second.refresh_token or "", now=NOW + 2)

    with pytest.raises(OAuthError) as excinfo:
        h.refresh(first.refresh_token or "", now=NOW + 3)

    assert error_of(excinfo) == "invalid_grant"
    assert h.status(grant_id) == "revoked"


def test_concurrent_loser_gets_the_same_successor() -> None:
    # Given two requests with the same token where the other one's rotation lands between our read and our write
    h = Harness()
    first, grant_id = h.issued()
    token = first.refresh_token or ""
    real_advance = h.grants.advance_refresh
    winner: list[TokenResponse] = []

    def race(grant_id: str, from_generation: int, rotated_at: int, idle_expires_at: int) -> bool:
        h.grants.advance_refresh = real_advance  # type: ignore[method-assign]
        winner.append(h.refresh(token, now=rotated_at))
        return real_advance(grant_id, from_generation, rotated_at, idle_expires_at)

    h.grants.advance_refresh = race  # type: ignore[method-assign]

    # When ours loses the conditional write
    ours = h.refresh(token, now=NOW + 5)

    # Then both hold the one current token and nothing is revoked
    assert ours.refresh_token == winner[0].refresh_token
    assert h.status(grant_id) == "active"
    assert h.grants.get_grant(grant_id).refresh_generation == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("idle", "absolute"),
    [(NOW + 100, NOW + 10_000), (NOW + 10_000, NOW + 100)],
    ids=["idle", "absolute"],
)
def test_an_expired_grant_cannot_be_refreshed(idle: int, absolute: int) -> None:
    h = Harness()
    first, grant_id = h.issued()
    grant = h.grants.get_grant(grant_id)
    assert grant is not None
    h.grants._grants[grant_id] = dataclasses.replace(grant, idle_expires_at=idle, absolute_expires_at=absolute)

    with pytest.raises(OAuthError) as excinfo:
        h.refresh(first.refresh_token or "", now=NOW + 100)

    assert error_of(excinfo) == "invalid_grant"
    assert "expired" in excinfo.value.description


def test_idle_expiry_never_passes_the_absolute_one() -> None:
    h = Harness()
    first, grant_id = h.issued()
    late = NOW + POLICY.refresh_token_absolute_ttl_seconds - 10
    grant = h.grants.get_grant(grant_id)
    assert grant is not None
    h.grants._grants[grant_id] = dataclasses.replace(grant, idle_expires_at=late + 1)  # kept alive by use

    h.refresh(first.refresh_token or "", now=late)

    grant = h.grants.get_grant(grant_id)
    assert grant is not None
    assert grant.idle_expires_at == grant.absolute_expires_at


def test_refresh_rechecks_the_access_policy_and_revokes_when_it_no_longer_allows_the_user() -> None:
    # Given a grant issued while everyone was allowed
    h = Harness()
    first, grant_id = h.issued()

    # When the route's policy now allows only bob
    h.route = route_of(config(access={"users": ["bob"]}))
    with pytest.raises(OAuthError) as excinfo:
        h.refresh(first.refresh_token or "", now=NOW + 1)

    # Then the refresh is refused and the grant revoked
    assert error_of(excinfo) == "invalid_grant"
    assert h.status(grant_id) == "revoked"


def test_refresh_allowed_by_group_policy() -> None:
    h = Harness()
    first, _ = h.issued()
    h.route = route_of(config(access={"groups": ["engineering"]}))

    assert h.refresh(first.refresh_token or "", now=NOW + 1).access_token


MAX_GROUP_AGE = POLICY.group_membership_max_age_seconds


def test_a_refresh_relying_on_groups_older_than_the_bound_must_sign_in_again() -> None:
    # Given alice's grant on a route that lets her in by her group (engineering), from a sign-in at NOW
    h = Harness(route_of(config(access={"groups": ["engineering"]})))
    first, grant_id = h.issued()
    assert MAX_GROUP_AGE == 12 * 3600  # the default

    # When the client refreshes within the bound, then it works
    second = h.refresh(first.refresh_token or "", now=NOW + MAX_GROUP_AGE)
    # When it refreshes past the bound (she may have left the group since), then it must sign her in again
    with pytest.raises(OAuthError) as excinfo:
        h.refresh(second.refresh_token or "", now=NOW + MAX_GROUP_AGE + 1)
    assert error_of(excinfo) == "invalid_grant" and "sign in again" in excinfo.value.description
    # And nothing is revoked: her remembered consent lets the new sign-in through without a question
    assert h.status(grant_id) == "active"


def test_the_group_bound_counts_from_the_sign_in_not_from_the_code() -> None:
    # Given a code issued at NOW from a sign-in an hour earlier (the user lingered on the consent page)
    h = Harness(route_of(config(access={"groups": ["engineering"]})))
    response = h.exchange(h.code(signed_in_at=NOW - 3600))
    # Then the bound ends an hour earlier than the code's age would say
    with pytest.raises(OAuthError):
        h.refresh(response.refresh_token or "", now=NOW + MAX_GROUP_AGE - 3600 + 1)


@pytest.mark.parametrize("access", [{}, {"users": ["alice"], "groups": ["engineering"]}])
def test_no_group_bound_where_groups_do_not_let_the_user_in(access: dict[str, Any]) -> None:
    # Given a route open to every user, or one that names alice herself
    h = Harness(route_of(config(access=access)))
    first, _ = h.issued()
    # Then her refresh a day later works
    assert h.refresh(first.refresh_token or "", now=NOW + 86400).access_token


def test_scope_may_narrow_but_not_widen() -> None:
    h = Harness()
    first, grant_id = h.issued()

    narrowed = h.refresh(first.refresh_token or "", now=NOW + 1, scope="mcp")
    assert narrowed.scope == ("mcp",)
    assert h.access_tokens.verify(narrowed.access_token, route=h.route, now=NOW + 1).scopes == ("mcp",)

    with pytest.raises(OAuthError) as excinfo:
        h.refresh(narrowed.refresh_token or "", now=NOW + 2, scope="mcp admin")
    assert error_of(excinfo) == "invalid_scope"
    assert "admin" in excinfo.value.description
    assert h.status(grant_id) == "active"


@pytest.mark.parametrize(
    "token",
    ["", "nonsense", "grant-1.0.short", "grant-1.01." + "A" * 43, "grant-1.0." + "A" * 43],
)
def test_malformed_or_forged_refresh_tokens_are_invalid_grant_and_revoke_nothing(token: str) -> None:
    h = Harness()
    first, grant_id = h.issued()
    h.refresh(first.refresh_token or "", now=NOW + 100)  # generation 0 is now an old one

    with pytest.raises(OAuthError) as excinfo:
        h.service.refresh(
            h.route,
            CLIENT,
            RefreshTokenRequest.model_construct(grant_type="refresh_token", refresh_token=token),
            NOW + 200,
        )

    assert error_of(excinfo) == "invalid_grant"
    assert h.status(grant_id) == "active"  # a forged old generation must not revoke the grant


def test_refresh_by_another_client_is_refused_without_revoking() -> None:
    h = Harness()
    first, grant_id = h.issued()

    with pytest.raises(OAuthError) as excinfo:
        h.refresh(first.refresh_token or "", client=OTHER_CLIENT)

    assert error_of(excinfo) == "invalid_grant"
    assert h.status(grant_id) == "active"


def test_refresh_of_a_revoked_grant_is_invalid_grant() -> None:
    h = Harness()
    first, grant_id = h.issued()
    h.grants.revoke_grant(grant_id, NOW, "test")

    with pytest.raises(OAuthError) as excinfo:
        h.refresh(first.refresh_token or "", now=NOW + 1)

    assert "revoked" in excinfo.value.description


def test_refresh_for_another_resource_is_invalid_target() -> None:
    h = Harness()
    first, _ = h.issued()

    with pytest.raises(OAuthError) as excinfo:
        h.refresh(first.refresh_token or "", resource="https://elsewhere.example.com/mcp")

    assert error_of(excinfo) == "invalid_target"


def test_refresh_when_the_route_stopped_issuing_refresh_tokens() -> None:
    h = Harness()
    first, _ = h.issued()
    h.route = route_of(config(refresh_tokens=False))

    with pytest.raises(OAuthError) as excinfo:
        h.refresh(first.refresh_token or "", now=NOW + 1)

    assert error_of(excinfo) == "invalid_grant"


# --- revocation (RFC 7009) -----------------------------------------------------------------------------------


def test_revoking_a_refresh_token_revokes_the_grant() -> None:
    h = Harness()
    first, grant_id = h.issued()

    h.service.revoke(h.route, CLIENT, first.refresh_token or "", "refresh_token", NOW + 1)

    assert h.status(grant_id) == "revoked"


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "something_else"])
def test_revoking_an_access_token_revokes_its_grant_whatever_the_hint(hint: str | None) -> None:
    h = Harness()
    first, grant_id = h.issued()

    h.service.revoke(h.route, CLIENT, first.access_token, hint, NOW + 1)

    assert h.status(grant_id) == "revoked"


def test_an_expired_access_token_still_identifies_its_grant() -> None:
    h = Harness()
    _, grant_id = h.issued()
    expired = h.access_tokens.issue(
        route=h.route, subject="alice", client_id=CLIENT, scopes=["mcp"], grant_id=grant_id,
        lifetime_seconds=60, now=NOW - 7200,
    )  # fmt: skip

    h.service.revoke(h.route, CLIENT, expired, "access_token", NOW)

    assert h.status(grant_id) == "revoked"


def test_an_unsigned_access_token_is_ignored() -> None:
    # Given a token that names the grant but is signed with a key we do not know
    h = Harness()
    _, grant_id = h.issued()
    forged = jwt.encode(
        {"iss": h.route.issuer, "aud": h.route.resource, "sub": "alice", "client_id": CLIENT, "gid": grant_id,
         "iat": NOW, "exp": NOW + 60, "jti": "x"},
        "not-our-key-but-long-enough-for-hs256-0123456789", algorithm="HS256",
        headers={"typ": "at+jwt", "kid": KEY.kid},
    )  # fmt: skip

    h.service.revoke(h.route, CLIENT, forged, None, NOW)

    assert h.status(grant_id) == "active"


@pytest.mark.parametrize("which", ["access", "refresh"])
def test_a_token_of_another_client_is_left_alone(which: str) -> None:
    h = Harness()
    first, grant_id = h.issued()
    token = first.access_token if which == "access" else first.refresh_token or ""

    h.service.revoke(h.route, OTHER_CLIENT, token, None, NOW + 1)

    assert h.status(grant_id) == "active"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "grant-9.0." + "A" * 43])
def test_unknown_tokens_are_silently_accepted(token: str) -> None:
    h = Harness()
    _, grant_id = h.issued()

    h.service.revoke(h.route, CLIENT, token, None, NOW)  # no exception: RFC 7009 §2.2 answers 200

    assert h.status(grant_id) == "active"


def test_the_life_of_a_grant_is_in_the_audit_trail() -> None:
    # Given a token service that records to an audit trail
    h = Harness()
    log = MemoryAuditLog()
    h.service._audit = AuditTrail(log, retention_days=1, clock=lambda: NOW)

    # When a code is exchanged, the refresh token used, used again after the grace period (reuse) and so revoked
    first, grant_id = h.issued()
    second = h.refresh(first.refresh_token or "", now=NOW + 60)
    with pytest.raises(OAuthError):
        h.refresh(first.refresh_token or "", now=NOW + 61 + GRACE)
    assert second.refresh_token

    # Then each step is an event naming the user, the client and the grant (and never a token)
    events = log.events("demo", since=0, until=NOW + 10_000)
    assert [event.kind for event in reversed(events)] == ["token.issued", "token.refreshed", "refresh.reuse_detected"]
    assert {(event.user_id, event.client_id, event.grant_id) for event in events} == {("alice", CLIENT, grant_id)}
    assert first.access_token not in repr(events) and (first.refresh_token or "x") not in repr(events)
