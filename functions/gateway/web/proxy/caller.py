"""Who is calling the MCP endpoint: a signed-in user's access token, or a gateway API key acting as its owner.

:func:`authenticate` answers the proxy's question before anything is relayed, with either the caller or the
response to send instead (401 and a ``WWW-Authenticate`` challenge, 403 for a missing scope, 429 over the rate
limit, 503 when a store fails); :func:`tool_refusal` answers a ``tools/call`` outside a key's allow-list.

- An access token (``Authorization: Bearer <JWT>``) is verified locally and its grant's status read
  (:mod:`gateway.proxy.grant_status`).
- An API key arrives in the configured header (``GATEWAY_API_KEY_HEADER``, default ``X-Gateway-Key``: then
  ``Authorization`` is left to carry something else and is ignored) or as ``Authorization: Bearer mcpgw_...``. Its
  record is read by id (:mod:`gateway.api_keys.verifier`); its owner then goes through the proxy exactly like a
  signed-in user: same upstream credentials, same audit events (with the key's id as the client).

A key at a route it does not name gets the same ``401 invalid_token`` as a bad token. Neither header is ever
forwarded upstream (:mod:`gateway.proxy.headers` carries only the transport's own headers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from gateway.api_keys.key_format import looks_like_key
from gateway.api_keys.tool_scope import refused_tool
from gateway.api_keys.verifier import ApiKeyVerifier, InvalidApiKey
from gateway.mcp.codes import INTERNAL_ERROR, INVALID_PARAMS, RATE_LIMITED
from gateway.mcp.payload import Payload
from gateway.proxy.answer import Relayed, error_answer
from gateway.proxy.grant_status import GrantStatusCache
from gateway.proxy.verified_tokens import VerifiedTokens
from gateway.rate_limits import RateLimit, RateLimits
from gateway.routes import Route
from gateway.settings import Settings
from gateway.storage.ports import StorageError
from gateway.tokens.access_token import InvalidAccessToken
from gateway.tokens.dpop import SIGNING_ALGORITHMS as DPOP_ALGORITHMS
from gateway.tokens.dpop import DpopProof, InvalidDpopProof, canonical_url, the_proof, verify_proof
from gateway.web.common.responses import error_response
from gateway.web.common.services import GatewayState
from gateway.web.proxy.bearer import bearer_token, challenge, dpop_challenge, dpop_token

logger = logging.getLogger("gateway.proxy")


@dataclass(frozen=True, slots=True)
class Caller:
    """The identity a proxied request acts as (the names match the access token's claims)."""

    user_id: str
    client_id: str
    """The OAuth client, or the API key's id."""
    grant_id: str | None
    tools: tuple[str, ...] = ()
    """A key's tool allow-list; empty means every tool of the route."""
    is_key: bool = False


class CallerServices(GatewayState, Protocol):
    settings: Settings

    @property
    def verified_tokens(self) -> VerifiedTokens: ...

    @property
    def grant_status(self) -> GrantStatusCache: ...

    @property
    def api_key_verifier(self) -> ApiKeyVerifier: ...

    @property
    def rate_limits(self) -> RateLimits: ...

    @property
    def dpop_replay(self) -> Callable[[DpopProof, int], bool]: ...


async def authenticate(
    services: CallerServices, request: Request, route: Route, payload: Callable[[], Payload], cors: dict[str, str]
) -> Caller | Response:
    """``payload`` gives the request's one parse (made when first asked for: a caller refused at the door costs no
    parse, and the error answers that carry request ids ask for it)."""
    key = request.headers.get(services.settings.api_key_header)
    authorization = request.headers.get("authorization")
    token = bearer_token(authorization)
    if key is None and token is not None and looks_like_key(token):
        key = token
    bound_token = dpop_token(authorization) if key is None else None
    if key is not None:
        found = _key_caller(services, route, payload, key, cors)
    elif bound_token is not None:
        found = _token_caller(services, route, payload, bound_token, cors, request=request, dpop=True)
    elif token is not None:
        found = _token_caller(services, route, payload, token, cors, request=request)
    else:
        return error_response(
            401,
            "invalid_request",
            "this MCP server requires an access token",
            {**cors, "WWW-Authenticate": challenge(route)},
        )
    if isinstance(found, Response):
        return found
    limit = RateLimit("proxy", services.settings.rate_limit_proxy_per_caller)
    subject = f"key:{found.client_id}" if found.is_key else f"user:{route.workspace_name}/{found.user_id}"
    verdict = services.rate_limits.check(limit, subject)
    if not verdict.allowed:
        message = f"rate limit reached; retry after {verdict.retry_after} seconds"
        limited = error_answer(429, payload(), RATE_LIMITED, message, {"retry_after": verdict.retry_after})
        return _response(limited, {**cors, "Retry-After": str(verdict.retry_after)})
    return found


def tool_refusal(caller: Caller, payload: Payload) -> Relayed | None:
    """The JSON-RPC error for a ``tools/call`` outside a key's allow-list (every call of a batch is checked), else
    None. Nothing of such a request is forwarded."""
    tool = refused_tool(payload, caller.tools) if caller.tools else None
    if tool is None:
        return None
    return error_answer(200, payload, INVALID_PARAMS, f"this API key may not call the tool {tool!r}")


def _token_caller(
    services: CallerServices,
    route: Route,
    payload: Callable[[], Payload],
    token: str,
    cors: dict[str, str],
    *,
    request: Request,
    dpop: bool = False,
) -> Caller | Response:
    try:
        claims = services.verified_tokens.verify(token, route)
    except InvalidAccessToken as problem:
        return invalid_token(route, str(problem), cors)
    if dpop or claims.jkt is not None or route.workspace.dpop.required:
        try:
            refused = _dpop_refusal(services, request, route, token, claims.jkt, dpop=dpop)
        except StorageError:  # the shared replay record (GATEWAY_DPOP_REPLAY=shared) could not be written
            logger.exception("DPoP replay check failed")
            return _unavailable(payload(), "the gateway's grant store is unavailable", cors)
        if refused is not None:
            return _dpop_challenged(route, refused, cors)
    missing = [scope for scope in route.default_scopes if scope not in claims.scopes]
    if missing:
        description = f"the access token lacks the scope {' '.join(missing)}"
        return error_response(
            403,
            "insufficient_scope",
            description,
            {**cors, "WWW-Authenticate": challenge(route, error="insufficient_scope", description=description)},
        )
    # A self-contained token outlives a revocation; its grant's status bounds that (design brief, "Revocation").
    try:
        active = bool(claims.grant_id) and services.grant_status.is_active(claims.grant_id, services.now())
    except StorageError:
        logger.exception("grant status lookup failed")
        return _unavailable(payload(), "the gateway's grant store is unavailable", cors)
    if not active:
        return invalid_token(route, "the access token's grant was revoked or has ended", cors)
    return Caller(user_id=claims.user_id, client_id=claims.client_id, grant_id=claims.grant_id)


def _key_caller(
    services: CallerServices, route: Route, payload: Callable[[], Payload], key: str, cors: dict[str, str]
) -> Caller | Response:
    try:
        record = services.api_key_verifier.verify(key, route, services.now())
    except InvalidApiKey as problem:
        return invalid_token(route, str(problem), cors)
    except StorageError:
        logger.exception("API key lookup failed")
        return _unavailable(payload(), "the gateway's key store is unavailable", cors)
    return Caller(user_id=record.user_id, client_id=record.key_id, grant_id=None, tools=record.tools, is_key=True)


def _dpop_refusal(
    services: CallerServices, request: Request, route: Route, token: str, jkt: str | None, *, dpop: bool
) -> str | None:
    """RFC 9449 §7.1: why a request with this token fails its DPoP check (None: it passes). A bound token needs
    ``Authorization: DPoP`` and a proof of its key for this request (§4.3: method, the route URL, ``iat`` window,
    ``ath``), each proof used once."""
    if not dpop:
        if jkt is not None:
            return "this access token is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof"
        return "this workspace requires DPoP-bound tokens"
    if jkt is None:
        return "the access token is not DPoP-bound: send it as Authorization: Bearer"
    now = services.now()
    try:
        proof = verify_proof(
            the_proof(request.headers.getlist("dpop")),
            method=request.method,
            urls={canonical_url(route.resource)},
            now=now,
            access_token=token,
        )
    except InvalidDpopProof as problem:
        return str(problem)
    if proof.jkt != jkt:
        return "the DPoP proof was made with another key than the token is bound to"
    if not services.dpop_replay(proof, now):
        return "the DPoP proof was already used (its jti is single-use)"
    return None


def _dpop_challenged(route: Route, description: str, cors: dict[str, str]) -> Response:
    """401 with a ``DPoP`` challenge, and a ``Bearer`` one where the workspace also accepts bearer tokens."""
    response = error_response(401, "invalid_dpop_proof", description, cors)
    response.headers.append("WWW-Authenticate", dpop_challenge(description, DPOP_ALGORITHMS))
    if not route.workspace.dpop.required:
        response.headers.append("WWW-Authenticate", challenge(route))
    return response


def invalid_token(route: Route, description: str, cors: dict[str, str]) -> Response:
    return error_response(
        401,
        "invalid_token",
        description,
        {**cors, "WWW-Authenticate": challenge(route, error="invalid_token", description=description)},
    )


def _unavailable(payload: Payload, message: str, cors: dict[str, str]) -> Response:
    return _response(error_answer(503, payload, INTERNAL_ERROR, message), {**cors, "Retry-After": "1"})


def _response(answer: Relayed, headers: dict[str, str]) -> Response:
    return Response(answer.body, answer.status_code, {**answer.headers, **headers})
