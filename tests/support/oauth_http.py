"""A raw-HTTP OAuth client for the gateway: every step of MCP authorization as plain httpx requests.

Tests use it to replay what a given MCP client sends, byte for byte where it matters (which parameters, which client
authentication, which redirect URI), and to get a real token through the real flow without a browser:

- :func:`challenge` — the 401 an MCP endpoint answers without a token, with its ``WWW-Authenticate`` parsed;
- :func:`discover` — Protected Resource Metadata (RFC 9728), then authorization-server metadata (RFC 8414) at the
  path-inserted URL of the issuer;
- :func:`register` — Dynamic Client Registration (RFC 7591) with exactly the metadata given;
- :func:`authorize` — ``GET /authorize`` with exactly the parameters given, then the dev login form, the consent page
  (Approve or Deny, with its CSRF field and cookie) — like a browser, but the redirect to the client's
  ``redirect_uri`` is captured, never followed (it may be ``cursor://…`` or a host that does not exist);
- :func:`exchange_code`, :func:`refresh`, :func:`revoke` — the token and revocation endpoints, with the client
  authentication of :class:`ClientAuth` (``none``, HTTP Basic, or the secret in the body);
- :func:`mcp_call` — one JSON-RPC request to the MCP endpoint with a bearer token;
- :func:`obtain_token` — all of the above for a route, for tests that just need a real token.

Failures raise :class:`OAuthHttpError` naming the step, the status and the body, so a failing test says where the
flow broke.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import httpx

DEFAULT_TIMEOUT = 30.0
DEV_USER = "alice"
DEV_PASSWORD = "alice-password"  # examples/gateway.yaml
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MCP_PROTOCOL_VERSION = "2025-06-18"
MAX_PAGES = 10  # redirects and pages followed inside the gateway before giving up

Params = Mapping[str, str] | Sequence[tuple[str, str]]


class OAuthHttpError(AssertionError):
    """A step of the flow did not answer as expected. Carries the step, status and body for the test report."""

    def __init__(self, step: str, response: httpx.Response, expected: str) -> None:
        body = response.text[:2000]
        super().__init__(f"{step}: expected {expected}, got HTTP {response.status_code}: {body}")
        self.step = step
        self.status_code = response.status_code
        self.body = body
        self.response = response

    def json(self) -> dict[str, Any]:
        """The error body as JSON (OAuth errors are JSON objects)."""
        data = self.response.json()
        assert isinstance(data, dict), data
        return data


_shared: httpx.Client | None = None


def _client(http: httpx.Client | None) -> httpx.Client:
    """``http`` if given, else one pooled client shared by the calls that hold no cookies (authorization uses a
    fresh client per flow: its cookie jar is the browser's)."""
    global _shared
    if http is not None:
        return http
    if _shared is None:
        _shared = httpx.Client(timeout=DEFAULT_TIMEOUT)
    return _shared


def _json_object(step: str, response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise OAuthHttpError(step, response, "a JSON body") from None
    if not isinstance(data, dict):
        raise OAuthHttpError(step, response, "a JSON object")
    return data


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- PKCE ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pkce:
    """An RFC 7636 verifier and its S256 challenge."""

    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636 §4.1's 43..128
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


# --- the 401 challenge and discovery --------------------------------------------------------------------------

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    """The answer of an MCP endpoint to a request without a token (RFC 6750 §3, RFC 9728 §5.1)."""

    status_code: int
    www_authenticate: str
    params: dict[str, str]

    @property
    def resource_metadata(self) -> str | None:
        return self.params.get("resource_metadata")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")


def parse_www_authenticate(header: str) -> tuple[str, dict[str, str]]:
    """The scheme and auth-params of a single-challenge ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        match.group(1).lower(): (match.group(2).replace('\\"', '"') if match.group(2) is not None else match.group(3))
        for match in _AUTH_PARAM.finditer(rest)
    }
    return scheme, params


def challenge(
    mcp_url: str,
    *,
    method: Literal["GET", "POST"] = "POST",
    headers: Mapping[str, str] | None = None,
    http: httpx.Client | None = None,
) -> Challenge:
    """Send ``method`` to the MCP endpoint without a token and parse the 401's ``WWW-Authenticate``. A POST sends
    ``initialize``; a GET asks for the SSE stream (what mcp-remote and the TypeScript SDK send at start)."""
    client = _client(http)
    if method == "POST":
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": MCP_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "oauth-http-driver", "version": "1.0"},
            },
        }
        response = client.post(mcp_url, json=body, headers={**MCP_HEADERS, **(headers or {})})
    else:
        response = client.get(mcp_url, headers={"Accept": "text/event-stream", **(headers or {})})
    header = response.headers.get("www-authenticate")
    if response.status_code != 401 or header is None:
        raise OAuthHttpError(f"{method} {mcp_url} without a token", response, "401 with WWW-Authenticate")
    scheme, params = parse_www_authenticate(header)
    if scheme.lower() != "bearer":
        raise OAuthHttpError(f"{method} {mcp_url} without a token", response, "a Bearer challenge")
    return Challenge(response.status_code, header, params)


def path_scoped_prm_url(resource_url: str) -> str:
    """RFC 9728 §3.1: ``/.well-known/oauth-protected-resource`` inserted before the resource's path."""
    parts = urlsplit(resource_url)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"/.well-known/oauth-protected-resource{path}", "", ""))


