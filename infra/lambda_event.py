"""API Gateway HTTP API (payload format 2.0) as AWS builds it: route matching, the event, the proxy response.

The dev server and ``make invoke`` use this module so that a function sees locally exactly the event it receives
in AWS, and so that its Lambda response is turned into the HTTP response API Gateway would send. References:
"Working with AWS Lambda proxy integrations for HTTP APIs" and "Working with routes for HTTP APIs" in the API
Gateway developer guide.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, unquote

T = TypeVar("T")

ACCOUNT_ID = "123456789012"
API_ID = "localapi01"

# Lambda's limit on a synchronous invocation's request and response payloads (6 MB).
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024

# Body media types API Gateway passes as text; every other body arrives base64-encoded (isBase64Encoded: true).
# HTTP APIs do base64-encode application/x-www-form-urlencoded bodies.
_TEXT_MEDIA_TYPES = frozenset(
    {"application/json", "application/xml", "application/javascript", "application/graphql", "application/yaml"}
)

JSON_HEADERS: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


# --- requests and responses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as the server received it. ``raw_path`` is still percent-encoded."""

    method: str
    raw_path: str
    raw_query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


def gateway_error(status: int, message: str) -> HttpResponse:
    """An error response in API Gateway's own format, e.g. ``404 {"message":"Not Found"}``."""
    return HttpResponse(status, list(JSON_HEADERS), json.dumps({"message": message}, separators=(",", ":")).encode())


def not_found() -> HttpResponse:
    return gateway_error(404, "Not Found")


def internal_error() -> HttpResponse:
    """What the dev server answers when the function fails (raises, times out, returns too much or garbage)."""
    return gateway_error(502, "Internal Server Error")


def service_unavailable() -> HttpResponse:
    """API Gateway's answer when the 30 s integration timeout expires."""
    return gateway_error(503, "Service Unavailable")


# --- route matching -----------------------------------------------------------------------------------------

_LITERAL, _PARAMETER, _GREEDY = 2, 1, 0


def _segment_kind(segment: str) -> int:
    if segment.startswith("{") and segment.endswith("+}"):
        return _GREEDY
    if segment.startswith("{") and segment.endswith("}"):
        return _PARAMETER
    return _LITERAL


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    route_key: str
    path_parameters: dict[str, str]
    target: T


@dataclass(frozen=True)
class _Route(Generic[T]):
    method: str
    path: str
    segments: tuple[str, ...]
    target: T

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def specificity(self) -> tuple[tuple[int, ...], int]:
        """Literal segments beat ``{param}`` which beats ``{proxy+}``, compared left to right; then a named
        method beats ``ANY`` (AWS: "API Gateway selects the route with the most-specific match")."""
        return tuple(_segment_kind(s) for s in self.segments), 0 if self.method == "ANY" else 1

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        parameters: dict[str, str] = {}
        for index, template in enumerate(self.segments):
            kind = _segment_kind(template)
            if kind == _GREEDY:
                rest = "/".join(segments[index:])
                if not rest:
                    return None
                parameters[template[1:-2]] = unquote(rest)
                return parameters
            if index >= len(segments):
                return None
            if kind == _PARAMETER:
                if not segments[index]:
                    return None
                parameters[template[1:-1]] = unquote(segments[index])
            elif template != segments[index]:
                return None
        return parameters if len(segments) == len(self.segments) else None


class HttpApiRoutes(Generic[T]):
    """The routes of one API Gateway HTTP API, matched as API Gateway matches them: each maps a route key
    (``GET /a/{b}``) to its integration target, e.g. a function. Not :class:`gateway.routes.RouteTable` (the
    gateway's own MCP routes, /{workspace}/{server}/mcp)."""

    def __init__(self) -> None:
        self._routes: list[_Route[T]] = []

    def add(self, method: str, path: str, target: T) -> None:
        method = method.upper()
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        segments = tuple(path[1:].split("/"))
        greedy = [i for i, s in enumerate(segments) if _segment_kind(s) == _GREEDY]
        if greedy and greedy != [len(segments) - 1]:
            raise ValueError(f"a greedy path variable must be the last segment: {path!r}")
        route = _Route(method, path, segments, target)
        if any(existing.route_key == route.route_key for existing in self._routes):
            raise ValueError(f"duplicate route {route.route_key!r}")
        self._routes.append(route)
        self._routes.sort(key=_Route.specificity, reverse=True)

    def __len__(self) -> int:
        return len(self._routes)

    @property
    def route_keys(self) -> list[str]:
        return [route.route_key for route in self._routes]

    def match(self, method: str, raw_path: str) -> RouteMatch[T] | None:
        """The most specific route for a request, or None (API Gateway answers 404 Not Found)."""
        segments = raw_path[1:].split("/") if raw_path.startswith("/") else [raw_path]
        for route in self._routes:
            parameters = route.match(method.upper(), segments)
            if parameters is not None:
                return RouteMatch(route.route_key, parameters, route.target)
        return None


# --- the event ----------------------------------------------------------------------------------------------


