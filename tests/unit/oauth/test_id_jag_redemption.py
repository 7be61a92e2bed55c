"""ID-JAG redemption at /token (grant_type jwt-bearer; draft-ietf-oauth-identity-assertion-authz-grant; the MCP
extension io.modelcontextprotocol/enterprise-managed-authorization), over HTTP with an in-memory runtime: the
enterprise IdP's keys on a real HTTPS server, ID-JAGs signed with its key. Each broken assertion is a 4xx that says
why."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.net.ssrf import SafeFetcher
from gateway.oauth.key_sets import KeySetSource
from gateway.routes import Route
from gateway.runtime import Runtime
from gateway.web.metadata.app import create_app as metadata_app
from gateway.web.token.app import create_app
from tests.support.jose_keys import SigningKey, unsigned
from tests.support.runtime import BASE_URL, example_config_data, memory_runtime
from tests.unit.net.https_server import LocalHttps, Reply, local_https

IDP = "https://idp.example.com"
IDP_KEY = SigningKey()
ISSUER = f"{BASE_URL}/demo/echo"
RESOURCE = f"{ISSUER}/mcp"
TOKEN = "/demo/echo/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AGENT, AGENT_SECRET = "enterprise-agent", "agent-secret"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalHttps]:
    with local_https() as running:
        running.replies["/idp-keys"] = Reply(body=json.dumps(IDP_KEY.jwks()).encode())
        yield running


@pytest.fixture
def runtime(server: LocalHttps) -> Runtime:
    data = example_config_data()
    demo = data["workspaces"]["demo"]
    demo["clients"] = [
        {"client_id": AGENT, "client_name": "Enterprise agent", "client_secret": f"plain:{AGENT_SECRET}",
         "redirect_uris": ["http://127.0.0.1/cb"]},
        {"client_id": "other-agent", "client_name": "Another agent", "client_secret": "plain:other-secret",
         "redirect_uris": ["http://127.0.0.1/cb"]},
    ]  # fmt: skip
    demo["servers"]["echo"]["scopes"] = ["mcp", "mcp.write"]
    demo["servers"]["engineering"] = {
        "upstream": "http://127.0.0.1:9001/mcp", "access": {"groups": ["engineering"]},
    }  # fmt: skip
    demo["enterprise_authorization"] = {
        "issuers": [{"issuer": IDP, "jwks_uri": server.url("/idp-keys", host="cimd.test"), "clients": [AGENT],
                     "servers": ["echo", "engineering"]}],
    }  # fmt: skip
    runtime = memory_runtime(parse_config(data))

    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    fetcher = SafeFetcher(allow_private=True, verify=server.client_context(), resolver=to_loopback)
    runtime.__dict__["key_sets"] = KeySetSource(fetcher)
    return runtime


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), raise_server_exceptions=False)


def id_jag(now: int, key: SigningKey = IDP_KEY, typ: str = "oauth-id-jag+jwt", **changes: Any) -> str:
    claims: dict[str, Any] = {
        "iss": IDP, "sub": "alice@corp", "aud": ISSUER, "resource": RESOURCE, "client_id": AGENT,
        "jti": secrets.token_urlsafe(12), "iat": now, "exp": now + 300, "scope": "mcp",
        "name": "Alice Corp", "groups": ["engineering"],
    }  # fmt: skip
    claims.update(changes)
    return key.sign({name: value for name, value in claims.items() if value is not None}, typ=typ)


def redeem(client: TestClient, assertion: str, *, who: tuple[str, str] = (AGENT, AGENT_SECRET), **form: str) -> Any:
    return client.post(TOKEN, data={"grant_type": JWT_BEARER, "assertion": assertion, **form}, auth=who)


def test_an_id_jag_is_redeemed_for_an_access_token_on_a_grant_of_its_own(client: TestClient, runtime: Runtime) -> None:
    # Given an ID-JAG the trusted IdP issued to the agent for this route
    now = runtime.now()

    # When the agent redeems it (authenticated with its own secret)
    response = redeem(client, id_jag(now))

    # Then it gets the route's audience-bound token for the user, without a refresh token
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "mcp" and "refresh_token" not in body
    claims = runtime.access_tokens.verify(body["access_token"], route=echo(runtime))
    assert claims.user_id == "alice@corp" and claims.client_id == AGENT and claims.audience == RESOURCE

    # And the grant is marked as obtained by ID-JAG, listed for the user, audited with the issuer
    grant = runtime.grants.get_grant(claims.grant_id)
    assert grant is not None and grant.obtained_by == "id_jag" and grant.user_name == "Alice Corp"
    assert [g.grant_id for g in runtime.grants.grants_of_user("demo", "alice@corp")] == [grant.grant_id]
    events = runtime.audit_log.events("demo", since=now - 10, until=now + 10)
    issued = [e for e in events if e.kind == "token.issued"]
    assert issued and issued[0].detail["grant_type"] == "jwt-bearer" and issued[0].detail["issuer"] == IDP

    # And revoking the grant ends the token (the proxy's grant check)
    runtime.authorization.revoke_grant(grant, now, reason="revoked by an administrator")
    assert not runtime.grant_status.is_active(grant.grant_id, now)


def test_scopes_are_the_requested_ones_that_the_id_jag_grants(client: TestClient, runtime: Runtime) -> None:
    now = runtime.now()
    both = redeem(client, id_jag(now, scope="mcp mcp.write"), scope="mcp.write")
    assert both.status_code == 200 and both.json()["scope"] == "mcp.write"
    none_left = redeem(client, id_jag(now, scope="mcp"), scope="mcp.write")
    assert none_left.status_code == 400 and none_left.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "https://other.example/demo/echo"}, "aud must be this authorization server"),
        ({"resource": f"{BASE_URL}/demo/toolbox/mcp"}, "resource must be this MCP server"),
        ({"resource": None}, "resource must be this MCP server"),
        ({"client_id": "other-agent"}, "issued to another client"),
        ({"exp": -120}, "expired"),
        ({"exp": 7200}, "too far ahead"),
        ({"iat": 600}, "issued in the future"),
        ({"iss": "https://untrusted.example"}, "not trusted"),
        ({"sub": "service:ci"}, "reserved"),
        ({"jti": None}, "'jti'"),
    ],
    ids=[
        "wrong-aud",
        "wrong-resource",
        "no-resource",
        "wrong-client",
        "expired",
        "exp-too-far",
        "iat-future",
        "untrusted-issuer",
        "service-subject",
        "no-jti",
    ],
)
def test_a_broken_id_jag_is_invalid_grant_with_the_reason(
    client: TestClient, runtime: Runtime, changes: dict[str, Any], reason: str
) -> None:
    now = runtime.now()
    timed = {k: now + v if k in ("exp", "iat") and v is not None else v for k, v in changes.items()}
    response = redeem(client, id_jag(now, **timed))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant" and reason in response.json()["error_description"]


def test_a_replayed_id_jag_is_refused(client: TestClient, runtime: Runtime) -> None:
    assertion = id_jag(runtime.now())
    assert redeem(client, assertion).status_code == 200
    replay = redeem(client, assertion)
    assert replay.status_code == 400 and "already redeemed" in replay.json()["error_description"]


def test_forged_unsigned_and_mistyped_id_jags_are_refused(client: TestClient, runtime: Runtime) -> None:
    now = runtime.now()
    forged = id_jag(now, key=SigningKey(kid=IDP_KEY.kid))
    claims = {"iss": IDP, "sub": "alice@corp", "aud": ISSUER, "resource": RESOURCE, "client_id": AGENT,
              "jti": "j", "iat": now, "exp": now + 60}  # fmt: skip
    cases = {
        forged: "does not verify",
        unsigned(claims, typ="oauth-id-jag+jwt"): "not accepted",
        id_jag(now, typ="JWT"): "typ must be oauth-id-jag+jwt",
        "garbage": "three base64url parts",
    }
    for assertion, reason in cases.items():
        response = redeem(client, assertion)
        assert response.status_code == 400 and reason in response.json()["error_description"], response.text


def test_a_client_the_issuer_does_not_name_may_not_redeem(client: TestClient, runtime: Runtime) -> None:
    response = redeem(client, id_jag(runtime.now(), client_id="other-agent"), who=("other-agent", "other-secret"))
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_the_routes_access_policy_applies_to_the_id_jags_claims(client: TestClient, runtime: Runtime) -> None:
    now = runtime.now()
    resource = f"{BASE_URL}/demo/engineering/mcp"
    in_group = client.post(
        "/demo/engineering/token", auth=(AGENT, AGENT_SECRET),
        data={"grant_type": JWT_BEARER, "assertion": id_jag(now, aud=f"{BASE_URL}/demo/engineering",
                                                             resource=resource)},
    )  # fmt: skip
    assert in_group.status_code == 200, in_group.text
    outsider = client.post(
        "/demo/engineering/token", auth=(AGENT, AGENT_SECRET),
        data={"grant_type": JWT_BEARER, "assertion": id_jag(now, aud=f"{BASE_URL}/demo/engineering",
                                                             resource=resource, groups=["sales"])},
    )  # fmt: skip
    assert outsider.status_code == 400 and "access policy" in outsider.json()["error_description"]


def test_a_route_without_trusted_issuers_neither_offers_nor_accepts_the_grant(
    client: TestClient, runtime: Runtime
) -> None:
    # Given route toolbox, which no issuer serves, and route echo, which one does
    metadata = TestClient(metadata_app(runtime))
    echo = metadata.get("/.well-known/oauth-authorization-server/demo/echo").json()
    toolbox = metadata.get("/.well-known/oauth-authorization-server/demo/toolbox").json()

    # Then only echo advertises the grant type and the ID-JAG profile
    assert JWT_BEARER in echo["grant_types_supported"]
    assert echo["authorization_grant_profiles_supported"] == ["urn:ietf:params:oauth:grant-profile:id-jag"]
    assert JWT_BEARER not in toolbox["grant_types_supported"]
    assert "authorization_grant_profiles_supported" not in toolbox

    # And toolbox's token endpoint answers unsupported_grant_type
    response = client.post(
        "/demo/toolbox/token", auth=(AGENT, AGENT_SECRET), data={"grant_type": JWT_BEARER, "assertion": "x.y.z"}
    )
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def echo(runtime: Runtime) -> Route:
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    return route
