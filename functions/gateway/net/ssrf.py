"""SSRF-safe HTTP fetches of user-supplied URLs.

A URL named by a client (a Client ID Metadata Document, later an upstream's OAuth metadata) must not make the gateway
call into its own network: the instance metadata service (169.254.169.254), VPC-internal services, loopback. The
fetcher therefore

- accepts ``https`` only (``http`` only when the caller opts in, for local development);
- resolves the host **once** and refuses the request if any resolved address is not publicly routable (private,
  loopback, link-local, multicast, reserved, unspecified, CGNAT, and IPv6 forms embedding such an IPv4 address),
  unless ``allow_private`` is set;
- connects to the resolved address itself, sending the original name in ``Host`` and as the TLS SNI / certificate
  name, so a second DNS answer (rebinding) cannot redirect the connection;
- follows no redirects, enforces a total time limit, and stops reading once the body exceeds a size cap.

Each fetch uses its own connection (no pool): a pooled connection is keyed by IP address and could otherwise be
reused for another host name served from the same address, with a certificate checked for the first name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_TIMEOUT_SECONDS = 5.0
USER_AGENT = "mcp-gateway-aws"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Not flagged by every Python version's `is_global`/`is_private`, so listed explicitly.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 shared address space
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: embeds an IPv4 address in the low 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use NAT64


class FetchError(Exception):
    """The URL could not be fetched; the message says why (and contains no response data)."""


class BlockedAddressError(FetchError):
    """The host resolves to an address the gateway must not call."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes


def address_is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address; IPv6 forms that embed an IPv4 address are judged by it."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_is_public(embedded)
        if address.teredo is not None or address in _NAT64_LOCAL:
            return False
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (one getaddrinfo call)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchError(f"cannot resolve host {host!r}") from error
    return [str(info[4][0]) for info in infos]


class SafeFetcher:
    """Fetches user-supplied URLs without letting them reach private networks. Build once and reuse."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allow_http: bool = False,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify: ssl.SSLContext | bool = True,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.allow_private = allow_private
        self.allow_http = allow_http
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None
        self._resolver = resolver

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> FetchResult:
        return await self.request("GET", url, headers=headers)

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, content: bytes | None = None
    ) -> FetchResult:
        """One request, no redirects followed (a 3xx is returned as is). Raises :class:`FetchError`."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._request(method, url, headers or {}, content)
        except TimeoutError:
            raise FetchError(f"no complete response within {self.timeout_seconds:g} s") from None

    async def _request(self, method: str, url: str, headers: Mapping[str, str], content: bytes | None) -> FetchResult:
        target = self._check_url(url)
        host = target.host
        port = target.port or (443 if target.scheme == "https" else 80)
        address = await self._pick_address(host, port)
        pinned = target.copy_with(host=str(address))
        request_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        # RFC 9110 §7.2: Host carries the name (and a non-default port) the URL named.
        request_headers["Host"] = target.netloc.decode("ascii")
        extensions = {"sni_hostname": host} if target.scheme == "https" and not _is_ip_literal(host) else {}
        transport = httpx.AsyncHTTPTransport(verify=self._tls(), retries=0)
        async with httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False, timeout=self.timeout_seconds
        ) as client:
            request = client.build_request(method, pinned, headers=request_headers, content=content)
            request.extensions.update(extensions)
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise FetchError(f"request to {host} failed: {type(error).__name__}") from None
            try:
                body = await self._read_capped(response)
            finally:
                await response.aclose()
        return FetchResult(url=url, status=response.status_code, headers=response.headers, body=body)

    def _tls(self) -> ssl.SSLContext | bool:
        """One TLS context per fetcher: loading the CA bundle for every fetch would cost tens of milliseconds."""
        if self._verify is False:
            return False
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _check_url(self, url: str) -> httpx.URL:
        try:
            parts = urlsplit(url)
            target = httpx.URL(url)
        except (ValueError, httpx.InvalidURL) as error:
            raise FetchError(f"not a valid URL: {error}") from None
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in allowed:
            raise FetchError(f"only {' or '.join(allowed)} URLs are fetched, not {parts.scheme or 'a relative URL'!r}")
        if not target.host:
            raise FetchError("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise FetchError("the URL must not contain user information")
        return target

    async def _pick_address(self, host: str, port: int) -> IPAddress:
        if _is_ip_literal(host):
            candidates = [host]
        else:
            candidates = await self._resolver(host, port)
            if not candidates:
                raise FetchError(f"host {host!r} has no addresses")
        addresses = [ipaddress.ip_address(candidate.split("%", 1)[0]) for candidate in candidates]
        if not self.allow_private:
            # One blocked answer refuses the whole name: a host that mixes public and internal addresses is not a
            # legitimate place to publish client metadata.
            blocked = [address for address in addresses if not address_is_public(address)]
            if blocked:
                raise BlockedAddressError(f"host {host!r} resolves to a non-public address ({blocked[0]})")
        return addresses[0]

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"response is larger than {self.max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(f"response is larger than {self.max_bytes} bytes")
                chunks.append(chunk)
        except httpx.HTTPError as error:
            raise FetchError(f"reading the response failed: {type(error).__name__}") from None
        return b"".join(chunks)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
