"""Property-based fuzz of every public endpoint: whatever a client sends, the gateway answers 2xx-4xx, never 5xx.

Each function's real app runs behind Mangum, as on Lambda, on payload-2.0 events that API Gateway would send for the
template's routes (``infra.lambda_event``), with an in-memory runtime. Requests are drawn by hypothesis from the
template's routes and from random paths, with methods, query parameters, headers (valid and forged tokens, cookies,
session ids, content types) and bodies (random bytes, JSON of any shape, hostile nesting, forms with the OAuth
parameter names) mixed. The proxy's upstream is a local MCP server that answers any request without failing, so
a 5xx could only come from the gateway.

The budget is fixed (``EXAMPLES_PER_FUNCTION`` per function, derandomized so every run tries the same inputs);
``pytest -s`` prints how many requests each function answered and their statuses.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, cast
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mangum import Mangum
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.config import parse_config
from gateway.crypto.pkce import s256
from gateway.identity.user import SignedInUser
from gateway.runtime import Runtime
from gateway.web.admin import app as admin_app
from gateway.web.authorize import app as authorize_app
from gateway.web.common import session
from gateway.web.metadata import app as metadata_app
from gateway.web.proxy import app as proxy_app
from gateway.web.register import app as register_app
from gateway.web.token import app as token_app
from infra.devserver import REPO_ROOT
from infra.lambda_event import HttpApiRoutes, HttpRequest, build_event
from infra.placeholders import LOCAL_REDIRECT_URI, ensure_local_client, grant_backed_token
from infra.template import functions, load_template
from tests.support.hostile_json import DEEP_PARAMS, DEEP_SMALL, DEEP_SMALL_OBJECT, MCP_HOSTILE_BODIES
from tests.support.jose_keys import SigningKey, client_assertion, dpop_proof, unsigned
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

EXAMPLES_PER_FUNCTION = 500
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
APPS: dict[str, Callable[[Any], Any]] = {
    "metadata": metadata_app.create_app,
    "register": register_app.create_app,
    "authorize": authorize_app.create_app,
    "token": token_app.create_app,
    "proxy": proxy_app.create_app,
    "admin_console": admin_app.create_app,  # the admin console and its JSON API
}
OAUTH_PARAMETERS = [
    "response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "state", "scope",
    "resource", "code", "code_verifier", "grant_type", "refresh_token", "token", "token_type_hint", "iss", "error",
    "client_secret", "for", "csrf", "decision", "username", "password", "redirect_uris", "client_name",
    "assertion", "client_assertion", "client_assertion_type",
]  # fmt: skip
FUZZ_KEY = SigningKey()  # a pre-registered client's key (private_key_jwt), and the one of DPoP proofs
METHODS = ["GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"]
# Where the admin function's ``{proxy+}`` leads: the console's pages and forms, its JSON API, and the paths around them
ADMIN_PATHS = [
    "", "clients", "grants", "issuances", "audit", "funnel", "keys", "users", "confirm", "act", "sign-out",
    "sign-in", "api/session", "api/overview", "api/clients", "api/grants", "api/issuances", "api/audit",
    "api/audit/export", "api/funnel", "api/keys", "api/users/alice", "api/grants/revoke", "api/clients/revoke",
    "api/keys/revoke", "api/connections/disconnect", "api/users/offboard", "api/openapi.json", "api", "api/nothing",
]  # fmt: skip
ADMIN_QUERIES = ["kind", "user", "client", "route", "since", "until", "window", "format", "cursor", "limit", "id"]
CONTENT_TYPES = [
    "application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x",
    "application/json; charset=utf-16", "", "text/event-stream",
]  # fmt: skip

answered: dict[str, Counter[int]] = {}


async def tolerant_mcp_server(request: Request, body: bytes) -> Response:
    """An upstream that answers everything without failing: results for requests, 202 for the rest."""
    if request.method == "DELETE":
        return Response(status_code=200)
    if request.method == "GET":
        return Response(status_code=405)
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}, 400)
    if isinstance(message, dict) and "method" in message and "id" in message:
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {}})
    return Response(status_code=202)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        running.answer = tolerant_mcp_server
        yield running


@pytest.fixture(scope="module")
def gateway(upstream: ScriptedUpstream) -> Gateway:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream.url
    data["workspaces"]["demo"]["servers"]["toolbox"]["upstreams"]["demo"]["url"] = upstream.url  # a virtual route
    data["workspaces"]["demo"]["clients"] = [
        {"client_id": "fuzz-keys", "client_name": "Fuzz (private_key_jwt)", "jwks": FUZZ_KEY.jwks(),
         "service_identity": "service:fuzz", "dpop_bound_access_tokens": True},
    ]  # fmt: skip
    # ID-JAGs of an issuer whose keys sit on an address the SSRF guard refuses (nothing is fetched)
    data["workspaces"]["demo"]["enterprise_authorization"] = {
        "issuers": [{"issuer": "https://idp.example", "jwks_uri": "https://127.0.0.1:9/keys", "clients": ["fuzz-keys"]}]
    }
    return Gateway(memory_runtime(parse_config(data)))


class Gateway:
    """The template's routes, each served by its function's app behind Mangum, as API Gateway and Lambda would."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.routes: HttpApiRoutes[str] = HttpApiRoutes()
        self.paths: dict[str, list[tuple[str, str]]] = {name: [] for name in APPS}
        for spec in functions(load_template(REPO_ROOT / "template.yaml")):
            name = spec.handler.split(".")[0].removeprefix("oauth_")
            for http_route in spec.routes:
                self.routes.add(http_route.method, http_route.path, name)
                self.paths[name].append((http_route.method, http_route.path))
        self.handlers = {name: Mangum(factory(cast(Any, runtime)), lifespan="off") for name, factory in APPS.items()}
        route = runtime.routes.get("demo", "echo")
        assert route is not None
        self.token = grant_backed_token(runtime, route, subject="alice")
        toolbox = runtime.routes.get("demo", "toolbox")
        assert toolbox is not None and toolbox.is_virtual
        self.virtual_token = grant_backed_token(runtime, toolbox, subject="alice")
        # Values that pass the first checks, so that requests also reach the deeper ones
        self.client_id = ensure_local_client(runtime, route)
        self.authorize_params = {
            "response_type": "code", "client_id": self.client_id, "redirect_uri": LOCAL_REDIRECT_URI,
            "code_challenge": s256("v" * 43), "code_challenge_method": "S256", "state": "st", "scope": "mcp",
            "resource": route.resource,
        }  # fmt: skip
        now = runtime.now()
        self.values = [
            self.client_id, LOCAL_REDIRECT_URI, s256("v" * 43), "S256", "code", "mcp", "mcp offline_access",
            route.resource, "authorization_code", "refresh_token", "none", "v" * 43, "access_token",
            "client_credentials", JWT_BEARER, ASSERTION_TYPE, "fuzz-keys",
            client_assertion(FUZZ_KEY, "fuzz-keys", route.issuer, now),
            FUZZ_KEY.sign({"iss": "https://idp.example", "sub": "alice", "aud": route.issuer, "jti": "j",
                           "resource": route.resource, "client_id": "fuzz-keys", "iat": now, "exp": now + 60},
                          typ="oauth-id-jag+jwt"),
            unsigned({"iss": "https://idp.example"}, typ="oauth-id-jag+jwt"),
        ]  # fmt: skip
        self.dpop_proofs = [
            dpop_proof(FUZZ_KEY, "POST", route.endpoint("token"), now),
            dpop_proof(FUZZ_KEY, "POST", route.resource, now, access_token=self.token),
            dpop_proof(FUZZ_KEY, "GET", route.resource, now - 3600),
            unsigned({"htm": "POST"}, typ="dpop+jwt"),
        ]
        # The admin console's browsers: signed in as an admin of the workspace (alice) or as a user who is not (bob)
        self.sessions = {user: self._session_cookie(user) for user in ("alice", "bob")}
        self.values += [csrf for _, csrf in self.sessions.values()] + ["tool.called", "authorize.started", "csv"]

    def _session_cookie(self, user: str) -> tuple[str, str]:
        """The cookie header of ``user``'s sign-in session in workspace demo, and the session's console CSRF token."""
        response = Response()
        base_url = "https://localhost"  # what the functions learn from the events (no Host header: localhost)
        secret, now = self.runtime.shared_secret, self.runtime.now()
        session.start(response, SignedInUser(user, user.title()), "demo", base_url=base_url, secret=secret, now=now)
        cookie = response.headers["set-cookie"].split(";", 1)[0]
        name, _, value = cookie.partition("=")
        started = session.current({name: value}, "demo", base_url=base_url, secret=secret, now=now)
        assert started is not None
        return cookie, session.csrf_token(started, secret, "admin-console")

    def send(self, request: HttpRequest) -> tuple[str, int]:
        match = self.routes.match(request.method, request.raw_path)
        if match is None:
            return "api gateway", 404
        event = build_event(request, match, scheme="https")
        response = self.handlers[match.target](event, cast(Any, None))
        return match.target, int(response["statusCode"])


