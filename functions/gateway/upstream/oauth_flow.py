"""The gateway as an OAuth client of an upstream's authorization server: authorization code with PKCE and
``resource``, the token exchange, and refresh (OAuth 2.1; MCP 2025-11-25 §Authorization).

- **PKCE** (RFC 7636) ``S256`` always. The verifier is not stored: it is an HMAC of the deployment's shared secret
  over the flow's random ``state``, so any container can recompute it at the callback while the authorization
  server only ever sees its challenge.
- **resource** (RFC 8707 §2): the upstream MCP URL, in the authorization request and in every token request, so the
  tokens are audience-restricted to that server (MCP 2025-11-25 "Resource Parameter Implementation").
- **state** is random and opaque. What the flow is for — route, subject, user, where to return — travels in a
  signed cookie named after the state, so the callback is accepted only in the browser that started the flow
  (RFC 6749 §10.12) and the upstream learns nothing about the user from the URL.
- **Mix-up defence** (RFC 9700 §4.4): each upstream has its own redirect URI, and the answer must arrive at the one
  of the upstream the flow was started for; ``iss`` (RFC 9207) is required when the server advertises it and must
  equal the expected issuer whenever present; the flow remembers the issuer it was started with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from gateway import safe_json
from gateway.crypto.hashing import random_token
from gateway.crypto.pkce import s256
from gateway.net.ssrf import FetchError, FetchResult, SafeFetcher
from gateway.upstream.metadata_discovery import UpstreamAuthorization
from gateway.upstream.token_set import ClientAuthMethod, TokenSet, UpstreamClient

FLOW_SECONDS = 900  # how long a started upstream authorization may take
_STATE_COOKIE_PREFIX = "mcpgw-u-"
_MAC_CONTEXT = b"mcp-gateway/upstream-flow/v1\x00"
_PKCE_CONTEXT = b"mcp-gateway/upstream-pkce/v1\x00"
# RFC 6749 §5.2 errors after which the stored credential is useless and the user must connect again.
RECONNECT_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
_T = TypeVar("_T")


class TokenEndpointError(Exception):
    """The token endpoint refused (``error`` set, RFC 6749 §5.2) or could not be reached (``error`` None)."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error

    @property
    def needs_reconnect(self) -> bool:
        return self.error in RECONNECT_ERRORS


class FlowError(Exception):
    """The callback does not belong to a flow this browser started, or the flow expired; says why."""


@dataclass(frozen=True, slots=True)
class Flow:
    """An upstream authorization in progress (carried in the signed flow cookie)."""

    state: str
    route_key: str
    subject: str
    user_id: str
    pending_id: str | None  # the consent in progress to return to, if started from the consent page
    issuer: str
    client_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class StartedFlow:
    authorization_url: str
    cookie_name: str
    cookie_value: str
    max_age: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def flow_cookie_name(state: str, secure: bool) -> str:
    name = _STATE_COOKIE_PREFIX + _b64(hashlib.sha256(state.encode()).digest()[:9])
    return f"__Host-{name}" if secure else name


def code_verifier(state: str, secret: bytes) -> str:
    """RFC 7636 §4.1: 43 characters of base64url from 256 bits — here derived, not stored."""
    return _b64(hmac.new(secret, _PKCE_CONTEXT + state.encode(), hashlib.sha256).digest())


def _mac(payload: str, secret: bytes) -> str:
    return _b64(hmac.new(secret, _MAC_CONTEXT + payload.encode(), hashlib.sha256).digest())


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


def start_flow(
    *,
    upstream: UpstreamAuthorization,
    client: UpstreamClient,
    redirect_uri: str,
    route_key: str,
    subject: str,
    user_id: str,
    pending_id: str | None,
    secret: bytes,
    secure_cookie: bool,
    now: int,
) -> StartedFlow:
    """The authorization request (RFC 6749 §4.1.1 + RFC 7636 §4.3 + RFC 8707 §2.1) and its flow cookie."""
    state = random_token(24)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": s256(code_verifier(state, secret)),
        "code_challenge_method": "S256",
        "resource": upstream.resource,
    }
    if upstream.scopes:
        params["scope"] = " ".join(upstream.scopes)
    flow = Flow(
        state=state,
        route_key=route_key,
        subject=subject,
        user_id=user_id,
        pending_id=pending_id,
        issuer=upstream.server.issuer,
        client_id=client.client_id,
        expires_at=now + FLOW_SECONDS,
    )
    payload = _b64(json.dumps(asdict(flow), separators=(",", ":")).encode())
    return StartedFlow(
        authorization_url=_with_query(upstream.server.authorization_endpoint, params),
        cookie_name=flow_cookie_name(state, secure_cookie),
        cookie_value=f"{payload}.{_mac(payload, secret)}",
        max_age=FLOW_SECONDS,
    )


