"""Finding an upstream MCP server's authorization server, as an MCP client does (the client side; the documents the
gateway publishes itself are :mod:`gateway.oauth.metadata_documents`) (MCP 2025-11-25 §Authorization,
"Authorization Server Discovery").

1. Protected Resource Metadata (RFC 9728): the URL from the ``resource_metadata`` parameter of the upstream's
   ``401`` ``WWW-Authenticate`` challenge (RFC 9728 §5.1), else the well-known URLs built from the upstream URL — with
   its path first (``/.well-known/oauth-protected-resource/{path}``), then at the root (RFC 9728 §3.1).
   The document's ``resource`` must identify the upstream (RFC 9728 §3.3; a prefix of the upstream URL is accepted,
   as servers often name their origin).
2. Authorization-server metadata of ``authorization_servers[0]`` (or of the configured ``authorization_server``
   override, which skips step 1): for an issuer with a path, ``/.well-known/oauth-authorization-server/{path}``,
   ``/.well-known/openid-configuration/{path}``, then ``{path}/.well-known/openid-configuration``; without one,
   the two root URLs (RFC 8414 §3, OIDC Discovery §4). The document's ``issuer`` must equal the issuer the URL was
   built from (RFC 8414 §3.3) — or, for a provider known to name itself otherwise, exactly the route's configured
   ``auth.issuer`` (which the callback's RFC 9207 ``iss`` is then compared with too) — and PKCE ``S256`` must be
   advertised: MCP clients MUST refuse to proceed otherwise.

Every fetch goes through :class:`~gateway.net.ssrf.SafeFetcher` (the URLs come from an upstream). Results are cached
per route in the warm container for an hour; :meth:`Discovery.forget` drops a route's entry after a failure.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gateway import safe_json
from gateway.net.ssrf import FetchError, FetchResult, SafeFetcher
from gateway.routes import Route
from gateway.upstream.token_set import ClientAuthMethod

CACHE_SECONDS = 3600
_JSON = {"Accept": "application/json"}


class DiscoveryError(Exception):
    """The upstream's authorization server could not be found or its metadata is unusable; says why."""


@dataclass(frozen=True, slots=True)
class AuthorizationServer:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None
    client_id_metadata_document_supported: bool
    token_endpoint_auth_methods: tuple[str, ...]
    scopes_supported: tuple[str, ...]
    iss_parameter_supported: bool  # RFC 9207
    revocation_endpoint: str | None = None  # RFC 7009 (RFC 8414 §2)

    def supports_auth_method(self, method: str) -> bool:
        # RFC 8414 §2: absent means client_secret_basic only.
        return method in (self.token_endpoint_auth_methods or ("client_secret_basic",))

    def secret_auth_method(self) -> ClientAuthMethod:
        """How to present a client secret here: ``client_secret_post`` where the server lists it (every common
        server that lists it accepts it, while some that list Basic too also want the body's ``client_id``),
        else ``client_secret_basic``, which RFC 6749 §2.3.1 makes mandatory to support."""
        return (
            "client_secret_post" if "client_secret_post" in self.token_endpoint_auth_methods else "client_secret_basic"
        )


@dataclass(frozen=True, slots=True)
class UpstreamAuthorization:
    """What the gateway needs to run an authorization against one upstream."""

    resource: str  # RFC 8707 resource indicator: the upstream MCP URL
    server: AuthorizationServer
    scopes: tuple[str, ...]  # to request: the config's, else the challenge's, else PRM's scopes_supported


_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def bearer_challenge_params(header: str) -> dict[str, str]:
    """The auth-params of a ``Bearer`` challenge in a ``WWW-Authenticate`` value (RFC 9110 §11.6.1)."""
    match = re.search(r"(?i)(?:^|,)\s*bearer(?:\s+|$)", header)
    if match is None:
        return {}
    params: dict[str, str] = {}
    for param in _CHALLENGE_PARAM.finditer(header, match.end()):
        name = param.group(1).lower()
        value = param.group(2) if param.group(2) is not None else param.group(3)
        params.setdefault(name, re.sub(r"\\(.)", r"\1", value))
    return params


def prm_urls(upstream_url: str) -> list[str]:
    """RFC 9728 §3.1: the well-known segment goes between host and path; then the root form."""
    parts = urlsplit(upstream_url)
    path = parts.path.rstrip("/")
    root = urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-protected-resource", "", ""))
    return [root + path, root] if path else [root]