# --- strategies ---------------------------------------------------------------------------------------------

# Strings an attacker may choose so that they look like the gateway's own credentials (a JWT, an API key): every
# string field (DCR metadata, /revoke's parameters, tool names, ...) sometimes carries one (issue "Fail closed").
secret_shaped = st.tuples(st.sampled_from(["eyJ", "eyJhbGciOi", "mcpgw_", "Bearer eyJ"]), st.text(max_size=30)).map(
    "".join
)
texts = st.text(max_size=40) | secret_shaped
slugs = st.sampled_from(["demo", "echo", "oidc", "acme", "", ".well-known", "..", "%2F"]) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~%", max_size=12
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(OAUTH_PARAMETERS) | texts, children, max_size=5)
    ),
    max_leaves=25,
)
MCP_METHODS = ["initialize", "tools/call", "tools/list", "ping", "notifications/initialized"]
mcp_messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "method": st.sampled_from(MCP_METHODS) | texts},
    optional={"id": st.integers() | texts | st.none() | st.booleans(), "params": json_values},
)
# tools/call as clients send them, some naming a tool like a credential (the audit trail records tool names)
tool_calls = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": st.integers(0, 9) | texts,
        "method": st.just("tools/call"),
        "params": st.fixed_dictionaries(
            {"name": st.sampled_from(["echo", "demo_say", "other_tool"]) | texts}, optional={"arguments": json_values}
        ),
    },
)
MCP_VERSIONS = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
forms = st.dictionaries(st.sampled_from(OAUTH_PARAMETERS) | texts, texts, max_size=8).map(
    lambda form: urlencode(form).encode()
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    mcp_messages.map(lambda value: json.dumps(value).encode()),
    st.lists(mcp_messages, max_size=3).map(lambda value: json.dumps(value).encode()),
    tool_calls.map(lambda value: json.dumps(value).encode()),
    st.lists(tool_calls | mcp_messages, max_size=3).map(lambda value: json.dumps(value).encode()),
    st.sampled_from(sorted(MCP_HOSTILE_BODIES.values())),
    forms,
    st.sampled_from([DEEP_SMALL, DEEP_SMALL_OBJECT, DEEP_PARAMS, b"[" * 2000, b'{"a":' * 900, b"\xff\xfe{}"]),
)


