"""MCP 2026-07-28, the stateless revision (SEP-2575, SEP-2243): what a request must carry, the headers that mirror
its body, and the HTTP status of its errors.

- Every request carries ``params._meta`` with the protocol version and the client's capabilities.
- ``MCP-Protocol-Version``, ``Mcp-Method`` and, for ``tools/call``, ``prompts/get`` and ``resources/read``,
  ``Mcp-Name`` mirror the body (§Streamable HTTP "Request Metadata"); a name that is not a plain ASCII header value
  travels as ``=?base64?…?=`` (§"Value Encoding"). A server that processes the body MUST refuse headers that disagree
  with it: HTTP 400 and ``-32020`` (§"Server Validation").
- An error's JSON-RPC code decides the HTTP status; the session era's methods (``initialize``, ``ping``,
  ``logging/setLevel``) are unknown.

A plain route forwards the request: the gateway refuses headers that are missing or disagree with the body
(:func:`header_mismatch`), as it decides on the body, and sends the upstream the headers computed from the body it
forwards (:func:`routing_headers`). A virtual route answers the request itself and makes every check a server makes
(:func:`request_problem`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from gateway.mcp.codes import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
)
from gateway.mcp.payload import Payload, Refusal
from gateway.mcp.revisions import CLIENT_CAPABILITIES_META, PROTOCOL_VERSION_META, STATELESS_VERSIONS, is_stateless

REMOVED_METHODS = frozenset({"initialize", "ping", "logging/setLevel"})
# What Mcp-Name mirrors, per method (§"Standard Request Headers"; the tasks extension, SEP-2663, adds its methods)
NAMED_BY = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
ROUTING_HEADERS = ("mcp-method", "mcp-name")
HTTP_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_REQUIRED_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}
_BASE64_VALUE = re.compile(r"=\?base64\?(?P<payload>[A-Za-z0-9+/=]*)\?=")
_PLAIN_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def named(message: Mapping[str, Any]) -> str | None:
    """What ``Mcp-Name`` mirrors for this request: ``params.name`` or ``params.uri``, when its method has one."""
    key = NAMED_BY.get(str(message.get("method")))
    params = message.get("params")
    value = params.get(key) if key is not None and isinstance(params, Mapping) else None
    return value if isinstance(value, str) else None


def encode_value(value: str) -> str:
    """A header value for ``value``: as it is when it is plain visible ASCII, else the Base64 sentinel form (also
    for a plain value that looks like the sentinel, §"Value Encoding")."""
    if _PLAIN_VALUE.fullmatch(value) and not _BASE64_VALUE.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8', 'surrogatepass')).decode('ascii')}?="


def decode_value(value: str | None) -> str | None:
    """A header value, decoded from the ``=?base64?…?=`` form (None if absent or malformed)."""
    if value is None:
        return None
    match = _BASE64_VALUE.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match["payload"], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def routing_headers(message: Mapping[str, Any]) -> dict[str, str]:
    """``Mcp-Method`` and ``Mcp-Name`` of a request or notification, computed from its body (a method name that is
    not a plain header value, which no MCP method is, travels in the Base64 form too: it cannot break the head)."""
    headers = {"mcp-method": encode_value(str(message.get("method")))}  # MCP's own methods are plain ASCII
    name = named(message)
    if name is not None:
        headers["mcp-name"] = encode_value(name)
    return headers


def header_mismatch(message: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """Why the routing headers of a request disagree with its body, else None: ``Mcp-Method`` missing or another
    method, ``Mcp-Name`` missing where the method names something (or present where it names nothing) or another
    name, ``MCP-Protocol-Version`` other than the body's. Values are compared without the optional whitespace
    around them (RFC 9110 §5.5), ``Mcp-Name`` after Base64 decoding (§"Value Encoding")."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    version = meta.get(PROTOCOL_VERSION_META) if isinstance(meta, Mapping) else None
    if version is not None and _field(headers.get("mcp-protocol-version")) != version:
        return "MCP-Protocol-Version does not match params._meta"
    if _field(headers.get("mcp-method")) != message.get("method"):
        return "Mcp-Method is missing or does not match the request's method"
    name, sent_name = named(message), _field(headers.get("mcp-name"))
    if (name is not None or sent_name is not None) and decode_value(sent_name) != name:
        return "Mcp-Name is missing or does not match the request's name"
    return None


def _field(value: str | None) -> str | None:
    return None if value is None else value.strip(" \t")


def request_problem(message: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The JSON-RPC error (code, message, data) for a request that fails a server's checks, else None."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    if not isinstance(meta, Mapping):
        return {"code": INVALID_PARAMS, "message": "params._meta must carry the protocol version and capabilities"}
    missing = [key for key in (PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META) if key not in meta]
    if missing:
        return {"code": INVALID_PARAMS, "message": f"params._meta lacks {', '.join(missing)}"}
    version = meta[PROTOCOL_VERSION_META]
    mismatch = header_mismatch(message, headers)
    if mismatch is not None:
        return {"code": HEADER_MISMATCH, "message": f"Header mismatch: {mismatch}"}
    if version not in STATELESS_VERSIONS:
        return {
            "code": UNSUPPORTED_PROTOCOL_VERSION,
            "message": "Unsupported protocol version",
            "data": {"supported": list(STATELESS_VERSIONS), "requested": version},
        }
    return None


def http_status(response: Mapping[str, Any]) -> int:
    """The HTTP status of a single response on the 2026-07-28 wire: by its error code, else 200."""
    error = response.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    return HTTP_STATUS.get(code, 200) if isinstance(code, int) else 200


def header_refusal(payload: Payload, headers: Mapping[str, str]) -> Refusal | None:
    """A 2026-07-28 request the gateway forwards whose routing headers are missing or disagree with its body:
    refused with 400 and ``-32020`` (§"Server Validation"). Headers of other revisions, and of notifications (the
    revision defines none for them), are not checked; the upstream gets headers computed from the body either
    way."""
    if payload.batch or not payload.messages or not is_stateless(headers.get("mcp-protocol-version")):
        return None
    message = payload.messages[0]
    if "method" not in message or "id" not in message:
        return None
    problem = header_mismatch(message, headers)
    return None if problem is None else Refusal(400, HEADER_MISMATCH, f"Header mismatch: {problem}", message["id"])