def _join_repeated(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def is_text_body(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in _TEXT_MEDIA_TYPES or media_type.endswith(("+json", "+xml"))


def _request_id() -> str:
    """The shape of API Gateway's request ids, e.g. ``JKJaXmPLvHcESHA=``."""
    return base64.b64encode(secrets.token_bytes(10)).decode()


def _trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"


def build_event(
    request: HttpRequest,
    match: RouteMatch[Any],
    *,
    server_port: int | None = None,
    scheme: str = "http",
    now: float | None = None,
) -> dict[str, Any]:
    """The payload-2.0 event API Gateway sends to a Lambda function for ``request`` on the matched route."""
    now = time.time() if now is None else now
    cookies: list[str] = []
    header_pairs: list[tuple[str, str]] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            header_pairs.append((lower, value))
    headers = _join_repeated(header_pairs)
    # API Gateway adds these; X-Forwarded-For appends the caller's address to any value the client sent.
    forwarded_for = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip
    headers["x-forwarded-proto"] = scheme
    if server_port is not None:
        headers["x-forwarded-port"] = str(server_port)
    headers["x-amzn-trace-id"] = _trace_id(now)
    if request.body and "content-length" not in headers:
        headers["content-length"] = str(len(request.body))

    domain_name = headers.get("host", "localhost")
    request_id = _request_id()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.raw_query:
        event["queryStringParameters"] = _join_repeated(parse_qsl(request.raw_query, keep_blank_values=True))
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": request.method.upper(),
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": match.route_key,
        "stage": "$default",
        "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now * 1000),
    }
    if match.path_parameters:
        event["pathParameters"] = dict(match.path_parameters)
    if request.body:
        text = is_text_body(headers.get("content-type"))
        if text:
            try:
                event["body"] = request.body.decode("utf-8")
            except UnicodeDecodeError:
                text = False
        if not text:
            event["body"] = base64.b64encode(request.body).decode("ascii")
        event["isBase64Encoded"] = not text
    else:
        event["isBase64Encoded"] = False
    return event


REST_STAGE = "live"  # the streaming deployment's REST API stage (template.yaml, StreamApi)


def rest_api_event(event: Mapping[str, Any], *, stage: str = REST_STAGE) -> dict[str, Any]:
    """The Lambda proxy event (payload format 1.0) the streaming deployment's REST API sends for the request that
    the HTTP API delivered as the payload-2.0 ``event``: the same route (REST resources mirror the HTTP API's
    routes), headers, cookies folded back into ``Cookie``, multi-value query parameters, and the caller's address in
    ``identity``."""
    context = event["requestContext"]
    method = str(context["http"]["method"])
    resource = str(event.get("routeKey", f"{method} {event['rawPath']}")).partition(" ")[2]
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(str(event.get("rawQueryString") or ""), keep_blank_values=True):
        query.setdefault(name, []).append(value)
    path = str(event["rawPath"])
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": event.get("pathParameters") or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": context.get("accountId", ACCOUNT_ID),
            "apiId": context.get("apiId", API_ID),
            "domainName": context.get("domainName", "localhost"),
            "httpMethod": method,
            "identity": {"sourceIp": context["http"]["sourceIp"], "userAgent": context["http"].get("userAgent", "")},
            "path": f"/{stage}{path}",
            "protocol": context["http"].get("protocol", "HTTP/1.1"),
            "requestId": context.get("requestId", _request_id()),
            "requestTimeEpoch": context.get("timeEpoch", int(time.time() * 1000)),
            "resourcePath": resource,
            "stage": stage,
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def request_id_of(event: Mapping[str, Any]) -> str:
    context = event.get("requestContext")
    return str(context.get("requestId", "")) if isinstance(context, Mapping) else ""


# --- the response -------------------------------------------------------------------------------------------


class InvalidLambdaResponse(ValueError):
    """The function returned something API Gateway cannot turn into a response (API Gateway answers 5xx)."""


def response_from_lambda(result: object) -> HttpResponse:
    """The HTTP response API Gateway builds from a function's result (payload format 2.0).

    A result with ``statusCode`` is a proxy response: ``headers``, ``cookies`` (each a ``Set-Cookie``), ``body``
    and ``isBase64Encoded``. Anything else that is valid JSON (a dict without ``statusCode``, a string, a number) is
    sent as the body of a ``200 application/json`` response, as AWS does.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        try:
            body = json.dumps(result).encode()
        except (TypeError, ValueError) as error:
            raise InvalidLambdaResponse(f"result is not JSON-serializable: {error}") from None
        return HttpResponse(200, list(JSON_HEADERS), body)

    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise InvalidLambdaResponse(f"invalid statusCode {status!r}")

    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise InvalidLambdaResponse("headers must be an object")
    for name, value in raw_headers.items():
        headers.append((str(name), _header_value(value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise InvalidLambdaResponse("cookies must be a list")
    headers.extend(("set-cookie", str(cookie)) for cookie in cookies)

    body_value = result.get("body")
    if body_value is None:
        body = b""
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(body_value), validate=True)
        except ValueError:
            raise InvalidLambdaResponse("body is not valid base64 although isBase64Encoded is true") from None
    elif isinstance(body_value, str):
        body = body_value.encode()
    else:
        raise InvalidLambdaResponse(f"body must be a string, not {type(body_value).__name__}")
    return HttpResponse(status, headers, body)


def _header_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def payload_size(result: object) -> int:
    """The size of a result as Lambda measures it: its JSON serialization."""
    try:
        return len(json.dumps(result).encode())
    except (TypeError, ValueError):
        return 0