REDIRECT_URIS = [LOCAL_REDIRECT_URI, "https://app.example.com/cb", "cursor://x/cb"]
registrations = st.fixed_dictionaries(
    {"redirect_uris": st.lists(st.sampled_from(REDIRECT_URIS) | texts, max_size=3)},
    optional={
        "client_name": texts,
        "token_endpoint_auth_method": st.sampled_from(["none", "client_secret_basic", "client_secret_post"]) | texts,
        "grant_types": st.lists(st.sampled_from(["authorization_code", "refresh_token"]) | texts, max_size=3),
        "scope": texts,
        "application_type": st.sampled_from(["web", "native"]) | texts,
        "client_uri": texts,
        "logo_uri": texts,
    },
).map(lambda value: json.dumps(value).encode())  # fmt: skip


def _path(template_path: str, parts: list[str]) -> str:
    segments = []
    for segment in template_path.strip("/").split("/"):
        if segment.startswith("{"):
            segments.append(quote(parts.pop(0) if parts else "demo", safe="%"))
        else:
            segments.append(segment)
    return "/" + "/".join(segments)


@st.composite
def requests(draw: st.DrawFn, gateway: Gateway, function: str) -> HttpRequest:
    method, template_path = draw(st.sampled_from(gateway.paths[function]))
    if method == "ANY" or draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(METHODS))
        if function == "admin_console" and draw(st.integers(0, 3)):  # ANY routes: mostly what the console answers
            method = draw(st.sampled_from(["GET", "GET", "POST"]))
    # Mostly the configured route (so requests reach the handlers' logic), sometimes anything at all.
    server = draw(st.sampled_from(["echo", "echo", "toolbox"]))  # a plain and a virtual route
    parts = ["demo", server] if draw(st.integers(0, 3)) else draw(st.lists(slugs, min_size=2, max_size=2))
    on_toolbox, workspace = parts[1] == "toolbox", parts[0]
    path = _path(template_path, parts)
    if function == "admin_console" and template_path.endswith("{proxy+}") and draw(st.integers(0, 4)):
        path = f"/{quote(workspace, safe='%')}/admin/{draw(st.sampled_from(ADMIN_PATHS))}"
    values = st.sampled_from(gateway.values) | texts
    names = st.sampled_from(OAUTH_PARAMETERS + (ADMIN_QUERIES if function == "admin_console" else [])) | texts
    pairs = draw(st.lists(st.tuples(names, values), max_size=8))
    if draw(st.booleans()):  # a complete authorization request, some of it changed
        complete = {
            key: draw(st.sampled_from([value, value, value]) | values)
            for key, value in gateway.authorize_params.items()
        }
        pairs = list(complete.items()) + pairs[:2]
    query = urlencode(pairs)
    headers: list[tuple[str, str]] = []
    valid = f"Bearer {gateway.virtual_token if on_toolbox else gateway.token}"
    authorization = draw(
        st.sampled_from(["", valid, valid, valid, "Bearer ", "Basic Og==", "bearer x.y.z", f"DPoP {gateway.token}"])
        | texts.map(lambda text: f"Bearer {text}")
        | texts.map(lambda text: f"DPoP {text}")
    )
    if authorization:
        headers.append(("authorization", authorization))
    if function == "admin_console" and draw(st.integers(0, 3)):  # mostly a signed-in browser, an admin or not
        cookie, csrf = gateway.sessions[draw(st.sampled_from(["alice", "alice", "bob"]))]
        headers.append(("cookie", cookie))
        if draw(st.booleans()):
            headers.append(("x-csrf-token", draw(st.sampled_from([csrf, csrf, ""]) | texts)))
    for _ in range(draw(st.integers(0, 2))):  # DPoP proofs (RFC 9449): none, one, or two (refused)
        proof = draw(st.sampled_from(gateway.dpop_proofs) | texts.filter(lambda t: "\r" not in t and "\n" not in t))
        headers.append(("dpop", proof.encode("utf-8", "surrogatepass").decode("latin-1")))
    form = st.dictionaries(st.sampled_from(OAUTH_PARAMETERS), values, max_size=8).map(lambda f: urlencode(f).encode())
    body = b""
    if method not in ("GET", "HEAD") or draw(st.integers(0, 9)) == 0:
        body = draw(bodies | form | registrations)
    matching = "application/json" if body[:1] in (b"{", b"[") else "application/x-www-form-urlencoded"
    content_type = draw(st.sampled_from([matching, matching, matching, *CONTENT_TYPES]))
    if content_type:
        headers.append(("content-type", content_type))
    if draw(st.integers(0, 2)) == 0:  # a revision whose rules (batches, routing headers) the gateway applies
        headers.append(("mcp-protocol-version", draw(st.sampled_from(MCP_VERSIONS))))
        if draw(st.booleans()):
            headers.append(("mcp-method", draw(st.sampled_from(["tools/call", "tools/list"]) | texts)))
            headers.append(("mcp-name", draw(st.sampled_from(["echo", "=?base64?ZWNobw==?="]) | texts)))
    for name in ("cookie", "mcp-session-id", "mcp-protocol-version", "origin", "accept", "last-event-id"):
        if draw(st.integers(0, 3)) == 0:
            value = draw(texts.filter(lambda text: "\r" not in text and "\n" not in text))
            headers.append((name, value.encode("utf-8", "surrogatepass").decode("latin-1")))
    return HttpRequest(method=method, raw_path=path, raw_query=query, headers=headers, body=body)