def as_metadata_urls(issuer: str) -> list[str]:
    """The discovery URLs of an issuer, in the order MCP 2025-11-25 tells clients to try them: RFC 8414 with the
    path inserted, OpenID Connect Discovery with the path inserted, then appended."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    base = f"{parts.scheme}://{parts.netloc}"
    if not path:
        return [f"{base}/.well-known/oauth-authorization-server", f"{base}/.well-known/openid-configuration"]
    return [
        f"{base}/.well-known/oauth-authorization-server{path}",
        f"{base}/.well-known/openid-configuration{path}",
        f"{base}{path}/.well-known/openid-configuration",
    ]


def fetch_json(url: str, *, step: str | None = None, http: httpx.Client | None = None) -> dict[str, Any]:
    """GET a JSON document; anything but 200 with a JSON object raises :class:`OAuthHttpError`."""
    response = _client(http).get(url, headers={"Accept": "application/json"})
    name = step or f"GET {url}"
    if response.status_code != 200:
        raise OAuthHttpError(name, response, "200")
    return _json_object(name, response)


@dataclass(frozen=True)
class Discovery:
    """What a client learns before registering: the resource's PRM and its authorization server's metadata."""

    prm_url: str
    prm: dict[str, Any]
    as_metadata_url: str
    as_metadata: dict[str, Any]

    @property
    def resource(self) -> str:
        return str(self.prm["resource"])

    @property
    def issuer(self) -> str:
        return str(self.as_metadata["issuer"])

    @property
    def authorization_endpoint(self) -> str:
        return str(self.as_metadata["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.as_metadata["token_endpoint"])

    @property
    def registration_endpoint(self) -> str:
        return str(self.as_metadata["registration_endpoint"])

    @property
    def revocation_endpoint(self) -> str:
        return str(self.as_metadata["revocation_endpoint"])


def discover(mcp_url: str, *, use_challenge: bool = True, http: httpx.Client | None = None) -> Discovery:
    """Discovery as MCP 2025-11-25 describes it: the PRM URL from the 401's ``resource_metadata`` (or, with
    ``use_challenge=False``, the path-scoped well-known URL), then the first authorization-server metadata URL of
    the PRM's first authorization server that answers. The issuer in the metadata must equal the one in the PRM
    (RFC 8414 §3.3)."""
    client = _client(http)
    prm_url = path_scoped_prm_url(mcp_url)
    if use_challenge:
        found = challenge(mcp_url, http=client).resource_metadata
        if found is None:
            raise AssertionError(f"the 401 of {mcp_url} names no resource_metadata")
        prm_url = found
    prm = fetch_json(prm_url, step="protected resource metadata", http=client)
    servers = prm.get("authorization_servers")
    if not isinstance(servers, list) or not servers:
        raise AssertionError(f"PRM at {prm_url} lists no authorization_servers: {prm}")
    issuer = str(servers[0])
    last: httpx.Response | None = None
    for url in as_metadata_urls(issuer):
        response = client.get(url, headers={"Accept": "application/json"})
        if response.status_code == 200:
            metadata = _json_object("authorization server metadata", response)
            if metadata.get("issuer") != issuer:
                raise AssertionError(f"metadata at {url} has issuer {metadata.get('issuer')!r}, not {issuer!r}")
            return Discovery(prm_url, prm, url, metadata)
        last = response
    assert last is not None
    raise OAuthHttpError(f"authorization server metadata of {issuer}", last, "200 at one discovery URL")


# --- registration -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """A 201 from the registration endpoint: what the server registered (RFC 7591 §3.2.1)."""

    client_id: str
    client_secret: str | None
    metadata: dict[str, Any]

    @property
    def token_endpoint_auth_method(self) -> str:
        return str(self.metadata.get("token_endpoint_auth_method", "client_secret_basic"))

    def auth(self, method: AuthMethod | None = None) -> ClientAuth:
        """Client authentication as registered, or as ``method`` when a client does otherwise."""
        chosen = method or _auth_method(self.token_endpoint_auth_method)
        return ClientAuth(self.client_id, self.client_secret, chosen)


def register(
    registration_endpoint: str, metadata: Mapping[str, Any], *, http: httpx.Client | None = None
) -> Registration:
    """POST exactly ``metadata`` as JSON; anything but 201 raises :class:`OAuthHttpError`."""
    response = _client(http).post(registration_endpoint, json=dict(metadata))
    if response.status_code != 201:
        raise OAuthHttpError("client registration", response, "201")
    body = _json_object("client registration", response)
    secret = body.get("client_secret")
    return Registration(str(body["client_id"]), str(secret) if secret is not None else None, body)


# --- client authentication ----------------------------------------------------------------------------------

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]


def _auth_method(value: str) -> AuthMethod:
    if value == "none":
        return "none"
    if value == "client_secret_post":
        return "client_secret_post"
    if value == "client_secret_basic":
        return "client_secret_basic"
    raise ValueError(f"unknown token_endpoint_auth_method {value!r}")


def basic_authorization(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded, joined with ':', then base64."""
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode("utf-8")).decode("ascii")