def read_flow(state: str, cookies: dict[str, str], *, secret: bytes, secure_cookie: bool, now: int) -> Flow:
    """The flow named by the callback's ``state``, provided this browser holds its signed cookie."""
    if not state or len(state) > 200:
        raise FlowError("the answer of the upstream's authorization server carries no valid state")
    signed = cookies.get(flow_cookie_name(state, secure_cookie))
    if signed is None:
        raise FlowError("this connection was started in another browser, or the browser dropped its cookie")
    payload, dot, mac = signed.rpartition(".")
    if not dot or not hmac.compare_digest(mac.encode(), _mac(payload, secret).encode()):
        raise FlowError("the connection's cookie is not valid")
    try:
        flow = Flow(**json.loads(_unb64(payload)))
    except (ValueError, TypeError):
        raise FlowError("the connection's cookie is not valid") from None
    if not hmac.compare_digest(flow.state.encode(), state.encode()):
        raise FlowError("the answer does not belong to this connection")
    if flow.expires_at <= now:
        raise FlowError("the connection took too long; start it again")
    return flow


def check_issuer(upstream: UpstreamAuthorization, flow: Flow, iss: str | None) -> None:
    """RFC 9207 §2.4: ``iss`` is required when the server advertises it, and compared whenever it is present (a
    server that sends it without advertising it still names itself); the flow's issuer is always required. The
    per-upstream redirect URI (gateway.upstream.client_metadata.connect_callback_url) covers servers that send no
    ``iss`` at all."""
    if flow.issuer != upstream.server.issuer:
        raise FlowError("the upstream's authorization server changed during the connection; start it again")
    if iss is None and upstream.server.iss_parameter_supported:
        raise FlowError("the answer does not name its authorization server (iss missing)")
    if iss is not None and iss != upstream.server.issuer:
        raise FlowError("the answer names another authorization server (iss mismatch)")


# --- token endpoint ---------------------------------------------------------------------------------------------

# The other way to present a client secret, tried once when the server answers ``invalid_client`` to the first.
_OTHER_SECRET_METHOD: dict[ClientAuthMethod, ClientAuthMethod] = {
    "client_secret_basic": "client_secret_post",
    "client_secret_post": "client_secret_basic",
}


