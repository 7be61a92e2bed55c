"""Client ID Metadata Documents (MCP 2025-11-25 "Client ID Metadata Documents";
draft-ietf-oauth-client-id-metadata-document).

A client whose ``client_id`` is an https URL publishes its metadata at that URL. The gateway fetches it through the
SSRF-safe fetcher (:mod:`gateway.net.ssrf`), validates it, and caches it in the container honouring the response's
``Cache-Control`` (``no-store``/``no-cache``: not cached; ``max-age``: at most ``max_ttl_seconds``; none: a default).
Any failure is an ``invalid_client`` error whose description says what is wrong with the URL or the document.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from gateway import safe_json
from gateway.display_text import visible_text
from gateway.net.ssrf import FetchError, SafeFetcher
from gateway.oauth.errors import OAuthError
from gateway.oauth.redirect_uris import MAX_LENGTH, InvalidRedirectUri, validate_redirect_uri
from gateway.tokens.foreign_jwts import InvalidKeySet, KeySet

DEFAULT_TTL_SECONDS = 300
MAX_TTL_SECONDS = 86400
MAX_ENTRIES = 256
MAX_NAME = 200

_MAX_AGE = re.compile(r"^max-age\s*=\s*\"?(\d+)\"?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ClientMetadataDocument:
    """The parts of a validated metadata document the gateway uses."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    client_uri: str | None
    logo_uri: str | None
    auth_method: Literal["none", "private_key_jwt"] = "none"
    also_public: bool = False
    """A ``private_key_jwt`` document that also lists ``none`` among ``token_endpoint_auth_methods_supported``
    (ChatGPT's): the client may come with an assertion, or as a public client."""
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    dpop_bound_access_tokens: bool = False


def is_url_client_id(client_id: str) -> bool:
    """Whether ``client_id`` is meant as a metadata-document URL (then it is fetched, never looked up)."""
    return client_id[:8].lower() == "https://"