@dataclass(frozen=True)
class ClientAuth:
    """How a request to the token or revocation endpoint authenticates the client.

    ``none``: ``client_id`` in the body. ``client_secret_basic``: HTTP Basic with id and secret (an empty secret when
    the client has none, as some public clients send), and ``client_id`` in the body only when
    ``id_in_body``. ``client_secret_post``: both in the body.
    """

    client_id: str
    client_secret: str | None
    method: AuthMethod
    id_in_body: bool = False

    def apply(self, form: dict[str, str], headers: dict[str, str]) -> None:
        if self.method == "client_secret_basic":
            headers["Authorization"] = basic_authorization(self.client_id, self.client_secret or "")
            if self.id_in_body:
                form["client_id"] = self.client_id
        else:
            form["client_id"] = self.client_id
            if self.method == "client_secret_post" and self.client_secret is not None:
                form["client_secret"] = self.client_secret


# --- authorization --------------------------------------------------------------------------------------------


@dataclass
class _Form:
    action: str | None
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    """The forms of a page: action, method, named inputs (with their values) and named submit buttons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = _Form(attributes.get("action"), attributes.get("method", "get").lower())
            self.forms.append(self._current)
        elif self._current is not None and tag == "input" and "name" in attributes:
            self._current.fields[attributes["name"]] = attributes.get("value", "")
        elif self._current is not None and tag == "button" and "name" in attributes:
            self._current.buttons.append((attributes["name"], attributes.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(html: str) -> list[_Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


@dataclass(frozen=True)
class Page:
    """A page of the gateway the flow went through (for assertions and failure messages)."""

    url: str
    status_code: int
    kind: Literal["login", "consent", "other"]


@dataclass(frozen=True)
class AuthorizationResponse:
    """The redirect to the client's ``redirect_uri`` (RFC 6749 §4.1.2 / §4.1.2.1), captured, not followed."""

    location: str
    params: dict[str, str]
    pages: tuple[Page, ...]

    @property
    def code(self) -> str | None:
        return self.params.get("code")

    @property
    def state(self) -> str | None:
        return self.params.get("state")

    @property
    def iss(self) -> str | None:
        return self.params.get("iss")

    @property
    def error(self) -> str | None:
        return self.params.get("error")

    @property
    def error_description(self) -> str | None:
        return self.params.get("error_description")

    @property
    def saw_consent(self) -> bool:
        return any(page.kind == "consent" for page in self.pages)

    def redirected_to(self, redirect_uri: str) -> bool:
        """Whether the browser was sent to ``redirect_uri`` itself, with the response in its query."""
        return self.location == redirect_uri or self.location.startswith(
            redirect_uri + ("&" if "?" in redirect_uri else "?")
        )