# --- the fuzz -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", sorted(APPS))
def test_no_request_makes_the_gateway_answer_5xx(gateway: Gateway, function: str) -> None:
    seen = answered.setdefault(function, Counter())

    @settings(
        max_examples=EXAMPLES_PER_FUNCTION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests(gateway, function))
    def one_request(request: HttpRequest) -> None:
        target, status = gateway.send(request)
        seen[status] += 1
        assert status < 500, f"{target} answered {status} to {request.method} {request.raw_path}?{request.raw_query}"

    one_request()
    assert sum(seen.values()) >= EXAMPLES_PER_FUNCTION  # the budget was spent, not skipped
    assert set(seen) - {404, 405}, f"{function}: every request was turned away at the door ({dict(seen)})"
    print(f"\nfuzz {function}: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}")


# --- credential-shaped strings where the audit trail records them ----------------------------------------------

DCR_STRING_FIELDS = [
    "client_name", "client_uri", "logo_uri", "scope", "software_id", "software_version", "application_type",
    "token_endpoint_auth_method", "redirect_uris", "grant_types", "response_types",
]  # fmt: skip
REVOKE_FIELDS = ["token_type_hint", "token", "client_id", "client_secret", "unknown_parameter"]


@st.composite
def hostile_registrations(draw: st.DrawFn) -> HttpRequest:
    """A valid registration with one string field (or one item of a list field) shaped like a credential."""
    metadata: dict[str, Any] = {"redirect_uris": [LOCAL_REDIRECT_URI], "client_name": "Fuzzed client"}
    field, value = draw(st.sampled_from(DCR_STRING_FIELDS)), draw(secret_shaped)
    if field.endswith("s") and field != "redirect_uris":
        metadata[field] = [value]
    elif field == "redirect_uris":
        metadata[field] = [LOCAL_REDIRECT_URI, value]
    else:
        metadata[field] = value
    return HttpRequest(
        method="POST", raw_path="/demo/echo/register", raw_query="",
        headers=[("content-type", "application/json")], body=json.dumps(metadata).encode(),
    )  # fmt: skip