def as_metadata_urls(issuer: str) -> list[str]:
    """MCP 2025-11-25 "Authorization Server Metadata Discovery": the order clients MUST try."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(p: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, p, "", ""))

    if path:
        return [
            at(f"/.well-known/oauth-authorization-server{path}"),
            at(f"/.well-known/openid-configuration{path}"),
            at(f"{path}/.well-known/openid-configuration"),
        ]
    return [at("/.well-known/oauth-authorization-server"), at("/.well-known/openid-configuration")]


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _json_object(result: FetchResult, what: str) -> dict[str, Any]:
    try:
        data = safe_json.loads(result.body)
    except ValueError:
        raise DiscoveryError(f"{what} at {result.url} is not JSON") from None
    if not isinstance(data, dict):
        raise DiscoveryError(f"{what} at {result.url} is not a JSON object")
    return data


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def parse_as_metadata(data: dict[str, Any], issuer: str, *, expected_issuer: str | None = None) -> AuthorizationServer:
    """The metadata found for ``issuer``. RFC 8414 §3.3: its ``issuer`` must be the one the URL was built from, or
    the configured ``expected_issuer`` of a provider known to name itself otherwise (``auth.issuer``), exactly."""
    named = data.get("issuer")
    if expected_issuer is not None:
        if named != expected_issuer:
            raise DiscoveryError(
                f"authorization server metadata at {issuer} names issuer {named!r}, not the configured issuer "
                f"{expected_issuer!r}"
            )
    elif not isinstance(named, str) or not _same_url(named, issuer):
        # A mismatch means the document must not be used (mix-up defence).
        raise DiscoveryError(
            f"authorization server metadata names issuer {named!r}, not {issuer!r} (if this provider is known to "
            "name itself so, the route's auth.issuer can say which issuer to expect)"
        )
    for name in ("authorization_endpoint", "token_endpoint"):
        if not isinstance(data.get(name), str):
            raise DiscoveryError(f"authorization server {issuer} advertises no {name}")
    if "S256" not in _strings(data.get("code_challenge_methods_supported")):
        raise DiscoveryError(f"authorization server {issuer} does not advertise PKCE S256 (MCP requires it)")
    registration = data.get("registration_endpoint")
    revocation = data.get("revocation_endpoint")
    return AuthorizationServer(
        issuer=data["issuer"],
        authorization_endpoint=data["authorization_endpoint"],
        token_endpoint=data["token_endpoint"],
        registration_endpoint=registration if isinstance(registration, str) else None,
        client_id_metadata_document_supported=data.get("client_id_metadata_document_supported") is True,
        token_endpoint_auth_methods=_strings(data.get("token_endpoint_auth_methods_supported")),
        scopes_supported=_strings(data.get("scopes_supported")),
        iss_parameter_supported=data.get("authorization_response_iss_parameter_supported") is True,
        revocation_endpoint=revocation if isinstance(revocation, str) else None,
    )


class Discovery:
    """Discovers and caches each route's upstream authorization server. Build once per container."""

    def __init__(
        self, fetcher: SafeFetcher, *, clock: Callable[[], float] = time.time, cache_seconds: int = CACHE_SECONDS
    ) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, UpstreamAuthorization]] = {}

    def forget(self, route_key: str) -> None:
        self._cache.pop(route_key, None)

    async def discover(self, route: Route) -> UpstreamAuthorization:
        cached = self._cache.get(route.key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        found = await self._discover(route)
        self._cache[route.key] = (self._clock() + self._cache_seconds, found)
        return found

    async def _discover(self, route: Route) -> UpstreamAuthorization:
        auth = route.server.auth
        upstream = str(route.server.upstream)
        configured_scopes = tuple(getattr(auth, "scopes", ()) or ())
        override = getattr(auth, "authorization_server", None)
        challenge_scopes: tuple[str, ...] = ()
        prm_scopes: tuple[str, ...] = ()
        if override is not None:
            issuer = str(override).rstrip("/") if urlsplit(str(override)).path in ("", "/") else str(override)
        else:
            challenge = await self._challenge(upstream)
            challenge_scopes = tuple(challenge.get("scope", "").split())
            prm = await self._protected_resource_metadata(upstream, challenge.get("resource_metadata"))
            servers = _strings(prm.get("authorization_servers"))
            if not servers:
                raise DiscoveryError(f"the protected resource metadata of {upstream} names no authorization server")
            issuer = servers[0]
            prm_scopes = _strings(prm.get("scopes_supported"))
        server = await self._authorization_server(issuer, getattr(auth, "issuer", None))
        # MCP 2025-11-25 "Scope Selection Strategy": the challenge's scope, else PRM's scopes_supported.
        scopes = configured_scopes or challenge_scopes or prm_scopes
        return UpstreamAuthorization(resource=upstream, server=server, scopes=scopes)

    async def _challenge(self, upstream: str) -> dict[str, str]:
        """An unauthenticated request to the upstream; its 401 challenge may name the PRM URL (RFC 9728 §5.1)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "ping"}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        try:
            result = await self._fetcher.request("POST", upstream, headers=headers, content=body)
        except FetchError:
            return {}  # the well-known URLs may still answer
        if result.status != 401:
            return {}
        return bearer_challenge_params(result.headers.get("www-authenticate", ""))

    async def _first_document(self, urls: list[str], what: str) -> tuple[str, dict[str, Any]] | list[str]:
        """The first of ``urls`` that answers 200 with a JSON object, or why each one did not."""
        problems = []
        for url in urls:
            try:
                result = await self._fetcher.get(url, headers=_JSON)
            except FetchError as error:
                problems.append(f"{url}: {error}")
                continue
            if result.status != 200:
                problems.append(f"{url}: HTTP {result.status}")
                continue
            return url, _json_object(result, what)
        return problems

    async def _protected_resource_metadata(self, upstream: str, named: str | None) -> dict[str, Any]:
        found = await self._first_document([named] if named else prm_urls(upstream), "protected resource metadata")
        if isinstance(found, list):
            raise DiscoveryError("no protected resource metadata found (" + "; ".join(found) + ")")
        url, data = found
        resource = data.get("resource")
        if not isinstance(resource, str) or not upstream.rstrip("/").startswith(resource.rstrip("/")):
            raise DiscoveryError(f"protected resource metadata at {url} is for {resource!r}, not {upstream}")
        return data

    async def _authorization_server(self, issuer: str, expected_issuer: str | None) -> AuthorizationServer:
        found = await self._first_document(as_metadata_urls(issuer), "authorization server metadata")
        if isinstance(found, list):
            raise DiscoveryError(f"no metadata for authorization server {issuer} (" + "; ".join(found) + ")")
        return parse_as_metadata(found[1], issuer, expected_issuer=expected_issuer)