class AuthorizationRefused(AssertionError):
    """The gateway showed an error page instead of redirecting to the client (RFC 6749 §4.1.2.1: unknown client,
    unregistered redirect URI, ...)."""

    def __init__(self, response: httpx.Response, pages: Sequence[Page]) -> None:
        self.status_code = response.status_code
        self.html = response.text
        self.pages = tuple(pages)
        super().__init__(f"authorization ended on an error page, HTTP {response.status_code}: {_page_text(self.html)}")


def _page_text(html: str) -> str:
    text = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", text).strip()[:600]


def _query_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def authorize(
    authorization_endpoint: str,
    params: Params,
    *,
    username: str = DEV_USER,
    password: str = DEV_PASSWORD,
    decision: Literal["approve", "deny"] = "approve",
    http: httpx.Client | None = None,
) -> AuthorizationResponse:
    """Run the authorization request like a browser and return the redirect to the client.

    ``params`` are sent as given (no defaults are added: a test replaying a client that omits ``scope`` passes no
    ``scope``). The gateway's own redirects, the dev login form and the consent form are followed with one cookie
    jar; the first redirect that leaves the gateway's origin is the authorization response. An HTML page that is
    neither the login nor the consent form raises :class:`AuthorizationRefused`.
    """
    browser = http if http is not None else httpx.Client(timeout=DEFAULT_TIMEOUT)
    gateway = origin_of(authorization_endpoint)
    query = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
    request = browser.build_request("GET", f"{authorization_endpoint}?{query}")
    pages: list[Page] = []
    try:
        for _ in range(MAX_PAGES):
            response = browser.send(request, follow_redirects=False)
            url = str(request.url)
            if response.is_redirect:
                location = urljoin(url, response.headers["location"])
                if origin_of(location) != gateway:
                    pages.append(Page(url, response.status_code, "other"))
                    return AuthorizationResponse(location, _query_params(location), tuple(pages))
                request = browser.build_request("GET", location)
                pages.append(Page(url, response.status_code, "other"))
                continue
            forms = _forms(response.text) if response.status_code in (200, 401) else []
            login = next((form for form in forms if "password" in form.fields), None)
            consent = next((form for form in forms if any(name == "decision" for name, _ in form.buttons)), None)
            if login is not None and response.status_code == 200:
                pages.append(Page(url, response.status_code, "login"))
                data = {**login.fields, "username": username, "password": password}
                request = browser.build_request("POST", urljoin(url, login.action or url), data=data)
            elif consent is not None:
                pages.append(Page(url, response.status_code, "consent"))
                data = {**consent.fields, "decision": decision}
                request = browser.build_request("POST", urljoin(url, consent.action or url), data=data)
            else:
                pages.append(Page(url, response.status_code, "other"))
                raise AuthorizationRefused(response, pages)
        raise AssertionError(f"authorization did not reach the client after {MAX_PAGES} steps: {pages}")
    finally:
        if http is None:
            browser.close()