@pytest.mark.parametrize("endpoint", ["register", "revoke"])
def test_credential_shaped_strings_in_any_field_never_make_a_5xx(upstream: ScriptedUpstream, endpoint: str) -> None:
    """The audit trail redacts what looks like a credential instead of failing the request (issue "Fail closed",
    item 5): a registration stores its client and answers 201, a revocation revokes and answers 200."""
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream.url
    data["workspaces"]["demo"]["servers"]["toolbox"]["upstreams"]["demo"]["url"] = upstream.url
    # a gateway of its own, without the per-address limits (every request comes from one address)
    gateway = Gateway(memory_runtime(parse_config(data), rate_limit_register_per_ip=0, rate_limit_token_per_ip=0))
    route = gateway.runtime.routes.get("demo", "echo")
    assert route is not None
    seen: Counter[int] = Counter()

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(registration=hostile_registrations(), field=st.sampled_from(REVOKE_FIELDS), value=secret_shaped)
    def one_request(registration: HttpRequest, field: str, value: str) -> None:
        if endpoint == "register":
            request = registration
        else:  # a valid revocation of a fresh token, one of its fields replaced
            token = grant_backed_token(gateway.runtime, route, subject="fuzz", client_id=gateway.client_id)
            form = {"token": token, "token_type_hint": "access_token", "client_id": gateway.client_id} | {field: value}
            request = HttpRequest(
                method="POST", raw_path="/demo/echo/revoke", raw_query="",
                headers=[("content-type", "application/x-www-form-urlencoded")], body=urlencode(form).encode(),
            )  # fmt: skip
        target, status = gateway.send(request)
        seen[status] += 1
        assert status < 500, f"{target} answered {status} to {request.body!r}"

    one_request()
    assert seen[201 if endpoint == "register" else 200] > 0, dict(seen)  # the requests reached the audit trail


# --- the token endpoint's new inputs: client assertions, ID-JAGs, DPoP proofs --------------------------------