def check_client_id_url(client_id: str) -> None:
    """The draft's §3 rules for the URL itself; raises ``invalid_client`` saying which one is broken."""

    def refuse(reason: str) -> OAuthError:
        return OAuthError("invalid_client", f"client_id URL {client_id!r} {reason}")

    if len(client_id) > MAX_LENGTH or _CONTROL.search(client_id) or " " in client_id:
        raise refuse("is too long or contains whitespace or control characters")
    try:
        parts = urlsplit(client_id)
        parts.port  # noqa: B018 - raises ValueError on an invalid port
    except ValueError:
        raise refuse("is malformed") from None
    if parts.scheme != "https" or not parts.hostname:
        raise refuse("must be an https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise refuse("must not contain user information")
    if "#" in client_id:
        raise refuse("must not contain a fragment")
    if parts.path in ("", "/"):
        raise refuse("must contain a path (the location of the client's metadata document)")
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        raise refuse("must not contain '.' or '..' path segments")


def cache_ttl(cache_control: str | None, default: int, maximum: int) -> int:
    """Seconds a document may be reused, from its ``Cache-Control`` header (RFC 9111 §5.2.2)."""
    if cache_control is None:
        return min(default, maximum)
    directives = [part.strip().lower() for part in cache_control.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0
    for directive in directives:
        match = _MAX_AGE.match(directive)
        if match:
            return min(int(match.group(1)), maximum)
    return min(default, maximum)


class CimdResolver:
    """Fetches, validates and caches client metadata documents. One per container."""

    def __init__(
        self,
        fetcher: SafeFetcher,
        *,
        default_ttl_seconds: int = DEFAULT_TTL_SECONDS,
        max_ttl_seconds: int = MAX_TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._fetcher = fetcher
        self.default_ttl_seconds = default_ttl_seconds
        self.max_ttl_seconds = max_ttl_seconds
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[ClientMetadataDocument, int]] = OrderedDict()

    async def resolve(self, client_id: str, now: int) -> ClientMetadataDocument:
        """The validated document of ``client_id``; raises ``invalid_client`` :class:`OAuthError`."""
        cached = self._cache.get(client_id)
        if cached is not None:
            if cached[1] > now:
                self._cache.move_to_end(client_id)
                return cached[0]
            del self._cache[client_id]
        check_client_id_url(client_id)
        try:
            result = await self._fetcher.get(client_id, headers={"Accept": "application/json"})
        except FetchError as problem:
            raise _invalid(client_id, f"could not be fetched: {problem}") from None
        if 300 <= result.status < 400:
            raise _invalid(client_id, f"answered with a redirect (HTTP {result.status}); redirects are not followed")
        if result.status != 200:
            raise _invalid(client_id, f"answered HTTP {result.status} instead of the metadata document")
        document = parse_document(client_id, result.body)
        ttl = cache_ttl(result.headers.get("cache-control"), self.default_ttl_seconds, self.max_ttl_seconds)
        if ttl > 0:
            self._remember(client_id, document, now + ttl)
        return document

    def _remember(self, client_id: str, document: ClientMetadataDocument, expires_at: int) -> None:
        self._cache[client_id] = (document, expires_at)
        self._cache.move_to_end(client_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)


def parse_document(client_id: str, body: bytes) -> ClientMetadataDocument:
    """Validate a fetched document against the URL it came from."""
    try:
        data: Any = safe_json.loads(body)
    except ValueError:
        raise _invalid(client_id, "is not valid JSON") from None
    if not isinstance(data, dict):
        raise _invalid(client_id, "must be a JSON object")
    # The document's client_id must equal the URL it was fetched from, by simple string comparison.
    if data.get("client_id") != client_id:
        raise _invalid(client_id, "has a 'client_id' that is not exactly the URL it was fetched from")
    name = data.get("client_name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or _CONTROL.search(name):
        raise _invalid(client_id, f"needs a 'client_name' of 1 to {MAX_NAME} printable characters")
    method = _auth_method(client_id, data)
    jwks_uri, jwks = _keys(client_id, data, method)
    dpop_bound = data.get("dpop_bound_access_tokens", False)
    if not isinstance(dpop_bound, bool):
        raise _invalid(client_id, "has a 'dpop_bound_access_tokens' that is not true or false")
    return ClientMetadataDocument(
        client_id=client_id,
        client_name=visible_text(name).strip() or client_id,
        redirect_uris=_redirect_uris(client_id, data.get("redirect_uris")),
        client_uri=_https_or_none(data.get("client_uri")),
        logo_uri=_https_or_none(data.get("logo_uri")),
        auth_method=method,
        also_public=method == "private_key_jwt" and "none" in _supported_methods(data),
        jwks_uri=jwks_uri,
        jwks=jwks,
        dpop_bound_access_tokens=dpop_bound,
    )


def _supported_methods(data: dict[str, Any]) -> list[str]:
    """``token_endpoint_auth_methods_supported`` of a client's document (not a registered RFC 7591 member, but
    ChatGPT's document has it: the methods the client can use, of which ``token_endpoint_auth_method`` is the one it
    prefers)."""
    value = data.get("token_endpoint_auth_methods_supported")
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _auth_method(client_id: str, data: dict[str, Any]) -> Literal["none", "private_key_jwt"]:
    # A document is public, so it cannot carry a shared secret (draft §4.1).
    if "client_secret" in data or "client_secret_expires_at" in data:
        raise _invalid(client_id, "must not contain a client secret")
    method = data.get("token_endpoint_auth_method", "none")
    if method == "none":
        return "none"
    if method == "private_key_jwt":  # RFC 7523 §2.2: keys in the document (jwks_uri or jwks), never a secret
        return "private_key_jwt"
    if method in ("client_secret_basic", "client_secret_post", "client_secret_jwt"):
        raise _invalid(client_id, f"uses {method!r}, a shared secret, which metadata documents cannot use")
    unsupported = f"has an unsupported token_endpoint_auth_method {str(method)[:40]!r}"
    raise _invalid(client_id, f"{unsupported}; use 'none' or 'private_key_jwt'")


def _keys(client_id: str, data: dict[str, Any], method: str) -> tuple[str | None, dict[str, Any] | None]:
    """The document's ``jwks_uri`` or ``jwks`` (RFC 7591 §2: not both); a ``private_key_jwt`` client needs one."""
    jwks_uri, jwks = data.get("jwks_uri"), data.get("jwks")
    if jwks_uri is not None and jwks is not None:
        raise _invalid(client_id, "has both 'jwks_uri' and 'jwks'; RFC 7591 §2 allows one")
    if jwks_uri is not None:
        if not isinstance(jwks_uri, str) or _https_or_none(jwks_uri) is None:
            raise _invalid(client_id, "has a 'jwks_uri' that is not an https URL")
        return jwks_uri, None
    if jwks is not None:
        try:
            KeySet.from_json(jwks)
        except InvalidKeySet as problem:
            raise _invalid(client_id, f"has unusable 'jwks': {problem}") from None
        return None, jwks
    if method == "private_key_jwt":
        raise _invalid(client_id, "uses 'private_key_jwt' but publishes no keys ('jwks_uri' or 'jwks')")
    return None, None


def _redirect_uris(client_id: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(uri, str) for uri in value):
        raise _invalid(client_id, "needs 'redirect_uris', a non-empty list of strings")
    for uri in value:
        try:
            validate_redirect_uri(uri)
        except InvalidRedirectUri as problem:
            raise _invalid(client_id, f"lists an unacceptable redirect URI: {problem}") from None
    return tuple(dict.fromkeys(value))


def _https_or_none(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_LENGTH or _CONTROL.search(value) or " " in value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme == "https" and parts.hostname else None


def _invalid(client_id: str, reason: str) -> OAuthError:
    return OAuthError("invalid_client", f"the client metadata document at {client_id} {reason}")