def _client_auth(client: UpstreamClient, form: dict[str, str]) -> dict[str, str]:
    """RFC 6749 §2.3.1; the Basic credentials are form-urlencoded before base64 (§2.3.1, Appendix B).

    ``client_id`` is in the body whatever the method: RFC 6749 §3.2.1 lets a client identify itself there, and
    servers differ on where they look for it — the official ``mcp`` SDK's authorization server refuses a request
    without it even when the Basic header names the client (``invalid_client "Missing client_id"``)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    form["client_id"] = client.client_id
    if client.auth_method == "client_secret_basic" and client.client_secret is not None:
        user = quote(client.client_id, safe="")
        password = quote(client.client_secret, safe="")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    elif client.auth_method == "client_secret_post" and client.client_secret is not None:
        form["client_secret"] = client.client_secret
    return headers


def _answer(result: FetchResult) -> dict[str, Any]:
    try:
        data = safe_json.loads(result.body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise TokenEndpointError(f"token endpoint answered HTTP {result.status} without a JSON object")
    if result.status != 200 or "error" in data:
        code = data.get("error") if isinstance(data.get("error"), str) else "invalid_response"
        description = str(data.get("error_description") or "")[:200]
        raise TokenEndpointError(f"token endpoint refused: {code} {description}".rstrip(), str(code))
    return data


async def _post_form(
    fetcher: SafeFetcher,
    endpoint: str,
    client: UpstreamClient,
    form: dict[str, str],
    parse: Callable[[FetchResult], _T],
) -> tuple[_T, UpstreamClient]:
    """POST ``form`` with ``client``'s authentication; when the server refuses the client (RFC 6749 §5.2
    ``invalid_client``) and the client has a secret, once more with the secret presented the other way (Basic ↔
    body): servers differ in the methods they really accept, whatever they advertise. Returns the parsed answer and
    the client as it authenticated (so later requests use the method that worked)."""
    attempt = client
    for retry in (True, False):
        body = dict(form)
        headers = _client_auth(attempt, body)
        try:
            result = await fetcher.request("POST", endpoint, headers=headers, content=urlencode(body).encode())
        except FetchError as error:
            raise TokenEndpointError(f"token endpoint unreachable: {error}") from None
        try:
            return parse(result), attempt
        except TokenEndpointError as refused:
            other = _OTHER_SECRET_METHOD.get(attempt.auth_method)
            if not retry or other is None or attempt.client_secret is None or not _refuses_client(refused, result):
                raise
            attempt = replace(attempt, auth_method=other)
    raise AssertionError("unreachable")


def _refuses_client(refused: TokenEndpointError, result: FetchResult) -> bool:
    # RFC 6749 §5.2 invalid_client; RFC 7009 §2.2.1 lets a revocation endpoint answer 401 unauthorized_client.
    return refused.error == "invalid_client" or (result.status == 401 and refused.error == "unauthorized_client")


async def _token_request(
    fetcher: SafeFetcher, token_endpoint: str, client: UpstreamClient, form: dict[str, str]
) -> tuple[dict[str, Any], UpstreamClient]:
    data, used = await _post_form(fetcher, token_endpoint, client, form, _answer)
    if not isinstance(data.get("access_token"), str) or not data["access_token"]:
        raise TokenEndpointError("token response has no access_token", "invalid_response")
    return data, used


def _token_set(
    data: dict[str, Any],
    *,
    issuer: str,
    token_endpoint: str,
    resource: str,
    client: UpstreamClient,
    now: int,
    revocation_endpoint: str | None,
) -> TokenSet:
    expires_in = data.get("expires_in")
    expires_at = now + int(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else None
    refresh = data.get("refresh_token")
    scope = data.get("scope")
    return TokenSet(
        access_token=data["access_token"],
        token_type=str(data.get("token_type") or "Bearer"),
        expires_at=expires_at,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        scope=scope if isinstance(scope, str) else None,
        obtained_at=now,
        issuer=issuer,
        token_endpoint=token_endpoint,
        resource=resource,
        client=client,
        revocation_endpoint=revocation_endpoint,
    )


async def exchange_code(
    fetcher: SafeFetcher,
    *,
    upstream: UpstreamAuthorization,
    client: UpstreamClient,
    code: str,
    flow: Flow,
    redirect_uri: str,
    secret: bytes,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """RFC 6749 §4.1.3 with the PKCE verifier (RFC 7636 §4.5) and ``resource`` (RFC 8707 §2.2)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier(flow.state, secret),
        "resource": upstream.resource,
    }
    data, used = await _token_request(fetcher, upstream.server.token_endpoint, client, form)
    return _token_set(
        data,
        issuer=upstream.server.issuer,
        token_endpoint=upstream.server.token_endpoint,
        resource=upstream.resource,
        client=used,
        now=int(clock()),
        revocation_endpoint=upstream.server.revocation_endpoint,
    )


async def refresh(fetcher: SafeFetcher, tokens: TokenSet, *, clock: Callable[[], float] = time.time) -> TokenSet:
    """RFC 6749 §6 with ``resource`` (RFC 8707 §2.2). Raises :class:`TokenEndpointError`."""
    if tokens.refresh_token is None:
        raise TokenEndpointError("the upstream issued no refresh token", "invalid_grant")
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "resource": tokens.resource}
    data, used = await _token_request(fetcher, tokens.token_endpoint, tokens.client, form)
    newer = _token_set(
        data,
        issuer=tokens.issuer,
        token_endpoint=tokens.token_endpoint,
        resource=tokens.resource,
        client=used,
        now=int(clock()),
        revocation_endpoint=tokens.revocation_endpoint,
    )
    return tokens.with_refreshed(newer)


def _revocation_answer(result: FetchResult) -> None:
    """RFC 7009 §2.2: 200 means revoked (or nothing to revoke); an error answer is as at the token endpoint."""
    if result.status == 200:
        return
    _answer(result)  # raises with the server's error
    raise TokenEndpointError(f"revocation endpoint answered HTTP {result.status}")


async def revoke(fetcher: SafeFetcher, tokens: TokenSet) -> bool:
    """RFC 7009 §2.1: revoke the token set at the upstream's revocation endpoint, the refresh token when there is
    one (the server then also revokes its access tokens, §2.1), else the access token, with the same client
    authentication as the token requests. False when the server advertises no revocation endpoint. Raises
    :class:`TokenEndpointError`."""
    if tokens.revocation_endpoint is None:
        return False
    if tokens.refresh_token is not None:
        form = {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
    else:
        form = {"token": tokens.access_token, "token_type_hint": "access_token"}
    await _post_form(fetcher, tokens.revocation_endpoint, tokens.client, form, _revocation_answer)
    return True