def test_assertions_id_jags_and_dpop_proofs_never_make_a_5xx(upstream: ScriptedUpstream) -> None:
    # Given a gateway without rate limits (so every request reaches the checks), a key client and a trusted issuer
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream.url
    data["workspaces"]["demo"]["clients"] = [
        {"client_id": "fuzz-keys", "client_name": "Fuzz", "jwks": FUZZ_KEY.jwks(), "service_identity": "service:f"},
    ]
    data["workspaces"]["demo"]["enterprise_authorization"] = {
        "issuers": [{"issuer": "https://idp.example", "jwks_uri": "https://127.0.0.1:9/keys", "clients": ["fuzz-keys"]}]
    }
    gateway = Gateway(memory_runtime(parse_config(data), rate_limit_token_per_ip=0, rate_limit_token_per_client=0))
    jwts = st.sampled_from(gateway.values[-3:] + gateway.dpop_proofs) | texts
    seen: Counter[int] = Counter()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(
        grant_type=st.sampled_from([JWT_BEARER, "client_credentials", "refresh_token"]) | texts,
        assertion=jwts, client_assertion_value=jwts,
        assertion_type=st.sampled_from([ASSERTION_TYPE, ""]) | texts,
        proofs=st.lists(st.sampled_from(gateway.dpop_proofs) | texts.filter(lambda t: "\r" not in t and "\n" not in t),
                        max_size=2),
    )  # fmt: skip
    def one_request(
        grant_type: str, assertion: str, client_assertion_value: str, assertion_type: str, proofs: list[str]
    ) -> None:
        form = {"grant_type": grant_type, "assertion": assertion, "client_assertion": client_assertion_value,
                "client_assertion_type": assertion_type, "client_id": "fuzz-keys"}  # fmt: skip
        headers = [("content-type", "application/x-www-form-urlencoded")]
        headers += [("dpop", proof.encode("utf-8", "surrogatepass").decode("latin-1")) for proof in proofs]
        body = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in form.items()}).encode()
        request = HttpRequest(method="POST", raw_path="/demo/echo/token", raw_query="", headers=headers, body=body)
        target, status = gateway.send(request)
        seen[status] += 1
        assert status < 500, f"{target} answered {status} to {form} with DPoP {proofs}"

    one_request()
    assert seen[400] and seen[401], dict(seen)  # both the grant's and the client's checks were reached


# --- MCP bodies at the proxy, past the door ----------------------------------------------------------------------

MCP_EXAMPLES = 300


@pytest.mark.parametrize("server", ["echo", "toolbox"])  # a plain route and a virtual one
def test_mcp_bodies_never_make_the_proxy_answer_5xx(gateway: Gateway, upstream: ScriptedUpstream, server: str) -> None:
    """Every request carries a valid token, so each body reaches the one parse and what follows it (issue "Fail
    closed" items 1, 2, 16): numbers and strings the parser refuses, batches under every revision, tool calls named
    like credentials, routing headers that agree with the body or not."""
    token = gateway.virtual_token if server == "toolbox" else gateway.token
    seen: Counter[int] = Counter()

    @settings(
        max_examples=MCP_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        body=st.sampled_from(sorted(MCP_HOSTILE_BODIES.values()))
        | tool_calls.map(lambda value: json.dumps(value).encode())
        | st.lists(tool_calls | mcp_messages, max_size=3).map(lambda value: json.dumps(value).encode())
        | mcp_messages.map(lambda value: json.dumps(value).encode()),
        version=st.none() | st.sampled_from(MCP_VERSIONS) | texts,
        method=st.none() | st.sampled_from(["tools/call", "tools/list"]) | texts,
        name=st.none() | st.sampled_from(["echo", "other_tool", "=?base64?ZWNobw==?=", "=?base64?!?="]) | texts,
    )
    def one_request(body: bytes, version: str | None, method: str | None, name: str | None) -> None:
        headers = [("authorization", f"Bearer {token}"), ("content-type", "application/json")]
        headers.append(("accept", "application/json, text/event-stream"))
        for header, value in (("mcp-protocol-version", version), ("mcp-method", method), ("mcp-name", name)):
            if value is not None and "\r" not in value and "\n" not in value:
                headers.append((header, value.encode("utf-8", "surrogatepass").decode("latin-1")))
        request = HttpRequest(method="POST", raw_path=f"/demo/{server}/mcp", raw_query="", headers=headers, body=body)
        target, status = gateway.send(request)
        seen[status] += 1
        assert status < 500, f"{target} answered {status} to {body[:200]!r} ({headers[3:]})"

    one_request()
    assert seen[400] > 0 and seen[200] > 0, dict(seen)  # bodies were refused, and bodies went through
    print(f"\nfuzz MCP bodies on {server}: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}")
