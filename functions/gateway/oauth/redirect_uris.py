"""Which redirect URIs a client may register, and how a requested one is matched against them.

Allowed at registration (OAuth 2.1 §2.3.1 / §7.5, RFC 8252 §7, MCP 2025-11-25 "Communication Security"):

- ``https://`` with a host: web clients (``https://claude.ai/api/mcp/auth_callback``, ``https://vscode.dev/redirect``);
- ``http://`` on a loopback host only: ``127.0.0.1``, ``[::1]`` and ``localhost`` (native apps, RFC 8252 §7.3; the
  name ``localhost`` is NOT RECOMMENDED by §8.3 but clients use it), any port and path;
- a private-use scheme (RFC 8252 §7.1), e.g. ``cursor://anysphere.cursor-mcp/oauth/callback`` or
  ``com.example.app:/callback``. **Rule**: any syntactically valid RFC 3986 scheme other than http/https that is not
  one a browser runs or reads locally (javascript, data, file, vbscript, about, blob, filesystem, ...).

Refused everywhere: fragments (RFC 6749 §3.1.2), relative URIs, user information in http(s) URIs, whitespace and
control characters, plain ``http`` to any other host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

MAX_LENGTH = 2000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
# Schemes a browser executes or reads locally, and WebSocket schemes (never an OAuth callback).
_FORBIDDEN_SCHEMES = frozenset(
    {"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "view-source", "jar", "mhtml"}
    | {"ws", "wss"}
)
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


class InvalidRedirectUri(ValueError):
    """The redirect URI is not acceptable; the message says why."""


def validate_redirect_uri(uri: str) -> str:
    """Return ``uri`` unchanged if a client may register it, else raise :class:`InvalidRedirectUri`."""
    if not isinstance(uri, str) or not uri:
        raise InvalidRedirectUri("a redirect URI must be a non-empty string")
    if len(uri) > MAX_LENGTH:
        raise InvalidRedirectUri(f"redirect URI is longer than {MAX_LENGTH} characters")
    if _CONTROL_OR_SPACE.search(uri):
        raise InvalidRedirectUri(f"redirect URI {uri!r} contains whitespace or control characters")
    parts = _split(uri)
    if not parts.scheme:
        raise InvalidRedirectUri(f"redirect URI {uri!r} is not an absolute URI")
    if "#" in uri:
        raise InvalidRedirectUri(f"redirect URI {uri!r} must not contain a fragment (RFC 6749 §3.1.2)")
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        _check_web(uri, parts)
    elif not _SCHEME.match(parts.scheme):
        raise InvalidRedirectUri(f"redirect URI {uri!r} has an invalid scheme")
    elif scheme in _FORBIDDEN_SCHEMES:
        raise InvalidRedirectUri(f"redirect URI scheme {scheme!r} is not allowed")
    elif not uri[len(parts.scheme) + 1 :].strip("/"):
        raise InvalidRedirectUri(f"redirect URI {uri!r} has nothing after its scheme")
    return uri


def _split(uri: str) -> SplitResult:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on an invalid port
    except ValueError as error:
        raise InvalidRedirectUri(f"redirect URI {uri!r} is malformed: {error}") from None
    return parts


def _check_web(uri: str, parts: SplitResult) -> None:
    host = parts.hostname
    if not host:
        raise InvalidRedirectUri(f"redirect URI {uri!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidRedirectUri(f"redirect URI {uri!r} must not contain user information")
    if parts.scheme.lower() == "http" and host not in LOOPBACK_HOSTS:
        raise InvalidRedirectUri(
            f"redirect URI {uri!r} uses plain http on a non-loopback host: use https, or http://127.0.0.1, "
            "http://[::1] or http://localhost for a native app (RFC 8252 §7.3)"
        )


def is_loopback_redirect(uri: str) -> bool:
    """``http://`` on a loopback host: the port may vary between authorizations (RFC 8252 §7.3)."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme.lower() == "http" and host in LOOPBACK_HOSTS


def redirect_uri_matches(registered: Sequence[str], requested: str) -> bool:
    """Whether ``requested`` is one of the ``registered`` redirect URIs.

    Exact string comparison (OAuth 2.1 §4.1.1, RFC 9700 §2.1), except that a registered loopback URI matches the same
    URI on any port (RFC 8252 §7.3): VS Code registers ``http://127.0.0.1/`` and then uses
    ``http://127.0.0.1:33418/``. An empty path and ``/`` are the same for loopback URIs.
    """
    if requested in registered:
        return True
    if "#" in requested or not is_loopback_redirect(requested):
        return False
    wanted = _loopback_key(requested)
    return wanted is not None and any(
        is_loopback_redirect(candidate) and _loopback_key(candidate) == wanted for candidate in registered
    )


def _loopback_key(uri: str) -> tuple[str, str, str, str] | None:
    """Everything of a loopback URI except its port."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - rejects an invalid port
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or parts.fragment:
        return None
    return (parts.scheme.lower(), parts.hostname or "", parts.path or "/", parts.query)


# Private-use schemes that hand their URL to a web browser or to whatever app claims it, rather than to the client
# that registered them: Edge (Windows), Safari and Chrome (iOS), Firefox, Opera, Android intents and app stores.
BROWSER_SCHEMES = frozenset(
    {"microsoft-edge", "microsoft-edge-http", "microsoft-edge-https", "x-safari-http", "x-safari-https"}
    | {"googlechrome", "googlechromes", "firefox", "opera-http", "opera-https", "brave", "intent", "android-app"}
    | {"itms-apps", "itms-services", "market", "ms-appinstaller", "search-ms", "shell"}
)
_EMBEDDED_WEB_URL = re.compile(r"https?:(?://)?([^/?#\s]*)", re.IGNORECASE)


def browser_destination(uri: str) -> str | None:
    """For a private-use redirect URI that would open a web browser or hand its URL to another app, what it opens:
    the web host it carries (``microsoft-edge:https://evil.example/cb`` → ``evil.example``,
    ``x-safari-https://evil.example/cb`` → ``evil.example``), or the scheme itself. None for http(s) and for an
    ordinary private-use scheme of a native app (``cursor://anysphere.cursor-mcp/oauth/callback``).
    """
    try:
        scheme = urlsplit(uri).scheme.lower()
    except ValueError:
        return None
    if not scheme or scheme in ("http", "https"):
        return None
    rest = uri[len(scheme) + 1 :]
    embedded = _EMBEDDED_WEB_URL.search(rest)
    if embedded is not None:  # scheme:https://host/… (Edge), or ?url=https://host (a launcher)
        return embedded.group(1) or scheme
    if scheme in BROWSER_SCHEMES or scheme.endswith(("-http", "-https")):
        host = urlsplit(f"https:{rest}" if rest.startswith("//") else f"https://{rest}").hostname
        return host or f"{scheme}:"
    return None
