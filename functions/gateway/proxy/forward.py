"""Forward one MCP HTTP request to the route's upstream and bring back its response, or an explicit failure.

Failures are JSON-RPC errors naming the upstream and the cause (502 unreachable or misbehaving, 504 timed out),
never a hang or a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from gateway.http_client import shared_client
from gateway.proxy.headers import client_response_headers, upstream_request_headers
from gateway.routes import Route

UPSTREAM_UNAVAILABLE = -32603  # JSON-RPC "internal error": the gateway could not complete the call upstream


@dataclass(frozen=True, slots=True)
class Relayed:
    status_code: int
    headers: dict[str, str]
    body: bytes


def jsonrpc_id(body: bytes) -> object:
    """The ``id`` of a JSON-RPC request body, or None when there is none (notifications, batches, bad JSON)."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return message.get("id") if isinstance(message, dict) else None


def upstream_failure(route: Route, status_code: int, cause: str, body: bytes) -> Relayed:
    error = {
        "jsonrpc": "2.0",
        "id": jsonrpc_id(body),
        "error": {
            "code": UPSTREAM_UNAVAILABLE,
            "message": f"upstream MCP server {route.key!r} {cause}",
            "data": {"upstream": route.key, "cause": cause},
        },
    }
    return Relayed(status_code, {"content-type": "application/json"}, json.dumps(error).encode())


async def forward(
    route: Route,
    method: str,
    client_headers: list[tuple[str, str]],
    body: bytes,
    extra_headers: dict[str, str] | None = None,
) -> Relayed:
    headers = upstream_request_headers(client_headers)
    headers.update(extra_headers or {})
    timeout = httpx.Timeout(route.server.timeout_seconds, connect=min(5.0, route.server.timeout_seconds))
    try:
        response = await shared_client().request(
            method, str(route.server.upstream), headers=headers, content=body, timeout=timeout
        )
    except httpx.TimeoutException:
        return upstream_failure(route, 504, f"did not answer within {route.server.timeout_seconds:g} s", body)
    except httpx.HTTPError as error:
        return upstream_failure(route, 502, f"is unreachable ({type(error).__name__})", body)
    if response.status_code >= 500:
        return upstream_failure(route, 502, f"answered HTTP {response.status_code}", body)
    return Relayed(response.status_code, client_response_headers(response.headers), response.content)