def authorization_params(
    client_id: str,
    redirect_uri: str,
    pkce: Pkce,
    *,
    state: str | None = None,
    scope: str | None = None,
    resource: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The usual parameters of an authorization request; ``scope``/``resource`` only when given."""
    params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", pkce.challenge),
        ("code_challenge_method", "S256"),
        ("state", state if state is not None else secrets.token_urlsafe(16)),
    ]
    if scope is not None:
        params.append(("scope", scope))
    if resource is not None:
        params.append(("resource", resource))
    return [*params, *extra]


# --- the token and revocation endpoints -------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """A successful token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: str
    expires_in: int | None
    refresh_token: str | None
    scope: str | None
    raw: dict[str, Any]

    @classmethod
    def from_response(cls, step: str, response: httpx.Response) -> TokenSet:
        if response.status_code != 200:
            raise OAuthHttpError(step, response, "200")
        body = _json_object(step, response)
        if not isinstance(body.get("access_token"), str) or str(body.get("token_type", "")).lower() != "bearer":
            raise OAuthHttpError(step, response, "a Bearer access_token")
        expires_in = body.get("expires_in")
        refresh_token = body.get("refresh_token")
        scope = body.get("scope")
        return cls(
            access_token=body["access_token"],
            token_type=str(body["token_type"]),
            expires_in=int(expires_in) if expires_in is not None else None,
            refresh_token=str(refresh_token) if refresh_token is not None else None,
            scope=str(scope) if scope is not None else None,
            raw=body,
        )


def token_request(
    token_endpoint: str,
    form: Mapping[str, str],
    auth: ClientAuth | None,
    *,
    as_json: bool = False,
    http: httpx.Client | None = None,
) -> httpx.Response:
    """POST to the token (or revocation) endpoint: ``form`` plus the client authentication, form-encoded (or as a
    JSON body with ``as_json``, as some clients wrongly send). Returns the raw response."""
    data = dict(form)
    headers: dict[str, str] = {}
    if auth is not None:
        auth.apply(data, headers)
    client = _client(http)
    if as_json:
        return client.post(
            token_endpoint, content=json.dumps(data), headers={**headers, "Content-Type": "application/json"}
        )
    return client.post(token_endpoint, data=data, headers=headers)


def exchange_code(
    token_endpoint: str,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    auth: ClientAuth,
    resource: str | None = None,
    http: httpx.Client | None = None,
) -> TokenSet:
    """``grant_type=authorization_code`` (RFC 6749 §4.1.3, RFC 7636 §4.5); ``resource`` only when given."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    if resource is not None:
        form["resource"] = resource
    return TokenSet.from_response("code exchange", token_request(token_endpoint, form, auth, http=http))


def refresh(
    token_endpoint: str,
    refresh_token: str,
    *,
    auth: ClientAuth,
    resource: str | None = None,
    scope: str | None = None,
    http: httpx.Client | None = None,
) -> TokenSet:
    """``grant_type=refresh_token`` (RFC 6749 §6)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if resource is not None:
        form["resource"] = resource
    if scope is not None:
        form["scope"] = scope
    return TokenSet.from_response("refresh", token_request(token_endpoint, form, auth, http=http))


def revoke(
    revocation_endpoint: str,
    token: str,
    *,
    auth: ClientAuth,
    token_type_hint: str | None = None,
    http: httpx.Client | None = None,
) -> None:
    """RFC 7009: anything but 200 raises :class:`OAuthHttpError`."""
    form = {"token": token}
    if token_type_hint is not None:
        form["token_type_hint"] = token_type_hint
    response = token_request(revocation_endpoint, form, auth, http=http)
    if response.status_code != 200:
        raise OAuthHttpError("revocation", response, "200")


# --- the MCP endpoint -----------------------------------------------------------------------------------------


def _jsonrpc_messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a Streamable HTTP response: a JSON body or SSE ``data:`` lines."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        messages = []
        for event in response.text.replace("\r\n", "\n").split("\n\n"):
            data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
            if data:
                messages.append(json.loads(data))
        return messages
    body = response.json()
    return body if isinstance(body, list) else [body]


def mcp_call(
    mcp_url: str,
    access_token: str,
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    http: httpx.Client | None = None,
) -> dict[str, Any]:
    """One JSON-RPC request to the MCP endpoint with the bearer token; returns its ``result``. Anything but a 200
    carrying a result raises :class:`OAuthHttpError`."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": dict(params or {})}
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {access_token}", "MCP-Protocol-Version": MCP_PROTOCOL_VERSION}
    response = _client(http).post(mcp_url, json=body, headers=headers)
    step = f"MCP {method}"
    if response.status_code != 200:
        raise OAuthHttpError(step, response, "200")
    for message in _jsonrpc_messages(response):
        if message.get("id") == 1 and "result" in message:
            result = message["result"]
            assert isinstance(result, dict), result
            return result
    raise OAuthHttpError(step, response, "a JSON-RPC result")


def tool_names(mcp_url: str, access_token: str, *, http: httpx.Client | None = None) -> list[str]:
    """``tools/list`` through the route: the names of the upstream's tools."""
    result = mcp_call(mcp_url, access_token, "tools/list", http=http)
    return [str(tool["name"]) for tool in result.get("tools", [])]


# --- the whole flow ---------------------------------------------------------------------------------------------


def route_url(base_url: str, workspace: str, server: str) -> str:
    return f"{base_url.rstrip('/')}/{workspace}/{server}/mcp"


@dataclass(frozen=True)
class Grant:
    """Everything a completed flow produced: where it was discovered, the registered client, the tokens."""

    discovery: Discovery
    registration: Registration
    tokens: TokenSet


def obtain_grant(
    base_url: str,
    workspace: str,
    server: str,
    *,
    username: str = DEV_USER,
    password: str = DEV_PASSWORD,
    client_name: str = "oauth-http-driver",
    redirect_uri: str = "http://127.0.0.1:49152/callback",
    http: httpx.Client | None = None,
) -> Grant:
    """The real flow for the route ``/{workspace}/{server}/mcp``: discovery from the 401, registration as a public
    client, authorization with PKCE, sign-in at the dev login, Approve, code exchange. ``redirect_uri`` is never
    contacted. The tokens include a refresh token when the route issues them."""
    client = _client(http)
    mcp_url = route_url(base_url, workspace, server)
    found = discover(mcp_url, http=client)
    registration = register(
        found.registration_endpoint,
        {
            "client_name": client_name,
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
        http=client,
    )
    pkce = Pkce.new()
    state = secrets.token_urlsafe(16)
    answer = authorize(
        found.authorization_endpoint,
        authorization_params(registration.client_id, redirect_uri, pkce, state=state, resource=found.resource),
        username=username,
        password=password,
    )
    if answer.code is None or answer.state != state:
        raise AssertionError(f"the authorization response carries no code for state {state!r}: {answer.location}")
    tokens = exchange_code(
        found.token_endpoint,
        code=answer.code,
        redirect_uri=redirect_uri,
        code_verifier=pkce.verifier,
        auth=registration.auth(),
        resource=found.resource,
        http=client,
    )
    return Grant(found, registration, tokens)


def obtain_token(
    base_url: str,
    workspace: str,
    server: str,
    *,
    username: str = DEV_USER,
    password: str = DEV_PASSWORD,
    client_name: str = "oauth-http-driver",
    redirect_uri: str = "http://127.0.0.1:49152/callback",
    http: httpx.Client | None = None,
) -> TokenSet:
    """A real token for the route ``/{workspace}/{server}/mcp`` through the real flow (see :func:`obtain_grant`),
    for tests that just need one."""
    return obtain_grant(
        base_url,
        workspace,
        server,
        username=username,
        password=password,
        client_name=client_name,
        redirect_uri=redirect_uri,
        http=http,
    ).tokens
